"""What every discovery engine promises: given an address and ports, a state per port."""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from scanner.core.findings import Finding
from scanner.core.report import Note
from scanner.net.budget import ScanBudget
from scanner.targets import IPAddress


class PortState(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"  # the host answered RST: reachable, nothing listening
    FILTERED = "filtered"  # no answer (dropped) or an ICMP unreachable


@dataclass(frozen=True)
class DiscoveryOptions:
    rate: int = 2000  # packets (or connection attempts) per second, never exceeded
    timeout: float = 1.0  # seconds to wait for an answer to one probe
    retries: int = 1  # extra probes for a port that did not answer before it counts as filtered
    max_concurrency: int = 10000  # connect engine: sockets in flight at once (also fd-capped)


# Called with (ports done, ports total) as the scan progresses; must be cheap.
ProgressCallback = Callable[[int, int], None]
# Called (from the engine's thread) the moment a port of an address is found open.
OpenCallback = Callable[[IPAddress, int], None]
HostStates = dict[int, PortState]


@dataclass
class HostDiscovery:
    """Discovery result for one address."""

    address: IPAddress
    engine: str
    states: dict[int, PortState] = field(default_factory=dict)
    answers_all_ports: bool = False  # a middlebox or tarpit that SYN-ACKs every port
    notes: list[Note] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)  # discovery.answers_all_ports

    def ports_in(self, state: PortState) -> list[int]:
        return sorted(port for port, current in self.states.items() if current is state)


class DiscoveryEngine(Protocol):
    """A port-discovery engine. Implementations: syn, connect, nmap."""

    name: str

    def scan(
        self,
        address: IPAddress,
        ports: Sequence[int],
        options: DiscoveryOptions,
        progress: ProgressCallback | None = None,
    ) -> dict[int, PortState]:
        """Return a state for every requested port."""
        ...

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
        """Every address in one pass, taking from `budget`'s rate bucket; a state for every
        port and canary. `on_open` hears of open ports as they are found (where the engine
        can tell early); canaries get one probe and are not waited for once the requested
        ports have all answered."""
        ...
