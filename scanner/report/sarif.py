"""SARIF 2.1.0, so CI systems (GitHub code scanning and others) can ingest the findings.

One run per scan. Rules are the finding catalogue (every id a check can produce), results
one per finding. A network finding has no source file: its location is the endpoint as a URI
(`tcp://198.51.100.7:22`, `tcp://[2001:db8::1]:443`, or `tcp://198.51.100.7` for a finding
about the whole host), plus a logical location naming the target as the user typed it.

Remote text is cleaned (safe_text) and then escaped for SARIF messages, where "[text](url)"
is an embedded link (SARIF 2.1.0 §3.11.6): '\\', '[' and ']' get a backslash.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from scanner.core.catalogue import finding_catalogue
from scanner.core.findings import Finding, FindingSpec, Severity
from scanner.core.report import ScanReport, TargetReport
from scanner.core.summary import ReportSummary, open_ports_of, summarize
from scanner.core.text import safe_text, safe_tree

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA_URI = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
FINGERPRINT_KEY = "exposureFinding/v1"

# SARIF has three levels; GitHub sorts alerts by the numeric "security-severity" property
# (critical >= 9.0, high 7.0-8.9, medium 4.0-6.9, low 0.1-3.9).
LEVELS = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}
SECURITY_SEVERITY = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: "0.0",
}
# GitHub's problem.severity: error, warning or recommendation.
PROBLEM_SEVERITY = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "recommendation",
    Severity.INFO: "recommendation",
}
MESSAGE_CHARS = 8000
_SARIF_SPECIAL = re.compile(r"([\\\[\]])")


def render_sarif(
    report: ScanReport,
    catalogue: Sequence[FindingSpec] | None = None,
    summary: ReportSummary | None = None,
) -> str:
    return json.dumps(sarif_log(report, catalogue, summary), indent=2, ensure_ascii=True) + "\n"


def sarif_log(
    report: ScanReport,
    catalogue: Sequence[FindingSpec] | None = None,
    summary: ReportSummary | None = None,
) -> dict[str, Any]:
    specs = _rule_specs(report, finding_catalogue() if catalogue is None else catalogue)
    rule_index = {spec.id: index for index, spec in enumerate(specs)}
    from scanner import __version__

    results = [
        _result(finding, target, rule_index)
        for target in report.targets
        for finding in target.findings
    ]
    return {
        "$schema": SARIF_SCHEMA_URI,
        "version": SARIF_VERSION,
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "exposure",
                        "version": __version__,
                        "rules": [_rule(spec) for spec in specs],
                    }
                },
                "automationDetails": {"id": _automation_id(report)},
                "invocations": [_invocation(report)],
                "results": results,
                "properties": {
                    # The answer first, as in every format: verdict, counts, problems.
                    "summary": safe_tree((summary or summarize(report)).to_dict()),
                    "scan": {
                        "id": safe_text(report.id, 64),
                        "engine": safe_text(report.engine, 32),
                        "ports_requested": report.ports_requested,
                        "targets": [_target_summary(target) for target in report.targets],
                    }
                },
            }
        ],
    }


def sarif_text(text: str, limit: int = MESSAGE_CHARS) -> str:
    """Clean text, with SARIF's embedded-link characters escaped."""
    return _SARIF_SPECIAL.sub(r"\\\1", safe_text(text, limit, keep_newlines=True))


def endpoint_uri(address: str, port: int | None, protocol: str = "tcp") -> str:
    """tcp://198.51.100.7:22, tcp://[2001:db8::1]:443, or tcp://198.51.100.7 (whole host)."""
    scheme = protocol if protocol in ("tcp", "udp") else "tcp"
    try:
        host = ipaddress.ip_address(address)
        authority = f"[{host}]" if host.version == 6 else str(host)
    except ValueError:  # not an address: keep only what is valid in a URI authority
        authority = re.sub(r"[^A-Za-z0-9.\-]", "", address)[:253] or "unknown"
    return f"{scheme}://{authority}:{port}" if port else f"{scheme}://{authority}"


# --- rules ----------------------------------------------------------------------------------


def _rule_specs(report: ScanReport, catalogue: Iterable[FindingSpec]) -> list[FindingSpec]:
    """The catalogue, plus a rule for any finding id it does not list (never drop a result)."""
    specs = {spec.id: spec for spec in catalogue}
    for target in report.targets:
        for finding in target.findings:
            if finding.id not in specs:
                specs[finding.id] = FindingSpec(
                    finding.id, finding.severity, finding.title, finding.references
                )
    return sorted(specs.values(), key=lambda spec: spec.id)


