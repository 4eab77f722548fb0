"""What changed between two scans, as data: the HTML report, alerts and `exposure diff` read it."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any

from scanner.core.findings import Severity

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


@dataclass(frozen=True)
class ScanRef:
    id: str
    started_at: str
    seq: int | None = None  # the number in the history database, when stored

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "started_at": self.started_at, "seq": self.seq}


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
