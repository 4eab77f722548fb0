"""A stored report (exposure-report/2 dict, or /1 of an older version) back into the ScanReport
every renderer takes.

The stored JSON is the source of truth; `exposure show` rebuilds the report from it so any
output format (also ones added after the scan was stored) can render an old scan.
"""

from __future__ import annotations

from typing import Any

from scanner.core.findings import Finding, Severity
from scanner.core.legacy import errors_of, notes_of
from scanner.core.report import PortReport, ScanReport, TargetReport


def report_from_dict(data: dict[str, Any]) -> ScanReport:
    scan = data.get("scan", {})
    return ScanReport(
        id=str(scan.get("id", "")),
        started_at=str(scan.get("started_at", "")),
        finished_at=str(scan.get("finished_at", "")),
        duration_s=float(scan.get("duration_s", 0.0)),
        engine=str(scan.get("engine", "")),
        ports_requested=int(scan.get("ports_requested", 0)),
        complete=bool(scan.get("complete", True)),
        errors=errors_of(scan),
        targets=[target_from_dict(target) for target in data.get("targets", [])],
        budget=scan.get("budget") if isinstance(scan.get("budget"), dict) else None,
    )


def target_from_dict(data: dict[str, Any]) -> TargetReport:
    """One "targets" item of a stored report back into a TargetReport."""
    return TargetReport(
        input=str(data.get("input", "")),
        address=str(data.get("address", "")),
        hostname=data.get("hostname"),
        ports=[_port(port) for port in data.get("ports", [])],
        filtered_count=int(data.get("filtered_count", 0)),
        answers_all_ports=bool(data.get("answers_all_ports", False)),
        findings=[_finding(finding) for finding in data.get("findings", [])],
        notes=notes_of(data),
        internetdb=data.get("internetdb"),
    )


def _port(data: dict[str, Any]) -> PortReport:
    return PortReport(
        port=int(data["port"]),
        protocol=str(data.get("protocol", "tcp")),
        state=str(data.get("state", "open")),
        service=data.get("service"),
        product=data.get("product"),
        version=data.get("version"),
        tls=data.get("tls"),
        banner=data.get("banner"),
        details=dict(data.get("details") or {}),
    )


def _finding(data: dict[str, Any]) -> Finding:
    return Finding(
        id=str(data["id"]),
        severity=Severity(data.get("severity", "info")),
        title=str(data.get("title", "")),
        evidence=str(data.get("evidence", "")),
        remediation=str(data.get("remediation", "")),
        port=data.get("port"),
        protocol=str(data.get("protocol", "tcp")),
        references=tuple(str(ref) for ref in data.get("references", [])),
    )
