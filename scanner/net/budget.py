"""One budget per scan: the rate cap, the connection caps and the timeouts every stage obeys.

`api.scan` creates one `ScanBudget` and hands it to discovery, identification and the checks.

- **Rate** (`--rate`): every discovery packet and every connection attempt after discovery
  is admitted by one `RateBucket`, so the cap holds for the whole scan: at most `rate` in any
  second, and at most `rate * T + burst` in any shorter window of T seconds (`burst` is stated
  in the report and is a few milliseconds' worth of the rate, at least 1).
- **Concurrency**: a connection after discovery also holds a slot of its host (at most
  `host_connections` open to one address) and a global slot (`global_connections`). Discovery
  probes take rate tokens only: a half-open SYN (or a connect probe reset at once) is a packet,
  not a session.
- **Time**: `timeout` (`--timeout`) is the base of every read timeout; `port_deadline_s` bounds
  everything done to one open port (identification, the nmap fallback and the checks); TLS
  grading has its own bound (`tls_endpoint_s`).

Usable from threads and from asyncio alike: the bucket says how long to wait before asking
again, and the slots hand themselves to the next waiter of either kind.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

BURST_SECONDS = 0.002  # a burst carries at most this much of the rate...
MAX_BURST = 512  # ...and never more packets than this (the syn engine's send bursts)
HARD_WINDOW_S = 1.05  # at most `rate` events in any such window (a second, plus a margin)
DEFAULT_HOST_CONNECTIONS = 16
DEFAULT_GLOBAL_CONNECTIONS = 256
PORT_DEADLINE_FACTOR = 6.0  # everything done to one port: 6 read timeouts...
MIN_PORT_DEADLINE_S = 4.0  # ...and never less than this (a fast --timeout on a slow server)
TLS_ENDPOINT_FACTOR = 20.0  # grading one TLS endpoint: 20 read timeouts...
MIN_TLS_ENDPOINT_S = 10.0  # ...and never less (tens of handshakes, a busy server, a slow link)


def burst_for(rate: float) -> int:
    """The bucket's burst: ~2 ms of the rate, between 1 and MAX_BURST events."""
    return max(1, min(MAX_BURST, int(rate * BURST_SECONDS)))


