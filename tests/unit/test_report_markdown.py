"""The Markdown report: structure, and hostile text that stays text once rendered.

Rendered with markdown-it-py (CommonMark + tables, raw HTML allowed as GitHub allows it
before sanitising) to see what a viewer would make of it.
"""

from __future__ import annotations

import dataclasses
from html.parser import HTMLParser

from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from scanner.report.markdown import md, md_code, md_code_block, render_markdown
from tests.lab.support_hostile import HTML_PAYLOADS, MARKUP_PAYLOADS
from tests.unit.test_report_samples import hostile_diff, hostile_report, sample_diff, sample_report

# What our own Markdown may produce once rendered; anything else came from a payload.
ALLOWED_TAGS = {
    "h1", "h2", "h3", "h4", "p", "strong", "em", "code", "pre", "table", "thead", "tbody",
    "tr", "th", "td", "ul", "ol", "li", "details", "summary", "hr", "a", "br",
}


def _render(text: str) -> str:
    return MarkdownIt("commonmark", {"html": True}).enable("table").render(text)


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


def _tags(html: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    parser = _Tags()
    parser.feed(html)
    return parser.tags


def test_structure_of_a_report() -> None:
    text = render_markdown(sample_report(), sample_diff())
    assert text.startswith("# Exposure report: home.example\n\n🟥 **Not safe to leave on the "
                           "internet: 1 critical and 2 high problems on 5 open ports")
    sections = ["## Fix these first", "1. 🟥 **CRITICAL** Home Assistant has never been",
                "**What IPv6 means here:**", "## Changes since the previous scan",
                "## Findings in detail", "### 1. 🟥 **CRITICAL**",
                "## home.example (198.51.100.7)", "### Technical details",
                "## home.example (2001:db8::7)", "## What internet crawlers record"]
    positions = [text.index(section) for section in sections]
    assert positions == sorted(positions)
    assert "**1 critical, 2 high, 3 medium, 1 low, 1 info**" in text
    assert "| 443/tcp | open | http | nginx 1.22.1 | **A** |" in text
    assert "**Fix:** Open Home Assistant in your browser now" in text
    assert "<details><summary>Evidence</summary>" in text
    assert "References: <https://www.home-assistant.io/getting-started/onboarding/>" in text


def test_unknown_details_keys_are_shown() -> None:
    text = render_markdown(sample_report())
    assert "6379/tcp: redis" in text and '"auth_required": false' in text


def test_renders_to_the_expected_html() -> None:
    html = _render(render_markdown(sample_report(), sample_diff()))
    tags = {tag for tag, _ in _tags(html)}
    assert tags <= ALLOWED_TAGS
    assert html.count("<table>") == 5  # summary, diff, two port tables, crawler records
    answer = html[:html.index("<h2>Changes since")]
    assert answer.count("<li>") == 6 + 2  # six problems above info; one has two fixes


def test_hostile_text_stays_text() -> None:
    text = render_markdown(hostile_report(), hostile_diff())
    html = _render(text)
    for tag, attrs in _tags(html):
        assert tag in ALLOWED_TAGS, (tag, attrs)
        if tag == "a":  # only our reference links, and never one built from remote text
            href = dict(attrs).get("href") or ""
            assert href.startswith("https://www.home-assistant.io/") or not href, attrs
        assert not any(name.startswith("on") for name, _ in attrs)
    assert "javascript:" not in "".join(str(attrs) for _, attrs in _tags(html))
    assert "\\@everyone" in text and "\\[click\\]" in text  # no mention, no link
    assert "\x1b" not in text and "\u202e" not in text
    assert "[truncated]" in text and len(text) < 1_500_000


def test_tables_keep_their_columns_with_pipes_in_cells() -> None:
    html = _render(render_markdown(hostile_report()))
    for row in html.split("<tr>")[1:]:
        assert row.count("<td") + row.count("<th") in (4, 5, 6, 7), row[:300]


def test_code_blocks_cannot_be_closed_from_inside() -> None:
    hostile = "before\n```\n<script>x</script>\n````\nafter"
    html = _render(md_code_block(hostile))
    assert html.count("<pre>") == 1 and "&lt;script&gt;" in html
    assert _render(f"a {md_code('x `` y ` z')} b").count("<code>") == 1


@settings(max_examples=300)
@given(st.text(alphabet=st.sampled_from(list("<>[]()`*_#|!&;:/@$\\-+=.1 \nascript")) |
               st.characters(), max_size=80))
def test_md_never_produces_markup(value: str) -> None:
    html = _render(f"text {md(value)} end")
    assert {tag for tag, _ in _tags(html)} <= {"p", "h1", "h2", "br"}
    assert html.startswith("<p>") or html.startswith("<h")


def test_every_payload_is_inert_inline() -> None:
    for payload in (*HTML_PAYLOADS, *MARKUP_PAYLOADS):
        html = _render(f"x {md(payload)}")
        assert {tag for tag, _ in _tags(html)} == {"p"}, (payload, html)


def test_code_spans_in_a_fix_render_as_code() -> None:
    report = sample_report()
    finding = report.targets[0].findings[1]
    report.targets[0].findings[1] = dataclasses.replace(
        finding, remediation="In mosquitto.conf set `allow_anonymous false` and "
                             "`password_file /etc/mosquitto/passwd`, then restart it.")
    html = _render(render_markdown(report))
    assert ("<code>allow_anonymous false</code> and <code>password_file /etc/mosquitto/passwd"
            "</code>, then restart it.") in html
    assert "\\`" not in render_markdown(report)


def test_the_crawler_table_has_no_volatile_headers() -> None:
    report = sample_report()
    report.targets[0].ports[2].details["shodan"]["banner"] = (
        "HTTP/1.1 200 OK\nServer: nginx/1.22.1\nDate: Mon, 01 Jan 2024 00:00:00 GMT\n"
        'ETag: "65a1-5e1"')
    text = render_markdown(report)
    table = text[text.index("## What internet crawlers record"):]
    assert "HTTP/1.1 200 OK · Server: nginx/1.22.1" in table
    assert "Date" not in table and "ETag" not in table


def test_t_and_m_grades_show_the_grade_they_would_have() -> None:
    report = sample_report()
    report.targets[0].ports[2].details["tls"].update(grade="T", grade_if_trust_ignored="A")
    text = render_markdown(report)
    assert "443: **T (A if trusted)**" in text
    assert "| **T (A if trusted)** |" in text
