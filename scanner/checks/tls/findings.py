"""What the grade means for the user: findings with evidence and concrete fixes, and the details.

Pure functions over TlsFacts and the Rating; the catalogue (ids, usual severities) is data here,
next to the remediation texts it uses.
"""

from __future__ import annotations

import dataclasses

from scanner.checks.base import FindingSpec
from scanner.checks.tls.certificate import CertificateVerdict
from scanner.checks.tls.details import (
    GradeCap,
    HstsFacts,
    Negotiation,
    TlsCertificate,
    TlsDetails,
    TlsScores,
    TlsVulnerabilities,
)
from scanner.checks.tls.facts import PROTOCOLS, Suite, TlsFacts
from scanner.checks.tls.hsts import A_PLUS_MIN_AGE
from scanner.checks.tls.rating import Rating
from scanner.core.findings import Finding, Severity

SSL_LABS_GUIDE = "https://github.com/ssllabs/research/wiki/SSL-Server-Rating-Guide"
MOZILLA_TLS = "https://wiki.mozilla.org/Security/Server_Side_TLS"
HA_HTTP_DOCS = "https://www.home-assistant.io/integrations/http/"
HA_SECURING = "https://www.home-assistant.io/docs/configuration/securing/"
LETS_ENCRYPT = "https://letsencrypt.org/getting-started/"

GRADE = FindingSpec("tls.grade", Severity.MEDIUM, "TLS configuration graded below A",
                    (SSL_LABS_GUIDE, MOZILLA_TLS))
UNTRUSTED = FindingSpec("tls.untrusted", Severity.HIGH, "TLS certificate is not trusted",
                        (HA_SECURING, LETS_ENCRYPT))
EXPIRED = FindingSpec("tls.expired", Severity.HIGH, "TLS certificate has expired", (LETS_ENCRYPT,))
EXPIRING_SOON = FindingSpec("tls.expiring_soon", Severity.MEDIUM,
                            "TLS certificate expires in less than 21 days", (LETS_ENCRYPT,))
HOSTNAME_MISMATCH = FindingSpec("tls.hostname_mismatch", Severity.HIGH,
                                "TLS certificate is for another name", (HA_SECURING,))
INCOMPLETE_CHAIN = FindingSpec("tls.incomplete_chain", Severity.MEDIUM,
                               "TLS certificate chain is incomplete", (LETS_ENCRYPT,))
LEGACY_PROTOCOL = FindingSpec("tls.legacy_protocol", Severity.LOW,
                              "Deprecated SSL/TLS protocol versions enabled", (MOZILLA_TLS,))
WEAK_CIPHER = FindingSpec("tls.weak_cipher", Severity.MEDIUM, "Weak cipher suites accepted",
                          (MOZILLA_TLS,))
NO_FORWARD_SECRECY = FindingSpec("tls.no_forward_secrecy", Severity.LOW,
                                 "Browsers connect without forward secrecy", (MOZILLA_TLS,))
NO_HSTS = FindingSpec("tls.no_hsts", Severity.LOW, "HTTPS without HSTS",
                      ("https://developer.mozilla.org/docs/Web/HTTP/Headers/Strict-Transport-Security",))
KNOWN_VULNERABILITY = FindingSpec("tls.known_vulnerability", Severity.HIGH,
                                  "TLS implementation has a known vulnerability", (MOZILLA_TLS,))

CATALOGUE = (GRADE, UNTRUSTED, EXPIRED, EXPIRING_SOON, HOSTNAME_MISMATCH, INCOMPLETE_CHAIN,
             LEGACY_PROTOCOL, WEAK_CIPHER, NO_FORWARD_SECRECY, NO_HSTS, KNOWN_VULNERABILITY)

# DECISION (severity by grade): A- is a good configuration with one gap (info); B is sound but
# dated (low); C-E have a real weakness (medium); F is broken, T and M mean clients get a
# certificate warning and users learn to click through it, which is how interception works (high).
GRADE_SEVERITY = {
    "A-": Severity.INFO, "B": Severity.LOW, "C": Severity.MEDIUM, "D": Severity.MEDIUM,
    "E": Severity.MEDIUM, "F": Severity.HIGH, "T": Severity.HIGH, "M": Severity.HIGH,
}

