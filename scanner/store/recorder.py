"""Saving a scan from the CLI, as it goes: a 'running' row at the start, each address's
results as they complete (its ProgressWriter is the scan's observer), the report at the end.

Policy when the database cannot be used (decided here, documented in docs/monitoring.md):
the scan still runs and its report is always printed first, because the report is what the user
asked for. Then one line on stderr says why the scan was not saved. The exit code becomes 3
only when the user asked for the store explicitly (--db PATH or $EXPOSURE_DB): a cron job that
feeds a history must not lose it silently. With the implicit default path it stays a warning, so a
one-off `exposure scan` on a machine with a read-only home still works as a scanner.
A path given explicitly that is not an exposure history at all (another program's file, a
directory) is refused before the scan: exit 2, the file untouched.

Resuming (`scan --resume SCAN`): the addresses the interrupted scan finished are not scanned
again; the rest run under the same scan row, and the report joins both under the first run's id.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO, TypeVar

from scanner.core.report import ScanReport
from scanner.errors import BadInput
from scanner.store.errors import NotOurDatabase, StoreError
from scanner.store.location import DbLocation, default_location, open_store, parse_location
from scanner.store.paths import DB_ENV
from scanner.store.progress import NoGuard, ProgressWriter, ResumePlan, WriteGuard
from scanner.store.store import NoDatabase, Store

EXIT_STORE_FAILED = 3
T = TypeVar("T")


class ScanRecorder:
    """Records one CLI scan; never raises while scanning, remembers the first problem instead."""

    def __init__(
        self, path: DbLocation | None, *, enabled: bool = True, explicit: bool = False,
        guard: WriteGuard | None = None,
    ) -> None:
        self.path = path
        self.enabled = enabled and path is not None
        self.explicit = explicit
        self.guard: WriteGuard = guard or NoGuard()
        self.problem: StoreError | None = None
        self.seq: int | None = None
        self.resume_plan: ResumePlan | None = None
        self.observer: ProgressWriter | None = None  # pass to scanner.api.scan(observer=...)
        self._store: Store | None = None
        self._finished = False

    @classmethod
    def for_cli(cls, db: str | Path | None, no_store: bool) -> ScanRecorder:
        """--db PATH, else $EXPOSURE_DB, else the per-user default; --no-store turns it off."""
        explicit = db is not None or bool(os.environ.get(DB_ENV))
        location = parse_location(db) if db is not None else default_location()
        return cls(location, enabled=not no_store, explicit=explicit)

    @classmethod
    def for_resume(cls, db: str | Path | None, ref: str) -> ScanRecorder:
        """The recorder of `scan --resume REF`; raises (StoreError, BadInput) when REF cannot be
        resumed: without its history there is nothing to resume."""
        path = parse_location(db) if db is not None else default_location()
        recorder = cls(path, explicit=True)
        try:
            store = open_store(path, create=False)
        except NoDatabase as error:
            raise BadInput(f"--resume {ref}: {error}") from error
        try:
            recorder.resume_plan = ResumePlan.of(store, ref)
        except BaseException:
            store.close()
            raise
        recorder._store = store
        return recorder

    @property
    def skip_addresses(self) -> frozenset[str]:
        return self.resume_plan.done_addresses if self.resume_plan else frozenset()

    @contextmanager
    def recording(
        self, inputs: Sequence[str], ports: str | None, settings: dict[str, Any] | None = None
    ) -> Iterator[ScanRecorder]:
        """Insert the running row; a scan that raises is marked failed (or interrupted)."""
        self._start(inputs, ports, settings)
        try:
            yield self
        except KeyboardInterrupt:
            self._end_without_report("interrupted", "interrupted by the user")
            raise
        except BadInput as error:
            if self.resume_plan is None:
                self._forget()  # refused input (exit 2): no scan ran, nothing for the history
            else:  # e.g. the name no longer resolves: the row stays resumable
                self._end_without_report("failed", f"resuming it failed: {error}")
            raise
        except BaseException as error:
            self._end_without_report("failed", f"{type(error).__name__}: {error}")
            raise
        finally:
            self._close()

    def complete_report(self, report: ScanReport) -> ScanReport:
        """The report to print and store (on resume: joined with the first run's addresses)."""
        return self.observer.complete_report(report) if self.observer else report

    def finish(self, report: ScanReport) -> None:
        if self._store is None or self.seq is None:
            return
        store, seq = self._store, self.seq
        try:
            self._guarded(lambda: store.finish_scan(seq, report.to_dict()))
            self._finished = True
        except StoreError as error:
            self.problem = self.problem or error
            self._end_without_report("failed", f"the report could not be saved: {error.reason}")

    def interrupt(self, signal_name: str) -> str:
        """A signal ends the scan (no write is in progress): save what is pending, mark the
        row interrupted, and say in one line what was kept."""
        self._end_without_report("interrupted", f"interrupted by {signal_name}")
        note = f"interrupted by {signal_name}: {self._kept()}"
        self._close()
        return note

    def exit_code(self, scan_code: int, stderr: TextIO | None = None) -> int:
        """Say why the scan was not saved (after the report), and the exit code to use."""
        problem = self.problem or (self.observer.problem if self.observer else None)
        if problem is None:
            return scan_code
        stream = stderr or sys.stderr
        level = "error" if self.explicit else "warning"
        stream.write(f"exposure: {level}: scan not saved: {problem}\n")
        return EXIT_STORE_FAILED if self.explicit else scan_code

    # --- internals -------------------------------------------------------------------------

    def _start(
        self, inputs: Sequence[str], ports: str | None, settings: dict[str, Any] | None
    ) -> None:
        if self.resume_plan is not None and self._store is not None:
            store, seq = self._store, self.resume_plan.seq
            self._guarded(lambda: store.resume_scan(seq))
            self._begin_progress(store, seq)
            return
        if not self.enabled or self.path is None:
            return
        try:
            store = self._store = open_store(self.path)
            self._begin_progress(store, self._guarded(
                lambda: store.begin_scan(inputs, ports, settings)))
        except NotOurDatabase as error:
            self._close()
            if self.explicit:
                raise  # the user named a file that is not ours: refused before scanning
            self.problem = error
        except StoreError as error:
            self.problem = error
            self._close()

    def _begin_progress(self, store: Store, seq: int) -> None:
        self.seq = seq
        self.observer = ProgressWriter(store, seq, self.guard, self.resume_plan)

    def _guarded(self, action: Callable[[], T]) -> T:
        with self.guard.deferred():
            return action()

    def _kept(self) -> str:
        if not self.enabled and self.resume_plan is None:
            return "nothing saved (--no-store)"
        if self.seq is None or self._store is None:
            return f"nothing saved ({self.problem or 'the history could not be used'})"
        if self._finished:
            return f"scan #{self.seq} was already saved"
        try:
            row = self._store.get_scan(str(self.seq))
        except StoreError as error:
            return f"scan #{self.seq}: {error}"
        return (f"scan #{self.seq} kept {row.progress or 'nothing'}; "
                f"`exposure scan --resume {self.seq}` scans the rest")

    def _end_without_report(self, status: str, why: str) -> None:
        if self._store is None or self.seq is None or self._finished:
            return
        store, seq, observer = self._store, self.seq, self.observer
        if observer is not None:
            observer.flush()
        header = observer.header() if observer is not None else None
        try:
            self._guarded(lambda: store.end_scan_without_report(seq, status, why, header))
        except StoreError as error:
            self.problem = self.problem or error

    def _forget(self) -> None:
        if self._store is None or self.seq is None:
            return
        store, seq = self._store, self.seq
        try:
            self._guarded(lambda: store.forget_scan(seq))
        except StoreError as error:
            self.problem = self.problem or error

    def close(self) -> None:
        """Release the history (recording() does it; for a recorder never used)."""
        self._close()

    def _close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
