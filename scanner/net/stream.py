"""Bounded connections: the only place after discovery where a socket is opened.

A connection is opened by a `Dialer` (the scan's budget, the deadline of the port it serves,
the read timeout) to an `Endpoint` (where, and with which names), and is closed on leaving its
`with` block. Every connection:

- holds a host slot and a global slot and took one rate token (budget.connection);
- ends at its deadline (the port's, never later), whatever the server does;
- waits at most `read_timeout` for each read (the scan's `--timeout` unless a caller says
  otherwise), and never past the deadline;
- reads at most its byte cap (and its share of the port's `Allowance`, when one is given).

Two flavours with the same rules: `Stream` (blocking, for checks that run in threads) and
`AsyncStream` (non-blocking, for identification's coroutines). `SocketAdapter` lends a `Stream`
to libraries that want a socket object (paramiko, sslyze).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import select
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from scanner.net.budget import ScanBudget
from scanner.net.errors import ByteCapReached, ConnectFailed, NetError, NetTimeout
from scanner.net.tls import TlsPurpose, tls_context

RECV_CHUNK = 16 * 1024
DEFAULT_CAP = 256 * 1024  # bytes one connection may read unless its caller says otherwise


@dataclass(frozen=True)
class Endpoint:
    """Where a connection goes: a numeric address, a port, TLS or not, the names to present."""

    address: str
    port: int
    tls: bool = False
    server_name: str | None = None  # TLS SNI: the hostname the user typed (None for an IP)
    host_header: str = ""  # HTTP Host: defaults to address:port

    @property
    def family(self) -> socket.AddressFamily:
        return socket.AF_INET6 if ":" in self.address else socket.AF_INET

    def authority(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"

    @property
    def host(self) -> str:
        return self.host_header or self.authority()

    def with_tls(self, tls: bool) -> Endpoint:
        return self if tls == self.tls else replace(self, tls=tls)


@dataclass
class Traffic:
    """What the connections of one port cost; tests and benchmarks read it."""

    bytes_received: int = 0
    bytes_sent: int = 0
    connections: int = 0


@dataclass
class Allowance:
    """Bytes a port may still read across all its connections (a hostile port's total)."""

    bytes_left: int
    traffic: Traffic = field(default_factory=Traffic)

    def limit(self, wanted: int) -> int:
        return min(wanted, self.bytes_left)

    def charge(self, received: int) -> None:
        self.bytes_left -= received
        self.traffic.bytes_received += received


def seconds_until(deadline: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise NetTimeout("deadline passed")
    return remaining


@dataclass(frozen=True)
class Dialer:
    """Opens connections under the scan's budget, each ending by `deadline` at the latest."""

    budget: ScanBudget
    deadline: float  # monotonic; usually the deadline of the port being worked on
    read_timeout: float  # seconds one read may wait (the scan's --timeout)
    allowance: Allowance | None = None  # shared by the port's connections, when given

    @classmethod
    def for_port(cls, budget: ScanBudget, allowance: Allowance | None = None) -> Dialer:
        return cls(budget, budget.port_deadline(), budget.timeout, allowance)

    def within(self, seconds: float) -> Dialer:
        """The same dialer with a deadline no later than `seconds` from now."""
        return replace(self, deadline=min(self.deadline, time.monotonic() + seconds))

    def with_read_timeout(self, seconds: float) -> Dialer:
        return replace(self, read_timeout=seconds)

    @property
    def seconds_left(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    # --- blocking ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def open(
        self,
        endpoint: Endpoint,
        *,
        cap: int = DEFAULT_CAP,
        tls: bool | None = None,
        purpose: TlsPurpose = TlsPurpose.CHECK,
        lifetime: float | None = None,
        bulk: bool = False,
    ) -> Iterator[Stream]:
        """A connected Stream (TLS when `tls`, default endpoint.tls), closed on exit.

        `bulk`: one of many connections of one job (TLS grading), held to half the host's
        slots (ScanBudget.bulk_slots)."""
        deadline = self.deadline if lifetime is None else min(
            self.deadline, time.monotonic() + lifetime
        )
        seconds_until(deadline)  # no time left: no connection, no token spent
        use_tls = endpoint.tls if tls is None else tls
        sock = socket.socket(endpoint.family, socket.SOCK_STREAM)
        try:
            pending = _PendingConnect(sock, endpoint)
            with self.budget.connection(endpoint.address, pending.start, bulk=bulk):
                connected = pending.finish_blocking(deadline, self.read_timeout)
                if self.allowance is not None:
                    self.allowance.traffic.connections += 1
                if use_tls:
                    connected = _wrap_tls(connected, endpoint, purpose, deadline,
                                          self.read_timeout)
                yield Stream(connected, deadline, self.read_timeout, cap, self.allowance,
                             rtt=pending.rtt)
        finally:
            sock.close()

    def open_socket(
        self,
        endpoint: Endpoint,
        *,
        expired: type[Exception] = TimeoutError,
        cap: int = DEFAULT_CAP,
        lifetime: float | None = None,
        bulk: bool = False,
    ) -> SocketAdapter:
        """A plain connection lent as a socket to a library that drives it (sslyze, paramiko).

        It holds its slots until the library closes it (closing twice is harmless)."""
        stack = contextlib.ExitStack()
        stream = stack.enter_context(
            self.open(endpoint, cap=cap, tls=False, lifetime=lifetime, bulk=bulk)
        )
        return SocketAdapter(stream, expired, on_close=stack.close, ceiling=self.deadline)

    # --- asyncio ----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def open_async(
        self, endpoint: Endpoint, *, cap: int = DEFAULT_CAP
    ) -> AsyncIterator[AsyncStream]:
        """A connected plain AsyncStream (TLS, when wanted, is started by net.tls.start_tls)."""
        seconds_until(self.deadline)
        sock = socket.socket(endpoint.family, socket.SOCK_STREAM)
        try:
            pending = _PendingConnect(sock, endpoint)
            async with self.budget.connection_async(endpoint.address, pending.start):
                await pending.finish_async(self.deadline, self.read_timeout)
                if self.allowance is not None:
                    self.allowance.traffic.connections += 1
                yield AsyncStream(sock, self.deadline, self.read_timeout, cap, self.allowance,
                                  rtt=pending.rtt)
        finally:
            sock.close()


class _PendingConnect:
    """A non-blocking connect: `start` sends the SYN (run by the rate bucket at the moment it
    admits the connection), `finish_*` waits for the handshake within the read timeout."""

    def __init__(self, sock: socket.socket, endpoint: Endpoint) -> None:
        self._sock = sock
        self._address = (endpoint.address, endpoint.port)
        self._error: int | None = None
        self._started = 0.0
        self.rtt = 0.0  # the TCP handshake's duration: a cheap estimate of the round trip

    def start(self) -> None:
        self._sock.setblocking(False)
        self._started = time.monotonic()
        self._error = self._sock.connect_ex(self._address)

    def _result(self) -> bool:
        """True when connected already; raises when the connect failed at once."""
        if self._error == 0:
            return True
        if self._error != errno.EINPROGRESS:
            raise ConnectFailed(f"connect failed: {os.strerror(self._error or 0)}")
        return False

    def _done(self) -> None:
        error = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if error:
            raise ConnectFailed(f"connect failed: {os.strerror(error)}")
        self.rtt = time.monotonic() - self._started
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def finish_blocking(self, deadline: float, read_timeout: float) -> socket.socket:
        if not self._result():
            poller = select.poll()
            poller.register(self._sock, select.POLLOUT)
            wait = min(read_timeout, seconds_until(deadline))
            if not poller.poll(wait * 1000):
                raise NetTimeout("connect timed out")
        self._done()
        self._sock.setblocking(True)
        return self._sock

    async def finish_async(self, deadline: float, read_timeout: float) -> None:
        if not self._result():
            loop = asyncio.get_running_loop()
            wait = min(read_timeout, seconds_until(deadline))  # before the future exists
            writable: asyncio.Future[None] = loop.create_future()
            loop.add_writer(self._sock.fileno(), _set_once, writable)
            try:
                await asyncio.wait_for(writable, wait)
            except TimeoutError:
                raise NetTimeout("connect timed out") from None
            finally:
                loop.remove_writer(self._sock.fileno())
        self._done()


def _set_once(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _wrap_tls(
    sock: socket.socket, endpoint: Endpoint, purpose: TlsPurpose, deadline: float,
    read_timeout: float,
) -> ssl.SSLSocket:
    # The handshake may take a few round trips: bounded by the deadline, and by twice the read
    # timeout so one slow server cannot take a port's whole deadline for a handshake.
    sock.settimeout(min(2 * read_timeout, seconds_until(deadline)))
    try:
        return tls_context(purpose).wrap_socket(
            sock, server_hostname=endpoint.server_name or None
        )
    except (OSError, ValueError) as error:
        raise ConnectFailed(f"TLS handshake failed: {error}") from None


class _Bounds:
    """The deadline, read timeout and byte caps both stream flavours enforce."""

    def __init__(
        self, deadline: float, read_timeout: float, cap: int, allowance: Allowance | None,
        rtt: float,
    ) -> None:
        self.deadline = deadline
        self.read_timeout = read_timeout
        self.bytes_left = cap
        self.allowance = allowance
        self.rtt = rtt  # the TCP handshake's duration: a cheap estimate of the round trip

    def read_limit(self, wanted: int) -> int:
        limit = min(wanted, self.bytes_left)
        if self.allowance is not None:
            limit = self.allowance.limit(limit)
        if limit <= 0:
            raise ByteCapReached("byte cap reached")
        return limit

    def wait_for_read(self, until: float | None) -> float:
        """Seconds the next read may wait: to `until` if given, else one read timeout."""
        end = time.monotonic() + self.read_timeout if until is None else until
        return seconds_until(min(end, self.deadline))

    def charge(self, received: int) -> None:
        self.bytes_left -= received
        if self.allowance is not None:
            self.allowance.charge(received)

    def charge_sent(self, sent: int) -> None:
        if self.allowance is not None:
            self.allowance.traffic.bytes_sent += sent


class Stream(_Bounds):
    """A connected blocking socket (plain or TLS) under the connection's bounds."""

    def __init__(
        self,
        sock: socket.socket,
        deadline: float,
        read_timeout: float,
        cap: int,
        allowance: Allowance | None = None,
        rtt: float = 0.0,
    ) -> None:
        super().__init__(deadline, read_timeout, cap, allowance, rtt)
        self.sock = sock

    @property
    def is_tls(self) -> bool:
        return isinstance(self.sock, ssl.SSLSocket)

    def send(self, data: bytes) -> None:
        self.sock.settimeout(min(self.read_timeout, seconds_until(self.deadline)))
        try:
            self.sock.sendall(data)
        except TimeoutError:
            raise NetTimeout("send timed out") from None
        except OSError as error:
            raise NetError(f"send failed: {error}") from None
        self.charge_sent(len(data))

    def recv(self, limit: int = RECV_CHUNK, until: float | None = None) -> bytes:
        """Up to `limit` bytes; b"" at end of stream (a reset counts as one).

        Waits until `until` (monotonic) if given, else one read timeout; never past the
        deadline. Raises NetTimeout, ByteCapReached."""
        limit = self.read_limit(limit)
        self.sock.settimeout(self.wait_for_read(until))
        try:
            data = self.sock.recv(limit)
        except TimeoutError:
            raise NetTimeout("no data before the read timeout") from None
        except (ConnectionResetError, ssl.SSLZeroReturnError, ssl.SSLEOFError):
            return b""
        except OSError as error:
            raise NetError(f"read failed: {error}") from None
        self.charge(len(data))
        return data

    def recv_until(self, done: Callable[[bytes], bool], cap: int) -> bytes:
        """Read until done(buffer) holds, the server hangs up, `cap` bytes, or time runs out.

        Running out of time (or bytes) after some bytes arrived returns them (the caller
        judges them); with nothing read it raises."""
        buffer = bytearray()
        while len(buffer) < cap and not done(bytes(buffer)):
            try:
                chunk = self.recv(min(RECV_CHUNK, cap - len(buffer)))
            except NetError:
                if buffer:
                    break
                raise
            if not chunk:
                break
            buffer += chunk
        return bytes(buffer[:cap])

    def recv_exactly(self, count: int) -> bytes:
        data = self.recv_until(lambda buffer: len(buffer) >= count, count)
        if len(data) < count:
            raise NetError(f"short read: {len(data)} of {count} bytes")
        return data

    def send_quietly(self, data: bytes) -> None:
        """A goodbye (close frame, DISCONNECT): best effort, never an error."""
        with contextlib.suppress(NetError):
            self.send(data)


class Channel(Protocol):
    """A coroutine byte stream to a service: an AsyncStream, or TLS on top of one."""

    deadline: float  # monotonic: the connection ends then
    rtt: float  # seconds the TCP handshake took
    read_timeout: float

    async def send(self, data: bytes) -> None: ...

    async def recv(self, limit: int = RECV_CHUNK, until: float | None = None) -> bytes:
        """Up to `limit` bytes; b"" at end of stream. Raises NetTimeout, ByteCapReached."""
        ...


class AsyncStream(_Bounds):
    """A connected non-blocking TCP socket under the connection's bounds (coroutines)."""

    def __init__(
        self,
        sock: socket.socket,
        deadline: float,
        read_timeout: float,
        cap: int,
        allowance: Allowance | None = None,
        rtt: float = 0.0,
    ) -> None:
        super().__init__(deadline, read_timeout, cap, allowance, rtt)
        self._sock = sock

    async def send(self, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        # The wait is computed before the coroutine exists: if the deadline has passed,
        # seconds_until raises and no coroutine is left un-awaited (a RuntimeWarning on stderr).
        wait = min(self.read_timeout, seconds_until(self.deadline))
        try:
            await asyncio.wait_for(loop.sock_sendall(self._sock, data), wait)
        except TimeoutError:
            raise NetTimeout("send timed out") from None
        self.charge_sent(len(data))

    async def recv(self, limit: int = RECV_CHUNK, until: float | None = None) -> bytes:
        """As Stream.recv, for coroutines."""
        limit = self.read_limit(limit)
        loop = asyncio.get_running_loop()
        wait = self.wait_for_read(until)  # before the coroutine exists (see send)
        try:
            data = await asyncio.wait_for(loop.sock_recv(self._sock, limit), wait)
        except TimeoutError:
            raise NetTimeout("no data before the read timeout") from None
        except ConnectionResetError:
            return b""  # a reset is the server's way of hanging up, as good as EOF here
        self.charge(len(data))
        return data


async def read_until_idle(
    channel: Channel, *, first_byte_deadline: float, idle: float, cap: int
) -> tuple[bytes, bool]:
    """Read what the server sends unprompted: (data, closed).

    Waits until `first_byte_deadline` for the first bytes, then keeps reading while more
    arrive within `idle` seconds of each other, up to `cap` bytes. A server that drips one
    byte at a time forever still stops at the connection's deadline.
    """
    data = bytearray()
    deadline = first_byte_deadline
    while len(data) < cap:
        try:
            chunk = await channel.recv(min(RECV_CHUNK, cap - len(data)), deadline)
        except (NetTimeout, ByteCapReached):
            return bytes(data), False
        if not chunk:
            return bytes(data), True
        data += chunk
        deadline = min(time.monotonic() + idle, channel.deadline)
    return bytes(data), False


class SocketAdapter:
    """A Stream lent to a library that wants a socket (paramiko, sslyze).

    The library may set its own (short, polling) timeouts; reads still stop at the
    connection's deadline and byte cap. Past them, recv raises `expired` (paramiko treats
    EOFError as the end of the connection; sslyze reports a TimeoutError as a timeout).
    """

    def __init__(
        self,
        stream: Stream,
        expired: type[Exception] = TimeoutError,
        on_close: Callable[[], object] | None = None,
        ceiling: float | None = None,
    ) -> None:
        self._stream = stream
        self._sock = stream.sock
        self._expired = expired
        self._timeout: float | None = stream.read_timeout  # as a socket made with a timeout
        self._on_close = on_close
        self._ceiling = stream.deadline if ceiling is None else ceiling

    @property
    def deadline(self) -> float:
        return self._stream.deadline

    @deadline.setter
    def deadline(self, value: float) -> None:
        """A caller may move the connection's end, never past its dialer's deadline."""
        self._stream.deadline = min(value, self._ceiling)

    def remaining(self) -> float:
        """Seconds until the connection's deadline."""
        return self._stream.deadline - time.monotonic()

    def _arm(self) -> None:
        remaining = self.remaining()
        if remaining <= 0:
            raise self._expired("connection deadline reached")
        self._sock.settimeout(remaining if self._timeout is None else min(self._timeout, remaining))

    def recv(self, size: int, *flags: int) -> bytes:
        try:
            limit = self._stream.read_limit(size)
        except ByteCapReached:
            raise self._expired("byte cap reached") from None
        self._arm()
        data = self._sock.recv(limit, *flags)
        self._stream.charge(len(data))
        return data

    def send(self, data: bytes, *flags: int) -> int:
        self._arm()
        return self._sock.send(data, *flags)

    def sendall(self, data: bytes, *flags: int) -> None:
        self._arm()
        self._sock.sendall(data, *flags)

    def settimeout(self, value: float | None) -> None:
        self._timeout = value

    def gettimeout(self) -> float | None:
        return self._timeout

    def close(self) -> None:
        on_close, self._on_close = self._on_close, None
        # shutdown first: it wakes a library thread blocked in recv (paramiko's), so the
        # server sees the end now rather than when that recv times out
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        if on_close is not None:
            on_close()  # releases the connection's slots

    def __getattr__(self, name: str) -> Any:  # fileno, getpeername, _closed ... passthrough
        return getattr(self._sock, name)
