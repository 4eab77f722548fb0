"""Rate caps that hold over any window: tokens accrue with time, never faster than the rate."""

from __future__ import annotations

import asyncio
import time


class TokenBucket:
    """Allows `rate` events per second with a burst of at most `burst` events.

    The burst is kept small (a few milliseconds' worth) so that the cap also holds over
    short windows, not only on average over the whole scan.
    """

    def __init__(self, rate: float, burst: int | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        self.burst = burst if burst is not None else max(1, int(rate / 200))  # 5 ms of traffic
        self._tokens = 0.0
        self._last = time.monotonic()

    def take(self, wanted: int) -> int:
        """Take up to `wanted` tokens now; return how many were granted (maybe 0)."""
        now = time.monotonic()
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
        self._last = now
        granted = min(wanted, int(self._tokens))
        self._tokens -= granted
        return granted

    def delay_for(self, wanted: int = 1) -> float:
        """Seconds until `wanted` tokens (at most one burst) will be available."""
        missing = min(wanted, self.burst) - self._tokens
        return max(0.0, missing / self.rate)


class RateLimiter:
    """One event per `wait()`, at most `rate` per second; blocks (for synchronous senders)."""

    def __init__(self, rate: float) -> None:
        self._bucket = TokenBucket(rate)

    def wait(self) -> None:
        while not self._bucket.take(1):
            time.sleep(self._bucket.delay_for(1))


class AsyncRateLimiter:
    """One event per `wait()`, at most `rate` per second."""

    def __init__(self, rate: float) -> None:
        self._bucket = TokenBucket(rate)

    async def wait(self) -> None:
        while not self._bucket.take(1):
            await asyncio.sleep(self._bucket.delay_for(1))
