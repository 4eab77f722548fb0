"""The SSL Labs rating as pure functions: every score table, cap, warning and DECISION, on facts.

The helpers at the top (suite, cert, facts) build TlsFacts the way scan.py would; the other TLS
unit tests import them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

import pytest

from scanner.checks.tls.clients import CHROME, REFERENCE_CLIENTS, SAFARI
from scanner.checks.tls.facts import (
    PROTOCOLS,
    CertificateFacts,
    Hsts,
    Preference,
    ProtocolSupport,
    Suite,
    TlsFacts,
    Vulnerabilities,
    rsa_equivalent,
)
from scanner.checks.tls.rating import (
    cipher_score,
    letter_for,
    negotiated_suite,
    rate,
    total_score,
)

NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)
NAME = "home.example"
YEAR = 365 * 86400

TLS13 = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")
ECDHE_AEAD = (
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
)
RSA_KX = ("TLS_RSA_WITH_AES_128_GCM_SHA256", "TLS_RSA_WITH_AES_256_GCM_SHA384")
TRIPLE_DES = "TLS_RSA_WITH_3DES_EDE_CBC_SHA"


def key_bits_of(name: str) -> int:
    if "NULL" in name.split("_WITH_")[-1]:
        return 0
    if "EXPORT" in name:
        return 40
    if "3DES" in name:
        return 168
    if "_DES_" in name:
        return 56
    if "CHACHA20" in name or "_256_" in name:
        return 256
    return 128


def suite(name: str, protocol: str = "TLSv1.2", **fields: object) -> Suite:
    defaults: dict[str, object] = {"key_bits": key_bits_of(name), "anonymous": "anon" in name}
    if name.startswith(("TLS_ECDHE_", "TLS_AES_", "TLS_CHACHA20_")) or "ECDH_anon" in name:
        defaults.update(ephemeral_type="ECDH", ephemeral_bits=253, curve="X25519")
    elif name.startswith(("TLS_DHE_", "TLS_DH_anon")):
        defaults.update(ephemeral_type="DH", ephemeral_bits=2048)
    return Suite(name=name, protocol=protocol, **{**defaults, **fields})  # type: ignore[arg-type]


def suites(names: tuple[str, ...] | list[str], protocol: str = "TLSv1.2") -> list[Suite]:
    return [suite(name, protocol) for name in names]


def cert(**changes: object) -> CertificateFacts:
    good = CertificateFacts(
        subject=f"CN={NAME}",
        issuer="CN=Good CA",
        sans=(NAME,),
        not_before=NOW - dt.timedelta(days=30),
        not_after=NOW + dt.timedelta(days=60),
        key_type="RSA",
        key_bits=2048,
        signature_hash="sha256",
        sha256="00" * 32,
        chain_trusted=True,
        trust_anchor="Mozilla NSS",
        revoked=False,
    )
    return dataclasses.replace(good, **changes)  # type: ignore[arg-type]


def facts(
    protocols: dict[str, list[Suite]] | None = None,
    *,
    certificate: CertificateFacts | None = None,
    hsts: Hsts | None = None,
    vulnerabilities: Vulnerabilities | None = None,
    preference: Preference | None = None,
    name: str = NAME,
    name_is_address: bool = False,
    not_tested: tuple[str, ...] = (),
) -> TlsFacts:
    if protocols is None:
        protocols = {"TLSv1.2": suites(ECDHE_AEAD), "TLSv1.3": suites(TLS13, "TLSv1.3")}
    support = tuple(
        ProtocolSupport(v, "not_tested") if v in not_tested
        else ProtocolSupport(v, "supported", tuple(protocols[v])) if protocols.get(v)
        else ProtocolSupport(v, "not_supported")
        for v in PROTOCOLS
    )
    return TlsFacts(
        name=name,
        name_is_address=name_is_address,
        protocols=support,
        observed_at=NOW,
        preference=preference or Preference(server_enforces_order=False),
        certificate=certificate if certificate is not None else cert(),
        vulnerabilities=vulnerabilities or Vulnerabilities(
            heartbleed=False, ccs_injection=False, robot="not_vulnerable_no_oracle",
            secure_renegotiation=True, client_renegotiation=False, compression=False,
            fallback_scsv=True),
        hsts=hsts if hsts is not None else Hsts(True, True, YEAR),
    )


def modern(**kwargs: object) -> TlsFacts:
    return facts(**kwargs)  # type: ignore[arg-type]


def rules(rating: object) -> set[str]:
    return {cap.rule for cap in rating.caps}  # type: ignore[attr-defined]


# --- the modern baseline ------------------------------------------------------------------------


def test_modern_tls12_tls13_with_hsts_is_a_plus() -> None:
    rating = rate(modern())
    assert rating.grade == "A+" and rating.grade_if_trust_ignored == "A+"
    assert rating.scores is not None
    # protocol 100; key exchange RSA 2048 / X25519 (3072) -> 90; cipher (256: 100 + 128: 80) / 2
    assert (rating.scores.protocol, rating.scores.key_exchange, rating.scores.cipher,
            rating.scores.total) == (100, 90, 90, 93)
    assert rating.caps == () and rating.warnings == ()
    assert {n.client for n in rating.negotiations} == {c.name for c in REFERENCE_CLIENTS}
    assert all(n.version == "TLSv1.3" for n in rating.negotiations)


def test_missing_hsts_caps_at_a_minus_2009r() -> None:
    rating = rate(modern(hsts=Hsts(applicable=True, present=False)))
    assert rating.grade == "A-" and rules(rating) == {"no_hsts"}


def test_hsts_max_age_zero_counts_as_missing() -> None:
    assert rate(modern(hsts=Hsts(True, True, 0))).grade == "A-"


def test_short_hsts_is_a_warning_that_withholds_a_plus() -> None:
    rating = rate(modern(hsts=Hsts(True, True, 86400)))
    assert rating.grade == "A" and rating.caps == ()
    assert any("below 180 days" in w for w in rating.warnings)


def test_hsts_exactly_180_days_earns_a_plus() -> None:
    assert rate(modern(hsts=Hsts(True, True, 180 * 86400))).grade == "A+"


def test_non_http_service_has_no_hsts_rule_and_tops_out_at_a() -> None:
    # DECISION: A+ rewards HSTS; MQTT over TLS cannot send it, so A is its best grade.
    rating = rate(modern(hsts=Hsts(applicable=False)))
    assert rating.grade == "A" and rating.caps == ()


# --- protocol support ---------------------------------------------------------------------------


def test_no_tls13_caps_at_a_minus() -> None:
    rating = rate(facts({"TLSv1.2": suites(ECDHE_AEAD)}))
    assert rating.grade == "A-" and rules(rating) == {"no_tls13"}


def test_tls10_and_11_cap_at_b_and_lower_the_protocol_score() -> None:
    legacy = {
        "TLSv1.0": suites(["TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"], "TLSv1.0"),
        "TLSv1.1": suites(["TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"], "TLSv1.1"),
        "TLSv1.2": suites(ECDHE_AEAD),
    }
    rating = rate(facts(legacy))
    assert rating.grade == "B" and {"tls10_11", "no_tls13"} <= rules(rating)
    assert rating.scores is not None and rating.scores.protocol == 95  # (100 + 90) / 2


def test_tls11_alone_still_caps_at_b() -> None:
    rating = rate(facts({"TLSv1.1": suites(["TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"], "TLSv1.1"),
                         "TLSv1.2": suites(ECDHE_AEAD), "TLSv1.3": suites(TLS13, "TLSv1.3")}))
    assert rating.grade == "B" and "tls10_11" in rules(rating)


def test_sslv3_with_cbc_is_poodle_c() -> None:
    rating = rate(facts({"SSLv3": suites(["TLS_RSA_WITH_AES_128_CBC_SHA"], "SSLv3"),
                         "TLSv1.2": suites(ECDHE_AEAD), "TLSv1.3": suites(TLS13, "TLSv1.3")}))
    assert rating.grade == "C" and "poodle" in rules(rating)


def test_sslv3_without_cbc_is_capped_at_b() -> None:
    rating = rate(facts({"SSLv3": suites(["TLS_RSA_WITH_RC4_128_SHA"], "SSLv3"),
                         "TLSv1.2": suites(ECDHE_AEAD), "TLSv1.3": suites(TLS13, "TLSv1.3")}))
    assert {"sslv3", "rc4"} <= rules(rating) and "poodle" not in rules(rating)
    assert rating.grade == "B"


def test_sslv2_is_f() -> None:
    rating = rate(facts({"SSLv2": suites(["SSL_CK_RC4_128_WITH_MD5"], "SSLv2"),
                         "TLSv1.2": suites(ECDHE_AEAD), "TLSv1.3": suites(TLS13, "TLSv1.3")}))
    assert rating.grade == "F" and "sslv2" in rules(rating)


def test_no_tls12_is_c_and_offered_suites_decide_fs_when_no_browser_connects() -> None:
    rating = rate(facts({"TLSv1.0": suites(["TLS_RSA_WITH_AES_128_CBC_SHA"], "TLSv1.0")}))
    assert rating.negotiations == ()  # modern browsers speak TLS 1.2+ only
    assert {"no_tls12", "tls10_11", "no_fs", "no_aead"} <= rules(rating)
    assert rating.grade == "C"


def test_tls13_only_server_is_not_penalised_for_missing_tls12() -> None:
    rating = rate(facts({"TLSv1.3": suites(TLS13, "TLSv1.3")}))
    assert rating.grade == "A+" and rating.caps == ()


# --- cipher suites and "what browsers negotiate" -----------------------------------------------


def test_rsa_key_exchange_preferred_by_the_server_caps_at_b() -> None:
    order = Preference(True, (*RSA_KX, *ECDHE_AEAD))
    rating = rate(facts({"TLSv1.2": suites([*RSA_KX, *ECDHE_AEAD])}, preference=order))
    assert {"no_fs", "no_tls13"} <= rules(rating) and rating.grade == "B"


def test_rsa_key_exchange_offered_but_never_negotiated_is_not_penalised() -> None:
    # nginx's default: the client's order; every browser lists ECDHE first.
    rating = rate(facts({"TLSv1.2": suites([*RSA_KX, *ECDHE_AEAD])},
                        preference=Preference(server_enforces_order=False)))
    assert "no_fs" not in rules(rating)


def test_only_rsa_key_exchange_caps_at_b() -> None:
    rating = rate(facts({"TLSv1.2": suites(RSA_KX)}))
    assert "no_fs" in rules(rating) and rating.grade == "B"
    assert all(not n.suite.forward_secret for n in rating.negotiations)


def test_cbc_only_caps_at_b_for_missing_aead() -> None:
    cbc = ["TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA"]
    rating = rate(facts({"TLSv1.2": suites(cbc)}))
    assert "no_aead" in rules(rating) and "no_fs" not in rules(rating)


def test_3des_preferred_by_the_server_for_safari_is_c() -> None:
    order = Preference(True, (TRIPLE_DES, "TLS_RSA_WITH_AES_128_GCM_SHA256"))
    rating = rate(facts({"TLSv1.2": suites([TRIPLE_DES, "TLS_RSA_WITH_AES_128_GCM_SHA256"])},
                        preference=order))
    assert "block64" in rules(rating) and rating.grade == "C"
    safari = next(n for n in rating.negotiations if n.client == SAFARI.name)
    assert safari.suite.name == TRIPLE_DES


def test_3des_at_the_end_of_the_list_is_not_capped() -> None:
    rating = rate(facts({"TLSv1.2": suites([*ECDHE_AEAD, TRIPLE_DES])},
                        preference=Preference(True, (*ECDHE_AEAD, TRIPLE_DES))))
    assert "block64" not in rules(rating)


def test_rc4_with_tls12_is_c_and_with_old_protocols_only_b() -> None:
    rc4 = "TLS_RSA_WITH_RC4_128_SHA"
    modern_rc4 = rate(facts({"TLSv1.2": [*suites(ECDHE_AEAD), suite(rc4)],
                             "TLSv1.3": suites(TLS13, "TLSv1.3")}))
    assert "rc4_modern" in rules(modern_rc4) and modern_rc4.grade == "C"
    old_rc4 = rate(facts({"TLSv1.0": suites([rc4], "TLSv1.0"), "TLSv1.2": suites(ECDHE_AEAD),
                          "TLSv1.3": suites(TLS13, "TLSv1.3")}))
    assert "rc4" in rules(old_rc4) and "rc4_modern" not in rules(old_rc4)


def test_export_suites_are_f() -> None:
    rating = rate(facts({"TLSv1.2": [*suites(ECDHE_AEAD), suite("TLS_RSA_EXPORT_WITH_RC4_40_MD5")],
                         "TLSv1.3": suites(TLS13, "TLSv1.3")}))
    assert rating.grade == "F" and "export" in rules(rating)
    assert rating.scores is not None and rating.scores.key_exchange == 40


def test_anonymous_suites_zero_the_key_exchange_and_the_total() -> None:
    anon = suite("TLS_ECDH_anon_WITH_AES_128_CBC_SHA")
    rating = rate(facts({"TLSv1.2": [*suites(ECDHE_AEAD), anon]}))
    assert rating.scores is not None
    assert rating.scores.key_exchange == 0 and rating.scores.total == 0
    assert rating.grade == "F" and "anonymous" in rules(rating)


def test_null_cipher_is_f_even_though_the_score_is_not_zero() -> None:
    null = suite("TLS_ECDHE_RSA_WITH_NULL_SHA")
    rating = rate(facts({"TLSv1.2": [*suites(ECDHE_AEAD), null],
                         "TLSv1.3": suites(TLS13, "TLSv1.3")}))
    assert rating.scores is not None and rating.scores.cipher == 50  # (100 + 0) / 2
    assert rating.grade == "F" and "null_cipher" in rules(rating)


def test_3des_scores_as_168_bits_per_the_guide() -> None:
    # DECISION: the guide lists 168 as "< 256 bits" (80 %); SSL Labs' pages say 112 bits.
    assert cipher_score([suite(TRIPLE_DES)]) == 80


def test_negotiation_model_client_versus_server_order() -> None:
    accepted = suites(["TLS_RSA_WITH_AES_256_CBC_SHA", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"])
    client_order = facts({"TLSv1.2": accepted}, preference=Preference(False))
    chrome = negotiated_suite(CHROME, client_order)
    assert chrome is not None and chrome.suite.name == "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
    server_order = facts({"TLSv1.2": accepted},
                         preference=Preference(True, ("TLS_RSA_WITH_AES_256_CBC_SHA",
                                                      "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256")))
    chrome = negotiated_suite(CHROME, server_order)
    assert chrome is not None and chrome.suite.name == "TLS_RSA_WITH_AES_256_CBC_SHA"


def test_a_client_without_a_common_suite_does_not_connect_nor_fall_back() -> None:
    only_camellia = facts({"TLSv1.2": suites(["TLS_RSA_WITH_CAMELLIA_128_CBC_SHA"]),
                           "TLSv1.0": suites(["TLS_RSA_WITH_AES_128_CBC_SHA"], "TLSv1.0")})
    assert negotiated_suite(CHROME, only_camellia) is None


# --- keys ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key_type", "bits", "grade", "key_exchange"),
    [("RSA", 1024, "B", 80), ("RSA", 512, "F", 40), ("RSA", 4096, "A+", 90),
     ("EC", 256, "A+", 90), ("EC", 384, "A+", 90), ("Ed25519", 256, "A+", 90)],
)
def test_certificate_key_strength(key_type: str, bits: int, grade: str, key_exchange: int) -> None:
    rating = rate(modern(certificate=cert(key_type=key_type, key_bits=bits)))
    assert rating.grade == grade
    assert rating.scores is not None and rating.scores.key_exchange == key_exchange


def test_strong_key_and_strong_group_reach_100() -> None:
    strong = [suite(n, "TLSv1.3", ephemeral_bits=384, curve="secp384r1") for n in TLS13]
    rating = rate(facts({"TLSv1.3": strong}, certificate=cert(key_bits=4096)))
    assert rating.scores is not None and rating.scores.key_exchange == 100


def test_dh_1024_caps_at_b_and_dh_512_is_f() -> None:
    for bits, grade in ((1024, "B"), (512, "F")):
        dhe = suite("TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", ephemeral_bits=bits)
        rating = rate(facts({"TLSv1.2": [*suites(ECDHE_AEAD), dhe],
                             "TLSv1.3": suites(TLS13, "TLSv1.3")}))
        assert rating.grade == grade and "kx_params" in rules(rating)


def test_rsa_equivalent_table() -> None:
    assert rsa_equivalent("EC", 253) == 3072  # X25519
    assert rsa_equivalent("EC", 224) == 2048
    assert rsa_equivalent("EC", 160) == 1024
    assert rsa_equivalent("ECDH", 448) == 7680
    assert rsa_equivalent("DH", 2048) == 2048


# --- vulnerabilities and warnings ---------------------------------------------------------------


SAFE = Vulnerabilities(False, False, "not_vulnerable_no_oracle", True, False, False, True)


@pytest.mark.parametrize(
    ("change", "rule", "grade"),
    [({"heartbleed": True}, "heartbleed", "F"),
     ({"ccs_injection": True}, "ccs", "F"),
     ({"robot": "vulnerable_strong_oracle"}, "robot", "F"),
     ({"robot": "vulnerable_weak_oracle"}, "robot", "F"),  # DECISION: weak oracle counts too
     ({"secure_renegotiation": False, "client_renegotiation": True}, "insecure_reneg", "F"),
     ({"compression": True}, "crime", "B")],  # DECISION: the guide's 2009c says B
)
def test_vulnerabilities_cap(change: dict[str, object], rule: str, grade: str) -> None:
    rating = rate(modern(vulnerabilities=dataclasses.replace(SAFE, **change)))  # type: ignore
    assert rule in rules(rating) and rating.grade == grade


def test_untested_vulnerabilities_are_not_treated_as_vulnerable() -> None:
    assert rate(modern(vulnerabilities=Vulnerabilities())).grade == "A+"


def test_missing_fallback_scsv_is_a_warning() -> None:
    rating = rate(modern(vulnerabilities=dataclasses.replace(SAFE, fallback_scsv=False)))
    assert rating.grade == "A" and any("FALLBACK_SCSV" in w for w in rating.warnings)


def test_missing_secure_renegotiation_without_client_renegotiation_is_a_warning() -> None:
    rating = rate(modern(vulnerabilities=dataclasses.replace(SAFE, secure_renegotiation=False)))
    assert rating.grade == "A" and rating.caps == ()


# --- certificate first --------------------------------------------------------------------------


def test_expired_certificate_is_t_with_the_grade_if_ignored() -> None:
    rating = rate(modern(certificate=cert(not_after=NOW - dt.timedelta(days=3))))
    assert rating.grade == "T" and rating.grade_if_trust_ignored == "A+"
    assert any("expired" in issue for issue in rating.trust_issues)


def test_not_yet_valid_certificate_is_t() -> None:
    rating = rate(modern(certificate=cert(not_before=NOW + dt.timedelta(days=1))))
    assert rating.grade == "T"


def test_self_signed_is_t() -> None:
    rating = rate(modern(certificate=cert(self_signed=True, chain_trusted=False)))
    assert rating.grade == "T" and any("self-signed" in i for i in rating.trust_issues)


def test_untrusted_issuer_is_t() -> None:
    rating = rate(modern(certificate=cert(chain_trusted=False, chain_error="unknown CA")))
    assert rating.grade == "T" and any("trusted root" in i for i in rating.trust_issues)


def test_name_mismatch_is_m_and_t_wins_over_m() -> None:
    mismatch = rate(modern(certificate=cert(sans=("other.example",))))
    assert mismatch.grade == "M" and mismatch.grade_if_trust_ignored == "A+"
    both = rate(modern(certificate=cert(sans=("other.example",), self_signed=True,
                                        chain_trusted=False)))
    assert both.grade == "T" and both.name_issue is not None


def test_scanned_by_address_without_address_sans_is_not_m() -> None:
    rating = rate(modern(name="198.51.100.7", name_is_address=True))
    assert rating.grade == "A+" and rating.certificate is not None
    assert rating.certificate.hostname_mismatch is None


def test_scanned_by_address_with_a_wrong_address_san_is_m() -> None:
    rating = rate(modern(name="198.51.100.7", name_is_address=True,
                         certificate=cert(sans=("198.51.100.8",))))
    assert rating.grade == "M"


def test_sha1_signature_is_a_trust_issue_and_md5_is_f() -> None:
    assert rate(modern(certificate=cert(signature_hash="sha1"))).grade == "T"
    md5 = rate(modern(certificate=cert(signature_hash="md5")))
    assert md5.grade == "F" and "weak_signature" in rules(md5)
    intermediate = rate(modern(certificate=cert(weak_chain_signatures=("sha1",))))
    assert intermediate.grade == "T"


def test_revoked_by_stapled_ocsp_is_t() -> None:
    assert rate(modern(certificate=cert(revoked=True))).grade == "T"


def test_incomplete_but_completable_chain_caps_at_b_unknown_issuer_is_t() -> None:
    # SSL Labs ("certificate chain is incomplete. Grade capped to B") and testssl.sh 3.2
    # (determine_trust: "chain incomplete" -> B) cap it at B; an issuer nobody can link is T.
    completable = cert(chain_trusted=True, chain_complete=False, missing_issuer="CN=R11",
                       aia_ca_issuers=("http://r11.i.lencr.org/",), completed_from="bundle")
    rating = rate(modern(certificate=completable))
    assert rating.grade == "B" and "incomplete_chain" in rules(rating)
    assert rating.trust_issues == ()
    rating = rate(modern(certificate=dataclasses.replace(completable, chain_trusted=False)))
    assert rating.grade == "T" and "incomplete_chain" not in rules(rating)


def test_no_certificate_at_all_still_grades_anonymous_only_server() -> None:
    anon_only = TlsFacts(
        name=NAME, name_is_address=False, observed_at=NOW,
        protocols=tuple(ProtocolSupport(v, "supported", (suite(
            "TLS_ECDH_anon_WITH_AES_128_CBC_SHA"),)) if v == "TLSv1.2"
            else ProtocolSupport(v, "not_supported") for v in PROTOCOLS),
    )
    assert rate(anon_only).grade == "F"


# --- scores, letters, completeness --------------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "letter"),
    [(100, "A"), (80, "A"), (79, "B"), (65, "B"), (64, "C"), (50, "C"), (49, "D"),
     (35, "D"), (34, "E"), (20, "E"), (19, "F"), (0, "F")],
)
def test_letter_thresholds(score: int, letter: str) -> None:
    assert letter_for(score) == letter


def test_a_zero_category_zeroes_the_total() -> None:
    assert total_score(100, 0, 100) == 0
    assert total_score(100, 90, 90) == 93


def test_incomplete_scan_gives_no_grade() -> None:
    rating = rate(facts(not_tested=("TLSv1.1",)))
    assert rating.grade is None and rating.not_graded is not None
    assert "TLSv1.1" in rating.not_graded


def test_every_cap_has_a_reason_and_a_known_grade() -> None:
    messy = facts({
        "SSLv3": suites(["TLS_RSA_WITH_AES_128_CBC_SHA"], "SSLv3"),
        "TLSv1.0": suites(["TLS_RSA_WITH_RC4_128_SHA", TRIPLE_DES], "TLSv1.0"),
        "TLSv1.2": suites([TRIPLE_DES, "TLS_RSA_WITH_RC4_128_SHA", *RSA_KX]),
    }, certificate=cert(key_bits=1024), hsts=Hsts(True, False),
        preference=Preference(True, (TRIPLE_DES, *RSA_KX)))
    rating = rate(messy)
    assert rating.caps and all(cap.reason and cap.grade in ("A-", "B", "C", "F")
                               for cap in rating.caps)
    assert all(re.fullmatch(r"[a-z0-9_]+", cap.rule) for cap in rating.caps)
    assert rating.grade == "C"
