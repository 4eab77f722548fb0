"""The HTML report: self-contained, structured, and inert whatever the servers sent.

These parse the HTML with the standard library. The real browser check (headless Chromium:
no script runs, no request leaves) is in tests/lab/test_report_hostile.py.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import re
from html.parser import HTMLParser
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from scanner.core.findings import Finding, Severity
from scanner.core.report import PortReport, ScanError, ScanReport, TargetReport
from scanner.report.html import content_security_policy, render_html
from scanner.report.json_report import render_json
from scanner.report.markdown import render_markdown
from scanner.report.sarif import sarif_log
from scanner.report.schema import validate_report
from scanner.report.terminal import render_terminal
from tests.lab.support_hostile import CANARY, HTML_PAYLOADS
from tests.unit.test_report_samples import hostile_diff, hostile_report, sample_diff, sample_report
from tests.unit.test_report_sarif import assert_valid_sarif

OUR_TAGS = {
    "html", "head", "meta", "link", "title", "style", "body", "header", "main", "section",
    "div", "h1", "h2", "h3", "p", "span", "b", "strong", "article", "details", "summary", "pre",
    "table", "tr", "th", "td", "ul", "ol", "li", "dl", "dt", "dd", "svg", "rect", "text",
    "footer", "code", "a",
}


class _Document(HTMLParser):
    """Every element with its attributes, the text of <style>, and all text content."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.style = ""
        self.text: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.style += data
        else:
            self.text.append(data)


def _parse(html: str) -> _Document:
    document = _Document()
    document.feed(html)
    document.close()
    return document


def _csp(document: _Document) -> str:
    (meta,) = [attrs for tag, attrs in document.elements
               if tag == "meta" and attrs.get("http-equiv") == "Content-Security-Policy"]
    return meta["content"] or ""


def test_structure_answer_first_then_findings_then_ports() -> None:
    html = render_html(sample_report(), sample_diff())
    markers = ['class="verdict status-not-safe"', ">Not safe to leave on the internet: 1 critical",
               "<h2>Fix these first</h2>", "What IPv6 means here:", 'class="cards"',
               "Changes since the previous scan", "Findings in detail",
               "<h2>home.example (198.51.100.7)</h2>", "<th>Port</th>", "Technical details",
               "<h2>home.example (2001:db8::7)</h2>", "What internet crawlers"]
    positions = [html.index(marker) for marker in markers]
    assert positions == sorted(positions)
    assert html.index("<main>") < html.index('class="verdict') < html.index("<article")


def test_fix_list_groups_a_problem_across_addresses() -> None:
    report = sample_report()
    v4, v6 = report.targets
    v6.findings = [f for f in v4.findings if f.id == "ssh.password_auth"]
    document = _parse(render_html(report))
    items = [attrs["class"] for tag, attrs in document.elements
             if tag == "li" and (attrs.get("class") or "").startswith("sev-")]
    assert items == ["sev-critical", "sev-high", "sev-high", "sev-medium", "sev-medium",
                     "sev-low"]  # info is one line below the list
    html = render_html(report)
    assert '22 on IPv4 and IPv6 · <span class="mono">ssh.password_auth</span>' in html


def test_a_long_code_span_stays_code() -> None:
    """A span longer than 200 characters once paired the wrong backticks: code and prose
    swapped places for the rest of the text."""
    ciphers = ":".join(f"ECDHE-RSA-AES{n}-GCM-SHA384" for n in range(12))
    report = sample_report()
    finding = report.targets[0].findings[0]
    report.targets[0].findings[0] = dataclasses.replace(
        finding, remediation=f"Set `ssl_ciphers {ciphers};` and `ssl_prefer_server_ciphers off;`"
                             " then reload nginx.")
    html = render_html(report)
    assert f"<code>ssl_ciphers {ciphers};</code> and <code>ssl_prefer_server_ciphers off;</code>" \
        " then reload nginx." in html


