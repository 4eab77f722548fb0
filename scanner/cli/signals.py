"""SIGTERM and SIGINT during a scan: finish the write in progress, save how far it got, exit.

systemd's stop, `timeout`, `kill` and Ctrl-C all end a scan this way: the history write under
way is completed (never cut mid-transaction), the scan row is marked interrupted with what it
kept, one line on stderr says so, and the process exits 128 + the signal number (143 for
SIGTERM, 130 for SIGINT), as a shell reports a process the signal killed.

The exit is os._exit, not an exception unwinding the stack: the identification and TLS worker
threads would otherwise be waited for (a TLS grade or an nmap fallback takes seconds), and
everything worth keeping is in the database by then. Nothing else is lost: the report was not
printed yet (the scan did not finish), or it was printed in full already.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType, TracebackType
from typing import Any

HANDLED = (signal.SIGTERM, signal.SIGINT)


def exit_code_for(signum: int) -> int:
    return 128 + signum


class StopOnSignals:
    """While active (a context manager), SIGTERM/SIGINT call `on_stop(signal name)` once, at a
    moment when no write is in progress, print the line it returns and exit.

    Writes that must not be cut run inside `deferred()`: a signal arriving then waits for the
    write to finish. Outside the main thread (a library caller's worker) it does nothing:
    Python delivers signals to the main thread only.
    """

    def __init__(self, on_stop: Callable[[str], str]) -> None:
        self._on_stop = on_stop
        self._depth = 0
        self._pending: int | None = None
        self._stopping = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopOnSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in HANDLED:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """A signal that arrives inside this block is acted on when the block ends."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
        if self._depth == 0 and self._pending is not None:
            signum, self._pending = self._pending, None
            self._stop(signum)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._stopping:
            return  # already saving and exiting: a second Ctrl-C changes nothing
        if self._depth:
            self._pending = signum
            return
        self._stop(signum)

    def _stop(self, signum: int) -> None:
        self._stopping = True
        name = signal.Signals(signum).name
        try:
            note = self._on_stop(name)
        except Exception as error:  # never a traceback instead of the exit code
            note = f"interrupted by {name}; saving failed: {error}"
        if sys.stderr.isatty():
            sys.stderr.write("\x1b[?25h\n")  # the progress bar hid the cursor
        sys.stderr.write(f"exposure: {note}\n")
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
            sys.stdout.flush()
        os._exit(exit_code_for(signum))
