"""The terminal report: readable in ten seconds, then complete enough to act on.

Per target: one summary line (open ports, worst severity, TLS grades), the findings worst
first with what to do, the port table, then what an internet-wide scanner stores about each
port (the "Shodan view"). `quiet` prints the findings alone, one block each.

Only rich Text objects are printed, never strings: rich would read "[link=...]" or ":emoji:"
in a string as markup, so a banner could smuggle a terminal hyperlink through it. Colour is
rich's decision (none when stdout is not a terminal, or with NO_COLOR); all remote text was
cleaned by the view (scanner.report.view), so no escape sequence of a server gets through.
"""

from __future__ import annotations

import re

from rich.console import Console
from rich.table import Table
from rich.text import Text

from scanner.findings.model import Severity
from scanner.report.diff import ReportDiff
from scanner.report.model import ScanReport
from scanner.report.sanitize import TRUNCATION_MARK, safe_text
from scanner.report.view import (
    DiffView,
    FindingView,
    GradeView,
    PortView,
    ReportView,
    TargetGroup,
    TargetView,
    build_view,
    severity_summary,
)

EVIDENCE_PREVIEW_CHARS = 200
BANNER_LINES_SHOWN = 8
BANNER_LINE_CHARS = 160
QUERIES_SHOWN = 4

SEVERITY_STYLES = {
    Severity.CRITICAL: "bold white on red",
    Severity.HIGH: "bold red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "dim",
}
GRADE_STYLES = {
    "a-plus": "bold green",
    "a": "bold green",
    "a-minus": "green",
    "b": "yellow",
    "c": "bold yellow",
    "d": "red",
    "e": "red",
    "f": "bold red",
    "t": "bold red",
    "m": "bold red",
}
CHANGE_MARKS = {"added": ("+", "red"), "removed": ("-", "green"), "changed": ("~", "yellow")}


def render_terminal(
    report: ScanReport,
    console: Console,
    *,
    quiet: bool = False,
    diff: ReportDiff | None = None,
) -> None:
    view = build_view(report, diff)
    if quiet:
        _render_quiet(view, console)
        return
    _print(console, _header(view))
    if view.diff is not None:
        _print(console, Text())
        _render_diff(view.diff, console)
    for group in view.groups:
        _print(console, Text())
        _render_group(group, console)
    for error in view.errors:
        _print(console, Text(f"error: {error}", style="red"))
    if not view.complete:
        _print(console, Text("The scan is incomplete: see the errors above.", style="red"))


def _print(console: Console, renderable: Text | Table, *, one_line: bool = False) -> None:
    # one_line: no wrapping at the console width (grep-able lines for cron and CI logs)
    console.print(renderable, markup=False, emoji=False, highlight=False, soft_wrap=one_line)


def _header(view: ReportView) -> Text:
    return Text(
        f"exposure {view.tool_version}: scan {view.id}, {len(view.targets)} address(es), "
        f"{view.ports_requested} ports, {view.engine} engine, {view.duration_s:.1f} s",
        style="bold",
    )


# --- quiet ----------------------------------------------------------------------------------


def _render_quiet(view: ReportView, console: Console) -> None:
    """Findings only: what cron mails and CI logs should carry."""
    for finding in view.findings:
        line = _severity_label(finding.severity)
        line.append(f" {finding.id} {finding.where}: {finding.title}")
        _print(console, line, one_line=True)
        _print(console, _indented("fix: ", finding.remediation, "    "), one_line=True)


# --- one name (its addresses) ---------------------------------------------------------------


def _render_group(group: TargetGroup, console: Console) -> None:
    """Summary lines of every address of the name, its findings once, then each address."""
    for target in group.targets:
        _print(console, _summary_line(target), one_line=True)  # one line, to grep for
    several = len(group.targets) > 1
    if group.findings:
        _print(console, Text(f"  Findings ({severity_summary(group.severity_counts)})",
                             style="bold"))
        for finding in group.findings:
            _render_finding(finding, console, _address_hint(finding, group))
    for where, note in _merged_notes(group):
        _print(console, Text(f"  note{where}: {note}", style="dim"))
    for target in group.targets:
        _render_target(target, console, several)


_PORT_PREFIX = re.compile(r"^port (\d+): ")


def _merged_notes(group: TargetGroup) -> list[tuple[str, str]]:
    """Each note once: "port 22: X" on two addresses and port 2222 becomes one line for X."""
    merged: dict[str, tuple[list[str], list[str]]] = {}
    for target in group.targets:
        for note in target.notes:
            match = _PORT_PREFIX.match(note)
            text = note[match.end():] if match else note
            ports, addresses = merged.setdefault(text, ([], []))
            if match and match.group(1) not in ports:
                ports.append(match.group(1))
            if target.address not in addresses:
                addresses.append(target.address)
    lines = []
    for text, (ports, addresses) in merged.items():
        where = f" (port{'s' if len(ports) > 1 else ''} {', '.join(ports)})" if ports else ""
        if len(group.targets) > 1 and len(addresses) < len(group.targets):
            where += f" (only {', '.join(addresses)})"
        lines.append((where, text))
    return lines


def _address_hint(finding: FindingView, group: TargetGroup) -> str:
    if len(group.targets) < 2:
        return ""
    if len(finding.all_addresses) == len(group.targets):
        return f"  (all {len(group.targets)} addresses)"
    return f"  (only {', '.join(finding.all_addresses)})"


