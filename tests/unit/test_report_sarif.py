"""SARIF 2.1.0: valid against the official schema, rules from the catalogue, one result each."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from scanner.core.catalogue import finding_catalogue
from scanner.core.findings import FindingSpec, Severity
from scanner.core.report import ScanError
from scanner.report.sarif import endpoint_uri, render_sarif, sarif_log, sarif_text
from tests.unit.test_report_samples import hostile_report, sample_report

SARIF_SCHEMA = Path(__file__).resolve().parents[1] / "data" / "sarif-schema-2.1.0.json"


@cache
def _validator() -> jsonschema.Draft4Validator:
    schema = json.loads(SARIF_SCHEMA.read_text())
    return jsonschema.Draft4Validator(schema, format_checker=jsonschema.FormatChecker())


def assert_valid_sarif(log: dict[str, Any]) -> None:
    errors = sorted(_validator().iter_errors(log), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message[:200]}" for e in errors)


def _catalogue() -> list[FindingSpec]:
    return list(finding_catalogue())


def test_sample_report_is_valid_sarif() -> None:
    log = json.loads(render_sarif(sample_report(), _catalogue()))
    assert_valid_sarif(log)
    assert log["version"] == "2.1.0" and log["$schema"].endswith("sarif-schema-2.1.0.json")


def test_hostile_report_is_valid_sarif_and_clean() -> None:
    text = render_sarif(hostile_report(), _catalogue())
    log = json.loads(text)
    assert_valid_sarif(log)
    assert "\\u001b" not in text and "\\u202e" not in text  # no ESC, no RLO, even escaped
    assert len(text) < 2_000_000
    for result in log["runs"][0]["results"]:
        message = result["message"]["text"]
        # "[text](url)" would be an embedded link: every bracket is escaped
        assert "[" not in message.replace("\\[", "")


def test_rules_are_the_catalogue_plus_unknown_ids() -> None:
    specs = [*_catalogue(), FindingSpec("ha.onboarding_open", Severity.CRITICAL, "HA onboarding")]
    log = sarif_log(sample_report(), specs)
    rules = log["runs"][0]["tool"]["driver"]["rules"]
    ids = [rule["id"] for rule in rules]
    assert ids == sorted(set(ids))
    expected = {spec.id for spec in _catalogue()} | {
        f.id for t in sample_report().targets for f in t.findings}
    assert set(ids) == expected  # never a result without its rule
    onboarding = rules[ids.index("ha.onboarding_open")]
    assert onboarding["name"] == "HaOnboardingOpen"
    assert onboarding["defaultConfiguration"]["level"] == "error"
    assert onboarding["properties"]["security-severity"] == "9.5"


def test_one_result_per_finding_with_endpoint_locations() -> None:
    report = sample_report()
    log = sarif_log(report, _catalogue())
    run = log["runs"][0]
    results = run["results"]
    assert len(results) == sum(len(target.findings) for target in report.targets)
    rules = run["tool"]["driver"]["rules"]
    for result in results:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        assert "Fix:" in result["message"]["text"]
    first = results[0]
    assert first["ruleId"] == "ha.onboarding_open" and first["level"] == "error"
    location = first["locations"][0]
    assert location["physicalLocation"]["artifactLocation"]["uri"] == "tcp://198.51.100.7:8123"
    assert location["logicalLocations"][0]["name"] == "home.example (198.51.100.7) port 8123/tcp"
    v6 = [r for r in results if "2001:db8" in json.dumps(r["locations"])]
    assert v6[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == (
        "tcp://[2001:db8::7]:22")
    levels = {result["ruleId"]: result["level"] for result in results}
    assert levels["tls.no_hsts"] == "note" and levels["ssh.password_auth"] == "warning"


def test_fingerprints_are_stable_and_distinct() -> None:
    one = sarif_log(sample_report(), [])["runs"][0]["results"]
    two = sarif_log(sample_report(), [])["runs"][0]["results"]
    prints = [r["partialFingerprints"]["exposureFinding/v1"] for r in one]
    assert prints == [r["partialFingerprints"]["exposureFinding/v1"] for r in two]
    assert len(set(prints)) == len(prints)


def test_invocation_and_category() -> None:
    report = sample_report()
    report.complete, report.errors = False, [ScanError("discovery", "no route")]
    run = sarif_log(report, [])["runs"][0]
    invocation = run["invocations"][0]
    assert invocation["executionSuccessful"] is False
    assert invocation["startTimeUtc"] == "2024-05-01T08:00:00Z"
    assert invocation["toolExecutionNotifications"][0]["level"] == "error"
    assert run["automationDetails"]["id"] == "exposure/home.example/3f2a9c1b7d4e"


def test_endpoint_uri() -> None:
    assert endpoint_uri("198.51.100.7", 22) == "tcp://198.51.100.7:22"
    assert endpoint_uri("2001:db8::1", 443) == "tcp://[2001:db8::1]:443"
    assert endpoint_uri("198.51.100.7", None) == "tcp://198.51.100.7"
    assert endpoint_uri("198.51.100.7", 53, "udp") == "udp://198.51.100.7:53"
    assert endpoint_uri("<script>", 1) == "tcp://script:1"


def test_sarif_text_escapes_embedded_links() -> None:
    assert sarif_text("[click](http://203.0.113.99/) \\ \x1b") == (
        "\\[click\\](http://203.0.113.99/) \\\\ \\\\e")


def test_empty_report_is_valid_sarif() -> None:
    report = sample_report()
    report.targets = []
    assert_valid_sarif(sarif_log(report, _catalogue()))
