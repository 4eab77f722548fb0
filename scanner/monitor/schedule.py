"""When the next scan runs: an interval like 6h or 1h30m, spread by a random jitter.

Jitter keeps many watchers (or one watcher and cron jobs) from hitting a host in lockstep and
makes the scan time less predictable to whoever watches the logs on the other side.
"""

from __future__ import annotations

import random
import re

from scanner.errors import BadInput

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MIN_INTERVAL_S = 1.0
MAX_INTERVAL_S = 366 * 86400.0
DEFAULT_JITTER = 0.1  # +/- 10 % of the interval
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_interval(text: str) -> float:
    """'6h' -> 21600.0; '1h30m', '90s', '2d', '45' (seconds). BadInput on anything else."""
    cleaned = text.strip().lower().replace(" ", "")
    if not cleaned or len(cleaned) > 32:
        raise BadInput(f"bad interval {text[:40]!r} (use e.g. 30m, 6h, 1d, 1h30m)")
    if re.fullmatch(r"\d+(?:\.\d+)?", cleaned):
        seconds = float(cleaned)
    else:
        parts = _PART.findall(cleaned)
        if not parts or "".join(number + unit for number, unit in parts) != cleaned:
            raise BadInput(f"bad interval {text[:40]!r} (use e.g. 30m, 6h, 1d, 1h30m)")
        seconds = sum(float(number) * UNITS[unit] for number, unit in parts)
    if not MIN_INTERVAL_S <= seconds <= MAX_INTERVAL_S:
        raise BadInput(f"interval {text[:40]!r} must be between 1 s and 366 days")
    return seconds


def next_delay(every_s: float, jitter: float, rng: random.Random) -> float:
    """every_s spread uniformly by +/- jitter (a fraction, 0..0.5), never below 1 s."""
    spread = min(max(jitter, 0.0), 0.5)
    return max(MIN_INTERVAL_S, every_s * (1 + rng.uniform(-spread, spread)))
