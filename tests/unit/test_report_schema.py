"""The JSON report's schema: shipped in the package, printed by `exposure schema`, in sync
with scanner/report/model.py, and enforced on every JSON report the test suite renders."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from scanner.cli import main
from scanner.core.diff import ReportDiff
from scanner.core.findings import Finding, Severity
from scanner.core.report import PortReport, ScanError, ScanReport, TargetReport
from scanner.report.json_report import VALIDATE_ENV, render_json, report_document
from scanner.report.schema import ReportInvalid, load_schema, validate_report
from tests.unit.test_report_samples import hostile_diff, hostile_report, sample_diff, sample_report

# SPEC "JSON report": the keys a consumer may rely on.
SPEC_REQUIRED = {
    "": {"schema", "summary", "tool", "scan", "targets"},
    "summary": {"verdict", "status", "worst_severity", "counts", "finding_counts", "open_ports",
                "hosts", "addresses_scanned", "worst_tls_grade", "exposed_services",
                "findings", "complete"},
    "scan": {"id", "started_at", "finished_at", "duration_s", "engine", "ports_requested",
             "complete", "errors"},
    "target": {"input", "address", "ports", "filtered_count", "findings"},
    "port": {"port", "protocol", "state", "service", "product", "version", "tls", "banner",
             "details"},
    "finding": {"id", "severity", "port", "protocol", "title", "evidence", "remediation",
                "references"},
}


def _definition(name: str) -> dict[str, Any]:
    schema = load_schema()
    return schema if name == "" else schema["$defs"][name]


def test_the_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(load_schema())


def test_required_keys_are_the_spec_contract() -> None:
    for name, keys in SPEC_REQUIRED.items():
        assert set(_definition(name)["required"]) == keys, name


def test_every_key_the_model_writes_is_described() -> None:
    """A field added to model.py must be added to the schema too (more keys are allowed by
    the schema, so without this test the two would drift apart silently)."""
    report = sample_report()
    report.targets[0].findings.append(Finding("x.y", Severity.LOW, "t", "e", "r", None))
    document = report_document(report, sample_diff())
    target = document["targets"][0]
    pairs = [("", document), ("summary", document["summary"]), ("scan", document["scan"]),
             ("target", target),
             ("port", target["ports"][0]), ("finding", target["findings"][0]),
             ("diff", document["diff"])]
    for name, produced in pairs:
        described = set(_definition(name)["properties"])
        assert set(produced) <= described, (name, set(produced) - described)


@pytest.mark.parametrize("make", [sample_report, hostile_report])
def test_reports_validate(make: Any) -> None:
    validate_report(json.loads(render_json(make())))


def test_reports_with_a_diff_validate() -> None:
    validate_report(json.loads(render_json(sample_report(), sample_diff())))
    validate_report(json.loads(render_json(hostile_report(), hostile_diff())))


def test_clean_data_passes_the_json_report_unchanged() -> None:
    report = sample_report()
    document = report_document(report)
    assert list(document)[:2] == ["schema", "summary"]  # the answer first
    document.pop("summary")
    assert document == json.loads(json.dumps(report.to_dict()))


def test_the_json_report_caps_what_a_stage_forgot_to() -> None:
    text = render_json(hostile_report())
    assert len(text) < 40_000_000  # the input holds hundreds of 1 MB strings
    assert "\\u001b" not in text and "[truncated]" in text


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("schema",), "exposure-report/1"),  # notes and errors are objects since /2
        (("scan", "errors"), ["discovery failed: a sentence, as /1 wrote it"]),
        (("targets", 0, "notes"), ["port 22: a sentence, as /1 wrote it"]),
        (("targets", 0, "notes", 0, "port"), "22"),
        (("scan", "errors"), [{"stage": "lunch", "message": "m", "address": None, "port": None,
                               "check": None}]),
        (("scan", "complete"), "yes"),
        (("scan", "started_at"), "yesterday"),
        (("targets", 0, "ports", 0, "state"), "half-open"),
        (("targets", 0, "ports", 0, "port"), 70000),
        (("targets", 0, "findings", 0, "severity"), "urgent"),
        (("targets", 0, "findings", 0, "id"), "No Dots"),
        (("targets", 0, "ports", 0, "details", "shodan", "queries"), "not a list"),
    ],
)
def test_broken_reports_are_rejected(path: tuple[Any, ...], value: Any) -> None:
    document = json.loads(render_json(sample_report()))
    holder = document
    for part in path[:-1]:
        holder = holder[part]
    holder[path[-1]] = value
    with pytest.raises(ReportInvalid):
        validate_report(document)


def test_notes_and_errors_are_objects_with_their_fields() -> None:
    document = json.loads(render_json(sample_report()))
    assert document["schema"] == "exposure-report/2"
    assert document["targets"][0]["notes"][0] == {
        "port": 22, "text": "PermitRootLogin cannot be verified from outside"}
    failed = ScanError("check", "TimeoutError()", "198.51.100.7", 8123, check="ha")
    report = sample_report()
    report.errors = [failed]
    document = json.loads(render_json(report))
    validate_report(document)
    assert document["scan"]["errors"] == [failed.to_dict()]
    assert ScanError.from_dict(document["scan"]["errors"][0]) == failed


def test_missing_required_keys_are_rejected() -> None:
    document = json.loads(render_json(sample_report()))
    del document["targets"][0]["findings"][0]["remediation"]
    with pytest.raises(ReportInvalid, match="remediation"):
        validate_report(document)


def test_render_json_validates_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    bad = ScanReport("b", "2024-05-01T08:00:00+00:00", "2024-05-01T08:00:01+00:00", 1.0, "syn",
                     1, targets=[TargetReport("x", "198.51.100.7", ports=[
                         PortReport(1, "sctp", "open")])])
    monkeypatch.setenv(VALIDATE_ENV, "1")
    with pytest.raises(ReportInvalid, match="sctp"):
        render_json(bad)
    monkeypatch.setenv(VALIDATE_ENV, "0")
    assert json.loads(render_json(bad))["targets"][0]["ports"][0]["protocol"] == "sctp"


def test_the_suite_validates_every_json_report() -> None:
    import os

    assert os.environ.get(VALIDATE_ENV) == "1"  # set by tests/conftest.py


def test_exposure_schema_prints_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == load_schema()
    assert printed["properties"]["schema"] == {"const": "exposure-report/2"}


def test_diff_round_trips() -> None:
    diff = sample_diff()
    assert ReportDiff.from_dict(json.loads(json.dumps(diff.to_dict()))) == diff
