"""The finding record every check produces and every report renders."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Severity(enum.StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def rank(self) -> int:
        """Higher is worse; used for sorting and for --fail-on."""
        return _RANKS[self]


_RANKS = {
    Severity.INFO: 0,
    Severity.LOW: 1,
    Severity.MEDIUM: 2,
    Severity.HIGH: 3,
    Severity.CRITICAL: 4,
}


@dataclass(frozen=True)
class Finding:
    id: str  # stable `area.name`, lowercase; the catalogue key
    severity: Severity
    title: str
    evidence: str  # what we saw, so the user can check it themselves
    remediation: str  # what to do, in plain words
    port: int | None = None
    protocol: str = "tcp"
    references: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "severity": str(self.severity),
            "port": self.port,
            "protocol": self.protocol,
            "title": self.title,
            "evidence": self.evidence,
            "remediation": self.remediation,
            "references": list(self.references),
        }


@dataclass(frozen=True)
class FindingSpec:
    """A catalogue entry: a stable id, its usual severity and a one-line meaning."""

    id: str
    severity: Severity
    title: str
    references: tuple[str, ...] = ()

    def finding(
        self,
        *,
        port: int | None,
        evidence: str,
        remediation: str,
        title: str | None = None,
        severity: Severity | None = None,
        protocol: str = "tcp",
    ) -> Finding:
        return Finding(
            id=self.id,
            severity=severity or self.severity,
            title=title or self.title,
            evidence=evidence,
            remediation=remediation,
            port=port,
            protocol=protocol,
            references=self.references,
        )


def worst(findings: list[Finding]) -> Severity | None:
    return max((finding.severity for finding in findings), key=lambda s: s.rank, default=None)
