"""The syn engine: a stateless SYN scan over raw sockets.

How one scan goes:

1. Find our source address without sending anything (UDP connect + getsockname) and reserve
   a source port with a bound TCP socket, so no connection of ours can collide with it.
2. Build one SYN with scapy, as bytes (syn_packets.SynTemplate). Per probe only the
   destination port, the sequence number and the TCP checksum are patched.
3. The sequence number is a SYN cookie: a keyed hash (fresh secret per scan) of target
   address, destination port and source port. A reply counts only if it comes from the
   target, from a port we probe, to our source port, and acknowledges cookie + 1. So we keep
   no per-probe state, and spoofed or stray segments cannot fake an open port.
4. One thread alternates: pace (token bucket in ~2 ms bursts), send a burst on the raw
   sender, drain the raw receiver (a BPF filter lets the kernel hand us only TCP segments to
   our port). Single-threaded on purpose: a sender and a receiver thread would fight over the
   GIL, and the receiver has little to do (most ports of an internet host are filtered).
5. Ports without an answer are probed again after `timeout` (options.retries more passes);
   after the last pass we wait `timeout` once more for stragglers. Still silent: filtered.

Wall time is bounded by passes * (ports / rate + timeout) plus small overhead: every wait
is bounded, each drain reads a bounded number of packets, and back-off on a full send queue
has a fixed budget per scan.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import secrets
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from scanner.discovery.base import DiscoveryOptions, PortState, ProgressCallback
from scanner.discovery.syn_pacing import BurstPacer
from scanner.discovery.syn_packets import (
    ReplyCheck,
    SynTemplate,
    TcpReply,
    build_syn_template,
    classify_reply,
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
        wanted = _validated_ports(ports)
        _validate_options(options)
        if not wanted:
            return {}
        with _open_session(address, wanted) as session:
            states = _SynScan(session, wanted, options, progress).run()
        return {port: states.get(port, PortState.FILTERED) for port in wanted}


@dataclass(frozen=True)
class _Session:
    """Everything fixed for one scan of one address."""

    target: IPAddress
    sender: socket.socket
    receiver: socket.socket
    destination: SocketAddress  # for sendto
    template: SynTemplate
    check: ReplyCheck


@contextlib.contextmanager
def _open_session(address: IPAddress, ports: list[int]) -> Iterator[_Session]:
    with contextlib.ExitStack() as cleanup:
        source = source_address_for(address)
        reservation = cleanup.enter_context(reserve_source_port(source))
        source_port = int(reservation.getsockname()[1])
        # Sockets before the template: without privileges we fail fast, before paying for
        # the scapy import.
        sender = cleanup.enter_context(open_sender(source))
        receiver = cleanup.enter_context(open_receiver(source, source_port))
        template = build_syn_template(source, address, source_port)
        secret = secrets.token_bytes(COOKIE_SECRET_BYTES)  # fresh per scan
        cookies = cookie_table(secret, address.packed, source_port)
        yield _Session(
            target=address,
            sender=sender,
            receiver=receiver,
            destination=socket_address(address),
            template=template,
            check=ReplyCheck(address.packed, source_port, cookies, probed=frozenset(ports)),
        )


class _SynScan:
    """One run of the send / drain / wait loop over the ports of one address."""

    def __init__(
        self,
        session: _Session,
        ports: list[int],
        options: DiscoveryOptions,
        progress: ProgressCallback | None,
    ) -> None:
        self._session = session
        self._ports = ports
        self._timeout = options.timeout
        self._passes = options.retries + 1
        self._states: dict[int, PortState] = {}  # ports decided so far
        self._probes_sent = [0] * (MAX_PORT + 1)  # per port, for progress accounting
        self._work_done = 0  # probes sent + probes that answered ports no longer need
        self._pacer = BurstPacer(options.rate, idle=self._idle)
        self._progress = progress
        self._last_progress = -math.inf
        self._backoff_left = BACKOFF_PER_SCAN_SECONDS
        self._lost_packets = 0

    def run(self) -> dict[int, PortState]:
        pending = self._ports
        for _ in range(self._passes):
            pending = [port for port in pending if port not in self._states]
            if not pending:
                break
            self._send_pass(pending)
            self._wait_for_replies(self._timeout)
        if self._lost_packets:
            log.warning(
                "syn scan of %s: %d probes could not be sent (send queue full)",
                self._session.target,
                self._lost_packets,
            )
        if self._progress is not None:
            self._progress(len(self._ports), len(self._ports))
        return self._states

    # --- sending ----------------------------------------------------------------------------

    def _send_pass(self, ports: list[int]) -> None:
        burst_size = self._pacer.burst_size
        for start in range(0, len(ports), burst_size):
            # A port may have answered (a late reply to the previous pass) meanwhile.
            burst = [port for port in ports[start : start + burst_size] if port not in self._states]
            if not burst:
                continue
            self._pacer.acquire(len(burst))
            self._send_burst(burst)
            self._drain()
            self._report_progress()

    def _send_burst(self, ports: list[int]) -> None:
        # Hot loop (up to ~150k iterations a second): attribute lookups hoisted into locals.
        probe = self._session.template.probe
        cookies = self._session.check.cookies
        send = self._session.sender.sendto
        destination = self._session.destination
        probes_sent = self._probes_sent
        sent = 0
        for port in ports:
            packet = probe(port, cookies[port])
            try:
                send(packet, destination)
            except OSError as error:
                if not self._recover_send(error, port, packet):
                    continue
            probes_sent[port] += 1
            sent += 1
        self._work_done += sent

    def _recover_send(self, error: OSError, port: int, packet: bytes) -> bool:
        """Deal with a failed sendto; True if the packet went out after all."""
        if error.errno in _UNREACHABLE_ERRNOS:
            self._decide(port, PortState.FILTERED)  # nothing can answer: do not probe again
            return False
        if error.errno in _QUEUE_FULL_ERRNOS:
            if self._send_with_backoff(packet):
                return True
            self._lost_packets += 1  # stays unanswered: probed again or counted filtered
            return False
        raise ScanFailed(f"sending to {self._session.target} failed: {error}") from None

    def _send_with_backoff(self, packet: bytes) -> bool:
        delay, spent = BACKOFF_FIRST_SECONDS, 0.0
        while spent < BACKOFF_PER_PACKET_SECONDS and self._backoff_left > 0:
            pause = min(delay, self._backoff_left)
            self._idle(pause)
            spent += pause
            self._backoff_left -= pause
            try:
                self._session.sender.sendto(packet, self._session.destination)
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
        while len(self._states) < len(self._ports):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._idle(remaining)
            self._report_progress()

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
        receive = self._session.receiver.recvfrom
        for _ in range(DRAIN_LIMIT):
            try:
                data, sender = receive(RECEIVE_BYTES)
            except OSError:  # BlockingIOError: nothing more queued
                return
            reply = _parse_reply(data, sender, self._session.target.version)
            if reply is None:
                continue
            state = classify_reply(reply, self._session.check)
            if state is not None:
                self._record_answer(reply.source_port, state)

    def _record_answer(self, port: int, state: PortState) -> None:
        # The first real answer wins (a hostile host may send SYN-ACK and RST for one port);
        # it also overrides a FILTERED we inferred from a local send error.
        if self._states.get(port, PortState.FILTERED) is PortState.FILTERED:
            self._decide(port, state)

    def _decide(self, port: int, state: PortState) -> None:
        if port not in self._states:
            # The passes this port will not be probed in count as done for progress.
            self._work_done += self._passes - self._probes_sent[port]
        self._states[port] = state

    def _report_progress(self) -> None:
        if self._progress is None:
            return
        now = time.monotonic()
        if now - self._last_progress < PROGRESS_INTERVAL_SECONDS:
            return
        self._last_progress = now
        total = len(self._ports)
        self._progress(min(total, self._work_done // self._passes), total)


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