# --- fixes (Mozilla "intermediate" profile, guidelines v5.7, 2023; HA http integration 2025) ----

NGINX_PROTOCOLS = "ssl_protocols TLSv1.2 TLSv1.3;"
NGINX_CIPHERS = (
    "ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:"
    "ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:"
    "DHE-RSA-CHACHA20-POLY1305; ssl_prefer_server_ciphers off;"
)
HA_PROFILE = (
    "If Home Assistant serves TLS itself, keep `ssl_profile: modern` (the default) under `http:` "
    "in configuration.yaml; `intermediate` re-enables older suites."
)
NGINX_HSTS = 'add_header Strict-Transport-Security "max-age=63072000" always;'
HA_HSTS = (
    "Home Assistant's own web server cannot send HSTS: put it behind a reverse proxy (e.g. the "
    "NGINX SSL proxy add-on, option `hsts`)."
)
CERT_FIX = (
    "Use a publicly trusted certificate for the name you connect with: Let's Encrypt via the "
    "Let's Encrypt or DuckDNS add-on (Home Assistant), certbot or your proxy's ACME support; "
    "point the server at the full chain (`ssl_certificate /ssl/fullchain.pem;` in nginx, "
    "`ssl_certificate: /ssl/fullchain.pem` and `ssl_key: /ssl/privkey.pem` under `http:` in HA)."
)

RULE_FIXES = {
    "sslv2": f"Disable SSL 2.0/3.0 and TLS 1.0/1.1: nginx `{NGINX_PROTOCOLS}`. {HA_PROFILE}",
    "sslv3": f"Disable SSL 3.0 and TLS 1.0/1.1: nginx `{NGINX_PROTOCOLS}`. {HA_PROFILE}",
    "poodle": f"Disable SSL 3.0: nginx `{NGINX_PROTOCOLS}`.",
    "tls10_11": f"Disable TLS 1.0 and 1.1: nginx `{NGINX_PROTOCOLS}`. {HA_PROFILE}",
    "no_tls12": f"Enable TLS 1.2 and 1.3 (upgrade the server's TLS library): `{NGINX_PROTOCOLS}`.",
    "no_tls13": f"Enable TLS 1.3: nginx `{NGINX_PROTOCOLS}` (OpenSSL 1.1.1 or newer).",
    "no_fs": f"Offer and prefer ECDHE suites: nginx `{NGINX_CIPHERS}`",
    "no_aead": f"Offer AES-GCM / ChaCha20-Poly1305 suites: nginx `{NGINX_CIPHERS}`",
    "block64": f"Remove 3DES: nginx `{NGINX_CIPHERS}`",
    "rc4": f"Remove RC4: nginx `{NGINX_CIPHERS}`",
    "rc4_modern": f"Remove RC4: nginx `{NGINX_CIPHERS}`",
    "export": f"Remove export suites: nginx `{NGINX_CIPHERS}`",
    "anonymous": f"Remove anonymous suites (never `aNULL` in the cipher list): `{NGINX_CIPHERS}`",
    "null_cipher": f"Remove NULL suites (never `eNULL` in the cipher list): `{NGINX_CIPHERS}`",
    "cert_key": "Issue a new certificate with an RSA 2048+ or ECDSA P-256 key.",
    "kx_params": "Use 2048-bit DH parameters (nginx `ssl_dhparam` with ffdhe2048) or ECDHE only.",
    "heartbleed": "Update OpenSSL (1.0.1g or newer) and replace the private key and certificate.",
    "ccs": "Update OpenSSL (CVE-2014-0224 is fixed since 1.0.1h).",
    "robot": "Disable RSA key exchange (ECDHE suites only) or update the TLS implementation.",
    "insecure_reneg": "Update the TLS implementation (RFC 5746 secure renegotiation).",
    "crime": "Disable TLS compression (update the TLS library; OpenSSL 1.1+ has none).",
    "weak_signature": CERT_FIX,
    "incomplete_chain": "Serve the full chain: nginx `ssl_certificate fullchain.pem;`.",
    "no_hsts": NGINX_HSTS + " " + HA_HSTS,
}


# --- findings -----------------------------------------------------------------------------------


