"""Pure readers of the TLS facts a report's port details hold, for comparing two scans.

Identification stores details.tls.certificate (subject, issuer, not_after, serial, sha256) and the
negotiated version; the TLS check adds details.tls.grade and details.tls.protocols. Each reader
accepts any JSON value and returns None when the fact is not there, never raises.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from scanner.core import grades

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


def tls_details(details: Any) -> Mapping[str, Any]:
    tls = details.get("tls") if isinstance(details, Mapping) else None
    return tls if isinstance(tls, Mapping) else {}


def grade(details: Any) -> str | None:
    value = tls_details(details).get("grade")
    if isinstance(value, Mapping):  # tolerate {"letter": "A"}
        value = value.get("letter")
    return value[:4] if isinstance(value, str) and value else None


def full_grade(details: Any) -> grades.Grade | None:
    """The grade with, for T and M, the grade it would have without the certificate problem."""
    return grades.grade_of(tls_details(details))


def grade_rank(letter: str, would_be: str | None = None) -> int:
    """0 is best, F the worst letter; T/M just below the grade they would have."""
    return grades.grade_rank(letter, would_be)


def protocols(details: Any) -> tuple[tuple[str, ...], str] | None:
    """(protocols, source): the accepted list from the TLS check when there is one, else the
    version identification negotiated (the best the server speaks to a permissive client)."""
    tls = tls_details(details)
    listed = _protocol_names(tls.get("protocols"))
    if listed is not None:
        return listed, "accepted"
    negotiated = tls.get("negotiated_version")
    if isinstance(negotiated, str) and negotiated:
        return (negotiated[:MAX_FIELD],), "negotiated"
    return None


def _protocol_names(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, list | tuple):
        found = {name for name in (_protocol_name(item) for item in value) if name}
        return tuple(sorted(found))
    if isinstance(value, Mapping):  # {"TLSv1.2": true} or {"TLSv1.2": {"accepted": true}}
        names = [str(key)[:MAX_FIELD] for key, item in value.items() if _accepted(item)]
        return tuple(sorted(names))
    return None


def _protocol_name(item: Any) -> str | None:
    if isinstance(item, str):
        return item[:MAX_FIELD]
    if isinstance(item, Mapping):
        name = item.get("name") or item.get("protocol")
        if isinstance(name, str) and _accepted(item):
            return name[:MAX_FIELD]
    return None


def _accepted(item: Any) -> bool:
    if isinstance(item, Mapping):
        flag = item.get("accepted", item.get("supported", item.get("enabled", True)))
        return bool(flag)
    return bool(item)


def certificate(details: Any) -> Mapping[str, Any] | None:
    cert = tls_details(details).get("certificate")
    return cert if isinstance(cert, Mapping) and cert else None


def certificate_identity(cert: Mapping[str, Any]) -> str | None:
    """What tells two certificates apart: the DER hash, else serial + issuer + validity."""
    sha = cert.get("sha256") or cert.get("fingerprint_sha256")
    if isinstance(sha, str) and sha:
        return sha.lower()
    parts = [str(cert.get(key)) for key in ("serial", "issuer", "not_before", "not_after")
             if cert.get(key) is not None]
    return "|".join(parts) or None


def certificate_summary(cert: Mapping[str, Any]) -> dict[str, Any]:
    summary = {}
    for key in CERT_SUMMARY_FIELDS:
        value = cert.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool):
            summary[key] = str(value)[:MAX_FIELD]
    return summary


def days_left(cert: Mapping[str, Any], at: str | None) -> int | None:
    """Whole days from the scan time `at` to not_after (negative: expired), else days_left."""
    not_after = parse_time(cert.get("not_after"))
    moment = parse_time(at)
    if not_after is not None and moment is not None:
        return (not_after - moment) // dt.timedelta(days=1)
    value = cert.get("days_left")
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
