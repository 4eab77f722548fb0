"""Saving a scan from the CLI: a 'running' row at the start, the report at the end.

Policy when the database cannot be used (decided here, documented in docs/monitoring.md):
the scan still runs and its report is always printed first, because the report is what the user
asked for. Then one line on stderr says why the scan was not saved. The exit code becomes 3
only when the user asked for the store explicitly (--db PATH or $EXPOSURE_DB): a cron job that
feeds a history must not lose it silently. With the implicit default path it stays a warning, so a
one-off `exposure scan` on a machine with a read-only home still works as a scanner.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from scanner.errors import BadInput
from scanner.report.model import ScanReport
from scanner.store.errors import StoreError
from scanner.store.location import DbLocation, default_location, open_store, parse_location
from scanner.store.paths import DB_ENV
from scanner.store.store import Store

EXIT_STORE_FAILED = 3


class ScanRecorder:
    """Records one CLI scan; never raises, remembers the first problem instead."""

    def __init__(
        self, path: DbLocation | None, *, enabled: bool = True, explicit: bool = False
    ) -> None:
        self.path = path
        self.enabled = enabled and path is not None
        self.explicit = explicit
        self.problem: StoreError | None = None
        self.seq: int | None = None
        self._store: Store | None = None

    @classmethod
    def for_cli(cls, db: str | Path | None, no_store: bool) -> ScanRecorder:
        """--db PATH (or URL), else $EXPOSURE_DB, else the per-user default; --no-store turns
        it off."""
        explicit = db is not None or bool(os.environ.get(DB_ENV))
        location = parse_location(db) if db is not None else default_location()
        return cls(location, enabled=not no_store, explicit=explicit)

    @contextmanager
    def recording(self, inputs: Sequence[str], ports: str | None) -> Iterator[ScanRecorder]:
        """Insert the running row; a scan that raises is marked failed (or interrupted)."""
        self._start(inputs, ports)
        try:
            yield self
        except KeyboardInterrupt:
            self._end_without_report("interrupted", "interrupted by the user")
            raise
        except BadInput:
            self._forget()  # refused input (exit 2): no scan ran, nothing for the history
            raise
        except BaseException as error:
            self._end_without_report("failed", f"{type(error).__name__}: {error}")
            raise
        finally:
            self._close()

    def finish(self, report: ScanReport) -> None:
        if self._store is None or self.seq is None:
            return
        try:
            self._store.finish_scan(self.seq, report.to_dict())
        except StoreError as error:
            self.problem = self.problem or error
            self._end_without_report("failed", f"the report could not be saved: {error.reason}")

    def exit_code(self, scan_code: int, stderr: TextIO | None = None) -> int:
        """Say why the scan was not saved (after the report), and the exit code to use."""
        if self.problem is None:
            return scan_code
        stream = stderr or sys.stderr
        level = "error" if self.explicit else "warning"
        stream.write(f"exposure: {level}: scan not saved: {self.problem}\n")
        return EXIT_STORE_FAILED if self.explicit else scan_code

    # --- internals -------------------------------------------------------------------------

    def _start(self, inputs: Sequence[str], ports: str | None) -> None:
        if not self.enabled or self.path is None:
            return
        try:
            self._store = open_store(self.path)
            self.seq = self._store.begin_scan(inputs, ports)
        except StoreError as error:
            self.problem = error
            self._close()

    def _end_without_report(self, status: str, why: str) -> None:
        if self._store is None or self.seq is None:
            return
        try:
            self._store.end_scan_without_report(self.seq, status, why)
        except StoreError as error:
            self.problem = self.problem or error

    def _forget(self) -> None:
        if self._store is None or self.seq is None:
            return
        try:
            self._store.forget_scan(self.seq)
        except StoreError as error:
            self.problem = self.problem or error

    def _close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
