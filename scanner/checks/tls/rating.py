"""The SSL Labs "SSL Server Rating Guide", revision 2009r, as pure functions over TlsFacts.

Sources: the guide's base text (ssllabs/research, docs/SSL_Server_Rating_Guide.xml, revision
2009e), its "Changes" list on the ssllabs/research wiki (2009f..2009r), and the SSL Labs blog
posts that announced each change; testssl.sh 3.2's run_rating is a second reading. Where they
differ or the guide is silent, a "DECISION" comment next to the rule says what we do and why,
and tests/unit/test_tls_rating.py pins it.

The method:
1. Certificate first: a trust problem gives T, a name mismatch M (both "out of scope" grades);
   the grade the server would get without them is always computed too.
2. Protocol support (30 %), key exchange (30 %), cipher strength (40 %) are scored from tables;
   a zero in any category makes the total zero. The total maps to a letter.
3. Rules cap the letter (F, C, B, A-) for things the numbers do not capture; warnings keep A+
   away; A+ rewards an A with HSTS (max-age >= 180 days) and no warning.

"Suites browsers actually negotiate": SSL Labs applies the forward-secrecy, AEAD and 64-bit-block
penalties only to suites its reference browsers end up with. We model each reference client
(clients.py) against the server: the client uses the highest protocol version both support; at
that version, if the server enforces its own order (measured by scan.py for TLS 1.2), it picks
the first suite of its order that the client offers, else the client's first suite the server
accepts. A client left without a common suite cannot connect and does not count. TLS 1.3 suites
are all AEAD with forward secrecy, so the TLS 1.3 choice never matters to a penalty; we take the
client's order there. If no reference client can connect at all, the penalties apply to what
the server offers (otherwise a server could dodge them by being unreachable for browsers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from scanner.checks.tls.certificate import CertificateVerdict, assess
from scanner.checks.tls.clients import REFERENCE_CLIENTS, ReferenceClient
from scanner.checks.tls.facts import PROTOCOLS, Suite, TlsFacts
from scanner.checks.tls.hsts import A_PLUS_MIN_AGE

# Best first. T and M are not on this scale: they replace it.
LETTERS = ("A+", "A", "A-", "B", "C", "D", "E", "F")

# --- the guide's tables (base text, 2009e) ------------------------------------------------------

# DECISION: the base text scores SSL 2.0 at 20 %, later wiki revisions at 0 %; it makes no
# difference, SSL 2.0 caps the grade at F (2009c) whichever it is. TLS 1.3 postdates the table;
# like SSL Labs and testssl.sh we score it as TLS 1.2 (100 %).
PROTOCOL_SCORES = {
    "SSLv2": 20,
    "SSLv3": 80,
    "TLSv1.0": 90,
    "TLSv1.1": 95,
    "TLSv1.2": 100,
    "TLSv1.3": 100,
}

# Key or DH parameter strength in RSA-equivalent bits -> score. Anonymous key exchange scores 0,
# exportable key exchange 40 (handled in key_exchange_score).
KEY_EXCHANGE_SCORES: tuple[tuple[int, int], ...] = (
    (4096, 100),
    (2048, 90),
    (1024, 80),
    (512, 40),
    (0, 20),
)

# Symmetric key size in bits -> score. DECISION: 3DES is scored at the 168 bits sslyze reports
# (the guide itself lists 168 as an example of "< 256 bits", 80 %); its weakness is penalised by
# the 64-bit-block rule (C) rather than by the score. (SSL Labs' pages show 3DES as 112 bits.)
CIPHER_SCORES: tuple[tuple[int, int], ...] = ((256, 100), (128, 80), (1, 20), (0, 0))

# score >= threshold -> letter
LETTER_THRESHOLDS = ((80, "A"), (65, "B"), (50, "C"), (35, "D"), (20, "E"), (0, "F"))


@dataclass(frozen=True)
class Cap:
    grade: str  # the best grade the server can get because of this
    reason: str
    rule: str  # short stable id, e.g. "tls10_11"


@dataclass(frozen=True)
class Scores:
    protocol: int
    key_exchange: int
    cipher: int
    total: int


@dataclass(frozen=True)
class Negotiation:
    client: str
    version: str
    suite: Suite


@dataclass(frozen=True)
class Rating:
    grade: str | None  # None: the scan was incomplete, no honest grade
    grade_if_trust_ignored: str | None
    scores: Scores | None
    caps: tuple[Cap, ...]
    warnings: tuple[str, ...]
    trust_issues: tuple[str, ...]
    name_issue: str | None
    negotiations: tuple[Negotiation, ...]  # what each reference client that connects gets
    certificate: CertificateVerdict | None
    not_graded: str | None = None  # why grade is None


# --- scores -------------------------------------------------------------------------------------


def protocol_score(facts: TlsFacts) -> int:
    """(best + worst) / 2 over the supported versions."""
    scores = [PROTOCOL_SCORES[version] for version in facts.supported_versions]
    return (max(scores) + min(scores)) // 2 if scores else 0


def cipher_score(suites: Sequence[Suite]) -> int:
    """(strongest + weakest) / 2 over every accepted suite."""
    scores = [_cipher_strength_score(suite.key_bits) for suite in suites]
    return (max(scores) + min(scores)) // 2 if scores else 0


def _cipher_strength_score(bits: int) -> int:
    return next(score for floor, score in CIPHER_SCORES if bits >= floor)


def key_exchange_score(facts: TlsFacts) -> int:
    """The weakest key exchange offered decides (DECISION: the guide gives a table of "aspects"
    without saying how several combine; like testssl.sh we take the weakest, which is also what
    the guide's note on DHE implies: "the strength of the key exchange will never go above")."""
    suites = facts.suites
    if not suites:
        return 0
    if any(suite.anonymous for suite in suites):
        return 0  # anonymous key exchange: no authentication at all
    scores = [_key_strength_score(bits) for bits in _key_strengths(facts)]
    if any(suite.export for suite in suites):
        scores.append(40)  # exportable key exchange (limited to 512 bits)
    return min(scores) if scores else 0


def _key_strengths(facts: TlsFacts) -> list[int]:
    strengths = [
        bits for suite in facts.suites if (bits := suite.ephemeral_rsa_equivalent) is not None
    ]
    if facts.certificate is not None:
        strengths.append(facts.certificate.key_rsa_equivalent)
    return strengths


def _key_strength_score(bits: int) -> int:
    return next(score for floor, score in KEY_EXCHANGE_SCORES if bits >= floor)


def total_score(protocol: int, key_exchange: int, cipher: int) -> int:
    if 0 in (protocol, key_exchange, cipher):
        return 0  # "a zero in any category forces the total to zero"
    return (30 * protocol + 30 * key_exchange + 40 * cipher) // 100


def letter_for(score: int) -> str:
    return next(letter for floor, letter in LETTER_THRESHOLDS if score >= floor)


def worse(a: str, b: str) -> str:
    return a if LETTERS.index(a) >= LETTERS.index(b) else b


# --- reference clients --------------------------------------------------------------------------


def negotiated_suite(client: ReferenceClient, facts: TlsFacts) -> Negotiation | None:
    """What `client` ends up with against this server, or None if it cannot connect."""
    common = [v for v in PROTOCOLS if v in client.versions and facts.supports(v)]
    if not common:
        return None
    version = common[-1]  # clients do not fall back to a lower version on a failed handshake
    accepted = {suite.name: suite for suite in facts.protocol(version).suites}
    offered = client.tls13_suites if version == "TLSv1.3" else client.suites
    candidates = [name for name in offered if name in accepted]
    if not candidates:
        return None
    choice = candidates[0]
    preference = facts.preference
    if version == "TLSv1.2" and preference.server_enforces_order:
        choice = next((name for name in preference.server_order if name in candidates), choice)
    return Negotiation(client.name, version, accepted[choice])


def negotiations(
    facts: TlsFacts, clients: Sequence[ReferenceClient] = REFERENCE_CLIENTS
) -> tuple[Negotiation, ...]:
    return tuple(n for client in clients if (n := negotiated_suite(client, facts)) is not None)


# --- caps and warnings --------------------------------------------------------------------------


def protocol_caps(facts: TlsFacts) -> list[Cap]:
    caps: list[Cap] = []
    if facts.supports("SSLv2"):
        caps.append(Cap("F", "SSL 2.0 is supported (insecure since 1996; DROWN)", "sslv2"))
    if facts.supports("SSLv3"):
        if any(_cbc(suite) for suite in facts.protocol("SSLv3").suites):
            caps.append(Cap("C", "SSL 3.0 with CBC suites: vulnerable to POODLE", "poodle"))
        else:
            caps.append(Cap("B", "SSL 3.0 is supported", "sslv3"))
    if facts.supported_versions and not facts.supports("TLSv1.2") and not facts.supports(
        "TLSv1.3"
    ):
        caps.append(Cap("C", "TLS 1.2 is not supported", "no_tls12"))
    old = [v for v in ("TLSv1.0", "TLSv1.1") if facts.supports(v)]
    if old:
        # 2009q (January 2020)
        caps.append(Cap("B", f"{' and '.join(old)} supported (deprecated, RFC 8996)", "tls10_11"))
    if facts.supported_versions and not facts.supports("TLSv1.3"):
        # 2009r (May 2025): TLS 1.3 is needed for A.
        caps.append(Cap("A-", "TLS 1.3 is not supported", "no_tls13"))
    return caps


def _cbc(suite: Suite) -> bool:
    return "_CBC" in suite.name


def cipher_caps(facts: TlsFacts, negotiated: Sequence[Negotiation]) -> list[Cap]:
    suites = facts.suites
    caps: list[Cap] = []
    # Anonymous and NULL suites already zero a category (total 0, F); the caps say why.
    anonymous = sorted({suite.name for suite in suites if suite.anonymous})
    if anonymous:
        caps.append(Cap("F", "anonymous (unauthenticated) key exchange accepted: "
                        + ", ".join(anonymous[:3]), "anonymous"))
    null = sorted({suite.name for suite in suites if suite.null_cipher})
    if null:
        caps.append(Cap("F", "NULL cipher (no encryption) accepted: " + ", ".join(null[:3]),
                        "null_cipher"))
    if any(suite.export for suite in suites):
        caps.append(Cap("F", "export cipher suites are supported (FREAK)", "export"))
    rc4_versions = sorted({suite.protocol for suite in suites if suite.rc4}, key=PROTOCOLS.index)
    if any(PROTOCOLS.index(v) >= PROTOCOLS.index("TLSv1.1") for v in rc4_versions):
        caps.append(Cap("C", "RC4 is accepted with TLS 1.1 or newer", "rc4_modern"))
    elif rc4_versions:
        caps.append(Cap("B", "RC4 is accepted (with older protocols only)", "rc4"))
    caps += _negotiation_caps(suites, negotiated)
    return caps


def _negotiation_caps(suites: Sequence[Suite], negotiated: Sequence[Negotiation]) -> list[Cap]:
    caps: list[Cap] = []
    if negotiated:
        no_fs = [n for n in negotiated if not n.suite.forward_secret]
        no_aead = [n for n in negotiated if not n.suite.aead]
        if no_fs:
            caps.append(Cap("B", "no forward secrecy with " + _who(no_fs), "no_fs"))
        if no_aead:
            caps.append(Cap("B", "no AEAD cipher suite with " + _who(no_aead), "no_aead"))
        block_64 = [
            n for n in negotiated
            if n.suite.block_64 and PROTOCOLS.index(n.version) >= PROTOCOLS.index("TLSv1.1")
        ]
        if block_64:
            caps.append(Cap("C", "64-bit block cipher (3DES) negotiated by " + _who(block_64),
                            "block64"))
        return caps
    # DECISION: no reference browser can connect, so "what browsers negotiate" is empty; judge
    # what the server offers instead (the stricter reading; see the module docstring).
    if suites and not any(suite.forward_secret for suite in suites):
        caps.append(Cap("B", "no forward-secret cipher suite at all", "no_fs"))
    if suites and not any(suite.aead for suite in suites):
        caps.append(Cap("B", "no AEAD cipher suite at all", "no_aead"))
    if any(
        s.block_64 and PROTOCOLS.index(s.protocol) >= PROTOCOLS.index("TLSv1.1") for s in suites
    ):
        caps.append(Cap("C", "64-bit block cipher (3DES) offered with TLS 1.1 or newer",
                        "block64"))
    return caps


def _who(items: Sequence[Negotiation]) -> str:
    return ", ".join(f"{n.client} ({n.version}, {n.suite.name})" for n in items)


def key_caps(facts: TlsFacts) -> list[Cap]:
    """2009e/2014: keys below 2048 bits cap at B, below 1024 at F; Logjam (2015) did the same
    for DH parameters. Anonymous suites need no cap: their key exchange score is 0 (F)."""
    caps: list[Cap] = []
    cert = facts.certificate
    if cert is not None and cert.key_type != "unknown":
        caps += _size_caps(cert.key_rsa_equivalent, f"certificate key ({cert.key_type} "
                           f"{cert.key_bits} bits)", "cert_key")
    ephemeral = [s for s in facts.suites if s.ephemeral_rsa_equivalent is not None]
    if ephemeral:
        weakest = min(ephemeral, key=lambda s: s.ephemeral_rsa_equivalent or 0)
        what = (f"key exchange parameters ({weakest.ephemeral_type} {weakest.ephemeral_bits} bits"
                f"{', ' + weakest.curve if weakest.curve else ''}, {weakest.name})")
        caps += _size_caps(weakest.ephemeral_rsa_equivalent or 0, what, "kx_params")
    return caps


def _size_caps(rsa_bits: int, what: str, rule: str) -> list[Cap]:
    if rsa_bits < 1024:
        return [Cap("F", f"{what} weaker than 1024 RSA bits", rule)]
    if rsa_bits < 2048:
        return [Cap("B", f"{what} weaker than 2048 RSA bits", rule)]
    return []


def vulnerability_caps(facts: TlsFacts) -> list[Cap]:
    v = facts.vulnerabilities
    caps: list[Cap] = []
    if v.heartbleed:
        caps.append(Cap("F", "vulnerable to Heartbleed (CVE-2014-0160)", "heartbleed"))
    if v.ccs_injection:
        caps.append(Cap("F", "vulnerable to OpenSSL CCS injection (CVE-2014-0224)", "ccs"))
    if v.robot and v.robot.startswith("vulnerable"):
        # DECISION: SSL Labs gives F for ROBOT (2018-03); we count the weak oracle too, as the
        # grading update makes no distinction. testssl.sh only flags the strong one.
        caps.append(Cap("F", f"vulnerable to ROBOT ({v.robot.replace('_', ' ')})", "robot"))
    if v.secure_renegotiation is False and v.client_renegotiation:
        caps.append(Cap("F", "insecure renegotiation (no RFC 5746, client renegotiation "
                        "accepted)", "insecure_reneg"))
    if v.compression:
        # DECISION: the guide (2009c) caps CRIME at B; some tools use C. We follow the guide.
        caps.append(Cap("B", "TLS compression is enabled (CRIME)", "crime"))
    return caps


def certificate_caps(verdict: CertificateVerdict | None) -> list[Cap]:
    if verdict is None:
        return []
    caps: list[Cap] = []
    if verdict.weak_signature in ("md2", "md4", "md5"):
        caps.append(Cap("F", f"insecure certificate signature ({verdict.weak_signature.upper()})",
                        "weak_signature"))
    if verdict.incomplete_chain and not verdict.untrusted_issuer:
        caps.append(Cap("B", "certificate chain incomplete (intermediate not sent)",
                        "incomplete_chain"))
    return caps


def hsts_cap(facts: TlsFacts) -> list[Cap]:
    hsts = facts.hsts
    if hsts.applicable and not (hsts.present and (hsts.max_age or 0) > 0):
        # 2009r as read by issue #6 ("A- for missing HSTS"). DECISION: applies only where HSTS
        # means something, i.e. when the service inside TLS is HTTP.
        return [Cap("A-", "no HTTP Strict Transport Security (HSTS) header", "no_hsts")]
    return []


def warnings_for(facts: TlsFacts) -> list[str]:
    """Findings that keep A+ away but do not lower an A.

    DECISION: 2009e says warnings lead to A-; SSL Labs' later practice (and testssl.sh) treats
    these as A+ blockers only, and the explicit A- rules (TLS 1.3, HSTS) are caps above.
    """
    v = facts.vulnerabilities
    found: list[str] = []
    below_13 = [x for x in facts.supported_versions if x != "TLSv1.3"]
    if len(facts.supported_versions) > 1 and v.fallback_scsv is False:
        found.append("no TLS_FALLBACK_SCSV: protocol downgrades are not prevented")
    if below_13 and v.secure_renegotiation is False and not v.client_renegotiation:
        found.append("secure renegotiation (RFC 5746) not supported")
    hsts = facts.hsts
    if hsts.applicable and hsts.present and 0 < (hsts.max_age or 0) < A_PLUS_MIN_AGE:
        found.append(f"HSTS max-age {hsts.max_age} s is below 180 days (needed for A+)")
    return found


# --- the grade ----------------------------------------------------------------------------------


def rate(facts: TlsFacts, clients: Sequence[ReferenceClient] = REFERENCE_CLIENTS) -> Rating:
    verdict = (
        assess(facts.certificate, facts.name, facts.name_is_address, facts.observed_at)
        if facts.certificate is not None
        else None
    )
    trust = verdict.trust_issues if verdict else ()
    name_issue = verdict.name_issue if verdict else None
    if not facts.complete or not facts.supported_versions:
        return Rating(None, None, None, (), (), trust, name_issue, (), verdict,
                      not_graded=_why_not_graded(facts))
    negotiated = negotiations(facts, clients)
    protocol = protocol_score(facts)
    key_exchange = key_exchange_score(facts)
    cipher = cipher_score(facts.suites)
    scores = Scores(protocol, key_exchange, cipher, total_score(protocol, key_exchange, cipher))
    caps = (
        protocol_caps(facts) + cipher_caps(facts, negotiated) + key_caps(facts)
        + vulnerability_caps(facts) + certificate_caps(verdict) + hsts_cap(facts)
    )
    warnings = warnings_for(facts)
    letter = _capped_letter(letter_for(scores.total), caps)
    if letter == "A" and not warnings and _hsts_long_enough(facts):
        letter = "A+"
    # DECISION: with both trust issues and a name mismatch we show T (as SSL Labs does).
    grade = "T" if trust else ("M" if name_issue else letter)
    return Rating(grade, letter, scores, tuple(caps), tuple(warnings), trust, name_issue,
                  negotiated, verdict)


def _capped_letter(letter: str, caps: Sequence[Cap]) -> str:
    for cap in caps:
        letter = worse(letter, cap.grade)
    return letter


def _hsts_long_enough(facts: TlsFacts) -> bool:
    # DECISION: A+ is SSL Labs' reward for HSTS; a service that is not HTTP cannot earn it, so
    # its best grade is A.
    hsts = facts.hsts
    return hsts.applicable and hsts.present and (hsts.max_age or 0) >= A_PLUS_MIN_AGE


def _why_not_graded(facts: TlsFacts) -> str:
    missing = [v for v in PROTOCOLS if facts.protocol(v).status == "not_tested"]
    if missing:
        return "scan incomplete: could not test " + ", ".join(missing)
    return "no protocol version could be negotiated"
