"""Bounded connections for probes: every byte counted, every wait under a deadline.

A port's whole identification gets one budget: `IdentifyOptions.timeout` seconds of
connection time and `PORT_BYTE_CAP` bytes received. Time spent waiting for a free
connection slot (the per-host cap) is not charged, so a tarpit on one port cannot eat the
time of the probes queued behind it. When the budget is gone, reads stop; what was learnt
until then is kept.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

from scanner.targets import IPAddress

PORT_BYTE_CAP = 2 * 1024 * 1024  # everything one port may send us, across all its probes
RECV_CHUNK = 16 * 1024


class ProbeTimeout(TimeoutError):
    """A deadline passed while waiting on the server."""


class ByteCapReached(Exception):
    """The port has sent all the bytes its budget allows."""


class ProbeFailed(Exception):
    """A probe cannot go on (e.g. the TLS handshake a follow-up request needs failed)."""


# What ends one probe but not the identification: network errors (OSError covers
# ssl.SSLError and our ProbeTimeout), a spent byte budget, a failed precondition.
PROBE_ERRORS: tuple[type[BaseException], ...] = (OSError, ByteCapReached, ProbeFailed)


@dataclass
class Traffic:
    """What identifying one port cost; tests assert on it, nothing else needs it."""

    bytes_received: int = 0
    bytes_sent: int = 0
    connections: int = 0
    seconds: float = 0.0


class PortBudget:
    """Seconds and bytes one port may still cost."""

    def __init__(self, seconds: float, byte_cap: int = PORT_BYTE_CAP) -> None:
        self.seconds_left = max(0.0, seconds)
        self.bytes_left = byte_cap
        self.traffic = Traffic()

    def charge_time(self, seconds: float) -> None:
        self.seconds_left = max(0.0, self.seconds_left - seconds)
        self.traffic.seconds += seconds

    def charge_received(self, count: int) -> None:
        self.bytes_left -= count
        self.traffic.bytes_received += count

    def charge_sent(self, count: int) -> None:
        self.traffic.bytes_sent += count


class Channel(Protocol):
    """A byte stream to the service: plain TCP, or TLS on top of it."""

    deadline: float  # when this connection's share of the budget runs out (monotonic)
    rtt: float  # seconds the TCP handshake took: a cheap estimate of the round trip

    async def send(self, data: bytes) -> None: ...

    async def recv(self, limit: int, deadline: float) -> bytes:
        """Up to `limit` bytes; b"" at end of stream. Raises ProbeTimeout, ByteCapReached."""
        ...


class PlainChannel:
    """A connected non-blocking TCP socket with deadline- and budget-bounded I/O."""

    def __init__(self, sock: socket.socket, deadline: float, rtt: float, budget: PortBudget):
        self._sock = sock
        self._budget = budget
        self.deadline = deadline
        self.rtt = rtt

    async def send(self, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        # The timeout first: if the deadline has passed it raises before the coroutine exists
        # (a coroutine created and never awaited is a RuntimeWarning on the user's stderr).
        timeout = _seconds_until(self.deadline)
        try:
            await asyncio.wait_for(loop.sock_sendall(self._sock, data), timeout)
        except TimeoutError:
            raise ProbeTimeout("send timed out") from None
        self._budget.charge_sent(len(data))

    async def recv(self, limit: int, deadline: float) -> bytes:
        limit = min(limit, self._budget.bytes_left)
        if limit <= 0:
            raise ByteCapReached
        loop = asyncio.get_running_loop()
        timeout = _seconds_until(min(deadline, self.deadline))  # before the coroutine: see send
        try:
            data = await asyncio.wait_for(loop.sock_recv(self._sock, limit), timeout)
        except TimeoutError:
            raise ProbeTimeout("no data before the deadline") from None
        except ConnectionResetError:
            return b""  # a reset is the server's way of hanging up, as good as EOF here
        self._budget.charge_received(len(data))
        return data


class Connector:
    """Opens probe connections to one address, never more than `limit` at once."""

    def __init__(self, address: IPAddress, limit: int) -> None:
        self._host = str(address)
        self._family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        self._slots = asyncio.Semaphore(max(1, limit))

    @asynccontextmanager
    async def open(self, port: int, budget: PortBudget) -> AsyncIterator[PlainChannel]:
        """A connection that lives at most as long as the port's remaining budget.

        Callers must close one connection before opening the next for the same port;
        holding a slot while waiting for another could deadlock at a cap of 1.
        """
        async with self._slots:
            if budget.seconds_left <= 0:
                raise ProbeTimeout("the port's time budget is spent")
            started = time.monotonic()
            deadline = started + budget.seconds_left
            sock = socket.socket(self._family, socket.SOCK_STREAM)
            try:
                sock.setblocking(False)
                await self._connect(sock, port, deadline)
                budget.traffic.connections += 1
                yield PlainChannel(sock, deadline, time.monotonic() - started, budget)
            finally:
                sock.close()
                budget.charge_time(time.monotonic() - started)

    async def _connect(self, sock: socket.socket, port: int, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        timeout = _seconds_until(deadline)  # before the coroutine: see PlainChannel.send
        try:
            await asyncio.wait_for(loop.sock_connect(sock, (self._host, port)), timeout)
        except TimeoutError:
            raise ProbeTimeout("connect timed out") from None


def _seconds_until(deadline: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise ProbeTimeout("deadline already passed")
    return remaining


def seconds_left(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


def share_of_remaining(channel: Channel, fraction: float, floor: float, ceiling: float) -> float:
    """A phase deadline: `fraction` of the connection's time left, within [floor, ceiling].

    Never past the connection's own deadline, whatever floor says.
    """
    now = time.monotonic()
    remaining = max(0.0, channel.deadline - now)
    wanted = min(max(remaining * fraction, floor), ceiling)
    return now + min(wanted, remaining)


async def read_until_idle(
    channel: Channel, *, first_byte_deadline: float, idle: float, cap: int
) -> tuple[bytes, bool]:
    """Read what the server sends unprompted: (data, closed).

    Waits until `first_byte_deadline` for the first bytes, then keeps reading while more
    arrive within `idle` seconds of each other, up to `cap` bytes. A server that drips one
    byte at a time forever still stops at the connection deadline.
    """
    data = bytearray()
    deadline = first_byte_deadline
    while len(data) < cap:
        try:
            chunk = await channel.recv(min(RECV_CHUNK, cap - len(data)), deadline)
        except (ProbeTimeout, ByteCapReached):
            return bytes(data), False
        if not chunk:
            return bytes(data), True
        data += chunk
        deadline = min(time.monotonic() + idle, channel.deadline)
    return bytes(data), False
