"""Saving a scan from the CLI, as it goes: a 'running' row at the start, each address's
results as they complete (the recorder is the scan's ScanObserver), the report at the end.

Policy when the database cannot be used (decided here, documented in docs/monitoring.md):
the scan still runs and its report is always printed first, because the report is what the user
asked for. Then one line on stderr says why the scan was not saved. The exit code becomes 3
only when the user asked for the store explicitly (--db PATH or $EXPOSURE_DB): a cron job that
feeds a history must not lose it silently. With the implicit default path it stays a warning, so a
one-off `exposure scan` on a machine with a read-only home still works as a scanner.
A path that is not an exposure history at all (another program's file, a directory) given
explicitly is refused before the scan: exit 2, the file untouched.

Resuming (`scan --resume SCAN`): the addresses the interrupted scan finished are not scanned
again; the rest run under the same scan row, and the report joins both under the first run's id.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TextIO, TypeVar

from scanner.errors import BadInput
from scanner.report.model import ScanReport, TargetReport
from scanner.store.codec import target_from_dict
from scanner.store.errors import NotOurDatabase, StoreError
from scanner.store.paths import DB_ENV, default_db_path
from scanner.store.store import RESUMABLE, NoDatabase, Store, StoredTarget
from scanner.targets import Target

EXIT_STORE_FAILED = 3
# A pipeline that reports port states as it finds them (many calls per address) is written at
# most this often per address; what is finished (target_done) is written at once.
PORTS_WRITE_INTERVAL_S = 1.0
T = TypeVar("T")


class WriteGuard(Protocol):
    """What keeps a signal from cutting a write short (scanner.cli.signals.StopOnSignals)."""

    def deferred(self) -> AbstractContextManager[None]: ...


class _NoGuard:
    def deferred(self) -> AbstractContextManager[None]:
        return contextlib.nullcontext()


@dataclass(frozen=True)
class ResumePlan:
    """What an interrupted scan left to do, and what it already has."""

    seq: int
    inputs: tuple[str, ...]
    settings: dict[str, Any]  # what the scan was started with (the CLI's scan options)
    header: dict[str, Any]  # the report's "scan" object as stored
    done: tuple[StoredTarget, ...]  # finished addresses: kept, not scanned again

    @property
    def done_addresses(self) -> frozenset[str]:
        return frozenset(stored.address for stored in self.done)

    def kept_errors(self) -> list[str]:
        """Errors of the addresses kept; those of the others are rescanned, so obsolete.

        Every per-address error starts with the address (api.py writes "ADDRESS: ...")."""
        prefixes = tuple(f"{address}: " for address in self.done_addresses)
        return [e for e in self.header.get("errors", []) if prefixes and e.startswith(prefixes)]


class ScanRecorder:
    """Records one CLI scan; never raises while scanning, remembers the first problem instead."""

    def __init__(
        self, path: Path | None, *, enabled: bool = True, explicit: bool = False,
        guard: WriteGuard | None = None,
    ) -> None:
        self.path = path
        self.enabled = enabled and path is not None
        self.explicit = explicit
        self.guard: WriteGuard = guard or _NoGuard()
        self.problem: StoreError | None = None
        self.seq: int | None = None
        self.resume_plan: ResumePlan | None = None
        self._store: Store | None = None
        self._finished = False
        self._report: ScanReport | None = None
        self._started = time.monotonic()
        self._positions: dict[str, int] = {}
        self._pending_ports: dict[str, TargetReport] = {}
        self._ports_written_at: dict[str, float] = {}

    @classmethod
    def for_cli(cls, db: Path | None, no_store: bool) -> ScanRecorder:
        """--db PATH, else $EXPOSURE_DB, else the per-user default; --no-store turns it off."""
        explicit = db is not None or bool(os.environ.get(DB_ENV))
        return cls(db or default_db_path(), enabled=not no_store, explicit=explicit)

    @classmethod
    def for_resume(cls, db: Path | None, ref: str) -> ScanRecorder:
        """The recorder of `scan --resume REF`; raises (StoreError, BadInput) when REF cannot be
        resumed: without its history there is nothing to resume."""
        path = db or default_db_path()
        recorder = cls(path, explicit=True)
        try:
            store = Store.open(path, create=False)
        except NoDatabase as error:
            raise BadInput(f"--resume {ref}: {error}") from error
        try:
            recorder.resume_plan = _plan(store, ref)
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
            self._flush_ports()
            self._end_without_report("interrupted", "interrupted by the user")
            raise
        except BadInput as error:
            if self.resume_plan is None:
                self._forget()  # refused input (exit 2): no scan ran, nothing for the history
            else:  # e.g. the name no longer resolves: the row stays resumable
                self._end_without_report("failed", f"resuming it failed: {error}")
            raise
        except BaseException as error:
            self._flush_ports()
            self._end_without_report("failed", f"{type(error).__name__}: {error}")
            raise
        finally:
            self._close()

    # --- the scan's observer (scanner.api.ScanObserver) ------------------------------------

    def scan_started(self, report: ScanReport, targets: Sequence[Target]) -> None:
        self._report = report
        self._started = time.monotonic()
        self._positions = {}
        for target in targets:
            self._positions.setdefault(str(target.address), len(self._positions))
        for stored in self.resume_plan.done if self.resume_plan else ():
            # kept even when the name no longer resolves to it: it was scanned
            self._positions.setdefault(stored.address, len(self._positions))
        planned = len(self._positions)
        self._write(lambda store, seq: store.record_start(seq, self._header(), planned))

    def ports_found(self, target: TargetReport) -> None:
        now = time.monotonic()
        last = self._ports_written_at.get(target.address)
        if last is not None and now - last < PORTS_WRITE_INTERVAL_S:
            self._pending_ports[target.address] = target
            return
        self._pending_ports.pop(target.address, None)
        self._ports_written_at[target.address] = now
        self._save(target, "ports")

    def target_done(self, target: TargetReport) -> None:
        self._pending_ports.pop(target.address, None)
        self._save(target, "done")

    # --- the end ---------------------------------------------------------------------------

    def complete_report(self, report: ScanReport) -> ScanReport:
        """The report to print and store: for a resumed scan, the addresses the first run
        finished joined with this run's, under the first run's id and start time."""
        plan = self.resume_plan
        if plan is None:
            return report
        kept = [target_from_dict(stored.target) for stored in plan.done]
        targets = sorted([*kept, *report.targets],
                         key=lambda target: self._positions.get(target.address, len(kept)))
        return ScanReport(
            id=str(plan.header.get("id") or report.id),
            started_at=str(plan.header.get("started_at") or report.started_at),
            finished_at=report.finished_at,
            duration_s=float(plan.header.get("duration_s", 0.0)) + report.duration_s,
            engine=report.engine,
            ports_requested=report.ports_requested,
            complete=report.complete,
            errors=[*plan.kept_errors(), *report.errors],
            targets=targets,
        )

    def finish(self, report: ScanReport) -> None:
        if self._store is None or self.seq is None:
            return
        try:
            with self.guard.deferred():
                self._store.finish_scan(self.seq, report.to_dict())
            self._finished = True
        except StoreError as error:
            self.problem = self.problem or error
            self._end_without_report("failed", f"the report could not be saved: {error.reason}")

    def interrupt(self, signal_name: str) -> str:
        """A signal ends the scan (no write is in progress): save what is pending, mark the
        row interrupted, and say in one line what was kept."""
        self._flush_ports()
        self._end_without_report("interrupted", f"interrupted by {signal_name}")
        note = f"interrupted by {signal_name}: {self._kept()}"
        self._close()
        return note

    def exit_code(self, scan_code: int, stderr: TextIO | None = None) -> int:
        """Say why the scan was not saved (after the report), and the exit code to use."""
        if self.problem is None:
            return scan_code
        stream = stderr or sys.stderr
        level = "error" if self.explicit else "warning"
        stream.write(f"exposure: {level}: scan not saved: {self.problem}\n")
        return EXIT_STORE_FAILED if self.explicit else scan_code

    # --- internals -------------------------------------------------------------------------

    def _start(
        self, inputs: Sequence[str], ports: str | None, settings: dict[str, Any] | None
    ) -> None:
        if self.resume_plan is not None and self._store is not None:
            store, seq = self._store, self.resume_plan.seq
            self._guarded(lambda: store.resume_scan(seq))
            self.seq = seq
            return
        if not self.enabled or self.path is None:
            return
        try:
            store = self._store = Store.open(self.path)
            self.seq = self._guarded(lambda: store.begin_scan(inputs, ports, settings))
        except NotOurDatabase as error:
            self._close()
            if self.explicit:
                raise  # the user named a file that is not ours: refused before scanning
            self.problem = error
        except StoreError as error:
            self.problem = error
            self._close()

    def _header(self) -> dict[str, Any]:
        """The report's "scan" object as it stands (joined with the first run's on resume)."""
        report = self._report
        if report is None:
            return {}
        elapsed = time.monotonic() - self._started
        # Without its targets: the header is rewritten with every address's results.
        header = dataclasses.replace(report, targets=[]).to_dict()["scan"]
        header["finished_at"] = _now()
        header["duration_s"] = round(elapsed, 3)
        plan = self.resume_plan
        if plan is not None:
            header["id"] = plan.header.get("id", header["id"])
            header["started_at"] = plan.header.get("started_at", header["started_at"])
            header["duration_s"] = round(float(plan.header.get("duration_s", 0.0)) + elapsed, 3)
            header["errors"] = [*plan.kept_errors(), *header["errors"]]
        return header

    def _save(self, target: TargetReport, stage: str) -> None:
        position = self._positions.get(target.address, len(self._positions))
        data = target.to_dict()
        self._write(lambda store, seq: store.save_progress(
            seq, position, data, "done" if stage == "done" else "ports", self._header()))

    def _flush_ports(self) -> None:
        pending, self._pending_ports = self._pending_ports, {}
        for target in pending.values():
            self._save(target, "ports")

    def _write(self, action: Callable[[Store, int], object]) -> None:
        store, seq = self._store, self.seq
        if store is None or seq is None or self._finished:
            return
        try:
            self._guarded(lambda: action(store, seq))
        except StoreError as error:
            self.problem = self.problem or error  # the scan goes on; the end says it

    def _guarded(self, action: Callable[[], T]) -> T:
        with self.guard.deferred():
            return action()

    def _kept(self) -> str:
        if not self.enabled and self.resume_plan is None:
            return "nothing saved (--no-store)"
        if self.seq is None or self.path is None:
            return f"nothing saved ({self.problem or 'the history could not be used'})"
        if self._finished:
            return f"scan #{self.seq} was already saved"
        if self._store is None:
            return f"scan #{self.seq}: {self.problem or 'the history could not be used'}"
        try:
            row = self._store.get_scan(str(self.seq))
        except StoreError as error:
            return f"scan #{self.seq}: {error}"
        kept = row.progress or "nothing"
        return (f"scan #{self.seq} kept {kept}; `exposure scan --resume {self.seq}` "
                "scans the rest")

    def _end_without_report(self, status: str, why: str) -> None:
        if self._store is None or self.seq is None or self._finished:
            return
        header = self._header() if self._report is not None else None
        try:
            store, seq = self._store, self.seq
            self._guarded(lambda: store.end_scan_without_report(seq, status, why, header))
        except StoreError as error:
            self.problem = self.problem or error

    def _forget(self) -> None:
        if self._store is None or self.seq is None:
            return
        try:
            store, seq = self._store, self.seq
            self._guarded(lambda: store.forget_scan(seq))
        except StoreError as error:
            self.problem = self.problem or error

    def _close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


def _plan(store: Store, ref: str) -> ResumePlan:
    row = store.get_scan(ref)
    if row.status not in RESUMABLE:
        what = "is still running" if row.status == "running" else f"is {row.status}"
        raise BadInput(f"--resume {ref}: scan #{row.seq} {what}: nothing to resume"
                       + ("" if row.status == "running" else " (run a new scan)"))
    settings = store.load_settings(row.seq)
    header = store.load_header(row.seq)
    if settings is None or header is None:
        raise BadInput(f"--resume {ref}: scan #{row.seq} was not recorded with its options "
                       "(an older exposure, or `watch`): run the scan again")
    done = tuple(stored for stored in store.progress(row.seq) if stored.stage == "done")
    return ResumePlan(row.seq, row.inputs, settings, header, done)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
