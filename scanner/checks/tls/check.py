"""The TLS check: grade every TLS endpoint the SSL Labs way, on any port, whatever runs inside.

Identification found the port speaks TLS (HTTPS, MQTT over TLS, anything); this check scans it
with sslyze (scan.py), grades the facts (rating.py) and turns the grade into findings
(findings.py). The hostname the user typed is the SNI and the name the certificate must carry.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from scanner.checks.base import CheckContext, CheckResult, FindingSpec
from scanner.checks.tls.details import TlsDetails
from scanner.checks.tls.findings import CATALOGUE, notes_for, tls_details, tls_findings
from scanner.checks.tls.hsts import hsts_from_identity
from scanner.checks.tls.rating import rate
from scanner.checks.tls.scan import Endpoint, grading_dialer, scan_endpoint

# What identification saw of its own handshake; kept next to the grade (details.tls replaces it).
IDENTIFICATION_KEYS = ("negotiated_version", "negotiated_cipher")


class TlsCheck:
    name = "tls"
    catalogue: tuple[FindingSpec, ...] = CATALOGUE
    after: tuple[str, ...] = ()
    # grading has its own deadline (Limits.tls_endpoint_s) and reads no other check's details
    runs_alongside = True

    def applies(self, context: CheckContext) -> bool:
        return context.identity.tls

    def run(self, context: CheckContext) -> CheckResult:
        endpoint = Endpoint(
            address=context.target.address,
            port=context.port,
            hostname=context.target.hostname,
            dialer=grading_dialer(context.dialer),
            ca_file=context.options.ca_file,
            active=context.options.active,
        )
        hsts = hsts_from_identity(context.identity.service, context.identity.details)
        outcome = scan_endpoint(endpoint, hsts)
        seen = _identification_view(context.identity.details)
        if outcome.facts is None:
            reason = outcome.error or "no TLS handshake succeeded"
            ungraded = TlsDetails.partial(**seen, grade=None, not_graded=reason,
                                          connections=outcome.connections)
            return CheckResult(details={"tls": ungraded.to_dict()},
                               notes=(f"TLS grade not given: {reason}",))
        rating = rate(outcome.facts)
        graded = tls_details(outcome.facts, rating, outcome.seconds, outcome.connections)
        graded = dataclasses.replace(graded, **seen)
        return CheckResult(
            findings=tuple(tls_findings(outcome.facts, rating, context.port)),
            details={"tls": graded.to_dict()},  # merged into identification's (runner.py)
            notes=tuple(notes_for(outcome.facts, rating)),
        )


def _identification_view(details: dict[str, Any]) -> dict[str, Any]:
    seen = details.get("tls")
    if not isinstance(seen, dict):
        return {}
    return {key: seen[key] for key in IDENTIFICATION_KEYS if key in seen}


CHECK = TlsCheck()
