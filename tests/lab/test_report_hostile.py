"""The real CLI scans a hostile server (tests/lab/support_hostile.py) in all five formats.

The server puts <script>, attribute breakouts, ANSI/OSC sequences, invalid UTF-8, 1 MB
strings and right-to-left overrides into its banner, SSH line, HTTP headers and title,
favicon and TLS certificate. Proven here, on what the CLI really printed:

- the JSON validates against the package's schema and holds no control character;
- the SARIF validates against the official SARIF 2.1.0 schema;
- the terminal output carries no escape sequence of the server, coloured or not;
- the Markdown, once rendered, holds no element or link from the server;
- the HTML, opened in headless Chromium, runs no script and makes no request but the file;
- huge values are capped with a visible "truncated".
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scanner.report.schema import validate_report
from tests.lab.netns import Lab
from tests.lab.scanning import EXPOSURE, LAB_SPEED, CliRun, run_many
from tests.lab.support_hostile import (
    CANARY,
    HTML_PAYLOADS,
    HTTPS_BYTES_PORT,
    HTTPS_PORT,
    PORTS,
    chromium,
    find_chromium,
    hostile_service,
)
from tests.unit.test_report_markdown import ALLOWED_TAGS, _render, _tags
from tests.unit.test_report_sarif import assert_valid_sarif

pytestmark = pytest.mark.lab

FORMATS = ("table", "json", "markdown", "html", "sarif")
SGR = re.compile(r"\x1b\[[0-9;]*m")
ARTIFACTS = Path(os.environ.get("EXPOSURE_TEST_ARTIFACTS", "/tmp/exposure-test-artifacts"))
# Elements that could run code, load something, or navigate; none may exist in the report.
# Links (<a>) are checked apart: only the catalogue's https references may be one.
ACTIVE_ELEMENTS = "script,img,iframe,object,embed,form,base,link[rel=stylesheet],video,audio,"\
                  "meta[http-equiv=refresh],source,input,button"


@pytest.fixture(scope="module")
def hostile_lab() -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.fail("lab tests need root (network namespaces)", pytrace=False)
    with Lab(services=[hostile_service()]) as lab:
        yield lab


def _scan_args(lab: Lab) -> list[str]:
    ports = ",".join(str(port) for port in [Lab.CLOSED_PORT, *PORTS])
    return ["scan", Lab.HOSTNAME, "--ports", ports, *LAB_SPEED, "--ca-file", str(lab.ca_pem),
            "--fail-on", "never"]


@pytest.fixture(scope="module")
def runs(hostile_lab: Lab) -> dict[str, CliRun]:
    """One real scan per format (plus quiet and forced colour), two at a time."""
    base = [*EXPOSURE, *_scan_args(hostile_lab)]
    variants: dict[str, tuple[list[str], dict[str, str]]] = {
        fmt: ([*base, "--format", fmt], {}) for fmt in FORMATS
    }
    colour = {"FORCE_COLOR": "1", "TERM": "xterm-256color", "COLUMNS": "120"}
    variants["table-colour"] = ([*base, "--format", "table"], colour)
    variants["table-shodan"] = ([*base, "--format", "table", "--shodan"], {})
    variants["quiet-colour"] = ([*base, "--format", "table", "--quiet"], colour)
    results = run_many(hostile_lab, variants, timeout=120)
    for name, run in results.items():
        assert run.code == 0, f"{name}: exit {run.code}: {run.stderr[-2000:]}"
    return results


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def test_the_server_reached_the_report(runs: dict[str, CliRun]) -> None:
    """Else every test below would pass vacuously."""
    report = runs["json"].json()
    (v4, *_) = [t for t in report["targets"] if ":" not in t["address"]]
    ports = {port["port"]: port for port in v4["ports"]}
    assert {80, 443, 2121, 2222} <= {p for p, port in ports.items() if port["state"] == "open"}
    assert "<script>" in ports[80]["details"]["http"]["title"]
    assert "<script>" in (ports[2121]["banner"] or "")
    certificate = json.dumps(ports[HTTPS_PORT]["details"]["tls"]["certificate"])
    assert "script" in certificate and CANARY in certificate  # RFC 4514 escapes '<' as '\\<'
    assert ports[HTTPS_BYTES_PORT]["tls"] is True


def test_json_is_valid_clean_and_capped(runs: dict[str, CliRun]) -> None:
    report = runs["json"].json()
    validate_report(report)
    for text in _strings(report):
        assert not any(ord(c) < 0x20 and c not in "\n\t" for c in text), repr(text[:80])
        assert not any(0x7F <= ord(c) <= 0x9F or c in "\u202e\u2066" for c in text)
        assert len(text) <= 70_000
    assert len(runs["json"].stdout) < 2_000_000
    assert "[truncated]" in runs["json"].stdout  # the 1 MB title and banner


def test_terminal_output_has_no_escape_from_the_server(runs: dict[str, CliRun]) -> None:
    plain = runs["table"].stdout
    assert "\x1b" not in plain and "\x9b" not in plain and "\x07" not in plain
    for name in ("table-colour", "quiet-colour"):
        coloured = runs[name].stdout
        assert SGR.search(coloured) or name == "quiet-colour"  # colour was really on
        residue = SGR.sub("", coloured)
        for char in "\x1b\x9b\x07\x08\r\x00\u202e\u2066\u200b":
            assert char not in residue, (name, repr(char))
    assert max(len(line) for line in plain.splitlines()) <= 200
    crawlers = runs["table-shodan"].stdout  # the 1 MB title and banners, capped visibly
    assert "\x1b" not in crawlers and "[truncated]" in crawlers
    assert max(len(line) for line in crawlers.splitlines()) <= 200


def test_markdown_stays_text(runs: dict[str, CliRun]) -> None:
    text = runs["markdown"].stdout
    references = {ref for target in runs["json"].json()["targets"]
                  for finding in target["findings"] for ref in finding["references"]}
    for tag, attrs in _tags(_render(text)):
        assert tag in ALLOWED_TAGS, (tag, attrs)
        if tag == "a":  # only a finding's reference (from the catalogue), never server text
            assert dict(attrs).get("href") in references, attrs
    assert "\x1b" not in text and "[truncated]" in text


def test_sarif_is_valid(runs: dict[str, CliRun]) -> None:
    log = runs["sarif"].json()
    assert_valid_sarif(log)
    assert "\\u001b" not in runs["sarif"].stdout


def test_html_runs_no_script_and_loads_nothing(runs: dict[str, CliRun]) -> None:
    if find_chromium() is None:
        pytest.fail("headless Chromium is needed: apt-get install chromium", pytrace=False)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = ARTIFACTS / "report-hostile.html"
    page.write_text(runs["html"].stdout, encoding="utf-8")
    with chromium() as browser:
        visit = browser.visit(page, evaluate={
            "canary": f"typeof window.{CANARY}",
            "scripts": "document.scripts.length",
            "active": f"document.querySelectorAll({ACTIVE_ELEMENTS!r}).length",
            "text": "document.body.innerText",
            "styled": "getComputedStyle(document.querySelector('.top')).backgroundColor",
            "links": "[...document.querySelectorAll('a')].map(a => a.getAttribute('href'))",
        }, screenshot_width=1200)
    assert visit.requests == [visit.url], visit.requests  # the file itself, nothing else
    assert visit.console == [] and visit.exceptions == [], (visit.console, visit.exceptions)
    assert visit.log_entries == [], visit.log_entries  # no CSP violation: nothing even tried
    assert visit.evaluations["canary"] == "undefined"
    assert visit.evaluations["scripts"] == 0 and visit.evaluations["active"] == 0
    references = {ref for target in runs["json"].json()["targets"]
                  for finding in target["findings"] for ref in finding["references"]}
    assert set(visit.evaluations["links"]) <= {ref for ref in references
                                               if ref.startswith("https://")}
    assert visit.evaluations["styled"] == "rgb(13, 27, 42)"  # our stylesheet applied (by hash)
    text = visit.evaluations["text"]
    assert HTML_PAYLOADS[0] in text and "truncated" in text  # shown as text, capped
    assert visit.screenshot is not None
    (ARTIFACTS / "report-hostile.png").write_bytes(visit.screenshot)
