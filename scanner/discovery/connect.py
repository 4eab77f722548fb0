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

from scanner.discovery.base import (
    DiscoveryOptions,
    HostStates,
    OpenCallback,
    PortState,
    ProgressCallback,
)
from scanner.errors import ScanFailed
from scanner.net.budget import Limits, RateBucket, ScanBudget
from scanner.targets import IPAddress

CANARY_GRACE_FLOOR_S = 0.1  # canaries wait at least this long after the scan started...
CANARY_GRACE_RTTS = 4  # ...and at least this many observed answer times

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
        """Every address in one pass (targets interleaved port by port), under the budget's
        rate bucket; canaries are probed first, once, and not waited for once the requested
        ports have all answered."""
        bucket = (budget or ScanBudget(Limits(rate=options.rate))).bucket
        scan = _ConnectScan(list(dict.fromkeys(addresses)), list(dict.fromkeys(ports)),
                            [port for port in dict.fromkeys(canaries) if port not in set(ports)],
                            options, _concurrency_for(options), bucket, on_open, progress)
        return asyncio.run(scan.run())


def _concurrency_for(options: DiscoveryOptions) -> int:
    """Enough sockets in flight to sustain the rate while each waits up to the timeout."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(options.max_concurrency, max(16, int(options.rate * options.timeout * 1.5)))
    if soft < wanted + _FD_MARGIN and soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, wanted + _FD_MARGIN), hard))
            soft = min(hard, wanted + _FD_MARGIN)
    return max(1, min(wanted, soft - _FD_MARGIN))


Probe = tuple[IPAddress, int]


class _ConnectScan:
    def __init__(
        self,
        addresses: list[IPAddress],
        ports: list[int],
        canaries: list[int],
        options: DiscoveryOptions,
        concurrency: int,
        bucket: RateBucket,
        on_open: OpenCallback | None,
        progress: ProgressCallback | None,
    ) -> None:
        self._addresses = addresses
        self._ports = ports
        self._canaries = canaries
        self._options = options
        self._concurrency = concurrency
        self._bucket = bucket
        self._on_open = on_open
        self._progress = progress
        self._states: dict[IPAddress, HostStates] = {address: {} for address in addresses}
        self._started = time.monotonic()
        self._slowest_answer = 0.0
        self._total = len(addresses) * (len(ports) + len(canaries))

    async def run(self) -> dict[IPAddress, HostStates]:
        canary_probes = [(address, port) for port in self._canaries for address in self._addresses]
        canaries = [asyncio.create_task(self._canary(probe)) for probe in canary_probes]
        pending: list[Probe] = [(a, p) for p in self._ports for a in self._addresses]
        for attempt in range(self._options.retries + 1):
            if not pending:
                break
            results = await self._run_pass(pending, first=attempt == 0)
            # Only silence earns a second chance; an RST or a handshake is a definite answer.
            pending = [probe for probe in pending if results[probe] is PortState.FILTERED]
            self._report(len(pending))
        await self._settle(canaries)
        self._report(0)
        return self._states

    async def _canary(self, probe: Probe) -> None:
        self._record(probe, await _probe(_family(probe[0]), str(probe[0]), probe[1],
                                         self._options.timeout, self._bucket), first=True)

    async def _settle(self, canaries: list[asyncio.Task[None]]) -> None:
        """Canaries left: a host that answers every port answers them within a few round
        trips, so give them that long since the start, then count the rest as silent."""
        left = [task for task in canaries if not task.done()]
        if not left:
            return
        grace = max(CANARY_GRACE_FLOOR_S, CANARY_GRACE_RTTS * self._slowest_answer)
        wait = min(grace, self._options.timeout) - (time.monotonic() - self._started)
        if wait > 0:
            await asyncio.wait(left, timeout=wait)
        for task in left:
            task.cancel()
        await asyncio.gather(*left, return_exceptions=True)
        for address in self._addresses:
            for port in self._canaries:
                self._states[address].setdefault(port, PortState.FILTERED)

    async def _run_pass(self, probes: list[Probe], first: bool) -> dict[Probe, PortState]:
        """`concurrency` workers share one iterator of probes: no task or semaphore per probe."""
        results: dict[Probe, PortState] = {}
        remaining = iter(probes)

        async def worker() -> None:
            for probe in remaining:
                address, port = probe
                state = await _probe(_family(address), str(address), port, self._options.timeout,
                                     self._bucket)
                results[probe] = state
                self._record(probe, state, first)

        await asyncio.gather(*(worker() for _ in range(min(self._concurrency, len(probes)))))
        return results

    def _record(self, probe: Probe, state: PortState, first: bool) -> None:
        address, port = probe
        if state is not PortState.FILTERED and first:
            self._slowest_answer = time.monotonic() - self._started
        self._states[address][port] = state
        if state is PortState.OPEN and self._on_open is not None:
            self._on_open(address, port)

    def _report(self, pending: int) -> None:
        if self._progress:
            self._progress(self._total - pending, self._total)


def _family(address: IPAddress) -> int:
    return socket.AF_INET6 if address.version == 6 else socket.AF_INET


async def _probe(
    family: int, host: str, port: int, timeout: float, bucket: RateBucket
) -> PortState:
    sock = await _open_socket(family)
    try:
        # the SYN leaves at the moment the scan's bucket admits it (see RateBucket)
        sent: list[int] = []
        await bucket.take_async(emit=lambda: sent.append(sock.connect_ex((host, port))))
        error = sent[0]
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
