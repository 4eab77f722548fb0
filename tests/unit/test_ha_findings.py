"""Detection and findings from every recorded HA state (fixtures/ha), without the network.

Each fixture is what a real HA (2024.1.6, 2025.4.4) answered; here it is turned into the
observations probe.observe() would make, then into findings. The lab tests replay the same
fixtures over real sockets.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.checks.ha import check, parse
from scanner.checks.ha.detect import HttpAnswer, Observations, WebsocketAnswer, assess
from scanner.core.findings import Severity
from scanner.net import websocket
from tests.lab.support_ha import FIXTURE_DIR, HaFixture, load_fixture

TODAY = dt.date(2026, 11, 23)
VERSIONS = ("2024.1.6", "2025.4.4")


def answer(fixture: HaFixture, path: str, method: str = "GET") -> HttpAnswer | None:
    exchange = fixture.find(method, path) or fixture.find("GET", "/this-path-does-not-exist")
    if exchange is None:
        return None
    headers = tuple((name.lower(), value) for name, value in exchange.headers)
    return HttpAnswer(exchange.status, headers, exchange.body)


def greeting(fixture: HaFixture) -> WebsocketAnswer:
    payload = fixture.websocket_frames[0].encode()
    frame = bytes([0x81, len(payload)]) + payload
    return WebsocketAnswer(True, 101, websocket.parse_frame_header(frame), payload)


def observations(fixture: HaFixture) -> Observations:
    root = fixture.find("GET", "/")
    location = dict((k.lower(), v) for k, v in root.headers).get("location") if root else None
    steps = answer(fixture, "/api/onboarding")
    onboarding = parse.parse_onboarding(steps.status, steps.body) if steps else None
    return Observations(
        title="Home Assistant",
        root_redirect=location,
        manifest=answer(fixture, "/manifest.json"),
        providers=answer(fixture, "/auth/providers"),
        onboarding=steps,
        installation_type=answer(fixture, "/api/onboarding/installation_type")
        if onboarding and onboarding.nothing_done else None,
        websocket=greeting(fixture),
    )


def run(name: str, *, tls: bool = False, active: bool = False) -> tuple[set[str], dict, list]:
    fixture = load_fixture(name)
    detection = assess(observations(fixture))
    assert detection.is_ha, detection
    flow = None
    if active and detection.facts.providers and detection.facts.providers.find("trusted_networks"):
        posted = answer(fixture, "/auth/login_flow", "POST")
        assert posted is not None
        flow = parse.parse_flow_start(posted.status, posted.body)
    findings, _notes = check.build_findings(detection, 8123, tls, flow, active, TODAY)
    details = check.ha_details(detection, flow, TODAY)
    return {f.id for f in findings}, details, findings


def test_every_fixture_says_where_it_came_from() -> None:
    files = sorted(FIXTURE_DIR.glob("*.json"))
    assert len(files) >= 10
    for path in files:
        data = json.loads(path.read_text())
        assert "Home Assistant Core" in data["recorded_from"], path
        assert data["how"] and data["recorded_at"] and data["state_description"], path


@pytest.mark.parametrize("version", VERSIONS)
def test_fresh_ha_is_onboarding_open_critical(version: str) -> None:
    ids, details, findings = run(f"{version}-fresh")
    assert {"ha.onboarding_open", "ha.plain_http", "ha.version_disclosed"} <= ids
    assert "ha.trusted_networks_exposed" not in ids
    critical = next(f for f in findings if f.id == "ha.onboarding_open")
    assert critical.severity is Severity.CRITICAL and "user=not done" in critical.evidence
    assert details["onboarding"]["state"] == "open"
    assert details["install_type"] == "Unsupported Third Party Container"
    assert details["confidence"] == "high" and details["version"] == version


@pytest.mark.parametrize("version", VERSIONS)
def test_owner_created_is_not_onboarding_open(version: str) -> None:
    ids, details, _ = run(f"{version}-owner-created")
    assert "ha.onboarding_open" not in ids
    assert details["onboarding"]["state"] == "in_progress"


@pytest.mark.parametrize("version", VERSIONS)
def test_onboarded_over_http(version: str) -> None:
    ids, details, _ = run(f"{version}-onboarded")
    assert "ha.plain_http" in ids and "ha.onboarding_open" not in ids
    assert "ha.trusted_networks_exposed" not in ids
    assert details["onboarding"]["state"] == "finished"
    assert details["auth_providers"] == ["homeassistant"]


@pytest.mark.parametrize("version", VERSIONS)
def test_onboarded_over_tls_has_no_plain_http(version: str) -> None:
    ids, _, _ = run(f"{version}-onboarded", tls=True)
    assert "ha.plain_http" not in ids and "ha.version_disclosed" in ids


@pytest.mark.parametrize("version", VERSIONS)
def test_trusted_networks_exposed_and_bypass_only_when_active(version: str) -> None:
    passive, _, _ = run(f"{version}-trusted-networks")
    assert "ha.trusted_networks_exposed" in passive
    assert "ha.trusted_networks_bypass" not in passive
    active, details, _findings = run(f"{version}-trusted-networks", active=True)
    assert {"ha.trusted_networks_exposed", "ha.trusted_networks_bypass"} <= active
    assert details["login_flow"]["result"] == "user_picker"
    assert details["login_flow"]["users_offered"] == 1


@pytest.mark.parametrize("version", VERSIONS)
def test_bypass_login_at_once_reports_the_code_was_discarded(version: str) -> None:
    ids, details, findings = run(f"{version}-trusted-networks-bypass", active=True)
    assert "ha.trusted_networks_bypass" in ids
    bypass = next(f for f in findings if f.id == "ha.trusted_networks_bypass")
    assert "discarded" in bypass.evidence
    assert "REDACTED" not in json.dumps(details) and "REDACTED" not in bypass.evidence


def test_outdated_severity_follows_the_worst_missed_advisory() -> None:
    _, _, findings = run("2025.4.4-onboarded")
    outdated = next(f for f in findings if f.id == "ha.outdated")
    assert outdated.severity is Severity.HIGH  # GHSA-mq77 (2025.1.0 <= v < 2025.10.2)
    assert "GHSA-mq77-rv97-285m" in outdated.evidence and "days old" in outdated.evidence
    assert "cannot be verified from outside" in outdated.evidence  # Konnected / Downloader
    _, _, old = run("2024.1.6-onboarded")
    assert next(f for f in old if f.id == "ha.outdated").severity is Severity.MEDIUM


def test_every_finding_names_its_checklist_line() -> None:
    for name, active in (("2024.1.6-fresh", False), ("2025.4.4-trusted-networks", True)):
        _, _, findings = run(name, active=active)
        for finding in findings:
            assert "Securing checklist" in finding.remediation, finding.id
            assert finding.references


def test_title_alone_is_not_ha() -> None:
    not_found = HttpAnswer(404, (), b"<html><title>404</title></html>")
    seen = Observations(title="Home Assistant", manifest=not_found, providers=not_found,
                        onboarding=not_found)
    detection = assess(seen)
    assert detection.confidence == "low" and not detection.is_ha


def test_catch_all_server_is_not_ha() -> None:
    page = HttpAnswer(200, (), b"<html><head><title>Home Assistant</title></head></html>")
    seen = Observations(title="Home Assistant", manifest=page, providers=page, onboarding=page,
                        websocket=WebsocketAnswer(False, 200, None, b""))
    assert not assess(seen).is_ha


def test_contradicting_answers_are_not_ha() -> None:
    providers = HttpAnswer(200, (), b'[{"name":"x","id":null,"type":"homeassistant"}]')
    onboarding = HttpAnswer(200, (), b'[{"step":"user","done":false}]')
    detection = assess(Observations(providers=providers, onboarding=onboarding))
    assert detection.contradictions and not detection.is_ha


def test_onboarding_open_needs_a_second_signal() -> None:
    onboarding = HttpAnswer(200, (), b'[{"step":"user","done":false}]')
    detection = assess(Observations(onboarding=onboarding))
    assert detection.confidence == "medium" and detection.is_ha
    findings, notes = check.build_findings(detection, 80, False, None, False, TODAY)
    assert "ha.onboarding_open" not in {f.id for f in findings}
    assert any("no second HA signal" in note for note in notes)


answers = st.builds(HttpAnswer, st.sampled_from([200, 400, 401, 404]), st.just(()),
                    st.binary(max_size=600)) | st.none()


@settings(max_examples=200, deadline=None)
@given(answers, answers, answers, answers, st.text(max_size=100) | st.none(),
       st.binary(max_size=200))
def test_assess_and_findings_never_raise_and_stay_bounded(
    manifest: HttpAnswer | None, providers: HttpAnswer | None, onboarding: HttpAnswer | None,
    install: HttpAnswer | None, title: str | None, frame: bytes,
) -> None:
    header = websocket.parse_frame_header(frame)
    payload = frame[header.header_size:] if header else b""
    seen = Observations(title=title, manifest=manifest, providers=providers,
                        onboarding=onboarding, installation_type=install,
                        websocket=WebsocketAnswer(True, 101, header, payload))
    detection = assess(seen)
    assert detection.confidence in ("none", "low", "medium", "high")
    assert all(len(line) < 400 for line in detection.evidence)
    if detection.is_ha:
        findings, _ = check.build_findings(detection, 1, False, None, True, TODAY)
        assert all(len(f.evidence) <= 1600 for f in findings)
        json.dumps(check.ha_details(detection, None, TODAY))


def test_trusted_networks_seen_from_the_lan_is_medium_and_says_why() -> None:
    fixture = load_fixture("2025.4.4-trusted-networks")
    detection = assess(observations(fixture))
    posted = answer(fixture, "/auth/login_flow", "POST")
    assert posted is not None
    flow = parse.parse_flow_start(posted.status, posted.body)
    findings, notes = check.build_findings(detection, 8123, False, flow, True, TODAY,
                                           local_vantage=True)
    assert any("from a local address" in note for note in notes)
    trusted = [f for f in findings if f.id.startswith("ha.trusted_networks")]
    assert len(trusted) == 2 and all(f.severity is Severity.MEDIUM for f in trusted)
    assert all("cannot be verified from here" in f.evidence for f in trusted)
    assert check.is_local_vantage("192.168.1.20") and check.is_local_vantage("fd00::1")
    assert not check.is_local_vantage("203.0.113.10")  # documentation range: "the internet"
    assert not check.is_local_vantage("198.51.100.7")
