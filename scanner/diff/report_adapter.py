"""Our diff in the shape the Markdown/HTML reports render (scanner.report.diff.ReportDiff)."""

from __future__ import annotations

import json
from typing import Any

from scanner.diff.model import Change, ChangeKind, ReportDiff
from scanner.report import diff as report_diff

# our kind -> (added / removed / changed, what)
_SHAPE: dict[ChangeKind, tuple[report_diff.ChangeKind, str]] = {
    ChangeKind.TARGET_ADDED: (report_diff.ChangeKind.ADDED, "target"),
    ChangeKind.TARGET_REMOVED: (report_diff.ChangeKind.REMOVED, "target"),
    ChangeKind.PORT_OPENED: (report_diff.ChangeKind.ADDED, "port"),
    ChangeKind.PORT_UNEXPECTED: (report_diff.ChangeKind.ADDED, "port"),
    ChangeKind.PORT_CLOSED: (report_diff.ChangeKind.REMOVED, "port"),
    ChangeKind.SERVICE_CHANGED: (report_diff.ChangeKind.CHANGED, "service"),
    ChangeKind.FINDING_NEW: (report_diff.ChangeKind.ADDED, "finding"),
    ChangeKind.FINDING_RESOLVED: (report_diff.ChangeKind.REMOVED, "finding"),
    ChangeKind.FINDING_SEVERITY: (report_diff.ChangeKind.CHANGED, "finding"),
    ChangeKind.TLS_GRADE: (report_diff.ChangeKind.CHANGED, "tls_grade"),
    ChangeKind.TLS_PROTOCOLS: (report_diff.ChangeKind.CHANGED, "tls_protocols"),
    ChangeKind.TLS_CERTIFICATE: (report_diff.ChangeKind.CHANGED, "certificate"),
    ChangeKind.TLS_EXPIRY: (report_diff.ChangeKind.CHANGED, "certificate_expiry"),
    ChangeKind.FINDING_OPEN: (report_diff.ChangeKind.CHANGED, "finding"),
}


def for_reports(diff: ReportDiff) -> report_diff.ReportDiff:
    return report_diff.ReportDiff(
        previous_scan_id=diff.before.id if diff.before else "",
        previous_started_at=diff.before.started_at if diff.before else "",
        changes=tuple(_change(change) for change in diff.changes),
    )


def _change(change: Change) -> report_diff.Change:
    kind, what = _SHAPE[change.kind]
    return report_diff.Change(
        kind=kind,
        what=what,
        address=", ".join(change.addresses),
        port=change.port,
        protocol=change.protocol,
        summary=change.summary,
        before=_text(change.before),
        after=_text(change.after),
        severity=change.severity,
    )


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    if isinstance(value, dict):
        return ", ".join(f"{key} {item}" for key, item in value.items() if item is not None)
    return json.dumps(value)
