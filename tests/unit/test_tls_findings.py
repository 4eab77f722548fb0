"""Findings and details from facts: each finding fires on its case and stays quiet on a good
configuration; evidence names what was seen, remediation says what to change."""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress

import pytest

from scanner.checks.base import CheckOptions, standalone_context
from scanner.checks.registry import catalogue
from scanner.checks.tls.check import CHECK
from scanner.checks.tls.facts import Hsts, Preference, TlsFacts, Vulnerabilities
from scanner.checks.tls.findings import CATALOGUE, tls_details, tls_findings
from scanner.checks.tls.rating import rate
from scanner.core.findings import Finding
from scanner.identification.model import ServiceIdentity
from scanner.targets import Target
from tests.unit.test_tls_rating import (
    ECDHE_AEAD,
    NOW,
    RSA_KX,
    TLS13,
    TRIPLE_DES,
    cert,
    facts,
    suite,
    suites,
)

TLS_IDS = {spec.id for spec in CATALOGUE}


def findings_of(tls_facts: TlsFacts) -> dict[str, Finding]:
    found = tls_findings(tls_facts, rate(tls_facts), 443)
    ids = [finding.id for finding in found]
    assert len(ids) == len(set(ids)), "one finding per id and port"
    assert all(finding.port == 443 and finding.evidence and finding.remediation
               for finding in found)
    return {finding.id: finding for finding in found}


def test_catalogue_is_registered() -> None:
    registered = {spec.id for spec in catalogue()}
    assert registered >= TLS_IDS
    assert {"tls.grade", "tls.untrusted", "tls.expired", "tls.expiring_soon",
            "tls.hostname_mismatch", "tls.legacy_protocol", "tls.weak_cipher",
            "tls.no_forward_secrecy", "tls.no_hsts"} <= TLS_IDS


def test_a_plus_configuration_is_quiet() -> None:
    assert findings_of(facts()) == {}


def test_grade_severity_follows_the_grade() -> None:
    a_minus = findings_of(facts(hsts=Hsts(True, False)))
    assert a_minus["tls.grade"].severity == "info" and a_minus["tls.grade"].title == "TLS grade A-"
    b = findings_of(facts({"TLSv1.2": suites(RSA_KX)}))
    assert b["tls.grade"].severity == "low"
    f = findings_of(facts(vulnerabilities=Vulnerabilities(heartbleed=True)))
    assert f["tls.grade"].severity == "high"


def test_legacy_protocol_severity() -> None:
    tls10 = findings_of(facts({"TLSv1.0": suites(["TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"],
                                                 "TLSv1.0"),
                               "TLSv1.2": suites(ECDHE_AEAD)}))
    assert tls10["tls.legacy_protocol"].severity == "low"
    assert "TLSv1.0" in tls10["tls.legacy_protocol"].evidence
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in tls10["tls.legacy_protocol"].remediation
    ssl3 = findings_of(facts({"SSLv3": suites(["TLS_RSA_WITH_RC4_128_SHA"], "SSLv3"),
                              "TLSv1.2": suites(ECDHE_AEAD)}))
    assert ssl3["tls.legacy_protocol"].severity == "high"


def test_weak_ciphers_by_category() -> None:
    triple = findings_of(facts({"TLSv1.2": suites([*ECDHE_AEAD, TRIPLE_DES]),
                                "TLSv1.3": suites(TLS13, "TLSv1.3")}))
    assert triple["tls.weak_cipher"].severity == "low"
    assert "tls.grade" not in triple  # offered last, never negotiated: no cap
    anon = findings_of(facts({"TLSv1.2": [*suites(ECDHE_AEAD),
                                          suite("TLS_ECDH_anon_WITH_AES_128_CBC_SHA")]}))
    assert anon["tls.weak_cipher"].severity == "high"
    assert "anonymous" in anon["tls.weak_cipher"].evidence
    assert "ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256" in anon["tls.weak_cipher"].remediation


def test_no_forward_secrecy_only_when_browsers_get_none() -> None:
    found = findings_of(facts({"TLSv1.2": suites(RSA_KX)}))
    assert "Chrome 131" in found["tls.no_forward_secrecy"].evidence
    preferred_ecdhe = facts({"TLSv1.2": suites([*RSA_KX, *ECDHE_AEAD])},
                            preference=Preference(False))
    assert "tls.no_forward_secrecy" not in findings_of(preferred_ecdhe)


