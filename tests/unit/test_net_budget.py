"""The scan budget: the rate cap over any window, slots shared by threads and coroutines."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.net.budget import Limits, RateBucket, ScanBudget, SharedSlots, burst_for


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def starts_of(
    bucket: RateBucket, clock: FakeClock, bookings: list[tuple[float, int]]
) -> list[float]:
    """Book (pause before, count) in order; the start time of every event."""
    starts: list[float] = []
    for pause, count in bookings:
        clock.now += pause
        clock.now += bucket.reserve(count)
        while (wait := bucket.confirm(count)) > 0:
            clock.now += wait  # the caller sleeps as told
        starts += [clock.now] * count
    return starts


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(min_value=1, max_value=200_000),
    bookings=st.lists(
        st.tuples(st.floats(min_value=0, max_value=0.05), st.integers(min_value=1, max_value=8)),
        min_size=1, max_size=200,
    ),
    window=st.floats(min_value=0.001, max_value=2.0),
)
def test_no_window_holds_more_than_rate_times_window_plus_burst(
    rate: float, bookings: list[tuple[float, int]], window: float
) -> None:
    clock = FakeClock()
    bucket = RateBucket(rate, burst=max(1, min(8, int(rate))), clock=clock)
    bookings = [(pause, min(count, bucket.burst)) for pause, count in bookings]
    starts = sorted(starts_of(bucket, clock, bookings))
    # the stated guarantee: the GCRA burst plus the one event in flight (stated_burst)
    allowed = rate * window + bucket.stated_burst + 1e-6
    right = 0
    for left, start in enumerate(starts):
        while right < len(starts) and starts[right] < start + window:
            right += 1
        assert right - left <= allowed


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(min_value=1, max_value=200_000),
    pauses=st.lists(st.floats(min_value=0, max_value=0.2), min_size=1, max_size=300),
)
def test_no_second_holds_more_than_the_rate_burst_included(
    rate: float, pauses: list[float]
) -> None:
    """With the burst a scan uses (a few milliseconds' worth), --rate holds per second."""
    clock = FakeClock()
    bucket = RateBucket(rate, clock=clock)
    count = min(bucket.burst, int(rate))
    starts = sorted(starts_of(bucket, clock, [(pause, count) for pause in pauses]))
    right = 0
    for left, start in enumerate(starts):
        while right < len(starts) and starts[right] <= start + 1.0 + 1e-9:
            right += 1
        assert right - left <= rate + 1e-6


def test_a_late_waker_does_not_crowd_the_next_second() -> None:
    """Admission happens when the event goes: sleeping too long only ever delays."""
    clock = FakeClock()
    bucket = RateBucket(10, burst=1, clock=clock)
    starts = []
    for late in [0.0, 0.3, 0.0, 0.0, 0.25] * 6:
        clock.now += bucket.reserve() + late  # this caller wakes `late` after its turn
        while (wait := bucket.confirm()) > 0:
            clock.now += wait
        starts.append(clock.now)
    starts.sort()
    for index, start in enumerate(starts):
        assert sum(1 for other in starts[index:] if other <= start + 1.0) <= 10


def test_idle_time_is_not_saved_up_beyond_one_burst() -> None:
    clock = FakeClock()
    bucket = RateBucket(100, burst=5, clock=clock)
    clock.now += 3600  # an hour idle
    starts = starts_of(bucket, clock, [(0.0, 1)] * 10)
    base = starts[0]
    spacing = 1.05 / 100  # paced at rate / HARD_WINDOW_S after the burst
    assert [round(start - base, 9) for start in starts] == pytest.approx(
        [0, 0, 0, 0, 0, *(spacing * k for k in range(1, 6))])


def test_a_booking_larger_than_the_burst_is_refused() -> None:
    with pytest.raises(ValueError):
        RateBucket(10, burst=2).reserve(3)


def test_burst_is_a_few_milliseconds_of_the_rate_and_at_least_one() -> None:
    assert burst_for(50) == 1
    assert burst_for(2000) == 4
    assert burst_for(10_000_000) == 512


def test_threads_and_coroutines_share_slots_first_come_first_served() -> None:
    slots = SharedSlots(2)
    order: list[str] = []
    slots.acquire()
    slots.acquire()  # full

    def thread_waiter() -> None:
        with slots.held():
            order.append("thread")

    async def main() -> None:
        async def coroutine_waiter() -> None:
            async with slots.held_async():
                order.append("coroutine")

        task = asyncio.create_task(coroutine_waiter())
        await asyncio.sleep(0.02)  # queued first
        worker = threading.Thread(target=thread_waiter)
        worker.start()
        time.sleep(0.02)  # queued second
        slots.release()
        await task
        slots.release()
        await asyncio.to_thread(worker.join)

    asyncio.run(main())
    assert order == ["coroutine", "thread"]
    assert slots.in_use == 0


def test_a_cancelled_coroutine_does_not_keep_the_slot() -> None:
    slots = SharedSlots(1)

    async def main() -> None:
        slots.acquire()
        waiting = asyncio.create_task(slots.acquire_async())
        await asyncio.sleep(0.01)
        slots.release()  # granted to `waiting`...
        waiting.cancel()  # ...which is cancelled before it runs
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await asyncio.wait_for(slots.acquire_async(), 1)  # the slot was passed on
        slots.release()

    asyncio.run(main())
    assert slots.in_use == 0


def test_the_host_cap_holds_across_threads() -> None:
    budget = ScanBudget(Limits(rate=100_000, host_connections=3))
    barrier = threading.Barrier(8)

    def connect() -> None:
        barrier.wait()
        with budget.connection("203.0.113.10", lambda: None):
            time.sleep(0.02)

    workers = [threading.Thread(target=connect) for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert budget.host_slots("203.0.113.10").peak == 3
    assert budget.connections == 8


def test_deadlines_follow_the_timeout() -> None:
    assert Limits(timeout=1.0).port_deadline_s == 6.0
    assert Limits(timeout=0.1).port_deadline_s == 4.0  # never below the floor
    assert Limits(timeout=2.0).tls_endpoint_s == 40.0