def test_references_are_links_and_only_https_ones() -> None:
    document = _parse(render_html(sample_report()))
    links = [attrs for tag, attrs in document.elements if tag == "a"]
    assert {attrs["href"] for attrs in links} == {
        "https://www.home-assistant.io/getting-started/onboarding/"}
    assert all(attrs["rel"] == "noopener noreferrer" for attrs in links)


def test_the_shodan_view_is_collapsed_and_compact() -> None:
    report = sample_report()
    report.targets[0].ports[2].details["shodan"]["banner"] = (
        "HTTP/1.1 200 OK\nServer: nginx/1.22.1\nDate: Mon, 01 Jan 2024 00:00:00 GMT\n"
        'ETag: "65a1-5e1"\nSet-Cookie: session=abc123secret')
    html = render_html(report)
    section = html[html.index('<details class="port-block shodan">'):]
    section = section[:section.index("</details>")]
    assert "<details class=\"port-block shodan\" open" not in html
    assert "HTTP/1.1 200 OK · Server: nginx/1.22.1" in section
    assert "Date:" not in section and "ETag" not in section and "abc123secret" not in section
    assert section.count("<tr>") == 1 + 4  # header, and one row per port with a record


def test_an_open_port_is_not_shown_in_green() -> None:
    css = _parse(render_html(sample_report())).style
    rule = re.search(r"td\.state-open \{([^}]*)\}", css)
    assert rule and "--ok" not in rule.group(1)
    assert re.search(r"svg\.grade-a rect[^{]*\{ fill: #3d4a5c; \}", css)


def test_findings_fold_their_evidence() -> None:
    document = _parse(render_html(sample_report()))
    articles = [attrs for tag, attrs in document.elements if tag == "article"]
    assert [a["class"] for a in articles][:3] == [
        "finding sev-critical", "finding sev-high", "finding sev-high"]
    html = render_html(sample_report())
    assert "<details><summary>Evidence: what was seen</summary><pre>GET /api/onboarding" in html
    assert "What to do:</strong> Open Home Assistant" in html


def test_a_finding_on_both_addresses_is_one_card() -> None:
    report = sample_report()
    v4, v6 = report.targets
    v6.findings = [f for f in v4.findings if f.id == "ssh.password_auth"]
    html = render_html(report)
    assert html.count("<article") == len(v4.findings)
    assert "home.example (198.51.100.7, 2001:db8::7) · port 22/tcp" in html


def test_tls_grades_are_badges() -> None:
    document = _parse(render_html(sample_report()))
    badges = [attrs for tag, attrs in document.elements if tag == "svg"]
    labels = sorted(str(attrs.get("aria-label")) for attrs in badges)
    assert labels == ["TLS grade A", "TLS grade A", "TLS grade C", "TLS grade C"]  # card + table
    assert {attrs["class"] for attrs in badges} == {
        "grade grade-a", "grade grade-c", "grade grade-a small", "grade grade-c small"}


def test_unknown_grade_and_unknown_details_keys_render() -> None:
    report = sample_report()
    report.targets[0].ports[2].details["tls"]["grade"] = "Z?"
    html = render_html(report)
    assert 'class="grade grade-other"' in html
    assert "6379/tcp: redis" in html and "&#34;auth_required&#34;: false" in html


