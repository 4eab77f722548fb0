"""How long identification's phases may wait: a share of the time left, and never more than
one read timeout (`--timeout`), so a slow server is read and a silent one costs its deadline.

Connections themselves come from the network layer (scanner.net): bounded in bytes and time,
under the scan's budget. One port's connections share an Allowance of PORT_BYTE_CAP bytes.
"""

from __future__ import annotations

import time

from scanner.net import ByteCapReached, Channel, NetError, ProbeFailed

PORT_BYTE_CAP = 2 * 1024 * 1024  # everything one port may send us, across all its probes

# What ends one probe but not the identification: network errors (OSError covers
# ssl.SSLError and every scanner.net error), a spent byte budget, a failed precondition.
PROBE_ERRORS: tuple[type[BaseException], ...] = (OSError, NetError, ByteCapReached, ProbeFailed)


def seconds_left(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


def share_of_remaining(channel: Channel, fraction: float, floor: float, ceiling: float) -> float:
    """A phase deadline: `fraction` of the connection's time left, within [floor, ceiling],
    at most one read timeout from now, and never past the connection's own deadline."""
    now = time.monotonic()
    remaining = max(0.0, channel.deadline - now)
    wanted = min(max(remaining * fraction, floor), ceiling, channel.read_timeout)
    return now + min(wanted, remaining)
