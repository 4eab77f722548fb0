"""What one target looks like now, counted once: the numbers the HA sensors and webhook show.

NOTE for the merge with issue 14: these definitions (open ports, worst TLS grade, open findings)
must be the ones issue 14 introduces for the report's `summary` object, so that every output
(terminal, JSON, HTML, history, Home Assistant) shows the same numbers. Until then they live
here, in one place, and scanner/alerts uses nothing else:

- an open port is a distinct (port, protocol) in state "open" over all the target's addresses
  (443/tcp open on the IPv4 and the IPv6 address is one open port);
- the worst TLS grade is the worst letter of GRADE_ORDER over those ports (unknown letters rank
  below F, as in scanner.diff.tls_facts);
- an open finding is a distinct (id, port, protocol) over the addresses, with the worst severity
  seen for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from scanner.diff import tls_facts
from scanner.findings import Severity
from scanner.report.sanitize import safe_text

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


def open_ports(targets: Iterable[Target]) -> list[tuple[int, str]]:
    """Distinct open (port, protocol) over the targets (the addresses of one input), sorted."""
    found = {
        (int(port["port"]), str(port.get("protocol", "tcp")))
        for target in targets
        for port in target.get("ports", [])
        if port.get("state") == "open" and isinstance(port.get("port"), int)
    }
    return sorted(found)


def open_port_count(targets: Iterable[Target]) -> int:
    return len(open_ports(targets))


def worst_tls_grade(targets: Iterable[Target]) -> str | None:
    grades = [
        grade
        for target in targets
        for port in target.get("ports", [])
        if port.get("state") == "open" and (grade := tls_facts.grade(port.get("details")))
    ]
    return max(grades, key=tls_facts.grade_rank) if grades else None


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
    services: dict[tuple[int, str], ExposedService] = {}
    for target in targets:
        for port in target.get("ports", []):
            if port.get("state") != "open" or not isinstance(port.get("port"), int):
                continue
            key = (int(port["port"]), str(port.get("protocol", "tcp")))
            service = ExposedService(key[0], key[1], _text(port.get("service")),
                                     _text(port.get("product")), _text(port.get("version")),
                                     bool(port.get("tls")))
            known = services.get(key)
            if known is None or (known.service is None and service.service is not None):
                services[key] = service
    return [services[key] for key in sorted(services)]


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
