"""All five report formats of a real scan of the default lab, and a screenshot of the HTML.

The default lab (two OpenSSH, nginx on 80/443/8443 with the lab CA, anonymous mosquitto) is
scanned by the real CLI in the scan namespace, once per format, two at a time. Each
report is checked against what the JSON report says, so the test holds whichever checks
exist: every finding shows in every format, every TLS grade in the summary and as a badge.
The HTML report is opened in headless Chromium (no script, no request, no console message)
and a full-page screenshot is saved; every report is kept next to it
(EXPOSURE_TEST_ARTIFACTS, default /tmp/exposure-test-artifacts/report-lab.*), path printed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from scanner.report.schema import validate_report
from tests.lab.netns import Lab
from tests.lab.scanning import EXPOSURE, LAB_SPEED, CliRun, run_many
from tests.lab.support_hostile import chromium, find_chromium
from tests.unit.test_report_sarif import assert_valid_sarif

pytestmark = pytest.mark.lab

FORMATS = ("table", "json", "markdown", "html", "sarif")
ARTIFACTS = Path(os.environ.get("EXPOSURE_TEST_ARTIFACTS", "/tmp/exposure-test-artifacts"))


@pytest.fixture(scope="module")
def runs(lab: Lab) -> dict[str, CliRun]:
    base = [*EXPOSURE, "scan", Lab.HOSTNAME, "--ports", "top,2222", *LAB_SPEED,
            "--ca-file", str(lab.ca_pem), "--fail-on", "never"]
    variants: dict[str, tuple[list[str], dict[str, str]]] = {
        fmt: ([*base, "--format", fmt], {}) for fmt in FORMATS
    }
    variants["quiet"] = ([*base, "--quiet"], {})
    results = run_many(lab, variants)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for name, run in results.items():
        assert run.code == 0, f"{name}: exit {run.code}: {run.stderr[-2000:]}"
        suffix = {"table": "txt", "quiet": "quiet.txt", "markdown": "md"}.get(name, name)
        (ARTIFACTS / f"report-lab.{suffix}").write_text(run.stdout, encoding="utf-8")
    return results


def _report(runs: dict[str, CliRun]) -> dict[str, Any]:
    report = runs["json"].json()
    validate_report(report)
    return report


def _findings(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [finding for target in report["targets"] for finding in target["findings"]]


def _problems(report: dict[str, Any]) -> set[tuple[Any, ...]]:
    """Findings as the human reports list them: once per name, whichever addresses."""
    return {(target["input"], f["id"], f["port"], f["protocol"], f["severity"], f["title"],
             f["remediation"]) for target in report["targets"] for f in target["findings"]}


def _grades(target: dict[str, Any]) -> dict[int, str]:
    return {port["port"]: port["details"]["tls"]["grade"] for port in target["ports"]
            if isinstance(port["details"].get("tls"), dict)
            and isinstance(port["details"]["tls"].get("grade"), str)}


def test_the_lab_scan_found_the_lab(runs: dict[str, CliRun], lab: Lab) -> None:
    report = _report(runs)
    v4 = next(t for t in report["targets"] if t["address"] == Lab.HOME_V4)
    open_ports = {port["port"] for port in v4["ports"] if port["state"] == "open"}
    assert set(lab.open_ports) <= open_ports


def test_terminal_summary_findings_and_grades(runs: dict[str, CliRun]) -> None:
    report, table = _report(runs), runs["table"].stdout
    assert "\x1b" not in table
    for target in report["targets"]:
        open_count = sum(1 for port in target["ports"] if port["state"] == "open")
        title = target["input"] if target["input"] == target["address"] else (
            f"{target['input']} ({target['address']})")
        summary = next(line for line in table.splitlines() if line.startswith(title + " "))
        assert f"open {open_count}," in summary
        for port, grade in _grades(target).items():
            assert f" {port} {grade}" in summary
    for finding in _findings(report):
        assert finding["id"] in table
    quiet = [line for line in runs["quiet"].stdout.splitlines() if not line.startswith("    ")]
    assert len([line for line in quiet if line.strip()]) == len(_problems(report))


def test_markdown_and_sarif_carry_every_finding(runs: dict[str, CliRun]) -> None:
    report = _report(runs)
    markdown = runs["markdown"].stdout
    assert markdown.startswith(f"# Exposure report: {Lab.HOSTNAME}")
    sarif = runs["sarif"].json()
    assert_valid_sarif(sarif)
    results = sarif["runs"][0]["results"]
    assert len(results) == len(_findings(report))
    for finding in _findings(report):
        assert f"`{finding['id']}`" in markdown
        assert any(result["ruleId"] == finding["id"] for result in results)


def test_html_report_in_chromium_with_screenshot(
    runs: dict[str, CliRun], capsys: pytest.CaptureFixture[str]
) -> None:
    if find_chromium() is None:
        pytest.fail("headless Chromium is needed: apt-get install chromium", pytrace=False)
    report = _report(runs)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = ARTIFACTS / "report-lab.html"  # written by the `runs` fixture
    with chromium() as browser:
        visit = browser.visit(page, evaluate={
            "scripts": "document.scripts.length",
            "badges": "[...document.querySelectorAll('svg.grade')].map(b => b.ariaLabel)",
            "findings": "document.querySelectorAll('article.finding').length",
            "ports": "document.querySelectorAll('table tr').length",
        }, screenshot_width=1200)
    assert visit.requests == [visit.url] and visit.console == [] and visit.exceptions == []
    assert visit.log_entries == [] and visit.evaluations["scripts"] == 0
    assert visit.evaluations["findings"] == len(_problems(report))
    for target in report["targets"]:
        for grade in _grades(target).values():
            assert f"TLS grade {grade}" in visit.evaluations["badges"]
    assert visit.screenshot is not None and visit.screenshot.startswith(b"\x89PNG")
    shot = ARTIFACTS / "report-lab.png"
    shot.write_bytes(visit.screenshot)
    with capsys.disabled():
        print(f"\nHTML report of the lab scan: {page}\nits screenshot: {shot}")
    assert re.search(r"<h1>[^<]*home\.lab", runs["html"].stdout)