class RateBucket:
    """A thread-safe rate cap, fair to its waiters, that holds where the packets leave.

    Taking a token is two steps. `reserve(n)` books n events in order (first come, first
    served, threads and coroutines alike: GCRA, virtual scheduling) and says how long to wait;
    at the booked moment `confirm(n, emit)` admits them, unless the last HARD_WINDOW_S already
    holds `rate` events (a waiter that slept too long must not crowd the next second), in which
    case it says how much longer to wait. `emit` (sending the SYN: a non-blocking connect, a
    sendto) runs inside the admission, under the bucket's lock, so the next admission cannot
    happen before this packet has left: what the scanned host sees is what was admitted.
    `take()` and `take_async()` do both steps.

    Guarantees for the packets: in any window of T seconds at most `rate * T + stated_burst`
    (`stated_burst` = the GCRA burst, a few milliseconds' worth of the rate and at least 1, plus
    the one packet that may still be leaving as the window opens), and in any HARD_WINDOW_S (a
    second plus a margin) at most `rate`. `--rate` is a promise about every second of the scan.
    """

    def __init__(
        self, rate: float, burst: int | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError("rate must be a positive number")
        self.rate = float(rate)
        self.burst = burst if burst is not None else burst_for(rate)
        if self.burst < 1:
            raise ValueError("burst must be at least 1")
        # Booked at a pace the hard window never has to correct in a steady stream.
        self._pace = self.rate / HARD_WINDOW_S
        self._clock = clock
        self._lock = threading.Lock()
        self._next = -math.inf  # when the next booking may start, unless it uses up burst
        self._recent: collections.deque[tuple[float, int]] = collections.deque()
        self._in_window = 0  # events admitted within the last HARD_WINDOW_S
        self.booked = 0  # events admitted so far (tests and benchmarks read it)

    def reserve(self, count: int = 1) -> float:
        """Book `count` events (at most one burst); seconds to wait before confirming them."""
        if not 0 < count <= min(self.burst, self.rate):
            raise ValueError(f"one booking holds 1 to {self.burst} events, not {count}")
        with self._lock:
            now = self._clock()
            # A burst may start `burst / pace` early, never earlier: no saving up past that.
            start = max(now, self._next - (self.burst - count) / self._pace)
            self._next = max(self._next, start) + count / self._pace
            return start - now

    @property
    def stated_burst(self) -> int:
        """The most packets above `rate * T` in any window of T seconds (the report's)."""
        return self.burst + 1

    def confirm(self, count: int = 1, emit: Callable[[], object] | None = None) -> float:
        """Admit `count` booked events now (0.0: `emit` has run), or say how many seconds to
        wait first."""
        with self._lock:
            now = self._clock()
            while self._recent and self._recent[0][0] <= now - HARD_WINDOW_S:
                self._in_window -= self._recent.popleft()[1]
            excess = self._in_window + count - self.rate
            if excess > 0:
                for admitted_at, admitted in self._recent:  # oldest first: when enough age out
                    excess -= admitted
                    if excess <= 0:
                        return admitted_at + HARD_WINDOW_S - now + 1e-6
                return HARD_WINDOW_S
            self._recent.append((now, count))
            self._in_window += count
            self.booked += count
            if emit is not None:
                emit()
            return 0.0

    def take(self, count: int = 1, emit: Callable[[], object] | None = None) -> None:
        """Book, wait, be admitted (threads); `emit` runs at the admission."""
        wait = self.reserve(count)
        if wait > 0:
            time.sleep(wait)
        while (wait := self.confirm(count, emit)) > 0:
            time.sleep(wait)

    async def take_async(self, count: int = 1, emit: Callable[[], object] | None = None) -> None:
        """Book, wait, be admitted (coroutines); `emit` runs at the admission."""
        wait = self.reserve(count)
        if wait > 0:
            await asyncio.sleep(wait)
        while (wait := self.confirm(count, emit)) > 0:
            await asyncio.sleep(wait)


class _Waiter:
    """One thread or coroutine waiting for a slot; `grant()` may come from any thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self.loop = loop
        self.event = threading.Event() if loop is None else None
        self.future: asyncio.Future[None] | None = loop.create_future() if loop else None

    def grant(self) -> None:
        if self.event is not None:
            self.event.set()
        elif self.loop is not None and self.future is not None:
            self.loop.call_soon_threadsafe(_resolve, self.future)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class SharedSlots:
    """A counting semaphore that threads and coroutines (on any loop) can share, FIFO."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("a slot limit must be at least 1")
        self.limit = limit
        self._used = 0
        self._lock = threading.Lock()
        self._waiters: collections.deque[_Waiter] = collections.deque()
        self.peak = 0  # the most slots held at once (tests read it)

    @property
    def in_use(self) -> int:
        return self._used

    def _take_or_queue(self, loop: asyncio.AbstractEventLoop | None) -> _Waiter | None:
        with self._lock:
            if self._used < self.limit and not self._waiters:
                self._used += 1
                self.peak = max(self.peak, self._used)
                return None
            waiter = _Waiter(loop)
            self._waiters.append(waiter)
            return waiter

    def acquire(self) -> None:
        waiter = self._take_or_queue(None)
        if waiter is not None and waiter.event is not None:
            waiter.event.wait()

    async def acquire_async(self) -> None:
        waiter = self._take_or_queue(asyncio.get_running_loop())
        if waiter is None or waiter.future is None:
            return
        try:
            await waiter.future
        except asyncio.CancelledError:
            self._abandon(waiter)
            raise

    def _abandon(self, waiter: _Waiter) -> None:
        """A cancelled coroutine gives back the slot it may have been granted meanwhile."""
        with self._lock:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
                return
        self.release()  # it had been granted: pass the slot on

    def release(self) -> None:
        with self._lock:
            if self._waiters:
                self._waiters.popleft().grant()  # the slot moves to the waiter: _used unchanged
                return
            self._used -= 1

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()

    @contextlib.asynccontextmanager
    async def held_async(self) -> AsyncIterator[None]:
        await self.acquire_async()
        try:
            yield
        finally:
            self.release()


@dataclass(frozen=True)
class Limits:
    """What the user asked for (`--rate`, `--timeout`) and the caps derived from it."""

    rate: float = 2000.0  # packets and connection attempts per second, whole scan
    timeout: float = 1.0  # seconds: the base of every read timeout
    host_connections: int = DEFAULT_HOST_CONNECTIONS
    global_connections: int = DEFAULT_GLOBAL_CONNECTIONS

    @property
    def port_deadline_s(self) -> float:
        """Everything done to one open port ends within this many seconds."""
        return max(MIN_PORT_DEADLINE_S, PORT_DEADLINE_FACTOR * self.timeout)

    @property
    def tls_endpoint_s(self) -> float:
        """Grading one TLS endpoint ends within this many seconds."""
        return max(MIN_TLS_ENDPOINT_S, TLS_ENDPOINT_FACTOR * self.timeout)


class ScanBudget:
    """The one budget of a scan. Create one per scan; share it with every stage."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.bucket = RateBucket(self.limits.rate)
        self.global_slots = SharedSlots(self.limits.global_connections)
        self._hosts: dict[str, SharedSlots] = {}
        self._bulk: dict[str, SharedSlots] = {}
        self._hosts_lock = threading.Lock()
        self._opened = 0

    @property
    def connections(self) -> int:
        """Connections opened after discovery so far (reports and tests)."""
        return self._opened

    def _count_connection(self) -> None:
        with self._hosts_lock:
            self._opened += 1

    @property
    def timeout(self) -> float:
        return self.limits.timeout

    def host_slots(self, address: str) -> SharedSlots:
        with self._hosts_lock:
            slots = self._hosts.get(address)
            if slots is None:
                slots = SharedSlots(self.limits.host_connections)
                self._hosts[address] = slots
            return slots

    def bulk_slots(self, address: str) -> SharedSlots:
        """Bulk work (TLS grading: tens of handshakes) holds at most half a host's slots, so
        it never starves the identification and checks of the host's other ports."""
        with self._hosts_lock:
            slots = self._bulk.get(address)
            if slots is None:
                slots = SharedSlots(max(1, self.limits.host_connections // 2))
                self._bulk[address] = slots
            return slots

    def port_deadline(self) -> float:
        """A monotonic deadline for the work on one port starting now."""
        return time.monotonic() + self.limits.port_deadline_s

    @contextlib.contextmanager
    def connection(
        self, address: str, start: Callable[[], object], *, bulk: bool = False
    ) -> Iterator[None]:
        """Hold a host slot and a global slot (and a bulk slot for bulk work), and start the
        connection (`start`: its non-blocking connect, which sends the SYN) at the moment the
        rate bucket admits it (threads).

        The slots are taken before the token: a token is spent only on a connection that
        goes out at once.
        """
        with contextlib.ExitStack() as held:
            if bulk:
                held.enter_context(self.bulk_slots(address).held())
            held.enter_context(self.host_slots(address).held())
            held.enter_context(self.global_slots.held())
            self.bucket.take(emit=start)
            self._count_connection()
            yield

    @contextlib.asynccontextmanager
    async def connection_async(
        self, address: str, start: Callable[[], object]
    ) -> AsyncIterator[None]:
        """The same for coroutines."""
        async with self.host_slots(address).held_async(), self.global_slots.held_async():
            await self.bucket.take_async(emit=start)
            self._count_connection()
            yield

    def describe(self) -> dict[str, float | int]:
        """What the report says about the budget (scan.budget in the JSON)."""
        return {
            "rate": self.limits.rate,
            "burst": self.bucket.stated_burst,
            "timeout_s": self.limits.timeout,
            "host_connections": self.limits.host_connections,
            "global_connections": self.limits.global_connections,
            "port_deadline_s": self.limits.port_deadline_s,
            "tls_endpoint_s": self.limits.tls_endpoint_s,
        }
