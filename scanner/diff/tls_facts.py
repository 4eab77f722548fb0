"""Readers of the TLS facts a report's port details hold, for comparing two scans.

details.tls goes through its typed loader (scanner.checks.tls.details.TlsDetails): what
identification saw (certificate, negotiated version) and what the TLS check graded (grade,
accepted protocols). Each reader takes a port's details as found in a report (any JSON value)
and returns None when the fact is not there, never raises.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from scanner.checks.tls.details import TlsCertificate, TlsDetails
from scanner.core import grades
from scanner.core.details import load_details

# SSL Labs letters, best first; T and M rank by the grade they would have (scanner.core.grades,
# the one order every output, the diff, alerts and MQTT use).
GRADE_ORDER = grades.LETTERS
# Days left at which an alert fires once each (21: Let's Encrypt renews at 30, so a certificate
# under 21 days means renewal failed; same threshold as tls.expiring_soon). 0 = expired.
EXPIRY_THRESHOLDS_DAYS = (21, 14, 7, 3, 1, 0)
# identification writes subject_cn/issuer_cn; the TLS check's certificate has subject/issuer
CERT_SUMMARY_FIELDS = ("subject_cn", "subject", "issuer_cn", "issuer", "not_after", "serial",
                       "sha256")
MAX_FIELD = 200


def tls_details(details: Any) -> TlsDetails | None:
    """details.tls of a port, typed; None when the port has none."""
    tls = details.get("tls") if isinstance(details, dict) else None
    typed = load_details("tls", tls) if isinstance(tls, dict) else None
    return typed if isinstance(typed, TlsDetails) else None


def grade(details: Any) -> str | None:
    tls = tls_details(details)
    letter = tls.grade if tls is not None else None
    return letter[:4] if isinstance(letter, str) and letter else None


def full_grade(details: Any) -> grades.Grade | None:
    """The grade with, for T and M, the grade it would have without the certificate problem."""
    tls = tls_details(details)
    return tls.graded() if tls is not None else None


def grade_rank(letter: str, would_be: str | None = None) -> int:
    """0 is best, F the worst letter; T/M just below the grade they would have."""
    return grades.grade_rank(letter, would_be)


def protocols(details: Any) -> tuple[tuple[str, ...], str] | None:
    """(protocols, source): the accepted list from the TLS check when there is one, else the
    version identification negotiated (the best the server speaks to a permissive client)."""
    tls = tls_details(details)
    if tls is None:
        return None
    accepted = tls.accepted_protocols()
    if accepted is not None:
        return tuple(name[:MAX_FIELD] for name in accepted), "accepted"
    if isinstance(tls.negotiated_version, str) and tls.negotiated_version:
        return (tls.negotiated_version[:MAX_FIELD],), "negotiated"
    return None


def certificate(details: Any) -> TlsCertificate | None:
    tls = tls_details(details)
    cert = tls.certificate if tls is not None else None
    return cert if cert is not None and cert.to_dict() else None


def certificate_identity(cert: TlsCertificate) -> str | None:
    """What tells two certificates apart: the DER hash, else serial + issuer + validity."""
    if isinstance(cert.sha256, str) and cert.sha256:
        return cert.sha256.lower()
    parts = [str(value) for value in (cert.serial, cert.issuer, cert.not_before, cert.not_after)
             if value is not None]
    return "|".join(parts) or None


def certificate_summary(cert: TlsCertificate) -> dict[str, Any]:
    summary = {}
    for key in CERT_SUMMARY_FIELDS:
        value = getattr(cert, key)
        if isinstance(value, str | int) and not isinstance(value, bool):
            summary[key] = str(value)[:MAX_FIELD]
    return summary


def days_left(cert: TlsCertificate, at: str | None) -> int | None:
    """Whole days from the scan time `at` to not_after (negative: expired), else days_left."""
    not_after = parse_time(cert.not_after)
    moment = parse_time(at)
    if not_after is not None and moment is not None:
        return (not_after - moment) // dt.timedelta(days=1)
    value = cert.days_left
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def expiry_bucket(days: int | None) -> int | None:
    """The smallest threshold at or above `days` (None: further away than every threshold)."""
    if days is None:
        return None
    inside = [threshold for threshold in EXPIRY_THRESHOLDS_DAYS if days <= threshold]
    return min(inside) if inside else None


def parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value or len(value) > 64:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
