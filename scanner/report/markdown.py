"""The Markdown report: for an issue, a wiki page or a chat message.

Markdown renderers pass inline HTML through, make links of brackets, ping people on
"@name" (GitHub), link "#12" to issues and typeset "$...$" as maths. So every string of the
view is escaped here for Markdown: each ASCII punctuation character that can start any of
that gets a backslash (CommonMark allows one before any ASCII punctuation), and multi-line
remote text goes into fenced code blocks whose fence is longer than any run of backticks
inside, so it cannot close the block early. No link is ever built from remote text, and
"://" and "www." get an escape so GFM does not make links of them on its own. Inside the few
raw HTML lines (<details><summary>), where Markdown escapes mean nothing, text is
HTML-escaped instead.
"""

from __future__ import annotations

import html
import re

from scanner.core.diff import ReportDiff
from scanner.core.findings import Severity
from scanner.core.report import ScanReport
from scanner.core.summary import ProblemGroup, ReportSummary
from scanner.report.inline import split_code_spans
from scanner.report.view import (
    DiffView,
    FindingView,
    PortView,
    ReportView,
    TargetView,
    build_view,
    is_safe_url,
    severity_summary,
)

SEVERITY_MARKS = {
    Severity.CRITICAL: "🟥 **CRITICAL**",
    Severity.HIGH: "🟧 **HIGH**",
    Severity.MEDIUM: "🟨 **MEDIUM**",
    Severity.LOW: "🟦 **LOW**",
    Severity.INFO: "⬜ **INFO**",
}
CHANGE_MARKS = {"added": "➕ new", "removed": "➖ gone", "changed": "✏️ changed"}

# Characters that start emphasis, code, links, images, HTML, entities, tables, strikethrough,
# maths, mentions and issue links somewhere in CommonMark/GFM. Escaped wherever they appear.
_INLINE_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&!$@#])")
# GFM turns "scheme://..." and "www.x" into links by itself: break both with an escape.
_AUTOLINK = re.compile(r"(://|(?i:www)\.)")
# What makes a line a list item, a heading underline or a block quote when it starts one.
_LINE_START = re.compile(r"^(\s*)([-+=>]|\d+[.)])")


def render_markdown(
    report: ScanReport, diff: ReportDiff | None = None, summary: ReportSummary | None = None
) -> str:
    view = build_view(report, diff, summary)
    parts = [_title(view), _answer(view.summary), _summary(view)]
    if view.diff is not None:
        parts.append(_diff(view.diff))
    parts.append(_findings(view))
    parts += [_target(target) for target in view.targets]
    parts.append(_shodan(view))
    if view.errors or not view.complete:
        parts.append(_errors(view))
    parts.append(f"---\n\n*{md(f'exposure {view.tool_version}')}, scan {md(view.id)}*\n")
    return "\n\n".join(part.strip("\n") for part in parts if part) + "\n"


# --- escaping -------------------------------------------------------------------------------


def md(text: str) -> str:
    """One line of text, inert in Markdown."""
    escaped = _INLINE_SPECIAL.sub(r"\\\1", text.replace("\n", " "))
    return _AUTOLINK.sub(_break_autolink, escaped)


def _break_autolink(match: re.Match[str]) -> str:
    found = match.group(1)
    return "\\://" if found == "://" else found[:3] + "\\."


def md_cell(text: str) -> str:
    """A table cell: escaped, and never empty-looking."""
    return md(text) or " "


def md_lines(text: str, indent: str = "") -> str:
    """Several lines of prose (e.g. a remediation), each escaped, kept as line breaks; its
    `code spans` stay code (md_code, which nothing inside can close).

    A line of its own could start a list ("- ", "1. "), or underline the one before into a
    heading ("==="): the character that would do it gets a backslash too. `indent` goes
    before every line after the first (to stay inside a list item)."""
    return ("  \n" + indent).join(_md_line(line) for line in _code_lines(text))


def _code_lines(text: str) -> list[list[tuple[str, bool]]]:
    """The text's lines, each as (piece, is code): a span across a line break stays whole."""
    lines: list[list[tuple[str, bool]]] = [[]]
    for piece in split_code_spans(text):
        if piece.code:
            lines[-1].append((piece.text.replace("\n", " "), True))
            continue
        for index, part in enumerate(piece.text.split("\n")):
            if index:
                lines.append([])
            if part:
                lines[-1].append((part, False))
    return lines


