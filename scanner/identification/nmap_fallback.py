"""nmap -sV for the ports our own probes could not name, when nmap is installed.

nmap knows thousands of service fingerprints; we only ask it about what is left over, and
say so (source "nmap"). Only answers nmap got by probing count: its `method="table"`
answers are guesses from the port number, which is exactly what identification must not do.

Each unnamed port gets its own nmap process, run concurrently with everything else
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
from dataclasses import dataclass
from typing import Any

from scanner.core.text import safe_text
from scanner.identification.model import IdentifyOptions
from scanner.net.budget import ScanBudget
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


@dataclass(frozen=True)
class NmapOutcome:
    service: NmapService | None  # what nmap named by probing, if anything
    note: str | None = None  # why there is no answer, when the user should know


async def nmap_identify_port(
    address: IPAddress, port: int, deadline: float, budget: ScanBudget
) -> NmapOutcome:
    """nmap's probed answer for one port, ending by `deadline` whatever nmap does."""
    seconds = deadline - time.monotonic()
    if seconds < MIN_USEFUL_SECONDS:
        return NmapOutcome(None, "nmap -sV not run: too little of the port's deadline left")
    if not nmap_available():
        return NmapOutcome(None)  # optional: the scan said so once (CLI)
    for _ in range(NMAP_CONNECTIONS_BOOKED):
        await budget.bucket.take_async()
    argv = ["nmap", *port_arguments(address, port, seconds - KILL_MARGIN_S, budget), str(address)]
    try:
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
            stdin=asyncio.subprocess.DEVNULL, start_new_session=True,
        )
    except OSError:
        return NmapOutcome(None)
    try:
        wait = deadline - time.monotonic()
        output = await asyncio.wait_for(_read_capped(process), wait)
    except TimeoutError:
        log.debug("nmap -sV on port %s killed at the port's deadline", port)
        return NmapOutcome(None, "nmap -sV stopped (its process group killed) at the port's "
                                 "deadline: no answer from it")
    finally:  # a timeout, a cancelled scan, anything: no nmap outlives its port
        if process.returncode is None:
            _kill_group(process)
            await process.wait()
    return NmapOutcome(parse_nmap_services(output.decode("utf-8", "replace"), {port}).get(port))


async def _read_capped(process: asyncio.subprocess.Process) -> bytes:
    """nmap's output to its end (or OUTPUT_CAP bytes), then its exit."""
    assert process.stdout is not None
    data = bytearray()
    while len(data) < OUTPUT_CAP:
        chunk = await process.stdout.read(OUTPUT_CAP - len(data))
        if not chunk:
            break
        data += chunk
    await process.wait()
    return bytes(data)


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


def nmap_seconds(options: IdentifyOptions) -> float:
    """Identification on its own (no scan around it): how long the fallback may take."""
    return float(max(MIN_HOST_TIMEOUT_S, int(options.timeout * 5)))


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
