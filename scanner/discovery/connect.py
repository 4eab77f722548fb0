"""Connect engine: full TCP handshakes with asyncio; needs no privileges.

The verdict for a probe comes from the kernel, not from the event loop's clock: when the
timeout fires we ask the socket itself whether the handshake completed. A loop too busy to
notice a writable socket in time therefore cannot turn an open port into "filtered".
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import resource
import select
import socket
import struct
import time
from collections.abc import Sequence

from scanner.discovery.base import DiscoveryOptions, PortState, ProgressCallback
from scanner.discovery.ratelimit import AsyncRateLimiter
from scanner.errors import ScanFailed
from scanner.targets import IPAddress

_REFUSED = {errno.ECONNREFUSED, errno.ECONNRESET}
_UNREACHABLE = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ETIMEDOUT, errno.EACCES, errno.EPERM}
_OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.EADDRNOTAVAIL, errno.EAGAIN}
# Close with RST instead of FIN: no TIME_WAIT pile-up after tens of thousands of probes.
_LINGER_RESET = struct.pack("ii", 1, 0)
_FD_MARGIN = 64  # descriptors kept free for the rest of the program


class ConnectEngine:
    name = "connect"

    def scan(
        self,
        address: IPAddress,
        ports: Sequence[int],
        options: DiscoveryOptions,
        progress: ProgressCallback | None = None,
    ) -> dict[int, PortState]:
        concurrency = _concurrency_for(options)
        return asyncio.run(_scan(address, list(ports), options, concurrency, progress))


def _concurrency_for(options: DiscoveryOptions) -> int:
    """Enough sockets in flight to sustain the rate while each waits up to the timeout."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(options.max_concurrency, max(16, int(options.rate * options.timeout * 1.5)))
    if soft < wanted + _FD_MARGIN and soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, wanted + _FD_MARGIN), hard))
            soft = min(hard, wanted + _FD_MARGIN)
    return max(1, min(wanted, soft - _FD_MARGIN))


async def _scan(
    address: IPAddress,
    ports: list[int],
    options: DiscoveryOptions,
    concurrency: int,
    progress: ProgressCallback | None,
) -> dict[int, PortState]:
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    limiter = AsyncRateLimiter(options.rate)
    states: dict[int, PortState] = {}
    pending = ports
    done_count = 0
    total = len(ports)
    for _attempt in range(options.retries + 1):
        if not pending:
            break
        results = await _run_pass(family, str(address), pending, options, concurrency, limiter)
        for port, state in results.items():
            states[port] = state
        # Only silence earns a second chance; an RST or a handshake is a definite answer.
        pending = [port for port in pending if results[port] is PortState.FILTERED]
        done_count = total - len(pending)
        if progress:
            progress(done_count, total)
    if progress:
        progress(total, total)
    return states


async def _run_pass(
    family: int,
    host: str,
    ports: list[int],
    options: DiscoveryOptions,
    concurrency: int,
    limiter: AsyncRateLimiter,
) -> dict[int, PortState]:
    """`concurrency` workers share one iterator of ports: no task or semaphore per probe."""
    results: dict[int, PortState] = {}
    remaining = iter(ports)

    async def worker() -> None:
        for port in remaining:
            await limiter.wait()
            results[port] = await _probe(family, host, port, options.timeout)

    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(ports)))))
    return results


async def _probe(family: int, host: str, port: int, timeout: float) -> PortState:
    sock = await _open_socket(family)
    try:
        error = sock.connect_ex((host, port))
        if error == 0:
            return PortState.OPEN
        if error != errno.EINPROGRESS:
            return _state_from_errno(error)
        await _wait_writable(sock, timeout)
        return _ask_kernel(sock)
    finally:
        sock.close()


async def _open_socket(family: int) -> socket.socket:
    deadline = time.monotonic() + 5.0
    while True:
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError as error:
            if error.errno not in _OUT_OF_RESOURCES or time.monotonic() > deadline:
                raise ScanFailed(f"cannot open a socket: {error.strerror}") from None
            await asyncio.sleep(0.01)
            continue
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        return sock


async def _wait_writable(sock: socket.socket, timeout: float) -> None:
    """Until the socket is writable (handshake answered) or the timeout passes."""
    loop = asyncio.get_running_loop()
    woken = loop.create_future()
    loop.add_writer(sock.fileno(), _wake, woken)
    timer = loop.call_later(timeout, _wake, woken)
    try:
        await woken
    finally:
        timer.cancel()
        loop.remove_writer(sock.fileno())


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _ask_kernel(sock: socket.socket) -> PortState:
    """The socket's own state decides: writable + no error = the handshake completed."""
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLOUT)
    if not poller.poll(0):
        return PortState.FILTERED  # still in SYN_SENT: nothing answered within the timeout
    error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    return PortState.OPEN if error == 0 else _state_from_errno(error)


def _state_from_errno(error: int) -> PortState:
    if error in _REFUSED:
        return PortState.CLOSED
    if error in _UNREACHABLE:
        return PortState.FILTERED
    if error in _OUT_OF_RESOURCES:
        raise ScanFailed(f"out of local resources while connecting: {errno.errorcode[error]}")
    return PortState.FILTERED
