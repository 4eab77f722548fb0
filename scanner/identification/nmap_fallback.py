"""nmap -sV for the ports our own probes could not name, when nmap is installed.

nmap knows thousands of service fingerprints; we only ask it about what is left over, and
say so (source "nmap"). Only answers nmap got by probing count: its `method="table"`
answers are guesses from the port number, which is exactly what identification must not do.

In a scan, each unnamed port gets its own nmap process, run concurrently with everything else
and bounded by the port's deadline for real: nmap's own --host-timeout is set a little before
it, and at the deadline the whole process group is killed (nmap -sV can overrun its
--host-timeout on a server that sends garbage after a TLS ServerHello). nmap opens one probe
connection at a time (--max-parallelism 1) and waits --scan-delay between probes, derived from
the scan's rate; the connections it may open are booked from the scan's rate bucket first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from scanner.identification.model import IdentifyOptions
from scanner.net.budget import ScanBudget
from scanner.report.sanitize import safe_text
from scanner.targets import IPAddress

log = logging.getLogger(__name__)

FIELD_CHARS = 128
MIN_HOST_TIMEOUT_S = 15
MIN_USEFUL_SECONDS = 1.0  # less time left than this: nmap cannot learn anything, skip it
KILL_MARGIN_S = 0.3  # nmap's own host timeout ends this long before our hard kill
OUTPUT_CAP = 256 * 1024  # nmap's XML for one port is a few KiB
# nmap -sV at its default intensity sends at most this many probes (connections) to a port
# in the seconds a port's deadline leaves it; booked from the rate bucket before it starts.
NMAP_CONNECTIONS_BOOKED = 8


def nmap_available() -> bool:
    return shutil.which("nmap") is not None


async def nmap_identify_port(
    address: IPAddress, port: int, deadline: float, budget: ScanBudget
) -> NmapService | None:
    """nmap's probed answer for one port, ending by `deadline` whatever nmap does."""
    seconds = deadline - time.monotonic()
    if seconds < MIN_USEFUL_SECONDS or not nmap_available():
        return None
    for _ in range(NMAP_CONNECTIONS_BOOKED):
        await budget.bucket.take_async()
    argv = ["nmap", *port_arguments(address, port, seconds - KILL_MARGIN_S, budget), str(address)]
    try:
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
            stdin=asyncio.subprocess.DEVNULL, start_new_session=True,
        )
    except OSError:
        return None
    try:
        output = await asyncio.wait_for(_read_capped(process), deadline - time.monotonic())
    except TimeoutError:
        log.debug("nmap -sV on port %s killed at the port's deadline", port)
        return None
    finally:  # a timeout, a cancelled scan, anything: no nmap outlives its port
        if process.returncode is None:
            _kill_group(process)
            await process.wait()
    return parse_nmap_services(output.decode("utf-8", "replace"), {port}).get(port)


async def _read_capped(process: asyncio.subprocess.Process) -> bytes:
    assert process.stdout is not None
    data = await process.stdout.read(OUTPUT_CAP)
    await process.wait()
    return data


def _kill_group(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def port_arguments(
    address: IPAddress, port: int, seconds: float, budget: ScanBudget
) -> list[str]:
    """-sV on one port, within `seconds`, one probe at a time at the scan's pace."""
    delay_ms = max(0, int(1000 / budget.limits.rate))
    arguments = [
        "-sV", "-sT", "-Pn", "-n", "-p", str(port),
        "--max-parallelism=1",
        f"--scan-delay={delay_ms}ms",
        f"--host-timeout={max(1, int(seconds))}s",
        "-oX", "-",
    ]
    if address.version == 6:
        arguments.append("-6")
    return arguments


@dataclass(frozen=True)
class NmapService:
    service: str | None
    product: str | None
    version: str | None
    tls: bool
    extrainfo: str | None
    cpes: tuple[str, ...]

    def details(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "product": self.product,
            "version": self.version,
            "extrainfo": self.extrainfo,
            "cpes": list(self.cpes),
        }


def nmap_identify(
    address: IPAddress, ports: Sequence[int], options: IdentifyOptions
) -> dict[int, NmapService]:
    """nmap's probed answer per port; {} when nmap is missing or fails (never raises)."""
    if not ports:
        return {}
    try:
        import nmap  # python-nmap; imported here so scans without the fallback never pay
    except ImportError:
        return {}
    try:
        scanner = nmap.PortScanner()
    except nmap.PortScannerError:
        return {}  # nmap is not installed: the fallback is optional, skip it quietly
    host_timeout = host_timeout_seconds(options)
    try:
        scanner.scan(
            hosts=str(address),
            ports=",".join(str(port) for port in sorted(set(ports))),
            arguments=nmap_arguments(address, options),
            timeout=host_timeout + 10,
        )
        xml_output = scanner.get_nmap_last_output()
    except Exception:  # PortScannerError, PortScannerTimeout, odd output: no fallback
        return {}
    text = xml_output.decode("utf-8", "replace") if isinstance(xml_output, bytes) else xml_output
    return parse_nmap_services(text, set(ports))


def host_timeout_seconds(options: IdentifyOptions) -> int:
    return max(MIN_HOST_TIMEOUT_S, int(options.timeout * 5))


def nmap_arguments(address: IPAddress, options: IdentifyOptions) -> str:
    arguments = [
        "-sV",
        "-sT",  # plain connects: no privileges needed, no raw packets
        "-Pn",  # discovery already found the ports open
        "-n",
        f"--max-parallelism={max(1, options.max_connections_per_host)}",
        f"--host-timeout={host_timeout_seconds(options)}s",
    ]
    if address.version == 6:
        arguments.append("-6")
    return " ".join(arguments)


def parse_nmap_services(xml_text: str, wanted: set[int]) -> dict[int, NmapService]:
    """Probed service answers from nmap's XML, for the ports we asked about only."""
    try:
        root = ElementTree.fromstring(xml_text)
    except ElementTree.ParseError:
        return {}
    found: dict[int, NmapService] = {}
    for port_element in root.iter("port"):
        port = _port_number(port_element)
        service = port_element.find("service")
        if port is None or port not in wanted or service is None:
            continue
        if service.get("method") != "probed":
            continue  # "table" = guessed from the port number: not evidence
        parsed = _service(service)
        if parsed.service or parsed.product or parsed.tls:
            found[port] = parsed
    return found


def _port_number(element: ElementTree.Element) -> int | None:
    if element.get("protocol") != "tcp":
        return None
    number = element.get("portid", "")
    return int(number) if number.isdigit() and int(number) <= 65535 else None


def _service(element: ElementTree.Element) -> NmapService:
    name = element.get("name") or ""
    tls = element.get("tunnel") == "ssl" or name in ("ssl", "https")
    if name == "https":
        name = "http"
    if name in ("", "unknown", "ssl", "tcpwrapped"):
        name = ""
    cpes = tuple(_clean(cpe.text) or "" for cpe in element.findall("cpe"))
    return NmapService(
        service=_clean(name),
        product=_clean(element.get("product")),
        version=_clean(element.get("version")),
        tls=tls,
        extrainfo=_clean(element.get("extrainfo")),
        cpes=tuple(cpe for cpe in cpes if cpe)[:10],
    )


def _clean(value: str | None) -> str | None:
    """nmap's fields quote what the server said: sanitise like any remote text."""
    if not value:
        return None
    return safe_text(value, FIELD_CHARS) or None