def tls_findings(facts: TlsFacts, rating: Rating, port: int) -> list[Finding]:
    found: list[Finding] = []
    verdict = rating.certificate
    if verdict is not None and facts.certificate is not None:
        found += _certificate_findings(facts, verdict, port)
    found += _protocol_findings(facts, port)
    found += _cipher_findings(facts, port)
    found += _cap_findings(rating, port)
    found += _hsts_findings(facts, port)
    grade = _grade_finding(rating, port)
    if grade is not None:
        found.insert(0, grade)
    return found


def _grade_finding(rating: Rating, port: int) -> Finding | None:
    if rating.grade is None or rating.grade in ("A+", "A") or rating.scores is None:
        return None
    scores = rating.scores
    parts = [
        f"grade {rating.grade} by the SSL Labs rating guide (2009r)",
        f"scores: protocol {scores.protocol}, key exchange {scores.key_exchange}, "
        f"cipher {scores.cipher}, total {scores.total}",
    ]
    if rating.grade in ("T", "M"):
        parts.append(f"grade if trust issues are ignored: {rating.grade_if_trust_ignored}")
        parts += list(rating.trust_issues) + ([rating.name_issue] if rating.name_issue else [])
    parts += [f"capped at {cap.grade}: {cap.reason}" for cap in rating.caps]
    parts += [f"warning: {warning}" for warning in rating.warnings]
    fixes = list(dict.fromkeys(RULE_FIXES[cap.rule] for cap in rating.caps
                               if cap.rule in RULE_FIXES))
    if rating.trust_issues or rating.name_issue:
        fixes.insert(0, _certificate_fix(rating.certificate))
    return GRADE.finding(
        port=port,
        title=f"TLS grade {rating.grade}",
        severity=GRADE_SEVERITY.get(rating.grade, Severity.MEDIUM),
        evidence="; ".join(parts),
        remediation=" ".join(fixes) or "See the caps in the evidence.",
    )


DATE_ISSUES = ("certificate expired", "certificate not valid before")
RENEW_FIX = (
    "Renew the certificate and make renewal automatic (Let's Encrypt renews at 30 days left; "
    "check the DuckDNS / Let's Encrypt add-on's or certbot's log)."
)


def _certificate_fix(verdict: CertificateVerdict | None) -> str:
    only_dates = verdict is not None and all(
        issue.startswith(DATE_ISSUES) for issue in verdict.trust_issues
    ) and not verdict.hostname_mismatch
    return RENEW_FIX if only_dates else CERT_FIX


def _certificate_findings(facts: TlsFacts, verdict: CertificateVerdict, port: int) -> list[Finding]:
    cert = facts.certificate
    assert cert is not None
    found: list[Finding] = []
    about = f"subject {cert.subject}, issuer {cert.issuer}"
    untrusted = [issue for issue in verdict.trust_issues if not issue.startswith(DATE_ISSUES)]
    if untrusted:
        title = "Self-signed TLS certificate" if verdict.self_signed else UNTRUSTED.title
        found.append(UNTRUSTED.finding(port=port, title=title,
                                       evidence="; ".join([*untrusted, about]),
                                       remediation=CERT_FIX))
    if verdict.expired or verdict.not_yet_valid:
        title = EXPIRED.title if verdict.expired else "TLS certificate is not valid yet"
        when = (f"expired {-verdict.days_left} days ago ({cert.not_after:%Y-%m-%d})"
                if verdict.expired else f"valid from {cert.not_before:%Y-%m-%d}")
        found.append(EXPIRED.finding(
            port=port, title=title, evidence=f"{when}; {about}", remediation=RENEW_FIX,
        ))
    if verdict.expiring_soon:
        found.append(EXPIRING_SOON.finding(
            port=port,
            evidence=f"expires {cert.not_after:%Y-%m-%d} ({verdict.days_left} days left); {about}",
            remediation="Automatic renewal is not working (Let's Encrypt renews at 30 days): "
                        "check the DuckDNS / Let's Encrypt add-on or certbot logs, then renew.",
        ))
    if verdict.hostname_mismatch and verdict.name_issue:
        found.append(HOSTNAME_MISMATCH.finding(
            port=port, evidence=verdict.name_issue,
            remediation="Get a certificate that lists this name (for a DuckDNS name, the "
                        "DuckDNS add-on's `domains:`), or connect with a name the certificate has.",
        ))
    if verdict.incomplete_chain and not verdict.untrusted_issuer:
        where = ", ".join(cert.aia_ca_issuers) or "-"
        found.append(INCOMPLETE_CHAIN.finding(
            port=port,
            evidence=f"the server does not send the intermediate '{cert.missing_issuer}' "
                     f"(clients that can must fetch it from {where}; apps and many devices fail)",
            remediation=RULE_FIXES["incomplete_chain"] + " In HA: `ssl_certificate: "
                        "/ssl/fullchain.pem` (not cert.pem).",
        ))
    return found


