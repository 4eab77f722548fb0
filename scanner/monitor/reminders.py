"""Alerts about what is already there: findings open at a target's first scan, and reminders.

A diff only tells what changed. A user whose first scan finds a critical problem must hear of
it too, and hear again while it stays open. What watch has said about each open finding is kept
(in the history database, else in memory): when it was first seen and last alerted. Pure logic:
given the findings open now, that memory and the clock, which alerts to send and the new memory.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from scanner.alerts import Alert, AlertReason, TargetState
from scanner.core.diff import Change, ChangeKind, ScanRef
from scanner.core.findings import Severity
from scanner.store import FindingAlert

DEFAULT_REMIND_S = 86400.0  # daily
DEFAULT_REMIND_MINIMUM = Severity.HIGH
# A reminder is due at the first scan at or after the interval, less this share of it: scans
# drift by their jitter, and a daily reminder should not slip to the second day.
REMIND_SLACK = 0.1

Key = tuple[str, int | None, str]


@dataclass(frozen=True)
class ReminderPolicy:
    alert_minimum: Severity = Severity.INFO  # --alert-min-severity
    alert_existing: bool = True  # first scan: alert on findings already open
    remind_s: float | None = DEFAULT_REMIND_S  # None: no reminders
    remind_minimum: Severity = DEFAULT_REMIND_MINIMUM


@dataclass(frozen=True)
class Outcome:
    alerts: list[Alert]
    memory: list[FindingAlert]


def plan(
    states: Sequence[TargetState],
    addresses: Mapping[tuple[str, Key], tuple[str, ...]],
    memory: Iterable[FindingAlert],
    changed: Sequence[Alert],
    *,
    first_scan: bool,
    policy: ReminderPolicy,
    scan: ScanRef,
    now: dt.datetime,
) -> Outcome:
    """The first-scan and reminder alerts for this scan, and what to remember afterwards.

    `changed` are the alerts of this scan's diff: a finding they name counts as alerted now.
    Findings no longer open are forgotten (the diff announced them resolved, once).
    """
    known = {(item.target, item.key): item for item in memory}
    told_now = {(alert.change.target, _key(alert.change)) for alert in changed
                if alert.change.kind in (ChangeKind.FINDING_NEW, ChangeKind.FINDING_SEVERITY)}
    # A port outside the baseline is told as the port.unexpected change; its finding of the
    # same name is that message, not another one.
    told_now |= {(alert.change.target, (str(ChangeKind.PORT_UNEXPECTED), alert.change.port,
                                        alert.change.protocol))
                 for alert in changed if alert.change.kind == ChangeKind.PORT_UNEXPECTED}
    stamp = now.isoformat(timespec="seconds")
    alerts: list[Alert] = []
    kept: list[FindingAlert] = []
    for state in states:
        for finding in state.findings:
            where = (state.target, finding.key)
            seen = known.get(where) or FindingAlert(state.target, finding.key,
                                                    str(finding.severity), stamp)
            seen = replace(seen, severity=str(finding.severity))
            reason = _reason(seen, finding.severity, where in told_now, first_scan, policy, now)
            if where in told_now:
                seen = replace(seen, last_alerted_at=stamp)
            elif reason is not None:
                alerts.append(_alert(state.target, finding, addresses.get(where, ()), reason,
                                     seen.first_seen_at, scan))
                seen = replace(seen, last_alerted_at=stamp)
            kept.append(seen)
    alerts.sort(key=lambda alert: -alert.severity.rank)
    return Outcome(alerts, kept)


def _reason(seen: FindingAlert, severity: Severity, told: bool, first_scan: bool,
            policy: ReminderPolicy, now: dt.datetime) -> AlertReason | None:
    if told:
        return None
    if seen.last_alerted_at is None and first_scan and policy.alert_existing and (
        severity.rank >= policy.alert_minimum.rank
    ):
        return AlertReason.FIRST_SCAN
    if policy.remind_s is None or severity.rank < policy.remind_minimum.rank:
        return None
    since = _parse(seen.last_alerted_at or seen.first_seen_at)
    if since is None:
        return AlertReason.REMINDER
    due = policy.remind_s * (1 - REMIND_SLACK)
    return AlertReason.REMINDER if (now - since).total_seconds() >= due else None


def _alert(target: str, finding: Any, addresses: tuple[str, ...], reason: AlertReason,
           first_seen: str, scan: ScanRef) -> Alert:
    on = f" on port {finding.port}/{finding.protocol}" if finding.port is not None else ""
    if reason is AlertReason.FIRST_SCAN:
        kind = ChangeKind.FINDING_NEW
        summary = f"open finding {finding.id} ({finding.severity}){on}: {finding.title}"
    else:
        kind = ChangeKind.FINDING_OPEN
        summary = (f"still open since {first_seen[:10]}: {finding.id} ({finding.severity}){on}: "
                   f"{finding.title}")
    change = Change(kind, finding.severity, target, addresses or (target,), summary,
                    port=finding.port, protocol=finding.protocol, subject=finding.id,
                    before=None, after=str(finding.severity))
    return Alert(change, scan, reason, since=first_seen)


def finding_addresses(report: Mapping[str, Any]) -> dict[tuple[str, Key], tuple[str, ...]]:
    """(target input, finding key) -> the addresses it was found on."""
    found: dict[tuple[str, Key], list[str]] = {}
    for target in report.get("targets", []):
        name = str(target.get("input") or target.get("address"))
        for finding in target.get("findings", []):
            port = finding.get("port") if isinstance(finding.get("port"), int) else None
            key = (str(finding.get("id", "")), port, str(finding.get("protocol", "tcp")))
            found.setdefault((name, key), []).append(str(target.get("address")))
    return {where: tuple(dict.fromkeys(items)) for where, items in found.items()}


def _key(change: Change) -> Key:
    return (str(change.subject or ""), change.port, change.protocol)


def _parse(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