def _rule(spec: FindingSpec) -> dict[str, Any]:
    title = safe_text(spec.title, 500)
    area = spec.id.split(".", 1)[0]
    rule: dict[str, Any] = {
        "id": spec.id,
        "name": _rule_name(spec.id),
        "shortDescription": {"text": sarif_text(title, 500)},
        "fullDescription": {"text": sarif_text(title, 2000)},
        "defaultConfiguration": {"level": LEVELS[spec.severity]},
        "help": {
            "text": sarif_text(
                f"{title}. Usual severity: {spec.severity}. "
                "Each result says what was seen and what to do."
            )
        },
        "properties": {
            "security-severity": SECURITY_SEVERITY[spec.severity],
            "problem.severity": PROBLEM_SEVERITY[spec.severity],
            "tags": ["security", "network", safe_text(area, 32)],
        },
    }
    https_refs = [ref for ref in spec.references if ref.startswith("https://")]
    if https_refs:
        rule["helpUri"] = safe_text(https_refs[0], 1000)
    return rule


def _rule_name(finding_id: str) -> str:
    """ha.onboarding_open -> HaOnboardingOpen (SARIF's optional, human-friendly rule name)."""
    return "".join(part.capitalize() for part in re.split(r"[._]", finding_id) if part)


# --- results --------------------------------------------------------------------------------


def _result(finding: Finding, target: TargetReport, rule_index: dict[str, int]) -> dict[str, Any]:
    uri = endpoint_uri(target.address, finding.port, finding.protocol)
    place = _place(target, finding)
    message = f"{finding.title} ({place})."
    if finding.evidence:
        message += f"\nSeen: {finding.evidence}"
    message += f"\nFix: {finding.remediation}"
    return {
        "ruleId": finding.id,
        "ruleIndex": rule_index[finding.id],
        "level": LEVELS[finding.severity],
        "message": {"text": sarif_text(message)},
        "locations": [
            {
                "physicalLocation": {"artifactLocation": {"uri": uri}},
                "logicalLocations": [
                    {
                        "name": sarif_text(place, 300),
                        "fullyQualifiedName": sarif_text(f"{target.input}/{uri}", 600),
                        "kind": "endpoint",
                    }
                ],
            }
        ],
        "partialFingerprints": {FINGERPRINT_KEY: _fingerprint(finding, target)},
        "properties": {
            "severity": str(finding.severity),
            "security-severity": SECURITY_SEVERITY[finding.severity],
            "target": safe_text(target.input, 300),
            "address": safe_text(target.address, 64),
            "port": finding.port,
            "protocol": safe_text(finding.protocol, 8),
            "evidence": safe_text(finding.evidence, MESSAGE_CHARS, keep_newlines=True),
            "remediation": safe_text(finding.remediation, MESSAGE_CHARS, keep_newlines=True),
            "references": [safe_text(ref, 1000) for ref in finding.references],
        },
    }


def _place(target: TargetReport, finding: Finding) -> str:
    name = target.input if target.input == target.address else f"{target.input} ({target.address})"
    where = f"{name} port {finding.port}/{finding.protocol}" if finding.port else name
    return safe_text(where, 300)


def _fingerprint(finding: Finding, target: TargetReport) -> str:
    """Same finding on the same endpoint = same alert across scans (GitHub de-duplicates)."""
    key = "|".join([finding.id, target.input, target.address, str(finding.port), finding.protocol])
    return hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()


def _invocation(report: ScanReport) -> dict[str, Any]:
    invocation: dict[str, Any] = {
        "executionSuccessful": report.complete,
        "startTimeUtc": _utc(report.started_at),
        "endTimeUtc": _utc(report.finished_at),
    }
    if report.errors:
        invocation["toolExecutionNotifications"] = [
            {"level": "error", "message": {"text": sarif_text(error.line(), 1000)}}
            for error in report.errors[:100]
        ]
    return invocation


def _utc(timestamp: str) -> str:
    """SARIF wants UTC with a Z: 2024-05-01T08:00:00Z."""
    text = safe_text(timestamp, 64)
    return text[: -len("+00:00")] + "Z" if text.endswith("+00:00") else text


def _automation_id(report: ScanReport) -> str:
    """'exposure/<targets>/<scan id>': GitHub's category is the part before the last '/',
    so alerts of scans of the same targets belong together and close when fixed."""
    inputs = sorted({target.input for target in report.targets}) or ["none"]
    label = re.sub(r"[^A-Za-z0-9.:\-,_\[\]]", "_", ",".join(inputs))[:200]
    return f"exposure/{label}/{safe_text(report.id, 64)}"


def _target_summary(target: TargetReport) -> dict[str, Any]:
    return {
        "input": safe_text(target.input, 300),
        "address": safe_text(target.address, 64),
        "open_ports": [port.port for port in open_ports_of(target)],
        "filtered_count": target.filtered_count,
    }