def test_hsts_findings() -> None:
    missing = findings_of(facts(hsts=Hsts(True, False)))["tls.no_hsts"]
    assert missing.severity == "low" and "Strict-Transport-Security" in missing.remediation
    short = findings_of(facts(hsts=Hsts(True, True, 3600, raw="max-age=3600")))["tls.no_hsts"]
    assert short.severity == "info" and "180 days" in short.title
    assert "tls.no_hsts" not in findings_of(facts(hsts=Hsts(applicable=False)))


def test_certificate_findings_are_told_apart() -> None:
    expired = findings_of(facts(certificate=cert(not_after=NOW - dt.timedelta(days=2))))
    assert {"tls.expired", "tls.grade"} <= set(expired) and "tls.untrusted" not in expired
    assert "Renew" in expired["tls.grade"].remediation
    self_signed = findings_of(facts(certificate=cert(self_signed=True, chain_trusted=False)))
    assert self_signed["tls.untrusted"].title == "Self-signed TLS certificate"
    assert "tls.expired" not in self_signed
    mismatch = findings_of(facts(certificate=cert(sans=("other.example",))))
    assert "other.example" in mismatch["tls.hostname_mismatch"].evidence
    assert "tls.untrusted" not in mismatch
    soon = findings_of(facts(certificate=cert(not_after=NOW + dt.timedelta(days=5))))
    assert set(soon) == {"tls.expiring_soon"}
    assert "5 days left" in soon["tls.expiring_soon"].evidence


def test_incomplete_chain_finding() -> None:
    found = findings_of(facts(certificate=cert(
        chain_trusted=True, chain_complete=False, missing_issuer="CN=R11",
        aia_ca_issuers=("http://r11.i.lencr.org/",))))
    assert "fullchain.pem" in found["tls.incomplete_chain"].remediation
    assert found["tls.grade"].title == "TLS grade B"
    assert "tls.untrusted" not in found
    untrusted = findings_of(facts(certificate=cert(
        chain_trusted=False, chain_complete=False, missing_issuer="CN=Private CA")))
    assert "tls.untrusted" in untrusted and "tls.incomplete_chain" not in untrusted


def test_known_vulnerability_finding() -> None:
    found = findings_of(facts(vulnerabilities=Vulnerabilities(heartbleed=True)))
    assert found["tls.known_vulnerability"].severity == "critical"
    crime = findings_of(facts(vulnerabilities=Vulnerabilities(compression=True)))
    assert crime["tls.known_vulnerability"].severity == "medium"


def test_details_have_the_contract_keys() -> None:
    tls_facts = facts()
    details = tls_details(tls_facts, rate(tls_facts), 0.5).to_dict()
    assert details["grade"] == "A+" and details["grade_if_trust_ignored"] == "A+"
    assert details["scores"] == {"protocol": 100, "key_exchange": 90, "cipher": 90, "total": 93}
    assert details["caps"] == [] and details["warnings"] == []
    assert details["protocols"] == ["TLSv1.2", "TLSv1.3"]
    assert set(details["certificate"]) >= {"subject", "issuer", "sans", "not_before",
                                           "not_after", "days_left", "key", "signature",
                                           "trusted", "chain_complete"}
    assert details["certificate"]["key"] == "RSA 2048" and details["certificate"]["trusted"]
    assert details["hsts"]["max_age"] == 365 * 86400


def test_details_of_a_capped_grade() -> None:
    tls_facts = facts({"TLSv1.2": suites(RSA_KX)})
    details = tls_details(tls_facts, rate(tls_facts), 0.5).to_dict()
    assert {cap["rule"] for cap in details["caps"]} == {"no_fs", "no_tls13"}
    assert all(set(cap) == {"grade", "reason", "rule"} for cap in details["caps"])


@pytest.mark.parametrize(("tls", "applies"), [(True, True), (False, False)])
def test_applies_to_any_tls_port(tls: bool, applies: bool) -> None:
    context = standalone_context(
        Target("home.example", ipaddress.ip_address("198.51.100.7"), "home.example"), 8883,
        ServiceIdentity(service="mqtt", tls=tls), CheckOptions())
    assert CHECK.applies(context) is applies


def test_untested_facts_give_a_note_not_a_grade() -> None:
    tls_facts = dataclasses.replace(facts(), not_tested=("robot: time budget exhausted",))
    rating = rate(tls_facts)
    assert rating.grade == "A+"  # vulnerability tests missing do not block the grade
    tls_facts = facts(not_tested=("TLSv1.0",))
    assert tls_findings(tls_facts, rate(tls_facts), 443) == []
