"""No Python warning reaches the user's stderr (cron mails it): the causes, fixed at the source.

pyproject.toml turns every warning raised from a `scanner.*` module into an error for the whole
test session; the tests here cover what that filter cannot see (a warning emitted while an object
is garbage-collected is attributed to whatever code runs at that moment).
"""

from __future__ import annotations

import asyncio
import errno
import gc
import socket
import time
import warnings

import pytest

from scanner.net import AsyncStream, NetTimeout
from scanner.net.stream import Endpoint, _PendingConnect


def _unawaited(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if "never awaited" in str(w.message)]


def test_a_spent_deadline_leaves_no_coroutine_unawaited() -> None:
    """The deadline is checked before the socket coroutine exists, not while it is an argument."""

    async def probe_after_the_deadline() -> list[str]:
        ours, theirs = socket.socketpair()
        with ours, theirs:
            ours.setblocking(False)
            channel = AsyncStream(ours, time.monotonic() - 1, 1.0, 1024)
            outcomes = []
            for operation in (channel.recv(10, time.monotonic() + 1), channel.send(b"x")):
                with pytest.raises(NetTimeout) as caught:
                    await operation
                outcomes.append(str(caught.value))
            return outcomes

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outcomes = asyncio.run(probe_after_the_deadline())
        gc.collect()
    assert outcomes == ["deadline passed"] * 2
    assert _unawaited(caught) == []


def test_a_connect_with_no_budget_left_leaves_no_coroutine_unawaited() -> None:
    listener = socket.create_server(("127.0.0.1", 0))

    async def connect_too_late() -> None:
        # The deadline passes between open()'s check and the connect: the connect coroutine
        # must not be created once the deadline is gone.
        endpoint = Endpoint("127.0.0.1", listener.getsockname()[1])
        with socket.socket() as sock:
            pending = _PendingConnect(sock, endpoint)
            pending._error = errno.EINPROGRESS  # the SYN is out, the handshake not done
            await pending.finish_async(time.monotonic() - 1, 1.0)

    with listener, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(NetTimeout):
            asyncio.run(connect_too_late())
        gc.collect()
    assert _unawaited(caught) == []
