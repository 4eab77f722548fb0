"""Canary logic of discover_hosts(), with stand-in engines (our own interface, not a server)."""

import ipaddress
from collections.abc import Callable, Sequence

from scanner.discovery import DiscoveryOptions, PortState, discover, discover_hosts
from scanner.targets import IPAddress

ADDRESS = ipaddress.ip_address("203.0.113.10")
TARPIT = ipaddress.ip_address("203.0.113.20")


class StandIn:
    """Answers like `answer(address, port)`, canaries first as the real engines send them."""

    name = "fake"

    def __init__(self, answer: Callable[[IPAddress, int], PortState]) -> None:
        self.answer = answer
        self.probed: list[tuple[IPAddress, int]] = []

    def scan(self, address: IPAddress, ports: Sequence[int], options, progress=None):
        return self.scan_hosts([address], ports, options)[address]

    def scan_hosts(self, addresses, ports, options, *, budget=None, canaries=(), on_open=None,
                   progress=None):
        states: dict[IPAddress, dict[int, PortState]] = {address: {} for address in addresses}
        for port in [*canaries, *ports]:
            for address in addresses:
                self.probed.append((address, port))
                state = self.answer(address, port)
                states[address][port] = state
                if state is PortState.OPEN and on_open is not None:
                    on_open(address, port)
        return states


def everything(address: IPAddress, port: int) -> PortState:
    return PortState.OPEN


def two_open_ports(address: IPAddress, port: int) -> PortState:
    if address == TARPIT:
        return PortState.OPEN
    return PortState.OPEN if port in (22, 443) else PortState.FILTERED


def test_a_host_answering_everything_is_reported_as_such() -> None:
    result = discover(ADDRESS, list(range(1, 1001)), StandIn(everything), DiscoveryOptions())
    assert result.answers_all_ports
    assert result.states == {}
    assert "canary" in result.notes[0].text and result.notes[0].port is None
    (finding,) = result.findings  # discovery says so itself, as a finding
    assert finding.id == "discovery.answers_all_ports" and finding.evidence == result.notes[0].text


def test_normal_host_keeps_its_ports_and_canaries_are_not_reported() -> None:
    engine = StandIn(two_open_ports)
    result = discover(ADDRESS, [22, 80, 443], engine, DiscoveryOptions())
    assert not result.answers_all_ports
    assert result.states == {22: PortState.OPEN, 80: PortState.FILTERED, 443: PortState.OPEN}
    assert len(engine.probed) == 3 + 4  # the canaries rode along in the same pass


def test_open_ports_stream_out_and_a_tarpit_is_held_back() -> None:
    opened: list[tuple[IPAddress, int]] = []
    tarpits: list[IPAddress] = []
    results = discover_hosts(
        [ADDRESS, TARPIT], [22, 80, 443], StandIn(two_open_ports), DiscoveryOptions(),
        on_open=lambda address, port: opened.append((address, port)),
        on_answers_all=tarpits.append,
    )
    assert opened == [(ADDRESS, 22), (ADDRESS, 443)]  # no canary, nothing of the tarpit
    assert tarpits == [TARPIT]
    assert results[TARPIT].answers_all_ports and not results[ADDRESS].answers_all_ports
