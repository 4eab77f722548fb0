"""Every renderer on reports the scanner wrote while scanning the lab (fixtures/reports).

A check's details and the way they are shown cannot drift apart: the fixtures are real scan
output (fixtures/reports/README.md says how each was made), loaded back the way `exposure show`
loads a stored scan, and each format must show what the typed details say.
"""

from __future__ import annotations

import io
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from markupsafe import escape
from rich.console import Console

from scanner.core.catalogue import finding_catalogue
from scanner.core.details import (
    CrawlerView,
    DetailsRecord,
    Graded,
    UntypedDetails,
    load_details,
    load_port_details,
)
from scanner.core.report import ScanReport
from scanner.report.html import render_html
from scanner.report.json_report import render_json
from scanner.report.markdown import md, render_markdown
from scanner.report.sarif import render_sarif
from scanner.report.terminal import render_terminal
from scanner.store.codec import report_from_dict
from tests.unit.test_report_sarif import assert_valid_sarif

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "reports"
NAMES = sorted(path.name for path in FIXTURES.glob("*.json"))
# Keys whose record keeps facts named by data, not code (the services check's YAML products).
FACTS_IN_EXTRA = {"mqtt", "node_red"}


@cache
def _text(name: str) -> str:
    return (FIXTURES / name).read_text()


def _document(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(_text(name))
    return document


def _report(name: str) -> ScanReport:
    return report_from_dict(_document(name))


def _ports(name: str) -> list[dict[str, Any]]:
    return [port for target in _document(name)["targets"] for port in target["ports"]]


def _terminal(report: ScanReport) -> str:
    buffer = io.StringIO()
    render_terminal(report, Console(file=buffer, width=200, force_terminal=False), shodan=True)
    return buffer.getvalue()


def test_there_are_lab_fixtures_covering_every_check_family() -> None:
    keys = {key for name in NAMES for port in _ports(name) for key in port["details"]}
    assert {"ssh", "tls", "http", "ha", "mqtt", "node_red", "product", "shodan"} <= keys


@pytest.mark.parametrize("name", NAMES)
def test_the_typed_loader_round_trips_every_details_key(name: str) -> None:
    for port in _ports(name):
        for key, value in port["details"].items():
            typed = load_details(key, value)
            assert not isinstance(typed, UntypedDetails), (port["port"], key)
            assert json.dumps(typed.to_dict()) == json.dumps(value), (port["port"], key)


@pytest.mark.parametrize("name", NAMES)
def test_every_key_a_check_writes_has_a_typed_field(name: str) -> None:
    """A key the record does not declare would only be shown generically: a check that adds
    one must add it to its details class (or this fails)."""
    def undeclared(record: Any, where: str) -> list[str]:
        if not isinstance(record, DetailsRecord):
            return []
        found = [f"{where}.{key}" for key in record.extra] if where not in FACTS_IN_EXTRA else []
        for key in record.to_dict():
            found += _nested(getattr(record, key, None), f"{where}.{key}", undeclared)
        return found

    for port in _ports(name):
        for key, record in load_port_details(port["details"]).items():
            assert undeclared(record, key) == [], port["port"]


def _nested(value: Any, where: str, check: Any) -> list[str]:
    if isinstance(value, DetailsRecord):
        return list(check(value, where))
    if isinstance(value, tuple):
        return [item for element in value for item in _nested(element, where, check)]
    return []


@pytest.mark.parametrize("name", NAMES)
def test_json_rendered_again_is_the_scan_output_byte_for_byte(name: str) -> None:
    assert render_json(_report(name)) == _text(name)


@pytest.mark.parametrize("name", NAMES)
def test_terminal_shows_the_grades_table_rows_and_findings(name: str) -> None:
    report = _report(name)
    text = _terminal(report)
    for finding in report.all_findings():
        assert finding.id in text
    for port in _ports(name):
        typed = load_port_details(port["details"]).values()
        for record in typed:
            if isinstance(record, Graded) and (grade := record.graded()) is not None:
                assert f"{port['port']} {grade.display}" in text
            if isinstance(record, CrawlerView) and record.queries:
                assert record.queries[0] in text
        ranked = sorted(typed, key=lambda record: record.table_rank)
        glance = [row for record in ranked for row in record.table_rows()][:2]  # its table cell
        assert "; ".join(f"{row.label}: {row.value}" for row in glance) in text


@pytest.mark.parametrize("name", NAMES)
def test_html_shows_every_details_row_and_cap(name: str) -> None:
    report = _report(name)
    page = render_html(report)
    for finding in report.all_findings():
        assert escape(finding.id) in page
    for port in _ports(name):
        for key, record in load_port_details(port["details"]).items():
            if isinstance(record, CrawlerView):
                assert not record.queries or escape(record.queries[0]) in page
                continue
            for row in record.rows():
                assert escape(row.value) in page, (port["port"], key, row)
            if isinstance(record, Graded):
                for cap in record.cap_texts():
                    assert escape(cap) in page


@pytest.mark.parametrize("name", NAMES)
def test_markdown_lists_findings_details_and_grades(name: str) -> None:
    report = _report(name)
    text = render_markdown(report)
    for finding in report.all_findings():
        assert finding.id in text
    for port in _ports(name):
        for key, record in load_port_details(port["details"]).items():
            if isinstance(record, Graded) and (grade := record.graded()) is not None:
                assert f"**{grade.display}**" in text
            if isinstance(record, CrawlerView):
                continue
            assert key in text
            for row in record.rows():
                assert f"- {md(key)} {md(row.label)}: {md(row.value)}" in text, (port["port"], row)


@pytest.mark.parametrize("name", NAMES)
def test_sarif_has_one_result_per_finding_and_catalogue_rules(name: str) -> None:
    report = _report(name)
    log = json.loads(render_sarif(report))
    assert_valid_sarif(log)
    results = log["runs"][0]["results"]
    assert len(results) == len(report.all_findings())
    rules = {rule["id"] for rule in log["runs"][0]["tool"]["driver"]["rules"]}
    assert {spec.id for spec in finding_catalogue()} <= rules
    assert {result["ruleId"] for result in results} <= rules
