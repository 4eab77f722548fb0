import pytest
from hypothesis import given
from hypothesis import strategies as st

from scanner.discovery import ratelimit
from scanner.discovery.ratelimit import TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@given(
    rate=st.integers(min_value=1, max_value=200_000),
    steps=st.lists(
        st.tuples(st.floats(min_value=0, max_value=0.05), st.integers(1, 100_000)), max_size=60
    ),
)
def test_grants_never_exceed_rate_times_elapsed_plus_one_burst(
    rate: int, steps: list[tuple[float, int]]
) -> None:
    clock = FakeClock()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ratelimit.time, "monotonic", clock)
        bucket = TokenBucket(rate)
        start = clock.now
        granted = 0
        for advance, wanted in steps:
            clock.now += advance
            granted += bucket.take(wanted)
            assert granted <= rate * (clock.now - start) + bucket.burst
