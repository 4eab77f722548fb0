"""nmap engine: for users who trust nmap. Runs nmap through python-nmap and maps its states.

python-nmap only exposes the ports nmap lists one by one; nmap folds large groups of
same-state ports into <extraports>, whose port ranges are only in the XML. We read those
too, so a closed port hidden in "Not shown: 999 closed ports" is still reported closed.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence

from scanner.discovery.base import (
    DiscoveryOptions,
    HostStates,
    OpenCallback,
    PortState,
    ProgressCallback,
)
from scanner.errors import ScanFailed
from scanner.net.budget import ScanBudget
from scanner.targets import IPAddress
from scanner.targets.ports import compress_ports

_NMAP_STATES = {
    "open": PortState.OPEN,
    "closed": PortState.CLOSED,
    # Anything nmap cannot call open or closed means no usable answer came back.
    "filtered": PortState.FILTERED,
    "open|filtered": PortState.FILTERED,
    "closed|filtered": PortState.FILTERED,
    "unfiltered": PortState.FILTERED,
}


class NmapEngine:
    """nmap paces itself (`--max-rate` is the scan's rate); nothing else of the scan runs
    while it does, so the scan's rate cap holds. Open ports are known when nmap ends."""

    name = "nmap"

    def scan(
        self,
        address: IPAddress,
        ports: Sequence[int],
        options: DiscoveryOptions,
        progress: ProgressCallback | None = None,
    ) -> dict[int, PortState]:
        return self.scan_hosts([address], ports, options, progress=progress).get(address, {})

    def scan_hosts(
        self,
        addresses: Sequence[IPAddress],
        ports: Sequence[int],
        options: DiscoveryOptions,
        *,
        budget: ScanBudget | None = None,
        canaries: Sequence[int] = (),
        on_open: OpenCallback | None = None,
        progress: ProgressCallback | None = None,
    ) -> dict[IPAddress, HostStates]:
        """One nmap run per address family, every address of it at once."""
        probed = list(dict.fromkeys([*canaries, *ports]))
        results: dict[IPAddress, HostStates] = {}
        for version in (4, 6):
            group = [address for address in dict.fromkeys(addresses) if address.version == version]
            if group and probed:
                results.update(_run_nmap(group, probed, options))
            elif group:
                results.update({address: {} for address in group})
        for address, states in results.items():
            for port, state in sorted(states.items()):
                if state is PortState.OPEN and on_open is not None:
                    on_open(address, port)
        if progress:
            progress(len(probed) * len(results), len(probed) * len(results))
        return results


def _run_nmap(
    addresses: list[IPAddress], ports: list[int], options: DiscoveryOptions
) -> dict[IPAddress, HostStates]:
    import nmap  # python-nmap; imported here so other engines never pay for it

    try:
        scanner = nmap.PortScanner()
    except nmap.PortScannerError as error:
        raise ScanFailed(f"nmap engine unavailable: {error}") from None
    try:
        scanner.scan(
            hosts=" ".join(str(address) for address in addresses),
            ports=compress_ports(ports),
            arguments=nmap_arguments(addresses[0], options, len(ports) * len(addresses)),
        )
    except nmap.PortScannerError as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else "failed"
        raise ScanFailed(f"nmap failed: {first_line}") from None
    output = scanner.get_nmap_last_output()
    found = {}
    for address in addresses:
        states = parse_nmap_xml(output, str(address))
        found[address] = {port: states.get(port, PortState.FILTERED) for port in ports}
    return found


def nmap_arguments(address: IPAddress, options: DiscoveryOptions, port_count: int) -> str:
    technique = "-sS" if os.geteuid() == 0 else "-sT"  # SYN scan needs raw sockets
    timeout_ms = max(50, int(options.timeout * 1000))
    arguments = [
        technique,
        "-Pn",  # the target may drop pings; scan it anyway
        "-n",  # no reverse DNS: no traffic we did not ask for
        f"--max-retries {options.retries}",
        f"--max-rate {options.rate}",
        f"--max-rtt-timeout {timeout_ms}ms",
        f"--host-timeout {host_timeout_s(options, port_count)}s",
    ]
    if address.version == 6:
        arguments.append("-6")
    return " ".join(arguments)


def host_timeout_s(options: DiscoveryOptions, port_count: int) -> int:
    """A generous bound on nmap's time for one host, so a pathological target cannot hang us."""
    return int(port_count / max(1, options.rate) * (options.retries + 1) * 3 + 30)


def parse_nmap_xml(xml_text: str | bytes, address: str) -> dict[int, PortState]:
    """TCP port states for one host from nmap's XML output, listed and folded ports alike."""
    root = ElementTree.fromstring(xml_text)
    states: dict[int, PortState] = {}
    for host in root.iter("host"):
        if not any(item.get("addr") == address for item in host.iter("address")):
            continue
        for ports_element in host.iter("ports"):
            states.update(_folded_port_states(ports_element))
            states.update(_listed_port_states(ports_element))
    return states


def _listed_port_states(ports_element: ElementTree.Element) -> dict[int, PortState]:
    states: dict[int, PortState] = {}
    for port in ports_element.iter("port"):
        state = port.find("state")
        if port.get("protocol") != "tcp" or state is None:
            continue
        states[int(port.get("portid", "0"))] = _NMAP_STATES.get(
            state.get("state", ""), PortState.FILTERED
        )
    return states


def _folded_port_states(ports_element: ElementTree.Element) -> dict[int, PortState]:
    states: dict[int, PortState] = {}
    for extra in ports_element.iter("extraports"):
        state = _NMAP_STATES.get(extra.get("state", ""), PortState.FILTERED)
        for reasons in extra.iter("extrareasons"):
            if reasons.get("proto", "tcp") != "tcp":
                continue
            for port in expand_ports(reasons.get("ports", "")):
                states[port] = state
    return states


def expand_ports(text: str) -> list[int]:
    ports: list[int] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        low, _, high = item.partition("-")
        ports.extend(range(int(low), int(high or low) + 1))
    return ports
