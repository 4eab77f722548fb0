"""What a notifier is, and what it is given: one Alert per change, and each target's state.

A notifier sends every alert on its own (one message per change: an automation or a phone can
react to exactly one thing). It may also keep a current state per target (MQTT sensors in Home
Assistant); the others ignore update_states(). A RoundNotifier takes one scan's alerts and
states together instead (the HA webhook: one request per target with the summary and its
changes; MQTT: one connection, discovery and state before the events).

Alerts are about changes, and also (AlertReason) about findings already open at the first scan
of a target, and reminders of findings that stay open.
"""

from __future__ import annotations

import enum
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol, runtime_checkable

from scanner import __version__
from scanner.alerts import summary
from scanner.core.diff import Change, ChangeKind, ReportDiff, ScanRef
from scanner.core.findings import Severity
from scanner.diff.render import change_line

log = logging.getLogger(__name__)

ALERT_SCHEMA = "exposure-alert/1"
TITLE_LIMIT = 200
SEND_ATTEMPTS = 3


class AlertError(RuntimeError):
    """A notifier could not deliver; the message says where and why (never a secret)."""


class AlertReason(enum.StrEnum):
    CHANGE = "change"  # something changed since the previous scan
    FIRST_SCAN = "first_scan"  # a finding already open when the target was first scanned
    REMINDER = "reminder"  # a finding still open, reminded every --remind interval


@dataclass(frozen=True)
class Alert:
    change: Change
    scan: ScanRef
    reason: AlertReason = AlertReason.CHANGE
    since: str | None = None  # reminders: when the finding was first seen open

    @property
    def severity(self) -> Severity:
        return self.change.severity

    @property
    def title(self) -> str:
        title = f"exposure: {self.change.target}: {self.change.summary}"
        return title if len(title) <= TITLE_LIMIT else title[: TITLE_LIMIT - 1] + "…"

    @property
    def message(self) -> str:
        return change_line(self.change)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": ALERT_SCHEMA,
            "tool": {"name": "exposure", "version": __version__},
            "title": self.title,
            "message": self.message,
            "severity": str(self.severity),
            "reason": str(self.reason),
            "since": self.since,
            "change": self.change.to_dict(),
            "scan": self.scan.to_dict(),
        }


# Bounds of what a state carries (HA keeps attributes in memory and in its recorder, which
# skips attributes over 16 KiB): the worst findings and the first services, then a count.
MAX_LISTED_FINDINGS = 25
MAX_LISTED_SERVICES = 40
MAX_STATE_BYTES = 12 * 1024
# Info findings are facts (a version seen), not problems: the problem sensor ignores them.
PROBLEM_FLOOR = Severity.LOW


@dataclass(frozen=True)
class TargetState:
    """A target's exposure now: what the Home Assistant entities and the webhook show."""

    target: str
    open_ports: tuple[str, ...]  # "443/tcp", distinct over the target's addresses
    worst_severity: str  # a Severity, or "none"
    tls_grade: str  # the worst grade of its TLS endpoints, or "none"
    scan_id: str
    scanned_at: str
    addresses: tuple[str, ...] = ()
    findings: tuple[summary.OpenFinding, ...] = ()  # worst first
    services: tuple[summary.ExposedService, ...] = ()
    problem_minimum: Severity = PROBLEM_FLOOR  # the alert severity (never below PROBLEM_FLOOR)
    valid_for_s: int | None = None  # how long this state counts as current (from --every)
    report_url: str | None = None  # where the last HTML report can be opened

    @property
    def problems(self) -> tuple[summary.OpenFinding, ...]:
        floor = max(self.problem_minimum, PROBLEM_FLOOR, key=lambda s: s.rank)
        return tuple(f for f in self.findings if f.severity.rank >= floor.rank)

    @property
    def problem(self) -> bool:
        return bool(self.problems)

    def to_dict(self) -> dict[str, Any]:
        data = {
            "target": self.target,
            "problem": self.problem,
            "problems": len(self.problems),
            "problem_minimum": str(max(self.problem_minimum, PROBLEM_FLOOR,
                                       key=lambda s: s.rank)),
            "open_ports": len(self.open_ports),
            "ports": list(self.open_ports),
            "worst_severity": self.worst_severity,
            "findings_count": len(self.findings),
            "tls_grade": self.tls_grade,
            "addresses": list(self.addresses),
            "scan_id": self.scan_id,
            "scanned_at": self.scanned_at,
            "valid_for_s": self.valid_for_s,
            "report_url": self.report_url,
        }
        return _with_bounded_lists(data, self.findings, self.services)


def _with_bounded_lists(
    data: dict[str, Any], findings: Sequence[summary.OpenFinding],
    services: Sequence[summary.ExposedService],
) -> dict[str, Any]:
    """data plus the findings and services lists, cut so the whole stays under
    MAX_STATE_BYTES; `*_not_listed` says how many were left out."""
    finding_limit, service_limit = MAX_LISTED_FINDINGS, MAX_LISTED_SERVICES
    while True:
        listed = {
            **data,
            "findings": [f.to_dict() for f in findings[:finding_limit]],
            "findings_not_listed": max(0, len(findings) - finding_limit),
            "services": [s.to_dict() for s in services[:service_limit]],
            "services_not_listed": max(0, len(services) - service_limit),
        }
        size = len(json.dumps(listed, ensure_ascii=True))
        if size <= MAX_STATE_BYTES or (finding_limit == 0 and service_limit == 0):
            return listed
        finding_limit, service_limit = finding_limit // 2, service_limit // 2


