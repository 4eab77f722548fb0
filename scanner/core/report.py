"""The scan report: one object that every output format renders (SPEC "JSON report")."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from scanner import __version__
from scanner.core.findings import Finding, Severity, worst

# /2: notes and errors are objects (Note, ScanError), no longer sentences to parse back.
SCHEMA_ID = "exposure-report/2"


@dataclass(frozen=True)
class Note:
    """Something a stage wants the reader to know that is not a finding; `port` when it is
    about one port (None: the whole address)."""

    port: int | None
    text: str

    def line(self) -> str:
        """The note as one line for people: "port 22: ..." or the text alone."""
        return f"port {self.port}: {self.text}" if self.port is not None else self.text

    def to_dict(self) -> dict[str, Any]:
        return {"port": self.port, "text": self.text}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Note:
        return cls(port_or_none(data.get("port")), str(data.get("text", "")))


# Where a ScanError happened. "check": one check on one port (`check` names it); "port": the
# work on a port crashed outside any check; "discovery": the port scan of every address; "task":
# a fleet task; "scan": anything else (a history note on an interrupted scan...).
ERROR_STAGES = ("discovery", "port", "check", "task", "scan")


@dataclass(frozen=True)
class ScanError:
    """A part of the scan that could not be done: the report is still valid, but what that
    part would have found may be missing (a diff does not call a finding resolved then)."""

    stage: str  # one of ERROR_STAGES
    message: str
    address: str | None = None
    port: int | None = None
    check: str | None = None  # the check's name, for stage "check"
    vantage: str | None = None  # the fleet vantage point it was seen from

    def line(self) -> str:
        """The error as one line for people ("203.0.113.7: ha check on port 8123 failed: ...")."""
        what = {
            "check": f"{self.check} check" + (f" on port {self.port}" if self.port else ""),
            "port": f"port {self.port}",
            "discovery": "discovery",
            "task": "task",
        }.get(self.stage)
        text = f"{what} failed: {self.message}" if what else self.message
        where = self.address or ""
        if self.vantage:
            where = f"{where} from {self.vantage}".strip()
        return f"{where}: {text}" if where else text

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "message": self.message, "address": self.address,
                "port": self.port, "check": self.check, "vantage": self.vantage}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScanError:
        stage = str(data.get("stage"))
        return cls(
            stage=stage if stage in ERROR_STAGES else "scan",
            message=str(data.get("message", "")),
            address=_optional(data.get("address")),
            port=port_or_none(data.get("port")),
            check=_optional(data.get("check")),
            vantage=_optional(data.get("vantage")),
        )


def _optional(value: object) -> str | None:
    return None if value is None else str(value)


def port_or_none(value: object) -> int | None:
    """A port number read back from JSON, or None (JSON's true is not port 1)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 1 <= value <= 65535 else None


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
    notes: list[Note] = field(default_factory=list)
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
            "notes": [note.to_dict() for note in self.notes],
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
    errors: list[ScanError] = field(default_factory=list)
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
                "errors": [error.to_dict() for error in self.errors],
                **({"budget": self.budget} if self.budget is not None else {}),
            },
            "targets": [target.to_dict() for target in self.targets],
        }
