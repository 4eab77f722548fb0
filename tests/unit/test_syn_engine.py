"""The syn engine's scan loop against a fake network (no packet leaves the process)."""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import socket
import struct
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterator

import pytest

from scanner.discovery import syn, syn_sockets
from scanner.discovery.base import DiscoveryOptions, PortState
from scanner.discovery.syn_packets import (
    TCP_ACK,
    TCP_RST,
    TCP_SYN,
    ReplyCheck,
    build_syn_template,
    cookie_table,
)
from scanner.errors import BadInput, ScanFailed

SOURCE = {4: ipaddress.ip_address("203.0.113.1"), 6: ipaddress.ip_address("2001:db8:1::1")}
TARGET = {4: ipaddress.ip_address("203.0.113.10"), 6: ipaddress.ip_address("2001:db8:1::10")}
OUR_PORT = 40000


class FakeNetwork:
    """Answers probes like a home router: ACCEPT (open), REJECT (closed), DROP (the rest)."""

    def __init__(self, version: int, template_offset: int) -> None:
        self.version = version
        self.tcp_offset = template_offset
        self.open_ports: set[int] = set()
        self.closed_ports: set[int] = set()
        self.drop_first: dict[int, int] = {}  # port -> probes lost before one gets through
        self.unreachable_ports: set[int] = set()
        self.queue_full_sends = 0  # the next N sendto calls fail with ENOBUFS
        self.other_error: int | None = None
        self.forge_replies = False  # a hostile host: junk and forged SYN-ACKs everywhere
        self.probes: list[int] = []
        self.replies: deque[tuple[bytes, str]] = deque()  # (what recvfrom returns, sender)

    # the sender socket
    def sendto(self, packet: bytes, destination: object) -> int:
        port, seq = struct.unpack_from("!2xHI", packet, self.tcp_offset)
        if self.other_error is not None:
            raise OSError(self.other_error, "boom")
        if port in self.unreachable_ports:
            raise OSError(errno.EHOSTUNREACH, "No route to host")
        if self.queue_full_sends:
            self.queue_full_sends -= 1
            raise OSError(errno.ENOBUFS, "No buffer space available")
        self.probes.append(port)
        if self.forge_replies:
            self._queue(port, TCP_SYN | TCP_ACK, seq)  # wrong ack: seq, not seq + 1
            self._queue(port, TCP_SYN | TCP_ACK, seq + 1, source=SOURCE[self.version])
            self.replies.append((b"\x45" + bytes(7) + b"junk", str(TARGET[self.version])))
        if self.drop_first.get(port, 0) > 0:
            self.drop_first[port] -= 1
        elif port in self.open_ports:
            self._queue(port, TCP_SYN | TCP_ACK, seq + 1)
        elif port in self.closed_ports:
            self._queue(port, TCP_RST | TCP_ACK, seq + 1)
        return len(packet)

    # the receiver socket
    def recvfrom(self, size: int) -> tuple[bytes, tuple[str, int]]:
        if not self.replies:
            raise BlockingIOError(errno.EAGAIN, "empty")
        data, sender = self.replies.popleft()
        return data[:size], (sender, 0)

    def _queue(self, port: int, flags: int, ack: int, source: object = None) -> None:
        address = source or TARGET[self.version]
        segment = struct.pack(
            "!HHIIBBHHH", port, OUR_PORT, 12345, ack & 0xFFFFFFFF, 0x50, flags, 1024, 0, 0
        )
        if self.version == 6:  # an IPv6 raw socket returns the bare segment
            self.replies.append((segment, str(address)))
            return
        header = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 20 + len(segment), 1, 0, 64, 6, 0,
            address.packed, SOURCE[4].packed,  # type: ignore[attr-defined]
        )  # fmt: skip
        self.replies.append((header + segment, str(address)))