def test_self_contained_and_locked_down() -> None:
    html = render_html(sample_report(), sample_diff())
    document = _parse(html)
    assert {tag for tag, _ in document.elements} <= OUR_TAGS
    for tag, attrs in document.elements:
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            if name in ("src", "action", "xlink:href"):
                raise AssertionError((tag, name, value))
            if name == "href":  # the icon, and the catalogue's https references
                assert (tag, value) == ("link", "data:,") or (
                    tag == "a" and (value or "").startswith("https://")), (tag, value)
    csp = _csp(document)
    assert "default-src 'none'" in csp and "script-src" not in csp  # no script at all
    assert "'unsafe-inline'" not in csp
    digest = base64.b64encode(hashlib.sha256(document.style.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in csp  # the one stylesheet, by its hash
    assert html.index("Content-Security-Policy") < html.index("<style>")
    assert "http://" not in document.style and "url(" not in document.style


def test_csp_hash_follows_the_css() -> None:
    assert content_security_policy("a{}") != content_security_policy("b{}")


def test_hostile_text_is_shown_escaped_and_inert() -> None:
    html = render_html(hostile_report(), hostile_diff())
    document = _parse(html)
    assert {tag for tag, _ in document.elements} <= OUR_TAGS
    for tag, attrs in document.elements:
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        assert tag != "a" and tag != "script" and tag != "img" and tag != "iframe"
        for name, value in attrs.items():
            if name == "class":  # from fixed tables only
                assert re.fullmatch(r"[a-z0-9 \-]+", value or ""), value
            if name == "aria-label":
                assert "<" not in (value or "") or tag == "svg"
    text = "".join(document.text)
    for payload in HTML_PAYLOADS[:4]:
        assert payload in text  # displayed as text, literally
    assert CANARY in text and "\x1b" not in html and "\u202e" not in html


def test_huge_values_are_capped_visibly() -> None:
    html = render_html(hostile_report())
    assert "[truncated]" in html
    assert len(html) < 1_500_000  # dozens of 1 MB strings in the input


def test_empty_and_failed_scans_render() -> None:
    empty = ScanReport("e1", "2024-05-01T08:00:00+00:00", "2024-05-01T08:00:01+00:00", 1.0,
                       "connect", 10, complete=False, errors=[ScanError("discovery", "no route")])
    html = render_html(empty)
    assert "Nothing could be scanned" in html and "The scan is incomplete" in html
    quiet = ScanReport("e2", "2024-05-01T08:00:00+00:00", "2024-05-01T08:00:01+00:00", 1.0,
                       "syn", 10, targets=[TargetReport("198.51.100.7", "198.51.100.7",
                                                        filtered_count=10)])
    assert "every port probed was filtered" in render_html(quiet)


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=40)),
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.text(max_size=12), children, max_size=4)),
    max_leaves=20,
)


# Keys whose shape the schema describes; any other key may hold anything.
DESCRIBED_KEYS = {"http", "tls", "ssh", "ha", "mqtt", "shodan"}


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.text(max_size=12).filter(lambda key: key not in DESCRIBED_KEYS),
                       JSON_VALUES, max_size=5),
       st.text(max_size=60), st.sampled_from(list(Severity)))
def test_any_details_render_in_every_format(
    details: dict[str, Any], text: str, severity: Severity
) -> None:
    """Whatever a new check puts into details: every format renders it, nothing leaks."""
    report = ScanReport("h", "2024-05-01T08:00:00+00:00", "2024-05-01T08:00:01+00:00", 0.1,
                        "syn", 1, targets=[TargetReport(text or "x", "198.51.100.7", ports=[
                            PortReport(1, "tcp", "open", text, text, text, True, text, details)],
                            findings=[Finding("a.b", severity, text or "t", text, text, 1)])])
    document = _parse(render_html(report))
    assert {tag for tag, _ in document.elements} <= OUR_TAGS
    validate_report(json.loads(render_json(report)))
    assert_valid_sarif(sarif_log(report, []))
    markdown = render_markdown(report)
    terminal = io.StringIO()
    render_terminal(report, Console(file=terminal, width=100, force_terminal=True))
    for output in (markdown, terminal.getvalue()):
        assert "\x1b]" not in output and "\x9b" not in output and "\u202e" not in output


def test_many_closed_ports_are_summarised_in_every_format() -> None:
    report = sample_report()
    report.targets[0].ports += [PortReport(p, "tcp", "closed") for p in range(10000, 65536)]
    html = render_html(report)
    markdown = render_markdown(report)
    terminal = io.StringIO()
    render_terminal(report, Console(file=terminal, width=120))
    for output in (html, markdown, terminal.getvalue()):
        assert "55537 closed ports not listed: 23,10000-65535" in output
        assert len(output) < 100_000
