"""The `services` check: catalogue products on any open port, open to anyone or asking for auth.

Findings (see catalogue.FINDINGS):
- mqtt.anonymous (high): the broker answered CONNACK 0 to a CONNECT without credentials;
- service.unauthenticated (high/critical per product): the product's "no auth" markers held;
- service.auth_required (info): the product was identified and asks for credentials;
- service.cleartext_auth (medium): ...and those credentials would travel unencrypted
  (MQTT without TLS, Telnet, Redis);
- smb.exposed (high): an SMB server answers from the internet.

details: one key per product found (details["node_red"], details["mqtt"], details["redis"]...)
and details["product"] naming the most severe one: {"name", "key", "auth"}.
"""

from __future__ import annotations

from typing import Any

from scanner.checks.base import CheckContext, CheckResult, Finding, Severity
from scanner.checks.services.catalogue import (
    AUTH_REQUIRED,
    CATALOGUE,
    CLEARTEXT_AUTH,
    EXPOSED,
    FINDINGS,
    UNAUTHENTICATED,
)
from scanner.checks.services.details import ProductChoice, details_record
from scanner.checks.services.engine import PROBES, Judged, applicable_protocols, assess_port
from scanner.checks.services.loader import CatalogueError
from scanner.checks.services.model import (
    REFUSED_BEFORE_LOGIN,
    Auth,
    HttpProduct,
    ProtocolProduct,
)


def _require_known_probes() -> None:
    """Every probe a product file names exists (checked once, at import)."""
    for product in CATALOGUE.all():
        probe = getattr(product, "probe", None) or getattr(product, "then_probe", None)
        if probe and probe not in PROBES:
            raise CatalogueError(f"{product.source}: probe: no probe named {probe!r} "
                                 f"(known: {', '.join(sorted(PROBES))})")
        exposed = product.exposed
        if exposed is not None and exposed.finding not in {spec.id for spec in FINDINGS}:
            raise CatalogueError(f"{product.source}: exposed.finding: unknown finding "
                                 f"{exposed.finding!r}")


_require_known_probes()
AUTH_RANK = {Auth.NONE: 2, Auth.UNKNOWN: 1, Auth.REQUIRED: 0}
_SPECS = {spec.id: spec for spec in FINDINGS}


class ServicesCheck:
    name = "services"
    catalogue = FINDINGS
    after: tuple[str, ...] = ()

    def applies(self, context: CheckContext) -> bool:
        return context.identity.service == "http" or bool(applicable_protocols(context))

    def run(self, context: CheckContext) -> CheckResult:
        judged = specific_first(assess_port(context))
        findings: list[Finding] = []
        notes: list[str] = []
        details: dict[str, Any] = {}
        for item in judged:
            findings += findings_for(item, context.port)
            notes += item.assessment.notes
            details[item.assessment.key] = details_for(item, context)
        service = None
        if judged:
            top = max(judged, key=lambda item: AUTH_RANK[item.assessment.auth])
            details["product"] = ProductChoice(
                name=top.assessment.product, key=top.assessment.key,
                auth=str(top.assessment.auth),
            ).to_dict()
            service = service_named(top, context)
        product = version = None
        if judged and not context.identity.product:  # a name where identification had none
            product, version = top.assessment.product, top.assessment.version
        return CheckResult(tuple(findings), details, tuple(dict.fromkeys(notes)),
                           product=product, version=version, service=service)


def specific_first(judged: list[Judged]) -> list[Judged]:
    """Generic surfaces (an embedded /metrics) only where no specific product answered."""
    specific = [item for item in judged if not getattr(item.definition, "generic", False)]
    return specific or judged


def service_named(item: Judged, context: CheckContext) -> str | None:
    """The protocol a probe found where identification had no name for the port."""
    definition = item.definition
    if context.identity.service or not isinstance(definition, ProtocolProduct):
        return None
    return definition.services[0] if definition.services else None


def findings_for(item: Judged, port: int) -> list[Finding]:
    definition, assessment = item.definition, item.assessment
    remedy = definition.remedy
    found: list[Finding] = []
    if assessment.auth is Auth.NONE:
        finding_id = (
            definition.finding_open if isinstance(definition, ProtocolProduct)
            else UNAUTHENTICATED.id
        )
        found.append(_finding(
            finding_id, definition.severity, definition.open_title or
            f"{assessment.product} answers without authentication",
            assessment.evidence, remedy.text, port, remedy.references,
        ))
    elif assessment.auth is Auth.REQUIRED:
        found.append(_finding(
            AUTH_REQUIRED.id, Severity.INFO,
            f"{assessment.product} is reachable from the internet and asks for credentials",
            assessment.evidence,
            "Fine if you meant to expose it; otherwise reach it over a VPN. " + remedy.text,
            port, remedy.references,
        ))
        if _cleartext(definition, assessment.transport) and not assessment.facts.get(
            "protected_mode"
        ):  # Redis protected mode refuses without asking for anything
            found.append(_finding(
                CLEARTEXT_AUTH.id, CLEARTEXT_AUTH.severity,
                f"{assessment.product} asks for credentials over an unencrypted connection",
                f"{assessment.evidence} (transport: {assessment.transport}, no TLS)",
                "Anyone on the path can read the password. Use the TLS variant of the protocol "
                "(e.g. MQTT on 8883, SSH instead of Telnet), or a VPN. " + remedy.text,
                port, remedy.references,
            ))
    exposed = definition.exposed
    if exposed is not None and not assessment.facts.get(REFUSED_BEFORE_LOGIN):
        title = (
            f"{assessment.product} answers from the internet; it should never face it"
            if exposed.finding == EXPOSED.id else _SPECS[exposed.finding].title
        )
        found.append(_finding(
            exposed.finding, exposed.severity, title, assessment.evidence,
            f"{exposed.why} {remedy.text}".strip(), port, remedy.references,
        ))
    return found


def details_for(item: Judged, context: CheckContext) -> dict[str, Any]:
    assessment = item.assessment
    earlier = context.identity.details.get(assessment.key)
    # keep what identification learnt under the same key
    found = details_record(assessment.key, earlier if isinstance(earlier, dict) else {})
    found = found.updated(
        product=assessment.product,
        auth=str(assessment.auth),
        evidence=assessment.evidence,
        transport=assessment.transport,
        usual_ports=tuple(item.definition.usual_ports),
        on_usual_port=context.port in item.definition.usual_ports,
    )
    if assessment.version:
        found = found.updated(version=assessment.version)
    return found.updated(**assessment.facts).to_dict()


def _cleartext(definition: HttpProduct | ProtocolProduct, transport: str) -> bool:
    return (
        isinstance(definition, ProtocolProduct)
        and definition.cleartext_credentials
        and (transport == "tcp" or transport.startswith("ws "))
    )


def _finding(
    finding_id: str, severity: Severity, title: str, evidence: str, remediation: str,
    port: int, references: tuple[str, ...],
) -> Finding:
    return Finding(
        id=finding_id, severity=severity, title=title, evidence=evidence,
        remediation=remediation, port=port, protocol="tcp",
        references=references or _SPECS[finding_id].references,
    )


CHECK = ServicesCheck()