def _md_line(pieces: list[tuple[str, bool]]) -> str:
    text = "".join(md_code(part) if code else md(part) for part, code in pieces)
    return _LINE_START.sub(_escape_line_start, text)


def _escape_line_start(match: re.Match[str]) -> str:
    marker = match.group(2)
    return match.group(1) + marker[:-1] + "\\" + marker[-1]


def md_code_block(text: str, info: str = "text") -> str:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{text}\n{fence}"


def md_code(text: str) -> str:
    """An inline code span that no backtick inside can close."""
    one_line = text.replace("\n", " ")
    longest = max((len(run) for run in re.findall(r"`+", one_line)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if one_line.startswith("`") or one_line.endswith("`") or not one_line else ""
    return f"{ticks}{pad}{one_line}{pad}{ticks}"


def _link(url: str) -> str:
    """References are ours (the catalogue), but only plain https URLs become links."""
    return f"<{url}>" if is_safe_url(url) else md(url)


# --- sections -------------------------------------------------------------------------------


def _title(view: ReportView) -> str:
    names = ", ".join(dict.fromkeys(target.input for target in view.targets)) or "no target"
    return f"# Exposure report: {md(names)}"


STATUS_MARKS = {"not_safe": "🟥", "needs_attention": "🟨", "ok": "🟩", "unknown": "⬜"}


def _answer(summary: ReportSummary) -> str:
    """The verdict, then "fix these first": before anything else."""
    blocks = [f"{STATUS_MARKS.get(summary.status, '')} **{md(summary.verdict)}**".strip()]
    if summary.urgent:
        items = [_problem_item(number, problem)
                 for number, problem in enumerate(summary.urgent, 1)]
        blocks.append("## Fix these first\n\n" + "\n".join(items).rstrip("\n"))
    if summary.informational:
        points = "; ".join(f"{md_code(p.id)} ({md(p.title)}; {md(p.where)})"
                           for p in summary.informational)
        blocks.append(f"For information: {points}.")
    if summary.ipv6_note:
        blocks.append(f"**What IPv6 means here:** {md(summary.ipv6_note)}")
    return "\n\n".join(blocks)


def _problem_item(number: int, problem: ProblemGroup) -> str:
    indent = " " * (len(str(number)) + 2)
    lines = [f"{number}. {SEVERITY_MARKS[problem.severity]} {md(problem.title)}  ",
             f"{indent}{md(problem.where or 'the whole scan')} · {md_code(problem.id)}  "]
    if len(problem.fixes) == 1:
        lines.append(f"{indent}**Fix:** {md_lines(problem.fixes[0], indent)}")
    else:
        lines.append(f"{indent}**Fixes:**\n")
        lines += [f"{indent}- {md_lines(fix, indent + '  ')}" for fix in problem.fixes]
    return "\n".join(lines) + "\n"


def _summary(view: ReportView) -> str:
    verdict = (
        f"**{severity_summary(view.severity_counts)}**"
        if view.findings
        else "**No findings.** Nothing the checks look for was seen from the outside."
    )
    facts = (
        f"{view.open_count} open port(s) on {len(view.targets)} address(es) · scan "
        f"{md_code(view.id)} started {md(view.started_display)} · {view.duration_s:.1f} s, "
        f"{md(view.engine)} engine, {view.ports_requested} ports"
    )
    rows = ["| Target | Address | Open ports | Worst | TLS grades |", "|---|---|---|---|---|"]
    for target in view.targets:
        ports = ", ".join(str(port.port) for port in target.open_ports) or "none"
        worst = str(target.worst) if target.worst else "none"
        grades = " · ".join(f"{g.port}: **{md(g.shown)}**" for g in target.grades) or "-"
        rows.append(
            f"| {md_cell(target.input)} | {md_cell(target.address)} | {ports} | {worst} "
            f"| {grades} |"
        )
    if not view.targets:
        rows = ["No address could be scanned."]
    return "\n\n".join([verdict, facts, "\n".join(rows)])


def _findings(view: ReportView) -> str:
    if not view.findings:
        return ""
    blocks = ["## Findings in detail"]
    for number, finding in enumerate(view.findings, 1):
        blocks.append(_finding(number, finding))
    return "\n\n".join(blocks)


def _finding(number: int, finding: FindingView) -> str:
    place = md(finding.where)
    lines = [
        f"### {number}. {SEVERITY_MARKS[finding.severity]} · {md_code(finding.id)} · {place}",
        f"**{md(finding.title)}**",
        f"**Fix:** {md_lines(finding.remediation)}",
    ]
    if finding.evidence:
        lines.append(
            "<details><summary>Evidence</summary>\n\n"
            f"{md_code_block(finding.evidence)}\n\n</details>"
        )
    if finding.references:
        lines.append("References: " + " · ".join(_link(ref) for ref in finding.references))
    return "\n\n".join(lines)


def _target(target: TargetView) -> str:
    blocks = [
        f"## {md(target.title)}",
        f"open {target.open_count} · closed {target.closed_count} · filtered "
        f"{target.filtered_count}"
        + (" · **every port answers** (tarpit or proxy)" if target.answers_all_ports else ""),
    ]
    if target.notes:  # checks quote commands in notes: their `code spans` stay code
        blocks.append("\n".join(f"- {md_lines(note.line(), '  ')}" for note in target.notes))
    if target.ports:
        blocks.append(_port_table(target))
    for extra in target.extras:
        blocks.append(f"### {md(extra.title)}")
        blocks.append("\n".join(f"- {md(fact.label)}: {md(fact.value)}" for fact in extra.facts)
                      or md_code_block(extra.raw_json, "json"))
    detailed = [port for port in target.open_ports if port.details]
    if detailed:
        blocks.append("### Technical details")
        blocks += [_details(port) for port in detailed]
    return "\n\n".join(blocks)


def _port_table(target: TargetView) -> str:
    rows = ["| Port | State | Service | Product | TLS | Seen |", "|---|---|---|---|---|---|"]
    for port in target.listed_ports:
        tls = f"**{md(port.grade.shown)}**" if port.grade else ("yes" if port.tls else "")
        seen = "; ".join(f"{fact.label}: {fact.value}" for fact in port.highlights[:2])
        rows.append(
            f"| {port.label} | {md_cell(port.state)} | {md_cell(port.service)} "
            f"| {md_cell(port.product_version)} | {tls or ' '} | {md_cell(seen)} |"
        )
    if target.closed_summary:
        rows.append(f"\n{md(target.closed_summary)}")
    return "\n".join(rows)


def _shodan(view: ReportView) -> str:
    """One row per port: what an internet crawler records, and the search that finds it."""
    rows = []
    seen: set[tuple[str, str, str]] = set()
    for target in view.targets:
        for port in target.open_ports:
            if port.shodan is None or (target.input, port.label, port.shodan.record) in seen:
                continue
            seen.add((target.input, port.label, port.shodan.record))
            query = md_code(port.shodan.query) if port.shodan.query else " "
            rows.append(f"| {md_cell(target.input)} | {port.label} "
                        f"| {md_cell(port.shodan.record)} | {query} |")
    if not rows:
        return ""
    return ("## What internet crawlers record\n\n"
            "| Target | Port | What a crawler like Shodan records | The search that finds it |\n"
            "|---|---|---|---|\n" + "\n".join(rows))


def _details(port: PortView) -> str:
    facts = [
        f"- {md(block.key)} {md(fact.label)}: {md(fact.value)}"
        for block in port.details
        for fact in block.facts
    ]
    raw = "\n\n".join(f"{md(block.key)}:\n\n{md_code_block(block.raw_json, 'json')}"
                      for block in port.details)
    # The <summary> line is raw HTML, where Markdown escapes mean nothing: escape for HTML.
    keys = html.escape(", ".join(block.key for block in port.details))
    return (
        f"<details><summary>{port.label}: {keys}</summary>\n\n"
        + "\n".join(facts) + f"\n\n{raw}\n\n</details>"
    )


def _diff(diff: DiffView) -> str:
    head = (
        f"## Changes since the previous scan\n\nCompared with scan {md_code(diff.previous_scan_id)}"
        f" of {md(diff.previous_started_at)}: {diff.count('added')} new, "
        f"{diff.count('removed')} gone, {diff.count('changed')} changed."
    )
    if not diff.changes:
        return head + "\n\nNothing changed."
    rows = ["| Change | Where | What | Before | After |", "|---|---|---|---|---|"]
    for change in diff.changes:
        rows.append(
            f"| {CHANGE_MARKS[change.kind]} | {md_cell(change.where)} | {md_cell(change.summary)}"
            f" | {md_cell(change.before)} | {md_cell(change.after)} |"
        )
    return head + "\n\n" + "\n".join(rows)


def _errors(view: ReportView) -> str:
    lines = ["## Errors"]
    if not view.complete:
        lines.append("**The scan is incomplete.**")
    lines += [f"- {md(error)}" for error in view.errors]
    return "\n\n".join(lines)
