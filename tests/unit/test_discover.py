"""Canary logic of discover(), with a stand-in engine (our own interface, not a server)."""

import ipaddress
from collections.abc import Sequence

from scanner.discovery import DiscoveryOptions, PortState, discover
from scanner.targets import IPAddress

ADDRESS = ipaddress.ip_address("203.0.113.10")


class AnswersEverything:
    name = "fake"

    def scan(self, address: IPAddress, ports: Sequence[int], options, progress=None):
        return {port: PortState.OPEN for port in ports}


class TwoOpenPorts:
    name = "fake"

    def scan(self, address: IPAddress, ports: Sequence[int], options, progress=None):
        self.probed = list(ports)
        return {port: PortState.OPEN if port in (22, 443) else PortState.FILTERED for port in ports}


def test_a_host_answering_everything_is_reported_as_such() -> None:
    result = discover(ADDRESS, list(range(1, 1001)), AnswersEverything(), DiscoveryOptions())
    assert result.answers_all_ports
    assert result.states == {}
    assert "canary" in result.notes[0]


def test_normal_host_keeps_its_ports_and_canaries_are_not_reported() -> None:
    engine = TwoOpenPorts()
    result = discover(ADDRESS, [22, 80, 443], engine, DiscoveryOptions())
    assert not result.answers_all_ports
    assert result.states == {22: PortState.OPEN, 80: PortState.FILTERED, 443: PortState.OPEN}
    assert len(engine.probed) == 3 + 4  # the canaries rode along in the same pass
