"""Adding a check is adding its module: the catalogue, the terminal, HTML and SARIF pick it up.

The test writes a new check module (with its details dataclass) into a temporary directory
that joins the scanner.checks package, as a file under scanner/checks/ would, and edits nothing
else: the check registry finds it, its finding id is in the one catalogue, and every renderer
shows its details rows and its finding.
"""

from __future__ import annotations

import importlib
import io
import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
from markupsafe import escape
from rich.console import Console

import scanner.checks
from scanner.checks import registry
from scanner.core import catalogue, details
from scanner.core.report import PortReport, ScanReport, TargetReport
from scanner.report.html import render_html
from scanner.report.sarif import render_sarif
from scanner.report.terminal import render_terminal

MODULE = "zz_gopher"
CHECK_SOURCE = '''
"""A check nobody wrote yet: an open Gopher server (RFC 1436), for this test only."""

from __future__ import annotations

from dataclasses import dataclass

from scanner.checks.base import CheckContext, CheckResult
from scanner.core.details import DetailsRecord
from scanner.core.findings import FindingSpec, Severity

GOPHER_OPEN = FindingSpec("gopher.open", Severity.MEDIUM, "A Gopher server answers anyone")


@dataclass(frozen=True)
class GopherDetails(DetailsRecord):
    HIGHLIGHTS = (("server", "gopher server"), ("menu_items", "menu items"))
    TABLE = (("menu_items", "gopher menu items"),)

    server: str = ""
    menu_items: int = 0


class GopherCheck:
    name = "gopher"
    catalogue = (GOPHER_OPEN,)
    after: tuple[str, ...] = ()

    def applies(self, context: CheckContext) -> bool:
        return context.port == 70

    def run(self, context: CheckContext) -> CheckResult:
        found = GopherDetails(server="pygopherd 2.0", menu_items=7)
        finding = GOPHER_OPEN.finding(port=context.port, evidence="the root menu lists 7 items",
                                      remediation="Stop the Gopher server or firewall port 70.")
        return CheckResult((finding,), {"gopher": found.to_dict()})


CHECK = GopherCheck()
DETAILS = {"gopher": GopherDetails.from_dict}
'''


def _clear_caches() -> None:
    registry.all_checks.cache_clear()
    registry._check_modules.cache_clear()
    catalogue.finding_catalogue.cache_clear()
    details.details_loaders.cache_clear()


@pytest.fixture
def new_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    (tmp_path / f"{MODULE}.py").write_text(textwrap.dedent(CHECK_SOURCE))
    monkeypatch.setattr(scanner.checks, "__path__", [*scanner.checks.__path__, str(tmp_path)])
    _clear_caches()
    try:
        yield importlib.import_module(f"scanner.checks.{MODULE}")
    finally:
        sys.modules.pop(f"scanner.checks.{MODULE}", None)
        monkeypatch.undo()
        _clear_caches()


def _report_of(module: ModuleType) -> ScanReport:
    result = module.CHECK.run(SimpleNamespace(port=70))
    port = PortReport(70, "tcp", "open", service="gopher", product="pygopherd",
                      details=dict(result.details))
    target = TargetReport("gopher.example", "198.51.100.70", ports=[port],
                          findings=list(result.findings))
    return ScanReport("abcdef123456", "2026-01-01T00:00:00+00:00", "2026-01-01T00:00:05+00:00",
                      5.0, "connect", 1, targets=[target])


def test_the_registry_and_the_catalogue_find_the_new_check(new_check: ModuleType) -> None:
    assert new_check.CHECK in registry.all_checks()
    spec = catalogue.finding_catalogue().get("gopher.open")
    assert spec is not None and spec.title == "A Gopher server answers anyone"
    assert details.details_loaders()["gopher"] == new_check.GopherDetails.from_dict


def test_the_terminal_shows_its_table_row_and_finding(new_check: ModuleType) -> None:
    buffer = io.StringIO()
    render_terminal(_report_of(new_check), Console(file=buffer, width=160, force_terminal=False))
    text = buffer.getvalue()
    assert "gopher menu items: 7" in text
    assert "gopher.open" in text and "A Gopher server answers anyone" in text


def test_html_shows_its_details_rows_and_finding(new_check: ModuleType) -> None:
    page = render_html(_report_of(new_check))
    assert "gopher server" in page and escape("pygopherd 2.0") in page
    assert "menu items" in page and "the root menu lists 7 items" in page


def test_sarif_has_its_rule_and_result(new_check: ModuleType) -> None:
    log = json.loads(render_sarif(_report_of(new_check)))
    run = log["runs"][0]
    rules = {rule["id"]: rule for rule in run["tool"]["driver"]["rules"]}
    assert "A Gopher server answers anyone" in json.dumps(rules["gopher.open"])
    assert [result["ruleId"] for result in run["results"]] == ["gopher.open"]


def test_without_the_module_nothing_knows_it() -> None:
    _clear_caches()
    assert catalogue.finding_catalogue().get("gopher.open") is None
    assert "gopher" not in details.details_loaders()