def _protocol_findings(facts: TlsFacts, port: int) -> list[Finding]:
    legacy = [v for v in ("SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1") if facts.supports(v)]
    if not legacy:
        return []
    broken = any(v in ("SSLv2", "SSLv3") for v in legacy)
    return [LEGACY_PROTOCOL.finding(
        port=port,
        severity=Severity.HIGH if broken else Severity.LOW,
        evidence="the server accepts " + ", ".join(legacy),
        remediation=RULE_FIXES["tls10_11"],
    )]


WEAK_CATEGORIES: tuple[tuple[str, Severity], ...] = (
    ("NULL (no encryption)", Severity.HIGH),
    ("anonymous (no authentication)", Severity.HIGH),
    ("export-grade", Severity.HIGH),
    ("RC4", Severity.MEDIUM),
    ("DES / 64-bit block (3DES, IDEA, RC2)", Severity.LOW),
    ("under 128-bit keys", Severity.MEDIUM),
)


def _weak_category(suite: Suite) -> int | None:
    tests = (suite.null_cipher, suite.anonymous, suite.export, suite.rc4, suite.block_64,
             0 < suite.key_bits < 128)
    return next((index for index, hit in enumerate(tests) if hit), None)


def _cipher_findings(facts: TlsFacts, port: int) -> list[Finding]:
    weak: dict[int, set[str]] = {}
    for suite in facts.suites:
        category = _weak_category(suite)
        if category is not None:
            weak.setdefault(category, set()).add(suite.name)
    if not weak:
        return []
    severities = [WEAK_CATEGORIES[c][1] for c in weak]
    worst = max(severities, key=lambda s: s.rank)
    evidence = "; ".join(
        f"{WEAK_CATEGORIES[c][0]}: {', '.join(sorted(names)[:4])}"
        + (f" (+{len(names) - 4} more)" if len(names) > 4 else "")
        for c, names in sorted(weak.items())
    )
    return [WEAK_CIPHER.finding(port=port, severity=worst, evidence=evidence,
                                remediation=f"nginx: `{NGINX_CIPHERS}` {HA_PROFILE}")]


def _cap_findings(rating: Rating, port: int) -> list[Finding]:
    found: list[Finding] = []
    no_fs = [cap for cap in rating.caps if cap.rule == "no_fs"]
    if no_fs:
        found.append(NO_FORWARD_SECRECY.finding(port=port, evidence=no_fs[0].reason,
                                                remediation=RULE_FIXES["no_fs"]))
    vulnerable = [cap for cap in rating.caps
                  if cap.rule in ("heartbleed", "ccs", "robot", "insecure_reneg", "crime")]
    if vulnerable:
        severity = Severity.CRITICAL if any(c.rule == "heartbleed" for c in vulnerable) else (
            Severity.HIGH if any(c.grade == "F" for c in vulnerable) else Severity.MEDIUM)
        found.append(KNOWN_VULNERABILITY.finding(
            port=port, severity=severity,
            evidence="; ".join(cap.reason for cap in vulnerable),
            remediation=" ".join(dict.fromkeys(RULE_FIXES[c.rule] for c in vulnerable)),
        ))
    return found


