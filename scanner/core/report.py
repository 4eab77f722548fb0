"""The scan report: one object that every output format renders (SPEC "JSON report")."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scanner import __version__
from scanner.core.findings import Finding, Severity, worst

SCHEMA_ID = "exposure-report/1"


@dataclass
class PortReport:
    port: int
    protocol: str
    state: str
    service: str | None = None
    product: str | None = None
    version: str | None = None
    tls: bool | None = None
    banner: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "port": self.port,
            "protocol": self.protocol,
            "state": self.state,
            "service": self.service,
            "product": self.product,
            "version": self.version,
            "tls": self.tls,
            "banner": self.banner,
            "details": self.details,
        }


@dataclass
class TargetReport:
    input: str
    address: str
    hostname: str | None = None
    ports: list[PortReport] = field(default_factory=list)
    filtered_count: int = 0
    answers_all_ports: bool = False
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    internetdb: dict[str, Any] | None = None  # --internetdb: what Shodan has on record

    @property
    def open_ports(self) -> list[PortReport]:
        return [port for port in self.ports if port.state == "open"]

    def worst_severity(self) -> Severity | None:
        return worst(self.findings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "address": self.address,
            "hostname": self.hostname,
            "ports": [port.to_dict() for port in self.ports],
            "filtered_count": self.filtered_count,
            "answers_all_ports": self.answers_all_ports,
            "findings": [finding.to_dict() for finding in self.findings],
            "notes": list(self.notes),
            **({"internetdb": self.internetdb} if self.internetdb is not None else {}),
        }


@dataclass
class ScanReport:
    id: str
    started_at: str
    finished_at: str
    duration_s: float
    engine: str
    ports_requested: int
    complete: bool = True
    errors: list[str] = field(default_factory=list)
    targets: list[TargetReport] = field(default_factory=list)
    budget: dict[str, Any] | None = None  # the limits every packet and connection obeyed

    def all_findings(self) -> list[Finding]:
        return [finding for target in self.targets for finding in target.findings]

    def worst_severity(self) -> Severity | None:
        return worst(self.all_findings())

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_ID,
            "tool": {"name": "exposure", "version": __version__},
            "scan": {
                "id": self.id,
                "started_at": self.started_at,
                "finished_at": self.finished_at,
                "duration_s": round(self.duration_s, 3),
                "engine": self.engine,
                "ports_requested": self.ports_requested,
                "complete": self.complete,
                "errors": list(self.errors),
                **({"budget": self.budget} if self.budget is not None else {}),
            },
            "targets": [target.to_dict() for target in self.targets],
        }