def _render_target(target: TargetView, console: Console, several: bool) -> None:
    if target.ports:
        _print(console, Text(f"  Ports of {target.address}" if several else "  Ports",
                             style="bold"))
        _print(console, _port_table(target))
        if target.closed_summary:
            _print(console, Text(f"  {target.closed_summary}", style="dim"))
    elif not target.answers_all_ports:
        _print(console, Text("  no open or closed port: every port probed was filtered",
                             style="dim"))
    shodan_ports = [port for port in target.open_ports if port.shodan is not None]
    if shodan_ports:
        about = target.address if several else "it"
        _print(console, Text(f"  What internet scanners (Shodan, Censys...) store about {about}",
                             style="bold"))
        for port in shodan_ports:
            _render_shodan(port, console)
    for extra in target.extras:
        _print(console, Text(f"  {extra.title}", style="bold"))
        for fact in extra.facts:
            _print(console, Text(f"    {fact.label}: {fact.value}"))


def _summary_line(target: TargetView) -> Text:
    line = Text(target.title, style="bold")
    line.append(
        f"  open {target.open_count}, closed {target.closed_count}, "
        f"filtered {target.filtered_count}"
    )
    line.append("  worst: ")
    if target.worst is not None:
        line.append(str(target.worst).upper(), style=SEVERITY_STYLES[target.worst])
    else:
        line.append("no findings", style="green")
    if target.grades:
        line.append("  TLS:")
        for grade in target.grades:
            line.append(f" {grade.port} ")
            line.append(grade.grade, style=GRADE_STYLES.get(grade.css, "bold"))
    return line


def _render_finding(finding: FindingView, console: Console, hint: str) -> None:
    line = Text("  ")
    line.append_text(_severity_label(finding.severity))
    line.append(f" {finding.id}", style="bold")
    if finding.port:
        line.append(f"  port {finding.port}/{finding.protocol}")
    line.append(hint, style="dim")
    _print(console, line)
    _print(console, Text(f"      {finding.title}"))
    evidence = _first_line(finding.evidence, EVIDENCE_PREVIEW_CHARS)
    if evidence:
        _print(console, _indented("seen: ", evidence, "      ", style="dim"))
    _print(console, _indented("fix:  ", finding.remediation, "      "))


def _severity_label(severity: Severity) -> Text:
    return Text(f" {str(severity).upper():8} ", style=SEVERITY_STYLES[severity])


def _indented(label: str, text: str, indent: str, style: str = "") -> Text:
    """label + text, its further lines indented under the first."""
    pad = "\n" + indent + " " * len(label)
    return Text(indent + label + text.replace("\n", pad), style=style)


def _first_line(text: str, limit: int) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    if len(lines) > 1 and lines[0].endswith(":"):  # "address:" heading the evidence per address
        lines = [f"{lines[0]} {lines[1].strip()}", *lines[2:]]
    first = safe_text(lines[0], limit)
    return first if len(lines) == 1 or first.endswith(TRUNCATION_MARK) else first + " …"


def _port_table(target: TargetView) -> Table:
    table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    for column in ("  port", "state", "service", "product", "TLS", "seen"):
        table.add_column(column)
    for port in target.listed_ports:
        table.add_row(
            Text(f"  {port.label}"),
            Text(port.state, style="green" if port.is_open else "dim"),
            Text(port.service),
            Text(port.product_version),
            _tls_cell(port),
            Text("; ".join(f"{fact.label}: {fact.value}" for fact in port.highlights[:2]),
                 overflow="ellipsis", no_wrap=True),
        )
    return table


def _tls_cell(port: PortView) -> Text:
    if port.grade is not None:
        return _grade_text(port.grade)
    return Text("yes" if port.tls else "")


def _grade_text(grade: GradeView) -> Text:
    return Text(grade.grade, style=GRADE_STYLES.get(grade.css, "bold"))


def _render_shodan(port: PortView, console: Console) -> None:
    assert port.shodan is not None
    _print(console, Text(f"    {port.label}", style="bold"))
    lines = port.shodan.banner.splitlines()
    for line in lines[:BANNER_LINES_SHOWN]:
        _print(console, Text("      " + safe_text(line, BANNER_LINE_CHARS), style="dim"))
    if len(lines) > BANNER_LINES_SHOWN:
        _print(console, Text(f"      … [truncated: {len(lines) - BANNER_LINES_SHOWN} more "
                             "lines in the JSON report]", style="dim"))
    for query in port.shodan.queries[:QUERIES_SHOWN]:
        _print(console, Text(f"      search: {query}"))


# --- diff -----------------------------------------------------------------------------------


def _render_diff(diff: DiffView, console: Console) -> None:
    _print(console, Text(
        f"Changes since scan {diff.previous_scan_id} ({diff.previous_started_at}): "
        f"{diff.count('added')} new, {diff.count('removed')} gone, "
        f"{diff.count('changed')} changed",
        style="bold",
    ))
    if not diff.changes:
        _print(console, Text("  nothing changed", style="green"))
    for change in diff.changes:
        mark, style = CHANGE_MARKS[change.kind]
        line = Text(f"  {mark} ", style=style)
        line.append(f"{change.where}: {change.summary}")
        if change.kind == "changed" and (change.before or change.after):
            line.append(f" ({change.before or '-'} -> {change.after or '-'})", style="dim")
        elif extra := (change.after if change.kind == "added" else change.before):
            line.append(f" ({extra})", style="dim")
        _print(console, line)
