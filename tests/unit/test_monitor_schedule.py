"""Intervals and jitter."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scanner.errors import BadInput
from scanner.monitor import next_delay, parse_interval


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("6h", 21600), ("30m", 1800), ("90s", 90), ("1d", 86400), ("1h30m", 5400), ("45", 45),
     (" 2H ", 7200), ("1w", 604800), ("1.5h", 5400)],
)
def test_parse_interval(text: str, seconds: float) -> None:
    assert parse_interval(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "6x", "6h6", "-1h", "0", "0s", "400d", "1h 2x", "1e9"])
def test_bad_intervals(text: str) -> None:
    with pytest.raises(BadInput):
        parse_interval(text)


@given(st.text(max_size=40))
def test_parse_interval_raises_only_bad_input(text: str) -> None:
    try:
        seconds = parse_interval(text)
    except BadInput:
        return
    assert 1 <= seconds <= 366 * 86400


@given(every=st.floats(1, 86400 * 30), jitter=st.floats(-1, 2), seed=st.integers())
def test_jitter_stays_within_bounds(every: float, jitter: float, seed: int) -> None:
    delay = next_delay(every, jitter, random.Random(seed))
    spread = min(max(jitter, 0), 0.5)
    assert max(1.0, every * (1 - spread)) - 1e-6 <= delay <= max(1.0, every * (1 + spread)) + 1e-6


def test_jitter_actually_varies() -> None:
    rng = random.Random(1)
    delays = {round(next_delay(3600, 0.1, rng)) for _ in range(20)}
    assert len(delays) > 10 and all(3240 <= d <= 3960 for d in delays)
