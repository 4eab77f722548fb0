"""What changed between two scans, as data: the one diff model.

scanner.diff computes it (diff_reports); `exposure diff`, `watch`, the alerts (and their MQTT
event types) and every report format (terminal, Markdown, HTML, JSON) render this, nothing
else. `to_dict()` is the `exposure-diff/1` document; `from_dict` reads it back.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from scanner.core.findings import Severity
from scanner.core.report import port_or_none

DIFF_SCHEMA = "exposure-diff/1"


class ChangeKind(enum.StrEnum):
    TARGET_ADDED = "target.added"  # an address scanned now that was not before (e.g. new AAAA)
    TARGET_REMOVED = "target.removed"
    PORT_OPENED = "port.opened"
    PORT_CLOSED = "port.closed"  # open before; closed or filtered now
    PORT_UNEXPECTED = "port.unexpected"  # opened, and not in the user's baseline file
    SERVICE_CHANGED = "service.changed"  # service / product / version / TLS on an open port
    FINDING_NEW = "finding.new"
    FINDING_RESOLVED = "finding.resolved"
    FINDING_SEVERITY = "finding.severity_changed"
    TLS_GRADE = "tls.grade_changed"
    TLS_PROTOCOLS = "tls.protocols_changed"
    TLS_CERTIFICATE = "tls.certificate_changed"
    TLS_EXPIRY = "tls.certificate_expiring"  # crossed one of the expiry thresholds (days left)
    # Never produced by a diff: the alert about a finding that stays open (a reminder).
    FINDING_OPEN = "finding.still_open"

    @property
    def direction(self) -> str:
        """How a report counts it: "added" (more exposed), "removed" or "changed"."""
        return _DIRECTIONS.get(self, "changed")


_DIRECTIONS = {
    ChangeKind.TARGET_ADDED: "added", ChangeKind.PORT_OPENED: "added",
    ChangeKind.PORT_UNEXPECTED: "added", ChangeKind.FINDING_NEW: "added",
    ChangeKind.TARGET_REMOVED: "removed", ChangeKind.PORT_CLOSED: "removed",
    ChangeKind.FINDING_RESOLVED: "removed",
}


@dataclass(frozen=True)
class Change:
    """One change. `before`/`after` are JSON values; `summary` is one plain sentence."""

    kind: ChangeKind
    severity: Severity  # how much the user should care; worse exposure ranks higher
    target: str  # the target as the user typed it
    addresses: tuple[str, ...]  # where it was seen (one change may hold IPv4 and IPv6)
    summary: str
    port: int | None = None
    protocol: str = "tcp"
    subject: str | None = None  # the finding id for finding.* changes
    before: Any = None
    after: Any = None

    @property
    def identity(self) -> str:
        """Equal for the same change seen on several addresses of one target."""
        return json.dumps(
            [str(self.kind), self.target, self.port, self.protocol, self.subject,
             self.before, self.after],
            sort_keys=True,
            default=str,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "severity": str(self.severity),
            "target": self.target,
            "addresses": list(self.addresses),
            "port": self.port,
            "protocol": self.protocol,
            "subject": self.subject,
            "before": self.before,
            "after": self.after,
            "summary": self.summary,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Change:
        return cls(
            kind=ChangeKind(str(data["kind"])),
            severity=Severity(str(data.get("severity", "info"))),
            target=str(data.get("target", "")),
            addresses=tuple(str(address) for address in data.get("addresses", [])),
            summary=str(data.get("summary", "")),
            port=port_or_none(data.get("port")),
            protocol=str(data.get("protocol") or "tcp"),
            subject=None if data.get("subject") is None else str(data["subject"]),
            before=data.get("before"),
            after=data.get("after"),
        )


@dataclass(frozen=True)
class ScanRef:
    id: str
    started_at: str
    seq: int | None = None  # the number in the history database, when stored

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "started_at": self.started_at, "seq": self.seq}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScanRef:
        seq = data.get("seq")
        return cls(str(data.get("id", "")), str(data.get("started_at", "")),
                   seq if isinstance(seq, int) and not isinstance(seq, bool) else None)


@dataclass(frozen=True)
class BaselineViolation:
    """An open port the baseline does not list, already open in the earlier scan too."""

    target: str
    address: str
    port: int
    protocol: str = "tcp"

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "address": self.address, "port": self.port,
                "protocol": self.protocol}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BaselineViolation:
        return cls(str(data.get("target", "")), str(data.get("address", "")),
                   int(data.get("port", 0)), str(data.get("protocol") or "tcp"))


@dataclass(frozen=True)
class ReportDiff:
    before: ScanRef | None  # None: no earlier scan, everything is new
    after: ScanRef
    changes: tuple[Change, ...] = ()
    still_unexpected: tuple[BaselineViolation, ...] = ()
    baseline: str | None = None  # the baseline file used, if any
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def empty(self) -> bool:
        return not self.changes

    def worst_severity(self) -> Severity | None:
        return max((c.severity for c in self.changes), key=lambda s: s.rank, default=None)

    def count(self, direction: str) -> int:
        """Changes that are "added", "removed" or "changed" (ChangeKind.direction)."""
        return sum(1 for change in self.changes if change.kind.direction == direction)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": DIFF_SCHEMA,
            "before": self.before.to_dict() if self.before else None,
            "after": self.after.to_dict(),
            "baseline": self.baseline,
            "changes": [change.to_dict() for change in self.changes],
            "still_unexpected": [item.to_dict() for item in self.still_unexpected],
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReportDiff:
        before = data.get("before")
        return cls(
            before=ScanRef.from_dict(before) if isinstance(before, Mapping) else None,
            after=ScanRef.from_dict(data.get("after") or {}),
            changes=tuple(Change.from_dict(item) for item in data.get("changes", [])),
            still_unexpected=tuple(BaselineViolation.from_dict(item)
                                   for item in data.get("still_unexpected", [])),
            baseline=None if data.get("baseline") is None else str(data["baseline"]),
            notes=tuple(str(note) for note in data.get("notes", [])),
        )
