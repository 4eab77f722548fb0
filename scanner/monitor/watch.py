"""`exposure watch`: scan every interval, keep the history, alert only on what changed.

One iteration: scan -> store -> diff against the previous complete scan -> one alert per change
-> publish each target's state. A scan that fails or comes back incomplete is logged, stored as
such, never used as the reference (it would report every port as closed) and retried at the next
interval. The loop ends after max_iterations, or on SIGTERM/SIGINT between two scans.
"""

from __future__ import annotations

import logging
import random
import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from scanner.alerts import Notifier, alerts_for, deliver, states_for
from scanner.api import ScanOptions
from scanner.diff import Baseline, ReportDiff, Side, apply_baseline, diff_reports
from scanner.errors import BadInput
from scanner.findings import Severity
from scanner.monitor.schedule import DEFAULT_JITTER, next_delay
from scanner.report.model import ScanReport
from scanner.store import Store, StoreError
from scanner.store.location import DbLocation, open_store
from scanner.targets.ports import compress_ports, parse_port_spec

log = logging.getLogger("exposure.watch")

ScanFunction = Callable[[Sequence[str], ScanOptions], ScanReport]


@dataclass(frozen=True)
class WatchOptions:
    inputs: tuple[str, ...]
    every_s: float
    jitter: float = DEFAULT_JITTER
    max_iterations: int | None = None  # None: forever
    min_severity: Severity = Severity.INFO  # alerts below this are not sent
    baseline: Baseline | None = None
    db: DbLocation | None = None  # None: no history, the reference lives in memory only


@dataclass
class IterationResult:
    number: int
    seq: int | None = None
    report: dict[str, Any] | None = None
    diff: ReportDiff | None = None
    alerts_sent: dict[str, int] = field(default_factory=dict)
    error: str | None = None


class Watcher:
    def __init__(
        self,
        options: WatchOptions,
        scan_options: ScanOptions,
        notifiers: Sequence[Notifier],
        scan: ScanFunction,
        *,
        rng: random.Random | None = None,
        on_iteration: Callable[[IterationResult], None] | None = None,
    ) -> None:
        self.options = options
        self.scan_options = scan_options
        self.notifiers = list(notifiers)
        self.scan = scan
        self.rng = rng or random.Random()
        self.on_iteration = on_iteration
        self.stop_event = threading.Event()
        self.reference: Side | None = None  # the last complete scan
        self._looked_up_history = False

    def run(self) -> list[IterationResult]:
        results = []
        number = 0
        while not self.stop_event.is_set():
            number += 1
            result = self.iteration(number)
            results.append(result)
            if self.on_iteration:
                self.on_iteration(result)
            limit = self.options.max_iterations
            if limit is not None and number >= limit:
                break
            delay = next_delay(self.options.every_s, self.options.jitter, self.rng)
            log.info("next scan in %.0f s", delay)
            self.stop_event.wait(delay)
        return results

    def stop_on_signals(self) -> None:
        """SIGTERM (systemd stop) and SIGINT end the loop at the next wait, not mid-scan."""

        def handler(signum: int, frame: FrameType | None) -> None:
            log.info("signal %d: stopping after this iteration", signum)
            self.stop_event.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, handler)

    # --- one iteration -------------------------------------------------------------------

    def iteration(self, number: int) -> IterationResult:
        result = IterationResult(number)
        store = self._open_store()
        try:
            self._load_reference(store)
            report = self._scan(number, store, result)
            if report is None:
                return result
            result.report = report.to_dict()
            if not report.complete:
                log.warning("scan incomplete (%s): stored, not compared; retry next time",
                            "; ".join(report.errors)[:300])
                return result
            self._compare_and_alert(result)
        finally:
            if store is not None:
                store.close()
        return result

    def _scan(self, number: int, store: Store | None, result: IterationResult) -> ScanReport | None:
        seq = self._begin(store)
        result.seq = seq
        try:
            report = self.scan(list(self.options.inputs), self.scan_options)
        except BadInput as error:
            if number == 1:  # a typo in the target: fail fast instead of retrying forever
                self._end(store, seq, "failed", str(error))
                raise
            return self._failed(store, seq, result, error)
        except Exception as error:  # survive anything: log, retry at the next interval
            return self._failed(store, seq, result, error)
        apply_baseline(report, self.options.baseline)
        if store is not None and seq is not None:
            try:
                store.finish_scan(seq, report.to_dict())
            except StoreError as error:
                log.error("scan not saved: %s", error)
        return report

    def _failed(self, store: Store | None, seq: int | None, result: IterationResult,
                error: BaseException) -> None:
        result.error = f"{type(error).__name__}: {error}"[:500]
        log.error("scan failed: %s; retrying at the next interval", result.error)
        self._end(store, seq, "failed", result.error)
        return None

    def _compare_and_alert(self, result: IterationResult) -> None:
        assert result.report is not None
        current = Side(result.report, self.scan_options.ports, result.seq)
        first = self.reference is None
        diff = diff_reports(self.reference, current, baseline=self.options.baseline)
        result.diff = diff
        self.reference = current
        alerts = alerts_for(diff, self.options.min_severity)
        if first:
            # Nothing to compare with: the first scan is the reference. Only ports the user's
            # baseline does not allow are worth a message now.
            alerts = [a for a in alerts if a.change.kind == "port.unexpected"]
            log.info("first scan of %s: it is the reference for the next ones",
                     ", ".join(self.options.inputs))
        delivery = deliver(self.notifiers, alerts, states_for(result.report))
        result.alerts_sent = dict(delivery.sent)
        log.info("%d change(s), %d alert(s) sent%s", len(diff.changes), len(alerts),
                 "" if delivery.ok else f"; failed: {', '.join(delivery.failed)}")

    # --- history -------------------------------------------------------------------------

    def _open_store(self) -> Store | None:
        if self.options.db is None:
            return None
        try:
            return open_store(self.options.db)
        except StoreError as error:
            log.error("history not available this time: %s", error)
            return None

    def _load_reference(self, store: Store | None) -> None:
        """At the first iteration, the last complete scan of the same targets in the history
        is the reference: a restarted watch alerts on what changed while it was down."""
        if self._looked_up_history or store is None:
            return
        self._looked_up_history = True
        try:
            row = store.latest_complete(inputs=self.options.inputs)
            if row is not None:
                probed = _ports_of(row.ports)
                self.reference = Side(store.load_report(row), probed, row.seq)
                log.info("comparing with stored scan #%d (%s)", row.seq, row.started_at)
        except StoreError as error:
            log.error("history not readable: %s", error)

    def _begin(self, store: Store | None) -> int | None:
        if store is None:
            return None
        try:
            return store.begin_scan(self.options.inputs, compress_ports(self.scan_options.ports))
        except StoreError as error:
            log.error("scan not recorded: %s", error)
            return None

    @staticmethod
    def _end(store: Store | None, seq: int | None, status: str, why: str) -> None:
        if store is None or seq is None:
            return
        try:
            store.end_scan_without_report(seq, status, why)
        except StoreError as error:
            log.error("scan status not recorded: %s", error)


def _ports_of(spec: str | None) -> tuple[int, ...] | None:
    if not spec:
        return None
    try:
        return parse_port_spec(spec)
    except BadInput:
        return None
