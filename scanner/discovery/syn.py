"""The syn engine: a stateless SYN scan over raw sockets, every target in one pass.

How one scan goes:

1. Per source address (the kernel's route towards each target, found without sending
   anything): reserve a source port with a bound TCP socket, so no connection of ours can
   collide with it, and open a raw sender and a raw receiver (a BPF filter lets the kernel
   hand us only TCP segments to that port).
2. Per target, build one SYN with scapy, as bytes (syn_packets.SynTemplate). Per probe only
   the destination port, the sequence number and the TCP checksum are patched.
3. The sequence number is a SYN cookie (syn_packets.ReplyCheck): a keyed keystream word per
   port, xor a keyed mask per target. A reply counts only if it comes from a target, from a
   port we probe, to our source port, and acknowledges its cookie + 1. So we keep no
   per-probe state, and spoofed or stray segments cannot fake an open port.
4. Probes interleave targets as masscan does (port by port, every target in turn), so a /28
   costs one pass, not sixteen, and no host sees a burst. One thread alternates: take tokens
   from the scan's rate bucket (the same bucket every later connection takes from), send a
   burst, drain the receivers. Single-threaded on purpose: a sender and a receiver thread
   would fight over the GIL, and the receiver has little to do.
5. An open port is reported (`on_open`) the moment its SYN-ACK is validated, so
   identification can start while the scan goes on. Ports without an answer are probed again
   after `timeout` (options.retries more passes); after the last pass we wait `timeout` once
   more for stragglers. Still silent: filtered.
6. Canaries (random ports that spot a host answering everything) get one probe and no retry;
   once every requested port of every target has answered, the scan does not wait out their
   timeout: a host that answers everything answers them within a few round trips, so a few
   observed round trips after they were sent, silence means "not open".

Wall time is bounded by passes * (probes / rate + timeout) plus small overhead: every wait is
bounded, each drain reads a bounded number of packets, and back-off on a full send queue has a
fixed budget per scan.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import secrets
import socket
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from scanner.discovery.base import (
    DiscoveryOptions,
    HostStates,
    OpenCallback,
    PortState,
    ProgressCallback,
)
from scanner.discovery.syn_packets import (
    ReplyCheck,
    SynTemplate,
    TcpReply,
    build_syn_template,
    classify_reply,
    cookie_mask,
    cookie_table,
    packed_address,
    parse_ipv4_reply,
    parse_tcp_segment,
)
from scanner.discovery.syn_sockets import (
    SocketAddress,
    open_receiver,
    open_sender,
    raw_sockets_available,
    reserve_source_port,
    socket_address,
    source_address_for,
)
from scanner.errors import BadInput, ScanFailed
from scanner.net.budget import Limits, RateBucket, ScanBudget
from scanner.targets import IPAddress

__all__ = ["SynEngine", "raw_sockets_available"]

log = logging.getLogger(__name__)

MAX_PORT = 65535
MAX_RETRIES = 10  # more passes than this only make a scan slower, never more accurate
COOKIE_SECRET_BYTES = 16

RECEIVE_BYTES = 128  # the BPF filter trims replies to 96 bytes; headers are all we read
DRAIN_LIMIT = 4096  # replies read per drain: a flood must not stop us from sending
IDLE_SLICE_SECONDS = 0.01  # while waiting, drain the receiver at least this often
SLEEP_OVERSHOOT_SECONDS = 0.00015  # typical lateness of time.sleep on Linux
PROGRESS_INTERVAL_SECONDS = 0.05  # progress callbacks: at most ~20 a second
CANARY_GRACE_FLOOR_S = 0.1  # canaries wait at least this long after they were sent...
CANARY_GRACE_RTTS = 4  # ...and at least this many observed round trips

# A full send queue (ENOBUFS, EAGAIN): wait and resend the same packet, with a budget.
BACKOFF_FIRST_SECONDS = 0.0005
BACKOFF_MAX_SECONDS = 0.016
BACKOFF_PER_PACKET_SECONDS = 0.05
BACKOFF_PER_SCAN_SECONDS = 1.0
_QUEUE_FULL_ERRNOS = frozenset({errno.ENOBUFS, errno.EAGAIN, errno.EWOULDBLOCK})
# The kernel already knows nothing will answer: no route, no neighbour, or our own firewall
# (an OUTPUT DROP gives EPERM, a broadcast address EACCES).
_UNREACHABLE_ERRNOS = frozenset(
    {
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.EHOSTDOWN,
        errno.ENETDOWN,
        errno.EPERM,
        errno.EACCES,
    }
)


class SynEngine:
    """Discovery by half-open SYN probes over raw sockets (needs root or CAP_NET_RAW)."""

    name = "syn"

    def scan(
        self,
        address: IPAddress,
        ports: Sequence[int],
        options: DiscoveryOptions,
        progress: ProgressCallback | None = None,
    ) -> dict[int, PortState]:
        """Return open / closed / filtered for every requested port of `address`."""
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
        """A state for every requested port (and canary) of every address, in one pass."""
        wanted = _validated_ports(ports)
        extra = [port for port in _validated_ports(canaries) if port not in set(wanted)]
        _validate_options(options)
        targets = list(dict.fromkeys(addresses))
        if not targets or not (wanted or extra):
            return {address: {} for address in targets}
        bucket = (budget or ScanBudget(Limits(rate=options.rate))).bucket
        with _open_sessions(targets, [*extra, *wanted]) as hosts:
            scan = _SynScan(hosts, wanted, extra, options, bucket, on_open, progress)
            scan.run()
        return {
            host.address: {port: host.states.get(port, PortState.FILTERED)
                           for port in [*extra, *wanted]}
            for host in hosts
        }


@dataclass
class _Host:
    """One target: its template, its cookie mask, where replies from it go, what it said."""

    address: IPAddress
    sender: socket.socket
    destination: SocketAddress  # for sendto
    template: SynTemplate
    cookies: Sequence[int]  # the keystream of its source port (shared by its receiver)
    mask: int
    states: dict[int, PortState] = field(default_factory=dict)


@dataclass(frozen=True)
class _Receiver:
    """The raw receiver of one source address and the check its replies must pass."""

    sock: socket.socket
    version: int
    check: ReplyCheck
    hosts: dict[bytes, _Host]  # packed address -> host


@dataclass
class _Sessions:
    hosts: list[_Host]
    receivers: list[_Receiver]

    def __iter__(self) -> Iterator[_Host]:
        return iter(self.hosts)


@contextlib.contextmanager
def _open_sessions(targets: Sequence[IPAddress], ports: Sequence[int]) -> Iterator[_Sessions]:
    """Sockets per source address, a template and a mask per target; all closed on exit."""
    by_source: dict[IPAddress, list[IPAddress]] = {}
    for target in targets:
        by_source.setdefault(source_address_for(target), []).append(target)
    secret = secrets.token_bytes(COOKIE_SECRET_BYTES)  # fresh per scan
    probed = frozenset(ports)
    with contextlib.ExitStack() as cleanup:
        hosts: list[_Host] = []
        receivers: list[_Receiver] = []
        for source, group in by_source.items():
            reservation = cleanup.enter_context(reserve_source_port(source))
            source_port = int(reservation.getsockname()[1])
            # Sockets before the templates: without privileges we fail fast, before paying
            # for the scapy import.
            sender = cleanup.enter_context(open_sender(source))
            receiver = cleanup.enter_context(open_receiver(source, source_port))
            cookies = cookie_table(secret, b"", source_port)
            members = {
                target.packed: _Host(
                    address=target,
                    sender=sender,
                    destination=socket_address(target),
                    template=build_syn_template(source, target, source_port),
                    cookies=cookies,
                    mask=cookie_mask(secret, target.packed),
                )
                for target in group
            }
            masks = {packed: host.mask for packed, host in members.items()}
            check = ReplyCheck(masks, source_port, cookies, probed)
            receivers.append(_Receiver(receiver, source.version, check, members))
            hosts += members.values()
        order = {target: index for index, target in enumerate(targets)}
        hosts.sort(key=lambda host: order[host.address])
        yield _Sessions(hosts, receivers)


class _SynScan:
    """One run of the send / drain / wait loop over every target."""

    def __init__(
        self,
        sessions: _Sessions,
        ports: list[int],
        canaries: list[int],
        options: DiscoveryOptions,
        bucket: RateBucket,
        on_open: OpenCallback | None,
        progress: ProgressCallback | None,
    ) -> None:
        self._sessions = sessions
        self._hosts = sessions.hosts
        self._ports = ports
        self._canaries = canaries
        self._canary_set = frozenset(canaries)
        self._timeout = options.timeout
        self._passes = options.retries + 1
        self._bucket = bucket
        self._burst = bucket.burst
        self._on_open = on_open
        self._progress = progress
        self._last_progress = -math.inf
        self._backoff_left = BACKOFF_PER_SCAN_SECONDS
        self._lost_packets = 0
        self._started = time.monotonic()
        self._slowest_answer = 0.0  # seconds from the start to the latest answer of pass 1
        self._pass = 0  # which pass is being sent or waited for (0: the first)
        # progress: probes sent, and passes a decided port will not need
        self._total_work = len(self._hosts) * (len(ports) * self._passes + len(canaries))
        self._work_done = 0
        self._total_ports = len(self._hosts) * (len(ports) + len(canaries))  # what progress counts
        self._requested_left = len(self._hosts) * len(ports)

    def run(self) -> None:
        self._send_pass(self._first_probes())
        self._wait_for_replies(self._timeout)
        for number in range(1, self._passes):
            self._pass = number
            pending = list(self._undecided())
            if not pending:
                break
            self._send_pass(pending)
            self._wait_for_replies(self._timeout)
        if self._lost_packets:
            log.warning("syn scan: %d probes could not be sent (send queue full)",
                        self._lost_packets)
        if self._progress is not None:
            self._progress(self._total_ports, self._total_ports)

    def _first_probes(self) -> Iterator[tuple[_Host, int]]:
        """Canaries first (so they are judged early), then the ports, every host in turn."""
        for port in self._canaries:
            for host in self._hosts:
                yield host, port
        for port in self._ports:
            for host in self._hosts:
                yield host, port

    def _undecided(self) -> Iterator[tuple[_Host, int]]:
        for port in self._ports:
            for host in self._hosts:
                if port not in host.states:
                    yield host, port

    # --- sending ----------------------------------------------------------------------------

    def _send_pass(self, probes: Iterable[tuple[_Host, int]]) -> None:
        burst: list[tuple[_Host, int]] = []
        for host, port in probes:
            if port in host.states:  # it answered meanwhile (a late reply to a previous pass)
                continue
            burst.append((host, port))
            if len(burst) == self._burst:
                self._send_in_turn(burst)
                burst = []
        if burst:
            self._send_in_turn(burst)

    def _send_in_turn(self, burst: list[tuple[_Host, int]]) -> None:
        """Book the burst with the scan's bucket, wait for the booked moment (draining
        replies meanwhile); the burst is sent inside the bucket's admission."""
        start_at = time.monotonic() + self._bucket.reserve(len(burst))
        while (wait := start_at - time.monotonic()) > 0:
            self._idle(wait)
        while (wait := self._bucket.confirm(len(burst), lambda: self._send_burst(burst))) > 0:
            self._idle(wait)
        self._drain()
        self._report_progress()

    def _send_burst(self, burst: list[tuple[_Host, int]]) -> None:
        # Hot loop (up to ~150k iterations a second): attribute lookups hoisted into locals.
        sent = 0
        for host, port in burst:
            packet = host.template.probe(port, host.cookies[port] ^ host.mask)
            try:
                host.sender.sendto(packet, host.destination)
            except OSError as error:
                if not self._recover_send(error, host, port, packet):
                    continue
            sent += 1
        self._work_done += sent

    def _recover_send(self, error: OSError, host: _Host, port: int, packet: bytes) -> bool:
        """Deal with a failed sendto; True if the packet went out after all."""
        if error.errno in _UNREACHABLE_ERRNOS:
            self._decide(host, port, PortState.FILTERED)  # nothing can answer: no retry
            return False
        if error.errno in _QUEUE_FULL_ERRNOS:
            if self._send_with_backoff(host, packet):
                return True
            self._lost_packets += 1  # stays unanswered: probed again or counted filtered
            return False
        raise ScanFailed(f"sending to {host.address} failed: {error}") from None

    def _send_with_backoff(self, host: _Host, packet: bytes) -> bool:
        delay, spent = BACKOFF_FIRST_SECONDS, 0.0
        while spent < BACKOFF_PER_PACKET_SECONDS and self._backoff_left > 0:
            pause = min(delay, self._backoff_left)
            self._idle(pause)
            spent += pause
            self._backoff_left -= pause
            try:
                host.sender.sendto(packet, host.destination)
            except OSError as error:
                if error.errno not in _QUEUE_FULL_ERRNOS:
                    return False
            else:
                return True
            delay = min(delay * 2, BACKOFF_MAX_SECONDS)
        return False

    # --- receiving --------------------------------------------------------------------------

    def _wait_for_replies(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._nothing_left_to_wait_for():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._idle(remaining)
            self._report_progress()

    def _nothing_left_to_wait_for(self) -> bool:
        if self._requested_left > 0:
            return False
        if not self._canaries or self._pass > 0:
            return True
        if all(port in host.states for host in self._hosts for port in self._canaries):
            return True
        grace = max(CANARY_GRACE_FLOOR_S, CANARY_GRACE_RTTS * self._slowest_answer)
        return time.monotonic() - self._started >= min(grace, self._timeout)

    def _idle(self, seconds: float) -> None:
        """Wait up to `seconds` (may return earlier), reading replies as they come."""
        # time.sleep overshoots by ~0.1 ms (timer slack, wake-up); with 2 ms bursts that alone
        # would cost 5 % of the rate. So nap a little less: callers re-check the clock and
        # spend the last fraction of a millisecond draining the receiver instead.
        nap = min(seconds, IDLE_SLICE_SECONDS) - SLEEP_OVERSHOOT_SECONDS
        if nap > 0:
            time.sleep(nap)
        self._drain()

    def _drain(self) -> None:
        for receiver in self._sessions.receivers:
            self._drain_one(receiver)

    def _drain_one(self, receiver: _Receiver) -> None:
        receive = receiver.sock.recvfrom
        for _ in range(DRAIN_LIMIT):
            try:
                data, sender = receive(RECEIVE_BYTES)
            except OSError:  # BlockingIOError: nothing more queued
                return
            reply = _parse_reply(data, sender, receiver.version)
            if reply is None:
                continue
            state = classify_reply(reply, receiver.check)
            host = receiver.hosts.get(reply.source)
            if state is not None and host is not None:
                self._record_answer(host, reply.source_port, state)

    def _record_answer(self, host: _Host, port: int, state: PortState) -> None:
        # The first real answer wins (a hostile host may send SYN-ACK and RST for one port);
        # it also overrides a FILTERED we inferred from a local send error.
        if host.states.get(port, PortState.FILTERED) is PortState.FILTERED:
            if self._pass == 0:
                self._slowest_answer = time.monotonic() - self._started
            self._decide(host, port, state)

    def _decide(self, host: _Host, port: int, state: PortState) -> None:
        if port not in host.states and port not in self._canary_set:
            self._requested_left -= 1
            # the passes this port will not be probed in count as done for progress
            self._work_done += self._passes - self._pass - 1
        host.states[port] = state
        if state is PortState.OPEN and self._on_open is not None:
            self._on_open(host.address, port)

    def _report_progress(self) -> None:
        if self._progress is None:
            return
        now = time.monotonic()
        if now - self._last_progress < PROGRESS_INTERVAL_SECONDS:
            return
        self._last_progress = now
        done = min(self._total_work, self._work_done) * self._total_ports // self._total_work
        self._progress(done, self._total_ports)


def _parse_reply(data: bytes, sender: tuple[str, ...], ip_version: int) -> TcpReply | None:
    """An IPv4 raw socket returns the IP header too; an IPv6 one only the TCP segment."""
    if ip_version == 4:
        return parse_ipv4_reply(data)
    source = packed_address(str(sender[0])) if sender else None
    return None if source is None else parse_tcp_segment(data, source)


def _validated_ports(ports: Sequence[int]) -> list[int]:
    unique = list(dict.fromkeys(ports))  # keeps order, drops duplicates
    # Checked in bulk (65,535 ports per call): per-port isinstance() costs ~10 ms.
    if all(type(port) is int for port in unique) and (
        not unique or (min(unique) >= 1 and max(unique) <= MAX_PORT)
    ):
        return unique
    bad = next(port for port in unique if type(port) is not int or not 0 < port <= MAX_PORT)
    raise BadInput(f"port {bad!r} is not a TCP port number (1-{MAX_PORT})")


def _validate_options(options: DiscoveryOptions) -> None:
    if not (math.isfinite(options.rate) and options.rate >= 1):
        raise BadInput(f"rate must be at least 1 packet per second, not {options.rate}")
    if not (math.isfinite(options.timeout) and 0 <= options.timeout <= 60):
        raise BadInput(f"timeout must be between 0 and 60 seconds, not {options.timeout}")
    if not 0 <= options.retries <= MAX_RETRIES:
        raise BadInput(f"retries must be between 0 and {MAX_RETRIES}, not {options.retries}")
