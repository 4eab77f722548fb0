"""TLS grades of real nginx (and mosquitto) configurations in the lab, through the real CLI.

One scan of every TLS endpoint by hostname (so SNI and the name check are real), with the lab
CA (root and the TLS intermediate, as a private CA's bundle) passed by --ca-file; then one
assertion set per configuration: grade, grade if trust issues are ignored, caps, and exactly
which findings fire (so the safe configuration proves silence). A raw capture in the home
namespace counts the TCP connections each endpoint's grade takes.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.lab.netns import Lab
from tests.lab.scanning import LAB_SPEED, scan_json
from tests.lab.support_tls import (
    BY_NAME,
    ENDPOINTS,
    GNUTLS_ENDPOINTS,
    MQTT_TLS_PORT,
    ca_bundle,
    tls_services,
)
from tests.lab.syn_capture import SynCapture

pytestmark = pytest.mark.lab

GNUTLS = [endpoint for endpoint, _ in GNUTLS_ENDPOINTS]
ALL_PORTS = ",".join(str(e.port) for e in [*ENDPOINTS, *GNUTLS]) + f",{MQTT_TLS_PORT}"
# The stated bound (scan.py): A + 17 connections, A = accepted (version, suite) pairs.
FIXED_CONNECTIONS = 17

# name -> (grade, grade if trust issues are ignored, cap rules, finding ids)
EXPECTED: dict[str, tuple[str, str, set[str], set[str]]] = {
    "modern": ("A+", "A+", set(), set()),
    "modern_no_hsts": ("A-", "A-", {"no_hsts"}, {"tls.grade", "tls.no_hsts"}),
    "legacy": ("B", "B", {"tls10_11", "no_tls13"}, {"tls.grade", "tls.legacy_protocol"}),
    "no_fs": ("B", "B", {"no_fs", "no_tls13"}, {"tls.grade", "tls.no_forward_secrecy"}),
    "anonymous": ("F", "F", {"anonymous", "no_tls13"}, {"tls.grade", "tls.weak_cipher"}),
    "expired": ("T", "A+", set(), {"tls.grade", "tls.expired"}),
    "self_signed": ("T", "A+", set(), {"tls.grade", "tls.untrusted"}),
    "mismatch": ("M", "A+", set(), {"tls.grade", "tls.hostname_mismatch"}),
    # cert.pem instead of fullchain.pem: trusted once completed, capped at B (SSL Labs, testssl)
    "incomplete_chain": ("B", "B", {"incomplete_chain"}, {"tls.grade", "tls.incomplete_chain"}),
    "expiring": ("A+", "A+", set(), {"tls.expiring_soon"}),
    "weak_key": ("B", "B", {"cert_key"}, {"tls.grade"}),
}
# Servers whose suites nassl's OpenSSLs cannot all negotiate (identification cannot complete a
# handshake either, so HSTS is not known: A is their best grade).
ODD: dict[str, tuple[str, str, set[str], set[str]]] = {
    "null_only": ("F", "F", {"null_cipher", "no_fs", "no_aead", "no_tls13"},
                  {"tls.grade", "tls.weak_cipher", "tls.no_forward_secrecy"}),
    "rc4_only": ("C", "C", {"rc4_modern", "tls10_11", "no_aead", "no_tls13"},
                 {"tls.grade", "tls.legacy_protocol", "tls.weak_cipher"}),
    "camellia_gcm_only": ("A-", "A-", {"no_tls13"}, {"tls.grade"}),
}


@pytest.fixture(scope="module")
def tls_lab() -> Iterator[Lab]:
    with Lab(services=tls_services()) as lab:
        yield lab


@pytest.fixture(scope="module")
def report(tls_lab: Lab) -> dict[str, Any]:
    return scan_json(tls_lab, Lab.HOSTNAME, "--ports", ALL_PORTS, "--ca-file",
                     str(ca_bundle(tls_lab)), *LAB_SPEED)


def port_view(report: dict[str, Any], address: str, port: int) -> tuple[dict[str, Any], set[str]]:
    target = next(t for t in report["targets"] if t["address"] == address)
    entry = next(p for p in target["ports"] if p["port"] == port)
    ids = {f["id"] for f in target["findings"] if f["port"] == port and f["id"].startswith("tls.")}
    return entry, ids


@pytest.mark.parametrize("address", [Lab.HOME_V4, Lab.HOME_V6])
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_grade_caps_and_findings(report: dict[str, Any], name: str, address: str) -> None:
    grade, if_ignored, caps, findings = EXPECTED[name]
    entry, ids = port_view(report, address, BY_NAME[name].port)
    tls = entry["details"]["tls"]
    assert entry["tls"] and entry["service"] == "http"
    assert (tls["grade"], tls["grade_if_trust_ignored"]) == (grade, if_ignored), tls
    assert {cap["rule"] for cap in tls["caps"]} == caps
    assert all(cap["reason"] for cap in tls["caps"])
    assert ids == findings
    assert tls["sni"] == Lab.HOSTNAME


@pytest.mark.parametrize("address", [Lab.HOME_V4, Lab.HOME_V6])
@pytest.mark.parametrize("name", sorted(ODD))
def test_servers_sslyze_cannot_negotiate_are_graded(
    report: dict[str, Any], name: str, address: str
) -> None:
    grade, if_ignored, caps, findings = ODD[name]
    entry, ids = port_view(report, address, BY_NAME[name].port)
    tls = entry["details"]["tls"]
    assert entry["tls"]
    assert (tls["grade"], tls["grade_if_trust_ignored"]) == (grade, if_ignored), tls
    assert {cap["rule"] for cap in tls["caps"]} == caps
    assert ids == findings


def test_camellia_suites_come_from_our_own_client_hello(report: dict[str, Any]) -> None:
    entry, _ = port_view(report, Lab.HOME_V4, BY_NAME["camellia_gcm_only"].port)
    tls = entry["details"]["tls"]
    assert tls["suites"] == {"TLSv1.2": ["TLS_ECDHE_RSA_WITH_CAMELLIA_128_GCM_SHA256"]}
    assert tls["certificate"]["trusted"]  # the chain came from the raw ServerHello flight
    entry, _ = port_view(report, Lab.HOME_V4, BY_NAME["rc4_only"].port)
    assert all("RC4" in s for suites in entry["details"]["tls"]["suites"].values() for s in suites)


def test_incomplete_chain_without_the_intermediate_is_untrusted(tls_lab: Lab) -> None:
    """With only the root, nothing proves the chain would be trusted: T, tls.untrusted."""
    port = BY_NAME["incomplete_chain"].port
    report = scan_json(tls_lab, Lab.HOSTNAME, "--ports", str(port), "--ca-file",
                       str(tls_lab.ca_pem), *LAB_SPEED)
    entry, ids = port_view(report, Lab.HOME_V4, port)
    tls = entry["details"]["tls"]
    assert (tls["grade"], tls["grade_if_trust_ignored"]) == ("T", "A+")
    assert "tls.untrusted" in ids and "tls.incomplete_chain" not in ids


def test_modern_endpoint_details(report: dict[str, Any]) -> None:
    entry, _ = port_view(report, Lab.HOME_V4, BY_NAME["modern"].port)
    tls = entry["details"]["tls"]
    assert tls["scores"] == {"protocol": 100, "key_exchange": 90, "cipher": 90, "total": 93}
    assert tls["protocols"] == ["TLSv1.2", "TLSv1.3"]
    assert tls["certificate"]["trusted"] and tls["certificate"]["trust_anchor"] == "--ca-file"
    assert tls["certificate"]["sans"] == [Lab.HOSTNAME] and tls["certificate"]["key"] == "RSA 2048"
    assert tls["hsts"]["max_age"] == 31536000
    assert {n["version"] for n in tls["negotiated"]} == {"TLSv1.3"}
    assert tls["vulnerabilities"]["heartbleed"] is False
    assert tls["vulnerabilities"]["fallback_scsv"] is True
    assert tls["not_tested"] == []


def test_legacy_endpoint_lists_old_protocols(report: dict[str, Any]) -> None:
    entry, _ = port_view(report, Lab.HOME_V4, BY_NAME["legacy"].port)
    tls = entry["details"]["tls"]
    assert tls["protocols"] == ["TLSv1.0", "TLSv1.1", "TLSv1.2"]
    assert tls["scores"]["protocol"] == 95


def test_anonymous_suites_are_served_by_nginx_and_zero_the_key_exchange(
    report: dict[str, Any],
) -> None:
    entry, _ = port_view(report, Lab.HOME_V4, BY_NAME["anonymous"].port)
    tls = entry["details"]["tls"]
    assert any("_anon_" in suite for suite in tls["suites"]["TLSv1.2"])
    assert tls["scores"]["key_exchange"] == 0 and tls["scores"]["total"] == 0


def test_certificate_problems_are_told_apart(report: dict[str, Any]) -> None:
    views = {name: port_view(report, Lab.HOME_V4, BY_NAME[name].port)[0]["details"]["tls"]
             for name in ("expired", "self_signed", "mismatch", "incomplete_chain", "expiring")}
    assert views["expired"]["certificate"]["days_left"] < 0
    assert views["self_signed"]["certificate"]["self_signed"]
    assert views["mismatch"]["certificate"]["hostname_matches"] is False
    assert views["mismatch"]["certificate"]["trusted"]
    assert not views["incomplete_chain"]["certificate"]["chain_complete"]
    assert views["expiring"]["certificate"]["chain_length"] == 2  # intermediate sent: trusted
    assert 0 <= views["expiring"]["certificate"]["days_left"] < 21


def test_tls_on_a_non_http_port(report: dict[str, Any]) -> None:
    entry, ids = port_view(report, Lab.HOME_V4, MQTT_TLS_PORT)
    tls = entry["details"]["tls"]
    assert entry["tls"] and entry["service"] == "mqtt"
    assert tls["grade"] == "A" and tls["caps"] == [] and not tls["hsts"]["applicable"]
    assert ids == set()


def test_without_ca_file_the_lab_ca_is_untrusted(tls_lab: Lab) -> None:
    report = scan_json(tls_lab, Lab.HOSTNAME, "--ports", str(BY_NAME["modern"].port),
                       *LAB_SPEED)
    entry, ids = port_view(report, Lab.HOME_V4, BY_NAME["modern"].port)
    tls = entry["details"]["tls"]
    assert (tls["grade"], tls["grade_if_trust_ignored"]) == ("T", "A+")
    assert "tls.untrusted" in ids


def test_scanned_by_address_the_name_is_not_judged(tls_lab: Lab) -> None:
    ports = f"{BY_NAME['modern'].port},{BY_NAME['mismatch'].port}"
    report = scan_json(tls_lab, Lab.HOME_V4, "--ports", ports, "--ca-file", str(tls_lab.ca_pem),
                       *LAB_SPEED)
    (target,) = report["targets"]
    for port in (BY_NAME["modern"].port, BY_NAME["mismatch"].port):
        entry, ids = port_view(report, Lab.HOME_V4, port)
        tls = entry["details"]["tls"]
        assert tls["grade"] == "A+" and tls["certificate"]["hostname_matches"] is None
        assert tls["sni"] is None and "tls.hostname_mismatch" not in ids
    assert any("scan by hostname" in note["text"] for note in target["notes"])


def _grade_in_scan(lab: Lab, port: int, ca_file: str | None = None) -> dict[str, Any]:
    argv = [sys.executable, "-m", "tests.lab.support_tls", Lab.HOME_V4, str(port), Lab.HOSTNAME,
            ca_file or str(lab.ca_pem), "http", "max-age=31536000"]
    completed = lab.run_in_scan(argv, capture_output=True, text=True, timeout=60, check=False)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def test_one_endpoint_is_graded_within_two_seconds(tls_lab: Lab) -> None:
    graded = _grade_in_scan(tls_lab, BY_NAME["legacy"].port)  # the most handshakes of the lab
    assert graded["details"]["grade"] == "B"
    assert graded["seconds"] <= 2.0, graded["seconds"]


def test_ten_endpoints_of_one_host_within_six_seconds(tls_lab: Lab) -> None:
    ten = [endpoint.port for endpoint in ENDPOINTS][:10]
    argv = [sys.executable, "-m", "tests.lab.support_tls", "many", Lab.HOME_V4,
            ",".join(map(str, ten)), Lab.HOSTNAME, str(tls_lab.ca_pem)]
    completed = tls_lab.run_in_scan(argv, capture_output=True, text=True, timeout=60,
                                    check=False)
    assert completed.returncode == 0, completed.stderr
    graded = json.loads(completed.stdout)
    assert graded["errors"] == []
    assert all(graded["grades"][str(port)] for port in ten), graded
    assert graded["seconds"] <= 6.0, graded["seconds"]


@pytest.mark.parametrize("name", sorted([*EXPECTED, *ODD]))
def test_connections_per_endpoint_are_bounded(tls_lab: Lab, name: str) -> None:
    """What reached the server (SYNs counted in the home namespace) is what the check says it
    opened, within the stated bound, and the grade is the one of the full scan."""
    port = BY_NAME[name].port
    with SynCapture(tls_lab, [port]) as capture:
        graded = _grade_in_scan(tls_lab, port, str(ca_bundle(tls_lab)))
    tls = graded["details"]
    accepted = sum(len(suites) for suites in tls["suites"].values())
    assert capture.counts[port] == tls["connections"], (capture.counts, tls["connections"])
    assert tls["connections"] <= accepted + FIXED_CONNECTIONS, (accepted, tls["connections"])
    assert tls["connections"] <= 40  # tens, not hundreds: every lab configuration
    # grade_one says the service sends HSTS for a year: only modern_no_hsts grades differently.
    expected = "A+" if name == "modern_no_hsts" else {**EXPECTED, **ODD}[name][0]
    assert tls["grade"] == expected
