"""A scan's results written as they arrive: the ScanObserver (scanner.api) that keeps them.

ProgressWriter stores each address when the scan reports it (its port states, then all of
it) in the scan's row, so a scan killed at any moment keeps every address it finished.
ScanRecorder (the CLI) uses it; anything that runs scanner.api.scan with a store can:

    writer = ProgressWriter(store, seq)
    report = scan(inputs, options, observer=writer)

ResumePlan is what an interrupted scan left: `scan --resume` skips its finished addresses and
joins them with the new ones (complete_report) under the first run's id.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from scanner.core.legacy import errors_of
from scanner.core.report import ScanError, ScanReport, TargetReport
from scanner.errors import BadInput
from scanner.store.codec import target_from_dict
from scanner.store.errors import StoreError
from scanner.store.store import RESUMABLE, Stage, Store, StoredTarget
from scanner.targets import Target

# A pipeline that reports port states as it finds them (many calls per address) is written at
# most this often per address; what is finished (target_done) is written at once.
PORTS_WRITE_INTERVAL_S = 1.0


class WriteGuard(Protocol):
    """What keeps a signal from cutting a write short (scanner.cli.signals.StopOnSignals)."""

    def deferred(self) -> AbstractContextManager[None]: ...


class NoGuard:
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

    @classmethod
    def of(cls, store: Store, ref: str) -> ResumePlan:
        """The plan to resume scan `ref`; BadInput when there is nothing to resume."""
        row = store.get_scan(ref)
        if row.status not in RESUMABLE:
            what = "is still running" if row.status == "running" else f"is {row.status}"
            raise BadInput(f"--resume {ref}: scan #{row.seq} {what}: nothing to resume")
        settings = store.load_settings(row.seq)
        header = store.load_header(row.seq)
        if settings is None or header is None:
            raise BadInput(f"--resume {ref}: scan #{row.seq} was not recorded with its options "
                           "(an older exposure, or `watch`): run the scan again")
        done = tuple(stored for stored in store.progress(row.seq) if stored.stage == "done")
        return cls(row.seq, row.inputs, settings, header, done)

    @property
    def done_addresses(self) -> frozenset[str]:
        return frozenset(stored.address for stored in self.done)

    def kept_errors(self) -> list[ScanError]:
        """Errors of the addresses kept; those of the others are rescanned, so obsolete."""
        done = self.done_addresses
        return [error for error in errors_of(self.header) if error.address in done]


class ProgressWriter:
    """The ScanObserver that writes each address's results to scan `seq` as they come.

    Never raises: a write that fails (full disk) is remembered in `problem` and the scan
    goes on; the caller says so at the end.
    """

    def __init__(
        self, store: Store, seq: int, guard: WriteGuard | None = None,
        plan: ResumePlan | None = None,
    ) -> None:
        self.store = store
        self.seq = seq
        self.guard: WriteGuard = guard or NoGuard()
        self.plan = plan
        self.problem: StoreError | None = None
        self._report: ScanReport | None = None
        self._started = time.monotonic()
        self._positions: dict[str, int] = {}
        self._pending_ports: dict[str, TargetReport] = {}
        self._ports_written_at: dict[str, float] = {}

    # --- scanner.api.ScanObserver ----------------------------------------------------------

    def scan_started(self, report: ScanReport, targets: Sequence[Target]) -> None:
        self._report = report
        self._started = time.monotonic()
        for target in targets:
            self._positions.setdefault(str(target.address), len(self._positions))
        for stored in self.plan.done if self.plan else ():
            # kept even when the name no longer resolves to it: it was scanned
            self._positions.setdefault(stored.address, len(self._positions))
        planned, header = len(self._positions), self.header() or {}
        self._write(lambda: self.store.record_start(self.seq, header, planned))

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

    # --- for the one who ends the scan -----------------------------------------------------

    def flush(self) -> None:
        """Write the port states held back by the write interval (the scan is ending)."""
        pending, self._pending_ports = self._pending_ports, {}
        for target in pending.values():
            self._save(target, "ports")

    def header(self) -> dict[str, Any] | None:
        """The report's "scan" object as it stands (joined with the first run's on resume);
        None before the scan started."""
        report = self._report
        if report is None:
            return None
        elapsed = time.monotonic() - self._started
        # Without its targets: the header is rewritten with every address's results.
        header = dataclasses.replace(report, targets=[]).to_dict()["scan"]
        header["finished_at"] = _now()
        header["duration_s"] = round(elapsed, 3)
        if self.plan is not None:
            header["id"] = self.plan.header.get("id", header["id"])
            header["started_at"] = self.plan.header.get("started_at", header["started_at"])
            first_run = float(self.plan.header.get("duration_s", 0.0))
            header["duration_s"] = round(first_run + elapsed, 3)
            header["errors"] = [*(e.to_dict() for e in self.plan.kept_errors()),
                                *header["errors"]]
        return header

    def complete_report(self, report: ScanReport) -> ScanReport:
        """The report to print and store: on resume, the addresses the first run finished
        joined with this run's, in scan order, under the first run's id and start time."""
        plan = self.plan
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

    # --- internals -------------------------------------------------------------------------

    def _save(self, target: TargetReport, stage: Stage) -> None:
        position = self._positions.get(target.address, len(self._positions))
        data = target.to_dict()
        self._write(lambda: self.store.save_progress(
            self.seq, position, data, stage, self.header()))

    def _write(self, action: Callable[[], object]) -> None:
        try:
            with self.guard.deferred():
                action()
        except StoreError as error:
            self.problem = self.problem or error  # the scan goes on; the end says it


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
