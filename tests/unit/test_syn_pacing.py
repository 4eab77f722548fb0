"""The syn engine's rate cap, on a fake clock: it must hold over every window."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.discovery.syn_pacing import MAX_BURST, BurstPacer


class FakeTime:
    """A clock that only moves when the pacer idles (or when the 'sender' takes time)."""

    def __init__(self, seed: int) -> None:
        self.now = 1000.0
        self._random = random.Random(seed)

    def clock(self) -> float:
        return self.now

    def idle(self, seconds: float) -> None:
        # Like the engine's idle: sometimes returns early, sometimes oversleeps.
        self.now += seconds * self._random.choice((0.3, 0.9, 1.0, 1.2, 3.0))


def run_bursts(rate: float, bursts: list[int], seed: int) -> tuple[list[float], list[int]]:
    time = FakeTime(seed)
    pacer = BurstPacer(rate, clock=time.clock, idle=time.idle)
    starts, counts = [], []
    for wanted in bursts:
        count = max(1, min(wanted, pacer.burst_size))
        pacer.acquire(count)
        starts.append(time.now)
        counts.append(count)
        time.now += count * 1e-7  # sending takes a little time
    return starts, counts


@settings(max_examples=200)
@given(
    rate=st.floats(min_value=1, max_value=1e6),
    bursts=st.lists(st.integers(1, 1000), min_size=2, max_size=200),
    seed=st.integers(0, 1000),
)
def test_no_window_carries_more_than_rate_times_length_plus_one_burst(rate, bursts, seed):
    starts, counts = run_bursts(rate, bursts, seed)
    # For every pair of bursts: what was sent from burst i up to (not including) burst j
    # fits into the time between their starts; so a window of T seconds sees at most
    # rate * T + one burst.
    for i in range(len(starts)):
        sent = 0
        for j in range(i + 1, len(starts)):
            sent += counts[j - 1]
            assert sent <= rate * (starts[j] - starts[i]) * (1 + 1e-9) + 1e-6


def test_no_catch_up_after_a_stall():
    time = FakeTime(0)
    pacer = BurstPacer(1000, clock=time.clock, idle=time.idle)
    pacer.acquire(pacer.burst_size)
    time.now += 10.0  # a long stall: the next bursts must still be spaced
    pacer.acquire(pacer.burst_size)
    stalled_start = time.now
    pacer.acquire(pacer.burst_size)
    assert time.now - stalled_start >= pacer.burst_size / 1000


@pytest.mark.parametrize(
    ("rate", "expected"), [(1, 1), (2000, 4), (150_000, 300), (10**9, MAX_BURST)]
)
def test_bursts_stay_small(rate: int, expected: int):
    assert BurstPacer(rate).burst_size == expected


def test_sustained_rate_is_close_to_the_cap():
    time = FakeTime(1)

    def exact_sleep(seconds: float) -> None:
        time.now += seconds

    pacer = BurstPacer(2000, clock=time.clock, idle=exact_sleep)
    start = time.now
    for _ in range(500):
        pacer.acquire(pacer.burst_size)
    assert 500 * pacer.burst_size / (time.now - start) == pytest.approx(2000, rel=0.01)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        BurstPacer(0)
    pacer = BurstPacer(100)
    with pytest.raises(ValueError):
        pacer.acquire(pacer.burst_size + 1)
    with pytest.raises(ValueError):
        pacer.acquire(0)
