"""The connect engine against real sockets on loopback (the only address unit tests touch)."""

import asyncio
import socket
import time
from collections.abc import Iterator

import pytest

from scanner.discovery.base import DiscoveryOptions, PortState
from scanner.discovery.connect import ConnectEngine, _probe
from scanner.net import RateBucket
from scanner.targets import parse_targets


@pytest.fixture
def listener() -> Iterator[int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


def _free_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now: the kernel answers RST
    return port


def test_open_and_closed_on_loopback(listener: int) -> None:
    closed = _free_port()
    address = parse_targets(["127.0.0.1"])[0].address
    states = ConnectEngine().scan(address, [listener, closed], DiscoveryOptions(timeout=0.5))
    assert states == {listener: PortState.OPEN, closed: PortState.CLOSED}


def test_busy_event_loop_does_not_turn_open_into_filtered(listener: int) -> None:
    """The handshake completes while the loop is blocked past the probe's timeout."""

    async def hog_then_probe() -> PortState:
        bucket = RateBucket(1000)
        probe = asyncio.create_task(_probe(socket.AF_INET, "127.0.0.1", listener, 0.05, bucket))
        await asyncio.sleep(0)  # let the probe send its SYN
        time.sleep(0.3)  # a saturated loop: the probe's timer is long overdue when it runs
        return await probe

    assert asyncio.run(hog_then_probe()) is PortState.OPEN


def test_rate_cap_holds(listener: int) -> None:
    address = parse_targets(["127.0.0.1"])[0].address
    ports = [listener] * 1 + [_free_port() for _ in range(1)]
    many = list(range(40000, 40200)) + ports
    started = time.monotonic()
    ConnectEngine().scan(address, many, DiscoveryOptions(rate=500, timeout=0.2, retries=0))
    elapsed = time.monotonic() - started
    # 202 attempts at 500/s cannot take less than ~0.4 s; the burst allowance is 5 ms.
    assert elapsed >= (len(many) - 3) / 500