@pytest.fixture(params=[4, 6], ids=["ipv4", "ipv6"])
def network(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> FakeNetwork:
    version: int = request.param
    template = build_syn_template(SOURCE[version], TARGET[version], OUR_PORT)
    fake = FakeNetwork(version, template.tcp_offset)

    @contextlib.contextmanager
    def fake_sessions(targets: object, ports: list[int]) -> Iterator[syn._Sessions]:
        target = TARGET[version]
        cookies = cookie_table(bytes(16), b"", OUR_PORT)
        host = syn._Host(
            address=target,
            sender=fake,  # type: ignore[arg-type]
            destination=syn_sockets.socket_address(target),
            template=template,
            cookies=cookies,
            mask=0x5A5A5A5A,
        )
        check = ReplyCheck({target.packed: host.mask}, OUR_PORT, cookies, frozenset(ports))
        receiver = syn._Receiver(fake, version, check, {target.packed: host})  # type: ignore[arg-type]
        yield syn._Sessions([host], [receiver])

    monkeypatch.setattr(syn, "_open_sessions", fake_sessions)
    return fake


FAST = DiscoveryOptions(rate=1_000_000, timeout=0.05, retries=1)


def scan(network: FakeNetwork, ports: list[int], options: DiscoveryOptions = FAST, **kw: object):
    return syn.SynEngine().scan(TARGET[network.version], ports, options, **kw)  # type: ignore[arg-type]


def test_open_closed_filtered(network: FakeNetwork):
    network.open_ports = {22, 443}
    network.closed_ports = {8443}
    states = scan(network, [*range(1, 1001), 8443])
    assert {port for port, state in states.items() if state is PortState.OPEN} == {22, 443}
    assert states[8443] is PortState.CLOSED
    assert sum(state is PortState.FILTERED for state in states.values()) == 998
    # Answered ports are not probed again; silent ones are probed once per pass.
    assert network.probes.count(22) == 1 and network.probes.count(7) == 2


def test_forged_and_junk_replies_never_make_a_port_open(network: FakeNetwork):
    network.forge_replies = True
    network.open_ports = {80}
    states = scan(network, list(range(1, 200)))
    assert [port for port, state in states.items() if state is not PortState.FILTERED] == [80]


def test_a_lost_probe_is_retried(network: FakeNetwork):
    network.open_ports = {443}
    network.drop_first = {443: 1}
    assert scan(network, [443])[443] is PortState.OPEN
    network.drop_first = {443: 1}
    no_retry = DiscoveryOptions(rate=1_000_000, timeout=0.05, retries=0)
    assert scan(network, [443], no_retry)[443] is PortState.FILTERED


def test_full_send_queue_backs_off_and_resends(network: FakeNetwork):
    network.open_ports = {22}
    network.queue_full_sends = 5
    assert scan(network, [21, 22, 23])[22] is PortState.OPEN
    assert network.queue_full_sends == 0


def test_a_send_queue_that_stays_full_cannot_hang_the_scan(network: FakeNetwork):
    network.queue_full_sends = 10**9
    started = time.monotonic()
    states = scan(network, list(range(1, 301)))
    assert set(states.values()) == {PortState.FILTERED}
    assert time.monotonic() - started < syn.BACKOFF_PER_SCAN_SECONDS + 1.0


def test_unreachable_means_filtered_without_more_probes(network: FakeNetwork):
    network.unreachable_ports = {25}
    network.open_ports = {80}
    states = scan(network, [25, 80])
    assert states == {25: PortState.FILTERED, 80: PortState.OPEN}


def test_unexpected_send_errors_fail_the_scan_clearly(network: FakeNetwork):
    network.other_error = errno.EINVAL
    with pytest.raises(ScanFailed, match="failed"):
        scan(network, [80])


def test_every_requested_port_gets_a_state_once(network: FakeNetwork):
    states = scan(network, [80, 22, 80, 443])
    assert list(states) == [80, 22, 443]


def test_progress_is_bounded_monotonic_and_complete(network: FakeNetwork):
    network.open_ports = {22}
    calls: list[tuple[int, int]] = []
    ports = list(range(1, 20_001))
    options = DiscoveryOptions(rate=200_000, timeout=0.2, retries=1)
    started = time.monotonic()
    scan(network, ports, options, progress=lambda done, total: calls.append((done, total)))
    elapsed = time.monotonic() - started
    assert calls[-1] == (20_000, 20_000)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    assert len(calls) <= elapsed / syn.PROGRESS_INTERVAL_SECONDS + 2


def test_wall_time_is_bounded_by_rate_and_timeouts(network: FakeNetwork):
    options = DiscoveryOptions(rate=50_000, timeout=0.1, retries=2)
    ports = list(range(1, 5001))
    started = time.monotonic()
    scan(network, ports, options)
    elapsed = time.monotonic() - started
    passes = options.retries + 1
    budget = passes * (len(ports) / options.rate + options.timeout)
    assert budget * 0.9 <= elapsed <= budget + 1.0  # slack for a loaded CI machine


def test_waiting_ends_as_soon_as_every_port_answered(network: FakeNetwork):
    network.open_ports = {22, 80}
    started = time.monotonic()
    scan(network, [22, 80], DiscoveryOptions(rate=1000, timeout=5, retries=3))
    assert time.monotonic() - started < 1


@pytest.mark.parametrize(
    ("ports", "options"),
    [
        ([0], FAST),
        ([65536], FAST),
        (["80"], FAST),
        ([True], FAST),
        ([80], DiscoveryOptions(rate=0)),
        ([80], DiscoveryOptions(rate=float("nan"))),
        ([80], DiscoveryOptions(timeout=-1)),
        ([80], DiscoveryOptions(retries=-1)),
        ([80], DiscoveryOptions(retries=1000)),
    ],
)
def test_bad_input_is_refused_before_anything_is_opened(ports, options):
    with pytest.raises(BadInput):
        syn.SynEngine().scan(TARGET[4], ports, options)


def test_no_ports_means_nothing_to_do():
    assert syn.SynEngine().scan(TARGET[4], [], FAST) == {}


def test_without_privileges_the_scan_fails_clearly(monkeypatch: pytest.MonkeyPatch):
    real_socket = socket.socket

    def no_raw(family: int = -1, kind: int = -1, *args: object) -> socket.socket:
        if kind == socket.SOCK_RAW:
            raise PermissionError(errno.EPERM, "Operation not permitted")
        return real_socket(family, kind, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "socket", no_raw)
    assert syn.raw_sockets_available() is False
    with pytest.raises(ScanFailed, match="CAP_NET_RAW"):
        syn.SynEngine().scan(ipaddress.ip_address("127.0.0.1"), [80], FAST)


def test_engine_name_and_interface():
    assert syn.SynEngine.name == "syn"
    assert isinstance(syn.raw_sockets_available(), bool)


def test_importing_the_engine_does_not_import_scapy():
    # scapy costs ~0.25 s; it must load only when a SYN scan actually runs.
    code = "import sys, scanner.discovery.syn; print('scapy' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "False"


def test_canaries_are_probed_once_and_not_waited_out(network: FakeNetwork):
    """All requested ports answered: silent canaries cost a few round trips, not the timeout."""
    network.open_ports = {22}
    options = DiscoveryOptions(rate=100_000, timeout=2.0, retries=2)
    started = time.monotonic()
    found = syn.SynEngine().scan_hosts([TARGET[network.version]], [22], options,
                                       canaries=[41000, 42000, 43000, 44000])
    elapsed = time.monotonic() - started
    assert elapsed < 0.6, elapsed
    assert sorted(network.probes) == [22, 41000, 42000, 43000, 44000]  # no retry for canaries
    states = found[TARGET[network.version]]
    assert states[22] is PortState.OPEN and states[41000] is PortState.FILTERED


def test_open_ports_are_reported_the_moment_they_answer(network: FakeNetwork):
    network.open_ports = {22, 443}
    heard: list[tuple[object, int, float]] = []
    started = time.monotonic()
    syn.SynEngine().scan_hosts(
        [TARGET[network.version]], [22, 443, 8080], DiscoveryOptions(rate=100_000, timeout=1.0),
        on_open=lambda address, port: heard.append((address, port, time.monotonic() - started)),
    )
    assert [(address, port) for address, port, _ in heard] == [
        (TARGET[network.version], 22), (TARGET[network.version], 443)]
    assert all(at < 0.2 for _, _, at in heard)  # long before 8080's timeout and retry
