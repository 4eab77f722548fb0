"""The syn engine's rate cap: a token bucket paid out in small bursts.

Sending one packet and sleeping 1/rate would need ~150,000 sleeps a second at benchmark
rates, and sleeps overshoot by tens of microseconds. So packets go out in bursts of about
2 ms worth of the rate, and each burst may only start `count / rate` seconds after the
previous one started. There is no catch-up: after a stall (a long sleep, ENOBUFS back-off,
the wait between passes) the next burst is not allowed to make up for lost time.

Guarantee: bursts that start within any window of T seconds carry at most
`rate * T + burst_size` packets (consecutive starts are at least `count / rate` apart).
"""

from __future__ import annotations

import time
from collections.abc import Callable

BURST_SECONDS = 0.002  # how much of the rate one burst may carry
MAX_BURST = 512  # even at very high rates: keeps the receive side drained often


class BurstPacer:
    """Hands out permission to send bursts of at most `burst_size` packets at `rate` pps."""

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        idle: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        self.burst_size = max(1, min(MAX_BURST, int(rate * BURST_SECONDS)))
        self._clock = clock
        self._idle = idle  # called with the seconds to wait; may return early (the engine
        # uses it to drain replies), so acquire() re-checks the clock in a loop
        self._next_start = float("-inf")

    def acquire(self, count: int) -> None:
        """Block until a burst of `count` packets may start, and account for it."""
        if not 0 < count <= self.burst_size:
            raise ValueError(f"a burst holds 1 to {self.burst_size} packets, not {count}")
        while (wait := self._next_start - self._clock()) > 0:
            self._idle(wait)
        self._next_start = self._clock() + count / self.rate
