"""Discovery stage: which TCP ports of an address are open, closed or filtered."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Sequence

from scanner.core.findings import Finding, FindingSpec, Severity
from scanner.core.report import Note
from scanner.discovery.base import (
    DiscoveryEngine,
    DiscoveryOptions,
    HostDiscovery,
    OpenCallback,
    PortState,
    ProgressCallback,
)
from scanner.errors import BadInput
from scanner.net.budget import ScanBudget
from scanner.targets import IPAddress

ENGINE_NAMES = ("auto", "syn", "connect", "nmap")
log = logging.getLogger(__name__)

ANSWERS_ALL_PORTS = FindingSpec(
    id="discovery.answers_all_ports",
    severity=Severity.INFO,
    title="The host accepts connections on every port",
)
FINDINGS: tuple[FindingSpec, ...] = (ANSWERS_ALL_PORTS,)  # part of scanner.core.catalogue

CANARY_COUNT = 4
CANARY_RANGE = range(40000, 65536)  # rarely used ports: a real host has them closed or filtered


def choose_engine(name: str) -> DiscoveryEngine:
    """The engine for `--engine NAME`; `auto` is syn when raw sockets work, else connect."""
    if name == "auto":
        from scanner.discovery.syn import raw_sockets_available

        name = "syn" if raw_sockets_available() else "connect"
        if name == "connect":  # say so: the user may expect the SYN engine's speed
            log.warning("no raw-socket privilege (root or CAP_NET_RAW), so the connect engine "
                        "runs: full TCP handshakes, same results, slower on many ports")
    if name == "syn":  # SynEngine itself refuses, with a clear message, without raw sockets
        from scanner.discovery.syn import SynEngine

        return SynEngine()
    if name == "connect":
        from scanner.discovery.connect import ConnectEngine

        return ConnectEngine()
    if name == "nmap":
        from scanner.discovery.nmap_engine import NmapEngine

        return NmapEngine()
    raise BadInput(f"unknown engine {name!r} (choose from {', '.join(ENGINE_NAMES)})")


def pick_canaries(rng: random.Random | None = None) -> list[int]:
    """Random high ports to probe alongside the requested ones, to spot hosts that answer all."""
    return (rng or random.SystemRandom()).sample(CANARY_RANGE, CANARY_COUNT)


def discover(
    address: IPAddress,
    ports: Sequence[int],
    engine: DiscoveryEngine,
    options: DiscoveryOptions,
    progress: ProgressCallback | None = None,
) -> HostDiscovery:
    """One address (see discover_hosts)."""
    return discover_hosts([address], ports, engine, options, progress=progress)[address]


def discover_hosts(
    addresses: Sequence[IPAddress],
    ports: Sequence[int],
    engine: DiscoveryEngine,
    options: DiscoveryOptions,
    *,
    budget: ScanBudget | None = None,
    on_open: OpenCallback | None = None,
    on_answers_all: Callable[[IPAddress], None] | None = None,
    progress: ProgressCallback | None = None,
) -> dict[IPAddress, HostDiscovery]:
    """Scan `ports` of every address in one pass, with a few random canary ports alongside.

    A tarpit or middlebox that SYN-ACKs everything would otherwise show as thousands of
    "open" ports and send identification after each of them. The canaries ride in the same
    pass, sent first, probed once, and not waited for once the requested ports have answered
    (a separate canary round would add a whole timeout to every scan). Their judgement runs
    alongside: an open port is passed on (`on_open`) at once unless a canary of its host has
    answered open; when most canaries answer, the host is reported as answering every port
    (`on_answers_all`, so work already started on it can be dropped) and its ports are not used.
    """
    canaries = pick_canaries()
    watch = _CanaryWatch(frozenset(canaries) - set(ports), on_open, on_answers_all)
    found = engine.scan_hosts(
        addresses, ports, options, budget=budget, canaries=canaries,
        on_open=watch.port_open, progress=progress,
    )
    return {
        address: _judge(address, engine.name, found.get(address, {}), ports, canaries)
        for address in dict.fromkeys(addresses)
    }


class _CanaryWatch:
    """Passes open ports on as they come, holding back those of a host that answers canaries."""

    def __init__(
        self,
        canaries: frozenset[int],
        on_open: OpenCallback | None,
        on_answers_all: Callable[[IPAddress], None] | None,
    ) -> None:
        self._canaries = canaries
        self._on_open = on_open
        self._on_answers_all = on_answers_all
        self._open_canaries: dict[IPAddress, int] = {}
        self._lock = threading.Lock()

    def port_open(self, address: IPAddress, port: int) -> None:
        with self._lock:
            if port in self._canaries:
                count = self._open_canaries.get(address, 0) + 1
                self._open_canaries[address] = count
                answers_all = count == ANSWERS_ALL_THRESHOLD
            else:
                if self._open_canaries.get(address):
                    return  # suspicious host: judged when discovery ends
                answers_all = False
        if answers_all and self._on_answers_all is not None:
            self._on_answers_all(address)
        elif port not in self._canaries and self._on_open is not None:
            self._on_open(address, port)


ANSWERS_ALL_THRESHOLD = CANARY_COUNT - 1  # open canaries that make a host "answers all"


def _judge(
    address: IPAddress, engine: str, states: dict[int, PortState], ports: Sequence[int],
    canaries: Sequence[int],
) -> HostDiscovery:
    result = HostDiscovery(address=address, engine=engine)
    open_canaries = [port for port in canaries if states.get(port) is PortState.OPEN]
    if len(open_canaries) >= ANSWERS_ALL_THRESHOLD:
        opened = sum(1 for port in ports if states.get(port) is PortState.OPEN)
        result.answers_all_ports = True
        seen = (
            f"{address} answered as open on {len(open_canaries)} of {len(canaries)} random "
            f"canary ports and on {opened} of {len(ports)} requested ports: a tarpit, honeypot "
            "or middlebox that accepts every connection; its ports cannot be told apart"
        )
        result.notes.append(Note(None, seen))
        result.findings.append(_answers_all_ports_finding(seen))
        return result
    result.states = {port: states.get(port, PortState.FILTERED) for port in ports}
    return result


def _answers_all_ports_finding(seen: str) -> Finding:
    return ANSWERS_ALL_PORTS.finding(
        port=None,
        evidence=seen,
        remediation=(
            "Something in front of this address (a tarpit, honeypot, or a firewall/CDN "
            "that completes handshakes itself) answers on all ports, so open ports cannot be "
            "told apart from the outside. Scan the device behind it from your LAN "
            "(exposure preflight) or check the router's port-forwarding table."
        ),
    )


__all__ = [
    "ANSWERS_ALL_PORTS",
    "ENGINE_NAMES",
    "FINDINGS",
    "DiscoveryEngine",
    "DiscoveryOptions",
    "HostDiscovery",
    "PortState",
    "choose_engine",
    "discover",
    "discover_hosts",
]
