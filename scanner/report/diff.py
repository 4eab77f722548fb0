"""What changed since the previous scan: the input shape the reports render.

The store/diff stage computes it (comparing two ScanReports); the reports only show it. It is
deliberately small and flat so any diff engine can fill it:

    ReportDiff(
        previous_scan_id="3f2a9c1b7d4e",
        previous_started_at="2024-05-01T08:00:00+00:00",
        changes=(
            Change("added", "port", "203.0.113.7", 8123, "port 8123/tcp is now open",
                   after="http (Home Assistant)", severity=Severity.HIGH),
            Change("changed", "tls_grade", "203.0.113.7", 443, "TLS grade dropped",
                   before="A", after="C", severity=Severity.MEDIUM),
            Change("removed", "finding", "203.0.113.7", 22, "ssh.password_auth resolved",
                   before="ssh.password_auth"),
        ),
    )

`from_dict` accepts the same as JSON (what `to_dict` gives), so a diff can travel through the
store or a file. Texts are rendered through safe_text like every other string of a report.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from scanner.core.findings import Severity


class ChangeKind(enum.StrEnum):
    ADDED = "added"  # new open port, new finding, new service
    REMOVED = "removed"  # port closed, finding resolved
    CHANGED = "changed"  # grade, version, certificate, severity changed


@dataclass(frozen=True)
class Change:
    kind: ChangeKind | str
    what: str  # "port", "finding", "tls_grade", "certificate", "service", ... (free-form)
    address: str
    port: int | None
    summary: str  # one line in plain words
    before: str | None = None
    after: str | None = None
    severity: Severity | None = None  # how much it matters, when the diff engine knows
    protocol: str = "tcp"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "what": self.what,
            "address": self.address,
            "port": self.port,
            "protocol": self.protocol,
            "summary": self.summary,
            "before": self.before,
            "after": self.after,
            "severity": str(self.severity) if self.severity else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Change:
        severity = data.get("severity")
        return cls(
            kind=ChangeKind(str(data["kind"])),
            what=str(data.get("what", "")),
            address=str(data.get("address", "")),
            port=data.get("port"),
            protocol=str(data.get("protocol") or "tcp"),
            summary=str(data.get("summary", "")),
            before=_optional_text(data.get("before")),
            after=_optional_text(data.get("after")),
            severity=Severity(severity) if severity else None,
        )


@dataclass(frozen=True)
class ReportDiff:
    previous_scan_id: str
    previous_started_at: str
    changes: tuple[Change, ...] = field(default_factory=tuple)

    @property
    def added(self) -> list[Change]:
        return [change for change in self.changes if str(change.kind) == ChangeKind.ADDED]

    @property
    def removed(self) -> list[Change]:
        return [change for change in self.changes if str(change.kind) == ChangeKind.REMOVED]

    @property
    def changed(self) -> list[Change]:
        return [change for change in self.changes if str(change.kind) == ChangeKind.CHANGED]

    def to_dict(self) -> dict[str, Any]:
        return {
            "previous_scan_id": self.previous_scan_id,
            "previous_started_at": self.previous_started_at,
            "changes": [change.to_dict() for change in self.changes],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReportDiff:
        return cls(
            previous_scan_id=str(data.get("previous_scan_id", "")),
            previous_started_at=str(data.get("previous_started_at", "")),
            changes=tuple(Change.from_dict(item) for item in data.get("changes", [])),
        )


def _optional_text(value: object) -> str | None:
    return None if value is None else str(value)
