"""details.tls: what identification saw of its handshake, then what the TLS check graded.

Identification writes certificate (subject_cn, issuer_cn, serial...), negotiated_version and
negotiated_cipher (or handshake_error); the TLS check adds the grade and everything it rests
on, and its certificate fields merge into identification's (scanner.checks.runner). One class
holds both: a port TLS was not graded on simply has no grade.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from scanner.core.details import OMIT_NONE, DetailsRecord, Row, scalar_text
from scanner.core.grades import Grade
from scanner.core.text import safe_text

CAPS_SHOWN = 16


@dataclass(frozen=True)
class TlsCertificate(DetailsRecord):
    """Identification's summary of the certificate (it alone writes subject_cn, issuer_cn and
    serial: left out when None, so the TLS check's merge keeps them) and the check's verdict."""

    subject: str | None = None
    subject_cn: str | None = field(default=None, metadata=OMIT_NONE)
    issuer: str | None = None
    issuer_cn: str | None = field(default=None, metadata=OMIT_NONE)
    sans: tuple[str, ...] = ()
    not_before: str | None = None
    not_after: str | None = None
    self_signed: bool | None = None
    serial: str | None = field(default=None, metadata=OMIT_NONE)
    sha256: str | None = None
    days_left: int | None = None
    key: str | None = None
    signature: str | None = None
    trusted: bool | None = None
    trust_anchor: str | None = None
    chain_complete: bool | None = None
    chain_length: int | None = None
    hostname_matches: bool | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class TlsScores(DetailsRecord):
    protocol: int | None = None
    key_exchange: int | None = None
    cipher: int | None = None
    total: int | None = None


@dataclass(frozen=True)
class GradeCap(DetailsRecord):
    """A rule that holds the grade at `grade` at best (rating.py's caps)."""

    grade: str = ""
    reason: str = ""
    rule: str = ""

    def text(self) -> str:
        return f"at most {safe_text(self.grade, 8)}: {scalar_text(self.reason)}" if self.grade \
            else scalar_text(self.reason)


@dataclass(frozen=True)
class Negotiation(DetailsRecord):
    client: str = ""
    version: str = ""
    suite: str = ""


@dataclass(frozen=True)
class TlsVulnerabilities(DetailsRecord):
    heartbleed: bool | None = None
    ccs_injection: bool | None = None
    robot: str | None = None
    secure_renegotiation: bool | None = None
    client_renegotiation: bool | None = None
    compression: bool | None = None
    fallback_scsv: bool | None = None


@dataclass(frozen=True)
class HstsFacts(DetailsRecord):
    applicable: bool | None = None
    present: bool | None = None
    max_age: int | None = None
    include_subdomains: bool | None = None
    preload: bool | None = None
    header: str | None = None


@dataclass(frozen=True)
class TlsDetails(DetailsRecord):
    HIGHLIGHTS = (
        ("grade", "grade"),
        ("not_graded", "not graded"),
        ("protocols", "protocols"),
        ("certificate.subject_cn", "certificate for"),
        ("certificate.subject", "certificate subject"),
        ("certificate.issuer_cn", "issued by"),
        ("certificate.issuer", "issuer"),
        ("certificate.not_after", "valid until"),
        ("certificate.days_left", "days left"),
        ("certificate.trusted", "trusted"),
        ("certificate.hostname_matches", "name matches"),
        ("certificate.self_signed", "self-signed"),
        ("certificate.key", "key"),
        ("negotiated_version", "negotiated"),
        ("handshake_error", "handshake error"),
    )

    # identification's handshake (the check writes the certificate's verdict into it; the
    # others are identification's, left out of the check's record when None)
    certificate: TlsCertificate | None = None
    negotiated_version: str | None = field(default=None, metadata=OMIT_NONE)
    negotiated_cipher: str | None = field(default=None, metadata=OMIT_NONE)
    handshake_error: str | None = field(default=None, metadata=OMIT_NONE)
    # the TLS check's grade
    grade: str | None = None
    grade_if_trust_ignored: str | None = None
    not_graded: str | None = None
    method: str | None = None
    scores: TlsScores | None = None
    caps: tuple[GradeCap, ...] = ()
    warnings: tuple[str, ...] = ()
    trust_issues: tuple[str, ...] = ()
    name_issue: str | None = None
    protocols: tuple[str, ...] = ()
    suites: Mapping[str, tuple[str, ...]] | None = None
    not_tested: tuple[str, ...] = ()
    negotiated: tuple[Negotiation, ...] = ()
    server_cipher_order: bool | None = None
    vulnerabilities: TlsVulnerabilities | None = None
    hsts: HstsFacts | None = None
    sni: str | None = None
    scan_seconds: float | None = None
    connections: int | None = None

    def graded(self) -> Grade | None:
        if not self.grade:
            return None
        return Grade(self.grade[:8], self.grade_if_trust_ignored or None)

    def score_rows(self) -> tuple[Row, ...]:
        if self.scores is None:
            return ()
        return tuple(Row(name.replace("_", " "), scalar_text(value))
                     for name, value in self.scores.to_dict().items())

    def cap_texts(self) -> tuple[str, ...]:
        return tuple(cap.text() for cap in self.caps[:CAPS_SHOWN])

    def crawler_phrase(self) -> tuple[str, str] | None:
        """Crawlers index the certificate by its name (scanner.core.details.CrawlerFacts)."""
        cert = self.certificate
        name = (cert.subject_cn or cert.subject) if cert is not None else None
        return ("certificate", f"certificate for {safe_text(name, 80)}") if name else None

    def accepted_protocols(self) -> tuple[str, ...] | None:
        """The protocols the TLS check found accepted (None: it did not grade this port)."""
        return tuple(sorted(set(self.protocols))) if "protocols" in self._keys() else None

    def _keys(self) -> tuple[str, ...]:
        return self.json_keys if self.json_keys is not None else tuple(self.to_dict())


DETAILS = {"tls": TlsDetails.from_dict}
