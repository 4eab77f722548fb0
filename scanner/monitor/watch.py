"""`exposure watch`: scan every interval, keep the history, alert only on what changed.

One iteration: scan -> store -> diff against the previous complete scan -> one alert per change,
plus the findings already open at a target's first scan and reminders of those that stay open
(scanner/monitor/reminders.py) -> publish each target's state. A scan that fails or comes back
incomplete is logged, stored as such, never used as the reference (it would report every port
as closed) and retried at the next interval. The loop ends after max_iterations, or on
SIGTERM/SIGINT between two scans.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import random
import signal
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from scanner.alerts import Notifier, alerts_for, deliver, states_for
from scanner.alerts.base import LongLivedNotifier
from scanner.core.findings import Severity
from scanner.core.report import ScanReport
from scanner.diff import Baseline, ReportDiff, Side, apply_baseline, diff_reports
from scanner.errors import BadInput
from scanner.monitor import reminders
from scanner.monitor.schedule import DEFAULT_JITTER, next_delay
from scanner.options import ScanOptions
from scanner.store import FindingAlert, Store, StoreError, report_from_dict
from scanner.store.location import DbLocation, open_store
from scanner.targets.ports import compress_ports, parse_port_spec

log = logging.getLogger("exposure.watch")

ScanFunction = Callable[[Sequence[str], ScanOptions], ScanReport]
# The HTML report of a scan, with what changed since the one before (--html-report).
HtmlRenderer = Callable[[ScanReport, ReportDiff], str]
# A state stays current for two missed scans (with their jitter) plus this, for the scan itself:
# after that, Home Assistant shows the entities as unavailable (expire_after).
SCAN_ALLOWANCE_S = 600
HTML_SIGNATURE = "<title>Exposure report:"  # what tells our own HTML report from another file
SIGNATURE_WINDOW = 4096


def valid_for_s(every_s: float, jitter: float) -> int:
    """How long one scan's state counts as current: HA's expire_after for the sensors."""
    return math.ceil(2 * every_s * (1 + max(0.0, jitter))) + SCAN_ALLOWANCE_S


@dataclass(frozen=True)
class WatchOptions:
    inputs: tuple[str, ...]
    every_s: float
    jitter: float = DEFAULT_JITTER
    max_iterations: int | None = None  # None: forever
    min_severity: Severity = Severity.INFO  # alerts below this are not sent
    baseline: Baseline | None = None
    db: DbLocation | None = None  # None: no history, the reference lives in memory only
    alert_existing: bool = True  # first scan of a target: alert on findings already open
    remind_s: float | None = reminders.DEFAULT_REMIND_S  # None: never remind
    remind_min_severity: Severity = reminders.DEFAULT_REMIND_MINIMUM
    html_report: Path | None = None  # written after every complete scan
    report_url: str | None = None  # where that report is reachable (the HA device's link)

    @property
    def reminder_policy(self) -> reminders.ReminderPolicy:
        return reminders.ReminderPolicy(self.min_severity, self.alert_existing, self.remind_s,
                                        self.remind_min_severity)


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
        render_html: HtmlRenderer | None = None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.options = options
        self.scan_options = scan_options
        self.notifiers = list(notifiers)
        self.scan = scan
        self.rng = rng or random.Random()
        self.on_iteration = on_iteration
        # The report stage comes after monitoring: whoever asks for an HTML file hands the
        # renderer in (the CLI gives scanner.cli.render's).
        if options.html_report is not None and render_html is None:
            raise ValueError("WatchOptions.html_report needs a render_html function")
        self.render_html = render_html
        self.stop_event = threading.Event()
        self.reference: Side | None = None  # the last complete scan
        self.clock = clock
        self.memory: list[FindingAlert] = []  # what was alerted, when there is no history
        self._looked_up_history = False
        self._refused_html = False

    def run(self) -> list[IterationResult]:
        """Scan until stopped. A watch that loops keeps long-lived connections (MQTT: its will
        marks the entities unavailable if it dies); a single run (cron) does not."""
        looping = self.options.max_iterations != 1
        lasting = [n for n in self.notifiers if looping and isinstance(n, LongLivedNotifier)]
        for notifier in lasting:
            notifier.open()
        try:
            return self._loop()
        finally:
            for notifier in lasting:
                notifier.close(stay_available=False)

    def _loop(self) -> list[IterationResult]:
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
                            "; ".join(error.line() for error in report.errors)[:300])
                return result
            self._compare_and_alert(result, store)
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
            self._failed(store, seq, result, error)
            return None
        except Exception as error:  # survive anything: log, retry at the next interval
            self._failed(store, seq, result, error)
            return None
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

    def _compare_and_alert(self, result: IterationResult, store: Store | None) -> None:
        assert result.report is not None
        current = Side(result.report, self.scan_options.ports, result.seq)
        first = self.reference is None
        diff = diff_reports(self.reference, current, baseline=self.options.baseline)
        result.diff = diff
        self.reference = current
        alerts = alerts_for(diff, self.options.min_severity)
        if first:
            # Nothing to compare with: the first scan is the reference. Of its changes, only
            # ports the user's baseline does not allow are worth a message; the findings
            # already open are told below (reminders.plan), once.
            alerts = [a for a in alerts if a.change.kind == "port.unexpected"]
            log.info("first scan of %s: it is the reference for the next ones",
                     ", ".join(self.options.inputs))
        self._write_html(result.report, diff)
        states = states_for(result.report, problem_minimum=self.options.min_severity,
                            valid_for_s=valid_for_s(self.options.every_s, self.options.jitter),
                            report_url=self.options.report_url)
        outcome = reminders.plan(
            states, reminders.finding_addresses(result.report),
            self._recall(store, [s.target for s in states]), alerts, first_scan=first,
            policy=self.options.reminder_policy, scan=diff.after, now=self.clock())
        alerts = [*alerts, *outcome.alerts]
        delivery = deliver(self.notifiers, alerts, states)
        self._remember(store, [s.target for s in states], outcome.memory)
        result.alerts_sent = dict(delivery.sent)
        log.info("%d change(s), %d alert(s) sent%s", len(diff.changes), len(alerts),
                 "" if delivery.ok else f"; failed: {', '.join(delivery.failed)}")

    # --- what was alerted ----------------------------------------------------------------

    def _recall(self, store: Store | None, targets: list[str]) -> list[FindingAlert]:
        if store is None:
            return [item for item in self.memory if item.target in targets]
        try:
            return store.finding_alerts(targets)
        except StoreError as error:
            log.error("what was alerted before is not readable: %s", error)
            return [item for item in self.memory if item.target in targets]

    def _remember(self, store: Store | None, targets: list[str],
                  memory: list[FindingAlert]) -> None:
        self.memory = [item for item in self.memory if item.target not in targets] + memory
        if store is None:
            return
        try:
            store.save_finding_alerts(targets, memory)
        except StoreError as error:
            log.error("what was alerted is not saved (reminders may repeat): %s", error)

    # --- the HTML report -----------------------------------------------------------------

    def _write_html(self, report: dict[str, Any], diff: ReportDiff) -> None:
        """Replace the HTML report atomically; never overwrite a file that is not one."""
        path = self.options.html_report
        if path is None or self.render_html is None or self._refused_html:
            return
        if path.exists() and not _is_our_report(path):
            log.error("%s exists and is not an exposure HTML report: not overwritten", path)
            self._refused_html = True
            return
        temporary: str | None = None
        try:
            text = self.render_html(report_from_dict(report), diff)
            handle, temporary = tempfile.mkstemp(prefix=".exposure-", suffix=".html",
                                                 dir=path.parent)
            with os.fdopen(handle, "w", encoding="utf-8") as output:
                output.write(text)
            os.chmod(temporary, 0o644)  # a web server (HA's www/) must read it
            os.replace(temporary, path)
            temporary = None
        except (OSError, ValueError) as error:
            log.error("HTML report not written to %s: %s", path, error)
        finally:
            if temporary is not None:
                Path(temporary).unlink(missing_ok=True)

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


def _is_our_report(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            head = handle.read(SIGNATURE_WINDOW)
    except OSError:
        return False
    return HTML_SIGNATURE.encode() in head