def _hsts_findings(facts: TlsFacts, port: int) -> list[Finding]:
    hsts = facts.hsts
    if not hsts.applicable:
        return []
    fix = f"nginx: `{NGINX_HSTS}` {HA_HSTS}"
    if not hsts.present or not hsts.max_age:
        what = "no Strict-Transport-Security header" if not hsts.present else "max-age=0"
        return [NO_HSTS.finding(
            port=port,
            evidence=f"{what} on the HTTPS response: a browser that is sent to http:// once "
                     "(a typed address, an old link) can be intercepted",
            remediation=fix)]
    if hsts.max_age < A_PLUS_MIN_AGE:
        return [NO_HSTS.finding(
            port=port, severity=Severity.INFO, title="HSTS max-age below 180 days",
            evidence=f"Strict-Transport-Security: {hsts.raw}", remediation=fix)]
    return []


# --- details ------------------------------------------------------------------------------------


def tls_details(
    facts: TlsFacts, rating: Rating, seconds: float, connections: int | None = None
) -> TlsDetails:
    scores = rating.scores
    return TlsDetails(
        grade=rating.grade,
        grade_if_trust_ignored=rating.grade_if_trust_ignored,
        not_graded=rating.not_graded,
        method="SSL Labs SSL Server Rating Guide 2009r",
        scores=None if scores is None else TlsScores(
            protocol=scores.protocol, key_exchange=scores.key_exchange,
            cipher=scores.cipher, total=scores.total,
        ),
        caps=tuple(GradeCap(grade=cap.grade, reason=cap.reason, rule=cap.rule)
                   for cap in rating.caps),
        warnings=tuple(rating.warnings),
        trust_issues=tuple(rating.trust_issues),
        name_issue=rating.name_issue,
        protocols=tuple(facts.supported_versions),
        suites={v: tuple(s.name for s in facts.protocol(v).suites) for v in PROTOCOLS
                if facts.protocol(v).suites},
        not_tested=(*facts.not_tested,
                    *(v for v in PROTOCOLS if facts.protocol(v).status == "not_tested")),
        negotiated=tuple(Negotiation(client=n.client, version=n.version, suite=n.suite.name)
                         for n in rating.negotiations),
        server_cipher_order=facts.preference.server_enforces_order,
        certificate=_certificate_details(facts, rating.certificate),
        vulnerabilities=_vulnerability_details(facts),
        hsts=_hsts_details(facts),
        sni=None if facts.name_is_address else facts.name,
        scan_seconds=round(seconds, 3),
        connections=connections,  # TCP connections the grade took
    )


def _certificate_details(
    facts: TlsFacts, verdict: CertificateVerdict | None
) -> TlsCertificate | None:
    cert = facts.certificate
    if cert is None or verdict is None:
        return None
    return TlsCertificate(
        subject=cert.subject,
        issuer=cert.issuer,
        sans=tuple(cert.sans),
        not_before=cert.not_before.isoformat(timespec="seconds"),
        not_after=cert.not_after.isoformat(timespec="seconds"),
        days_left=verdict.days_left,
        key=f"{cert.key_type} {cert.key_bits}",
        signature=cert.signature_hash,
        trusted=not verdict.trust_issues and cert.chain_trusted,
        trust_anchor=cert.trust_anchor,
        self_signed=cert.self_signed,
        chain_complete=cert.chain_complete,
        chain_length=cert.chain_length,
        hostname_matches=None if verdict.hostname_mismatch is None
        else not verdict.hostname_mismatch,
        sha256=cert.sha256,
        notes=tuple(verdict.notes),
    )


def _vulnerability_details(facts: TlsFacts) -> TlsVulnerabilities:
    # The record is the facts' fields as they are (the same names, in the same order).
    return TlsVulnerabilities(**dataclasses.asdict(facts.vulnerabilities))


def _hsts_details(facts: TlsFacts) -> HstsFacts:
    hsts = facts.hsts
    return HstsFacts(
        applicable=hsts.applicable,
        present=hsts.present,
        max_age=hsts.max_age,
        include_subdomains=hsts.include_subdomains,
        preload=hsts.preload,
        header=hsts.raw,
    )


def notes_for(facts: TlsFacts, rating: Rating) -> list[str]:
    notes: list[str] = []
    if rating.not_graded:
        notes.append(f"TLS grade not given: {rating.not_graded}")
    if rating.certificate is not None:
        notes += [n for n in rating.certificate.notes if not n.startswith("revocation")]
    notes += [f"TLS test not completed: {item}" for item in facts.not_tested[:5]]
    return notes

