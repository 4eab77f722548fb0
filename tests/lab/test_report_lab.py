"""All five report formats of a real scan of a lab home with critical and high findings.

The home (tests/lab/showcase.py): two OpenSSH, nginx on 80/443/8443 with the lab CA,
anonymous mosquitto, a never-onboarded Home Assistant (replayed recording of a real one,
plain HTTP) and Node-RED without adminAuth. The real CLI scans it in the scan namespace
once with `-oA` (all five formats from one scan, so every format must say the same) and
once per stdout format, two at a time (tests.lab.scanning.run_many). Each report is checked
against the JSON report, so the test holds whichever checks exist:

- every format opens with the same verdict and the same "fix these first" list, each problem
  once with where it applies; the JSON `summary` comes right after `schema`, SARIF carries
  it in the run's properties;
- every finding of the JSON shows in every format; every TLS grade in the summary lines and
  as a badge; one count of open ports everywhere;
- the HTML opens in headless Chromium (no script, no request, no console message), a
  screenshot is kept (EXPOSURE_TEST_ARTIFACTS, default /tmp/exposure-test-artifacts).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scanner.report.schema import validate_report
from tests.lab.netns import Lab
from tests.lab.scanning import EXPOSURE, CliRun, run_many
from tests.lab.showcase import HA_PORT, NODE_RED_PORT, scan_args, showcase_services
from tests.lab.support_hostile import chromium, find_chromium
from tests.lab.support_services import node_red_installed
from tests.unit.test_report_sarif import assert_valid_sarif

pytestmark = pytest.mark.lab

FORMATS = ("table", "json", "markdown", "html", "sarif")
ARTIFACTS = Path(os.environ.get("EXPOSURE_TEST_ARTIFACTS", "/tmp/exposure-test-artifacts"))


@pytest.fixture(scope="module")
def home() -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.fail("lab tests need root (network namespaces)", pytrace=False)
    if not node_red_installed():
        pytest.fail("Node-RED is needed: make lab-deps", pytrace=False)
    with Lab(services=showcase_services()) as lab:
        yield lab


@pytest.fixture(scope="module")
def runs(home: Lab) -> dict[str, CliRun]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    base = ARTIFACTS / "report-lab"
    variants = {fmt: scan_args(home, "--format", fmt) for fmt in FORMATS}
    variants["quiet"] = scan_args(home, "--quiet")
    variants["all"] = scan_args(home, "-oA", str(base))
    results = run_many(home, {name: ([*EXPOSURE, *argv], {})
                              for name, argv in variants.items()}, timeout=240)
    for name, run in results.items():
        assert run.code == 0, f"{name}: exit {run.code}: {run.stderr[-2000:]}"
    assert results["all"].stdout == ""  # -oA: the files only
    for suffix in ("txt", "json", "md", "html", "sarif"):
        results[f"all.{suffix}"] = CliRun(0, (base.with_suffix(f".{suffix}")).read_text(), "",
                                          0.0)
    return results


def _report(runs: dict[str, CliRun], name: str = "json") -> dict[str, Any]:
    report = runs[name].json()
    validate_report(report)
    return report


def _findings(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [finding for target in report["targets"] for finding in target["findings"]]


def _grades(target: dict[str, Any]) -> dict[int, str]:
    return {port["port"]: port["details"]["tls"]["grade"] for port in target["ports"]
            if isinstance(port["details"].get("tls"), dict)
            and isinstance(port["details"]["tls"].get("grade"), str)}


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_the_home_has_critical_and_high_problems(runs: dict[str, CliRun], home: Lab) -> None:
    report = _report(runs)
    assert list(report)[:2] == ["schema", "summary"]
    summary = report["summary"]
    assert summary["status"] == "not_safe" and summary["worst_severity"] == "critical"
    assert summary["counts"]["critical"] >= 2 and summary["counts"]["high"] >= 2
    ids = [problem["id"] for problem in summary["findings"]]
    assert {"ha.onboarding_open", "service.unauthenticated", "ha.plain_http",
            "mqtt.anonymous"} <= set(ids)
    assert len(ids) == len(set(ids))  # grouped by id
    onboarding = next(p for p in summary["findings"] if p["id"] == "ha.onboarding_open")
    assert onboarding["where"] == f"{HA_PORT} on IPv4 and IPv6" and onboarding["instances"] == 2
    node_red = next(p for p in summary["findings"] if p["id"] == "service.unauthenticated")
    assert node_red["where"] == f"{NODE_RED_PORT} on IPv4 only"  # Node-RED listens on IPv4
    v4 = next(t for t in report["targets"] if t["address"] == Lab.HOME_V4)
    assert set(home.open_ports) <= {p["port"] for p in v4["ports"] if p["state"] == "open"}
    distinct = {(p["port"], p["protocol"]) for t in report["targets"] for p in t["ports"]
                if p["state"] == "open"}
    assert summary["open_ports"] == len(distinct)
    services = {service["port"]: service for service in summary["exposed_services"]}
    assert services[HA_PORT]["product"] == "Home Assistant"
    assert services[NODE_RED_PORT]["product"] == "Node-RED"
    assert "ipv6_note" in summary


def test_every_format_opens_with_the_same_answer(runs: dict[str, CliRun]) -> None:
    summary = _report(runs)["summary"]
    verdict = summary["verdict"]
    urgent = [problem for problem in summary["findings"] if problem["severity"] != "info"]
    table = runs["table"].stdout
    lines = table.splitlines()
    assert lines[1].startswith(" NOT SAFE  ") and _flat("\n".join(lines[1:3])).endswith(
        _flat(verdict)[-40:])
    assert lines.index("Fix these first") < 6
    markdown, html = runs["markdown"].stdout, runs["html"].stdout
    assert _flat(verdict) in _flat(markdown.split("## Fix these first")[0])
    assert html.index(f'<div class="headline">{verdict}</div>') < html.index("<article")
    for number, problem in enumerate(urgent, 1):
        assert re.search(rf"^ ?{number}\. {problem['severity'].upper()} +", table, re.M)
        assert _flat(f"{problem['where']} · {problem['id']}") in _flat(table)
        assert f"{number}. " in markdown and f"`{problem['id']}`" in markdown
        assert f'{problem["where"]} · <span class="mono">{problem["id"]}</span>' in html
    sarif = runs["sarif"].json()
    assert sarif["runs"][0]["properties"]["summary"]["verdict"] == verdict
    for name in ("all.json", "all.sarif"):  # the -oA files of one scan say the same
        assert runs[name].json()["summary" if name.endswith("json") else "runs"]
    assert _report(runs, "all.json")["summary"]["open_ports"] == summary["open_ports"]
    assert runs["all.txt"].stdout.splitlines()[1].startswith(" NOT SAFE  ")


def test_terminal_summary_lines_grades_and_findings(runs: dict[str, CliRun]) -> None:
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
    assert "MQTT Connection Code" not in table and "What internet crawlers" not in table
    quiet = [line for line in runs["quiet"].stdout.splitlines() if not line.startswith("    ")]
    assert len([line for line in quiet if line.strip()]) == len(report["summary"]["findings"])


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
    assert "\\`" not in markdown  # code spans are code, not escaped backticks


def test_html_report_in_chromium_with_screenshot(
    runs: dict[str, CliRun], capsys: pytest.CaptureFixture[str]
) -> None:
    if find_chromium() is None:
        pytest.fail("headless Chromium is needed: apt-get install chromium", pytrace=False)
    report = _report(runs)
    page = ARTIFACTS / "report-lab.html"  # -oA wrote it
    with chromium() as browser:
        visit = browser.visit(page, evaluate={
            "scripts": "document.scripts.length",
            "badges": "[...document.querySelectorAll('svg.grade')].map(b => b.ariaLabel)",
            "findings": "document.querySelectorAll('article.finding').length",
            "fixes": "document.querySelectorAll('ol.fixlist > li').length",
            "first": "document.querySelector('main section').className",
            "crawlers": "document.querySelector('details.shodan').open",
            "links": "[...document.querySelectorAll('a')].map(a => a.href)",
        }, screenshot_width=1200)
    assert visit.requests == [visit.url] and visit.console == [] and visit.exceptions == []
    assert visit.log_entries == [] and visit.evaluations["scripts"] == 0
    assert visit.evaluations["first"] == "verdict status-not-safe"
    urgent = [p for p in report["summary"]["findings"] if p["severity"] != "info"]
    assert visit.evaluations["fixes"] == len(urgent)
    assert visit.evaluations["crawlers"] is False  # folded
    assert visit.evaluations["links"] and all(
        link.startswith("https://") for link in visit.evaluations["links"])
    problems = {(t["input"], f["id"], f["port"], f["protocol"], f["severity"], f["title"],
                 f["remediation"]) for t in report["targets"] for f in t["findings"]}
    assert visit.evaluations["findings"] == len(problems)
    for target in report["targets"]:
        for grade in _grades(target).values():
            assert f"TLS grade {grade}" in visit.evaluations["badges"]
    assert visit.screenshot is not None and visit.screenshot.startswith(b"\x89PNG")
    shot = ARTIFACTS / "report-lab.png"
    shot.write_bytes(visit.screenshot)
    with capsys.disabled():
        print(f"\nHTML report of the lab scan: {page}\nits screenshot: {shot}")
    assert re.search(r"<h1>[^<]*home\.lab", runs["html"].stdout)
