"""The verdict: from a report of one LAN service to SAFE TO FORWARD / NOT SAFE with reasons."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from scanner.core.findings import Severity
from scanner.core.legacy import errors_of
from scanner.core.report import ScanError
from scanner.core.text import safe_text
from scanner.preflight.policy import (
    ALSO_BLOCKING,
    BLOCKING_SEVERITY,
    HTTPS_PORTS,
    OUTSIDE_DIFFERENCES,
    VANTAGE_DEPENDENT,
)

PREFLIGHT_SCHEMA = "exposure-preflight/1"


@dataclass(frozen=True)
class Reason:
    id: str
    severity: str
    title: str
    why: str  # what we saw (evidence) or why it matters
    fix: str

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "severity": self.severity, "title": self.title, "why": self.why,
                "fix": self.fix}


@dataclass(frozen=True)
class Verdict:
    host: str
    port: int
    as_port: int
    reachable: bool
    service: str  # what answers, in words
    blocking: tuple[Reason, ...] = ()
    warnings: tuple[Reason, ...] = ()
    outside: tuple[str, ...] = field(default_factory=tuple)
    scan_id: str = ""

    @property
    def safe(self) -> bool:
        return self.reachable and not self.blocking

    @property
    def label(self) -> str:
        if not self.reachable:
            return "CANNOT TELL"
        return "SAFE TO FORWARD" if self.safe else "NOT SAFE"

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": PREFLIGHT_SCHEMA,
            "verdict": self.label,
            "safe": self.safe,
            "host": self.host,
            "port": self.port,
            "as_port": self.as_port,
            "reachable": self.reachable,
            "service": self.service,
            "blocking": [reason.to_dict() for reason in self.blocking],
            "warnings": [reason.to_dict() for reason in self.warnings],
            "seen_from": "the LAN",
            "what_may_differ_from_outside": list(self.outside),
            "scan_id": self.scan_id,
        }


def decide(report: Mapping[str, Any], host: str, port: int, as_port: int | None = None) -> Verdict:
    """Pure: the verdict for `port` of a report dict (exposure-report/2) of a LAN scan."""
    external = as_port or port
    outside = tuple(text.format(as_port=external, host=host, port=port)
                    for text in OUTSIDE_DIFFERENCES)
    open_entries = [p for t in report.get("targets", []) for p in t.get("ports", [])
                    if p.get("port") == port and p.get("state") == "open"]
    scan_id = str(report.get("scan", {}).get("id", ""))
    if not open_entries:
        return Verdict(host, port, external, False, "nothing answers", outside=outside,
                       scan_id=scan_id)
    entry = open_entries[0]
    blocking: list[Reason] = []
    warnings: list[Reason] = []
    for finding in _unique_findings(report, port):
        _classify(finding, blocking, warnings)
    if not entry.get("service"):
        blocking.append(_unidentified())
    blocking += [_check_failed(error) for error in errors_of(report.get("scan", {}))]
    warnings += _forwarding_advice(entry, external)
    blocking.sort(key=lambda reason: -_rank(reason.severity))  # the worst reason first
    return Verdict(host, port, external, True, _describe(entry), tuple(blocking), tuple(warnings),
                   outside, scan_id)


def _classify(finding: Mapping[str, Any], blocking: list[Reason], warnings: list[Reason]) -> None:
    finding_id = str(finding.get("id", ""))
    severity = _severity(finding.get("severity"))
    reason = Reason(
        id=finding_id,
        severity=str(severity),
        title=safe_text(str(finding.get("title", "")), 200),
        why=safe_text(str(finding.get("evidence", "")), 400),
        fix=safe_text(str(finding.get("remediation", "")), 1000),
    )
    if finding_id in VANTAGE_DEPENDENT:
        warnings.append(Reason(reason.id, reason.severity, reason.title,
                               VANTAGE_DEPENDENT[finding_id], reason.fix))
    elif severity.rank >= BLOCKING_SEVERITY.rank:
        blocking.append(reason)
    elif finding_id in ALSO_BLOCKING:
        blocking.append(Reason(reason.id, reason.severity, reason.title,
                               f"{reason.why} ({ALSO_BLOCKING[finding_id]})", reason.fix))
    elif severity is not Severity.INFO:
        warnings.append(reason)


def _unique_findings(report: Mapping[str, Any], port: int) -> Iterable[Mapping[str, Any]]:
    """The port's findings (and target-wide ones), once each over the addresses of a name."""
    seen: set[tuple[str, str]] = set()
    for target in report.get("targets", []):
        for finding in target.get("findings", []):
            if finding.get("port") not in (port, None):
                continue
            key = (str(finding.get("id")), str(finding.get("severity")))
            if key not in seen:
                seen.add(key)
                yield finding


def _unidentified() -> Reason:
    return Reason(
        id="preflight.unidentified",
        severity="unknown",
        title="exposure cannot tell what this service is",
        why="no probe recognised the protocol, so none of the checks could run: "
            "nothing here says it is safe",
        fix="Forward it only if you know it requires authentication and is kept up to date; "
            "better, reach it through a VPN (WireGuard, Tailscale) instead of a port forward.",
    )


def _check_failed(error: ScanError) -> Reason:
    return Reason(
        id="preflight.check_failed",
        severity="unknown",
        title="a check could not run to the end, so its problems may be missing here",
        why=safe_text(error.line(), 400),
        fix="Run preflight again; if the error stays, report it (with `exposure scan HOST "
            "--ports PORT --format json`). Until every check has run, this cannot be called safe.",
    )


def _forwarding_advice(entry: Mapping[str, Any], external: int) -> list[Reason]:
    advice = []
    if external in HTTPS_PORTS and not entry.get("tls"):
        advice.append(Reason(
            id="preflight.https_port_without_tls",
            severity="info",
            title=f"external port {external} is where browsers expect HTTPS, but this service "
                  "speaks plain text",
            why="the service did not answer a TLS handshake",
            fix="Put TLS in front (a reverse proxy with a Let's Encrypt certificate) or enable "
                "TLS in the service before forwarding it as an HTTPS port.",
        ))
    return advice


def _describe(entry: Mapping[str, Any]) -> str:
    words = [entry.get("product") or entry.get("service") or "an unidentified service",
             entry.get("version") or ""]
    text = " ".join(safe_text(str(word), 80) for word in words if word)
    if entry.get("product") and entry.get("service"):
        text = f"{safe_text(str(entry['service']), 40)} ({text})"
    return text + (" over TLS" if entry.get("tls") else "")


def _rank(severity: str) -> int:
    try:
        return Severity(severity).rank
    except ValueError:
        return -1


def _severity(value: Any) -> Severity:
    try:
        return Severity(value)
    except ValueError:
        return Severity.INFO
