"""What one target looks like now, for the HA sensors and the webhook, in the report's terms.

Open ports, exposed services and the TLS grade come from scanner.core.summary, the one place
every output (terminal, JSON, HTML, history, Home Assistant) takes them from:

- an open port is a distinct (host, port, protocol) open on any of the host's addresses (443/tcp
  open on a name's IPv4 and IPv6 address is one open port; a host answering on every port, a
  tarpit, has none that can be told apart);
- the worst TLS grade is the report's (F worst; T and M with the grade they would have:
  "T (A if trusted)").

What is alerts' own: an open finding is a distinct (id, port, protocol) over the addresses, with
the worst severity seen for it (what reminders are kept for; the report's problems group
further, by id).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from scanner.core.findings import Severity
from scanner.core.summary import ReportSummary, summarize
from scanner.core.text import safe_text

TEXT_LIMIT = 120
Target = Mapping[str, Any]


@dataclass(frozen=True)
class OpenFinding:
    id: str
    severity: Severity
    port: int | None
    protocol: str
    title: str

    @property
    def key(self) -> tuple[str, int | None, str]:
        return (self.id, self.port, self.protocol)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "severity": str(self.severity), "port": self.port,
                "protocol": self.protocol, "title": self.title}


@dataclass(frozen=True)
class ExposedService:
    port: int
    protocol: str
    service: str | None
    product: str | None
    version: str | None
    tls: bool

    def to_dict(self) -> dict[str, Any]:
        return {"port": self.port, "protocol": self.protocol, "service": self.service,
                "product": self.product, "version": self.version, "tls": self.tls}


def report_summary(targets: Iterable[Target]) -> ReportSummary:
    """The report's summary of these target dicts (the addresses of one input)."""
    from scanner.store.codec import report_from_dict  # the store's reader of report dicts

    return summarize(report_from_dict({"targets": [dict(target) for target in targets]}))


def open_ports(targets: Iterable[Target]) -> list[tuple[int, str]]:
    """Distinct open (port, protocol) over the targets (the addresses of one input), sorted."""
    return sorted({(s.port, s.protocol) for s in report_summary(targets).services})


def open_port_count(targets: Iterable[Target]) -> int:
    return report_summary(targets).open_ports


def worst_tls_grade(targets: Iterable[Target]) -> str | None:
    grade = report_summary(targets).worst_grade
    return grade.display if grade else None


def open_findings(targets: Iterable[Target]) -> list[OpenFinding]:
    """Distinct findings (id, port, protocol), worst severity kept; worst first."""
    found: dict[tuple[str, int | None, str], OpenFinding] = {}
    for target in targets:
        for raw in target.get("findings", []):
            finding = _finding(raw)
            if finding is None:
                continue
            seen = found.get(finding.key)
            if seen is None or finding.severity.rank > seen.severity.rank:
                found[finding.key] = finding
    return sorted(found.values(), key=lambda f: (-f.severity.rank, f.port or 0, f.id))


def exposed_services(targets: Iterable[Target]) -> list[ExposedService]:
    """What answers on each open port (the first address that identified it)."""
    targets = list(targets)
    shown = {(s.port, s.protocol): s for s in report_summary(targets).services}
    tls = {(int(port["port"]), str(port.get("protocol", "tcp")))
           for target in targets for port in target.get("ports", [])
           if port.get("tls") and isinstance(port.get("port"), int)}
    return [ExposedService(port, protocol, service.service or None, service.product or None,
                           service.version or None, (port, protocol) in tls)
            for (port, protocol), service in sorted(shown.items())]


def worst_severity(findings: Iterable[OpenFinding]) -> Severity | None:
    return max((f.severity for f in findings), key=lambda s: s.rank, default=None)


def _finding(raw: Any) -> OpenFinding | None:
    if not isinstance(raw, Mapping) or not raw.get("id"):
        return None
    try:
        severity = Severity(str(raw.get("severity")))
    except ValueError:
        return None
    port = raw.get("port") if isinstance(raw.get("port"), int) else None
    return OpenFinding(safe_text(str(raw["id"]), 64), severity, port,
                       safe_text(str(raw.get("protocol", "tcp")), 8),
                       safe_text(str(raw.get("title", "")), TEXT_LIMIT))


def _text(value: Any) -> str | None:
    return safe_text(str(value), TEXT_LIMIT) if value not in (None, "") else None