class Notifier(Protocol):
    name: str

    def send(self, alert: Alert) -> None:
        """Deliver one alert or raise AlertError."""

    def update_states(self, states: Sequence[TargetState]) -> None:
        """Publish each target's current state (no-op where there is no state)."""


@runtime_checkable
class RoundNotifier(Protocol):
    """A notifier that takes one scan's alerts and states together (one request per target,
    or one connection for everything), instead of send() per alert."""

    name: str

    def send_round(self, alerts: Sequence[Alert], states: Sequence[TargetState]) -> None:
        """Deliver all of it or raise AlertError."""


@runtime_checkable
class LongLivedNotifier(Protocol):
    """A notifier that keeps a connection between scans (MQTT: availability via its will)."""

    def open(self) -> None:
        """Start the connection (in the background: never raises for an unreachable peer)."""

    def close(self, *, stay_available: bool) -> None:
        """End it; stay_available=False says the states are no longer kept current."""


class StatelessNotifier:
    """Base for notifiers that only send alerts."""

    name = "notifier"

    def send(self, alert: Alert) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def update_states(self, states: Sequence[TargetState]) -> None:
        return None


def alerts_for(diff: ReportDiff, minimum: Severity = Severity.INFO) -> list[Alert]:
    """One alert per change at or above `minimum`, worst first.

    A resolved finding counts with the severity it had: a critical one resolved is worth the
    message even when only high and critical alerts are wanted.
    """
    chosen = [change for change in diff.changes if _weight(change).rank >= minimum.rank]
    chosen.sort(key=lambda change: -_weight(change).rank)
    return [Alert(change, diff.after) for change in chosen]


def _weight(change: Change) -> Severity:
    if change.kind == ChangeKind.FINDING_RESOLVED and isinstance(change.before, str):
        try:
            return Severity(change.before)
        except ValueError:
            return change.severity
    return change.severity


def states_for(
    report: Mapping[str, Any],
    *,
    problem_minimum: Severity = PROBLEM_FLOOR,
    valid_for_s: int | None = None,
    report_url: str | None = None,
) -> list[TargetState]:
    """One state per target input (its addresses merged), from a report dict."""
    scan = report.get("scan", {})
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for target in report.get("targets", []):
        grouped.setdefault(str(target.get("input") or target.get("address")), []).append(target)
    return [
        _state(name, targets, scan, problem_minimum, valid_for_s, report_url)
        for name, targets in grouped.items()
    ]


def _state(
    name: str, targets: list[Mapping[str, Any]], scan: Mapping[str, Any],
    problem_minimum: Severity, valid_for_s: int | None, report_url: str | None,
) -> TargetState:
    findings = summary.open_findings(targets)
    worst = summary.worst_severity(findings)
    grade = summary.worst_tls_grade(targets)
    return TargetState(
        target=name,
        open_ports=tuple(f"{port}/{protocol}" for port, protocol in summary.open_ports(targets)),
        worst_severity=str(worst) if worst else "none",
        tls_grade=grade or "none",
        scan_id=str(scan.get("id", "")),
        scanned_at=str(scan.get("finished_at") or scan.get("started_at") or ""),
        addresses=tuple(str(target.get("address")) for target in targets),
        findings=tuple(findings),
        services=tuple(summary.exposed_services(targets)),
        problem_minimum=problem_minimum,
        valid_for_s=valid_for_s,
        report_url=report_url,
    )


@dataclass
class Delivery:
    """What happened to each notifier's messages in one round."""

    sent: dict[str, int] = field(default_factory=dict)
    failed: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


def deliver(
    notifiers: Iterable[Notifier],
    alerts: Sequence[Alert],
    states: Sequence[TargetState] = (),
    *,
    attempts: int = SEND_ATTEMPTS,
    backoff_s: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Delivery:
    """Send every alert through every notifier, retrying a few times; never raises.

    A notifier that stays down does not stop the others, nor the watch loop (it logs).
    """
    result = Delivery()
    for notifier in notifiers:
        result.sent.setdefault(notifier.name, 0)
        if isinstance(notifier, RoundNotifier):
            error = _try(partial(notifier.send_round, alerts, states), attempts, backoff_s,
                         sleep)
            if error is None:
                result.sent[notifier.name] += len(alerts)
            else:
                log.warning("%s: alerts and state not delivered: %s", notifier.name, error)
                result.failed.setdefault(notifier.name, []).append(error)
            continue
        for alert in alerts:
            error = _try(partial(notifier.send, alert), attempts, backoff_s, sleep)
            if error is None:
                result.sent[notifier.name] += 1
            else:
                log.warning("%s: alert not delivered: %s", notifier.name, error)
                result.failed.setdefault(notifier.name, []).append(error)
        if states:
            error = _try(partial(notifier.update_states, states), attempts, backoff_s, sleep)
            if error is not None:
                log.warning("%s: state not published: %s", notifier.name, error)
                result.failed.setdefault(notifier.name, []).append(error)
    return result


def _try(
    action: Callable[[], None], attempts: int, backoff_s: float, sleep: Callable[[float], None]
) -> str | None:
    error = "not attempted"
    for attempt in range(max(1, attempts)):
        try:
            action()
            return None
        except AlertError as problem:
            error = str(problem)
        except Exception as problem:  # a notifier's bug must not end the watch
            error = f"{type(problem).__name__}: {problem}"
        if attempt + 1 < attempts:
            sleep(backoff_s * (2**attempt))
    return error
