"""The terminal report: the answer in the first lines, then what to act on, then the rest.

1. One header line, then the verdict: one sentence, "is this safe to leave on the internet?".
2. "Fix these first": the problems worst first, each once with everywhere it applies
   ("8123 on IPv4 and IPv6") and its fix; info points on one line; what IPv6 means, in plain
   words, when it appears.
3. Per address one grep-able summary line; per host the open ports (merged over its IPv4 and
   IPv6 addresses); what was seen for each problem; notes; errors.
4. With shodan=True (`--shodan`): one line per port of what internet crawlers record.

`quiet` prints the problems alone, one block each (cron mail, CI logs).

Only rich Text objects are printed, never strings: rich would read "[link=...]" or ":emoji:"
in a string as markup, so a banner could smuggle a terminal hyperlink through it. Colour is
rich's decision (none when stdout is not a terminal, or with NO_COLOR / --no-color); all
remote text was cleaned by the view, so no escape sequence of a server gets through. Lines
are wrapped here (scanner.report.wrap): hanging indents, code broken only between tokens.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from scanner.core.diff import ReportDiff
from scanner.core.findings import Severity
from scanner.core.report import ScanReport
from scanner.core.summary import ExposedService, ProblemGroup, ReportSummary
from scanner.core.text import safe_text
from scanner.report.inline import split_code_spans
from scanner.report.view import (
    CUT_MARK,
    GRADE_CLASSES,
    DiffView,
    FindingView,
    PortView,
    ReportView,
    TargetGroup,
    TargetView,
    build_view,
)
from scanner.report.wrap import wrap

EVIDENCE_PREVIEW_CHARS = 200
EVIDENCE_MORE = " … [more in the JSON or HTML report]"
EVIDENCE_PLACES_SHOWN = 4
PIPE_WIDTH = 120
SEVERITY_STYLES = {
    Severity.CRITICAL: "bold white on red",
    Severity.HIGH: "bold red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "dim",
}
# A good grade is not a reason to feel safe about an open port: no green here. Only the
# grades that need action are coloured.
GRADE_STYLES = {
    "a-plus": "bold", "a": "bold", "a-minus": "bold",
    "b": "yellow", "c": "bold yellow",
    "d": "bold red", "e": "bold red", "f": "bold red", "t": "bold red", "m": "bold red",
}
STATUS_LABELS = {
    "not_safe": ("NOT SAFE", "bold white on red"),
    "needs_attention": ("NEEDS ATTENTION", "bold black on yellow"),
    "ok": ("OK", "bold white on green"),  # the verdict, not a port: green is earned here
    "unknown": ("UNKNOWN", "bold"),
}
CODE_STYLE = "cyan"
CHANGE_MARKS = {"added": ("+", "red"), "removed": ("-", "green"), "changed": ("~", "yellow")}
LIST_INDENT = 14  # " 1. CRITICAL  " : the text of a list item starts here
# In the list a fix keeps its first sentences up to this many characters (about three lines):
# the first screen then holds the verdict and the worst problems. The whole fix follows below.
LIST_FIX_CHARS = 260
FIX_CONTINUES = " … [the whole fix is under What was seen, below]"
_SENTENCE_END = re.compile(r"[.;:](?=\s)")


def render_terminal(
    report: ScanReport,
    console: Console,
    *,
    quiet: bool = False,
    diff: ReportDiff | None = None,
    shodan: bool = False,
    summary: ReportSummary | None = None,
) -> None:
    view = build_view(report, diff, summary)
    out = _Out(console)
    if quiet:
        _render_quiet(view, out)
        return
    out.wrapped([(_header(view), "bold")], indent="  ")
    _render_verdict(view.summary, out)
    _render_fix_list(view.summary, out)
    if view.diff is not None:
        out.blank()
        _render_diff(view.diff, out)
    for group in view.groups:
        out.blank()
        _render_group(group, view, out)
    _render_evidence(view, out)
    if shodan:
        _render_shodan(view, out)
    for error in view.errors:
        out.wrapped([(f"error: {error}", "red")], indent="  ")
    if not view.complete:
        out.line(Text("The scan is incomplete: see the errors above.", style="red"))
    if view.targets:
        hint = "More: --format html -o report.html (everything, readable), --format json"
        out.line(Text(hint + ("" if shodan else ", --shodan (what crawlers record)"),
                      style="dim"))


class _Out:
    """Prints Text lines; wraps them itself at the console's width."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.width = max(40, console.width or PIPE_WIDTH)

    def line(self, text: Text | Table, *, one_line: bool = True) -> None:
        # soft_wrap: rich must not re-wrap what is wrapped already (or a grep-able line)
        self.console.print(text, markup=False, emoji=False, highlight=False,
                           soft_wrap=one_line and not isinstance(text, Table))

    def blank(self) -> None:
        self.line(Text())

    def wrapped(self, segments: Sequence[tuple[str, str]], *, prefix: Text | None = None,
                indent: str = "") -> None:
        for text in wrap(segments, self.width, prefix=prefix, indent=indent):
            self.line(text)


def _header(view: ReportView) -> str:
    names = ", ".join(dict.fromkeys(target.input for target in view.targets)) or "no target"
    return (
        f"exposure {view.tool_version}: {safe_text(names, 120)} · scan {view.id} · "
        f"{len(view.targets)} address(es), {view.ports_requested} ports, {view.engine} engine, "
        f"{view.duration_s:.1f} s"
    )


# --- the answer ---------------------------------------------------------------------------


def _render_verdict(summary: ReportSummary, out: _Out) -> None:
    label, style = STATUS_LABELS.get(summary.status, ("?", "bold"))
    prefix = Text(f" {label} ", style=style)
    prefix.append(" ")
    out.wrapped([(summary.verdict, "bold")], prefix=prefix, indent=" " * (len(label) + 3))


def _render_fix_list(summary: ReportSummary, out: _Out) -> None:
    if summary.urgent:
        out.blank()
        out.line(Text("Fix these first", style="bold underline"))
        for number, problem in enumerate(summary.urgent, 1):
            _render_problem(number, problem, out)
    if summary.informational:
        out.blank()
        segments = [("For information: ", "bold")]
        for index, problem in enumerate(summary.informational):
            segments += [(", " if index else "", ""), (problem.id, "bold"),
                         (f" ({problem.title}; {problem.where})", "")]
        out.wrapped(segments, indent="  ")
    if summary.ipv6_note:
        out.blank()
        out.wrapped([("What IPv6 means here: ", "bold"), (summary.ipv6_note, "")], indent="  ")


def _render_problem(number: int, problem: ProblemGroup, out: _Out) -> None:
    prefix = Text(f"{number:>2}. ")
    prefix.append(f"{str(problem.severity).upper():8}", style=SEVERITY_STYLES[problem.severity])
    prefix.append("  ")
    indent = " " * LIST_INDENT
    out.wrapped([(problem.title, "bold")], prefix=prefix, indent=indent)
    out.wrapped([(problem.where or "the whole scan", ""), (" · ", "dim"), (problem.id, "dim")],
                prefix=Text(indent), indent=indent)
    fixes = problem.fixes or ("(no fix given)",)
    for index, fix in enumerate(fixes):
        bullet = "- " if len(fixes) > 1 else ""
        label = "fix: " if index == 0 else "     "
        out.wrapped(_code_segments(short_fix(fix)), prefix=Text(indent + label + bullet),
                    indent=indent + " " * (len(label) + len(bullet)))


def short_fix(fix: str, limit: int = LIST_FIX_CHARS) -> str:
    """The fix's first sentences within `limit` characters, marked when more follows below.
    Cut after a full stop if there is one (else after ; or :), never inside parentheses or a
    `code span`: a command must be copied whole or not at all."""
    if len(fix) <= limit:
        return fix
    ends = [match for match in _SENTENCE_END.finditer(fix, 0, limit)
            if match.end() > limit // 3 and not _inside_code(fix, match.end())
            and fix.count("(", 0, match.end()) == fix.count(")", 0, match.end())]
    stops = [match for match in ends if match.group(0) == "."] or ends
    if not stops:
        return fix
    return fix[:stops[-1].end()].rstrip(" :;") + FIX_CONTINUES


def _inside_code(text: str, position: int) -> bool:
    return text.count("`", 0, position) % 2 == 1


def _is_short(fix: str) -> bool:
    return short_fix(fix) == fix


def _code_segments(text: str) -> list[tuple[str, str]]:
    return [(piece.text, CODE_STYLE if piece.code else "") for piece in split_code_spans(text)]


# --- quiet ----------------------------------------------------------------------------------


def _render_quiet(view: ReportView, out: _Out) -> None:
    """One block per problem: what cron mails and CI logs should carry, one line to grep."""
    for problem in view.summary.problems:
        line = _severity_label(problem.severity)
        hosts = ", ".join(dict.fromkeys(place.host for place in problem.places))
        where = problem.where if ": " in problem.where else f"{hosts} {problem.where}".strip()
        line.append(f" {problem.id} {where}: {problem.title}")
        out.line(line)
        for index, fix in enumerate(problem.fixes):
            label = "fix: " if index == 0 else "     "
            out.line(Text("    " + label + fix.replace("\n", " ")))


def _severity_label(severity: Severity) -> Text:
    return Text(f" {str(severity).upper():8} ", style=SEVERITY_STYLES[severity])


# --- per name and address -------------------------------------------------------------------


def _render_group(group: TargetGroup, view: ReportView, out: _Out) -> None:
    for target in group.targets:
        out.line(_summary_line(target))  # one line, to grep for
    services = [s for s in view.summary.services if s.host in _hosts_of(group)]
    if services:
        several = len(group.targets) > 1
        heading = f"Open ports of {group.input}" + (" (all its addresses)" if several else "")
        out.wrapped([(heading, "bold")], prefix=Text("  "), indent="    ")
        out.line(_services_table(services, group, several))
    elif not any(target.answers_all_ports for target in group.targets):
        out.line(Text("  no open port: every port probed was closed or filtered", style="dim"))
    for target in group.targets:
        closed = [port.label for port in target.ports if port.state == "closed"]
        if target.closed_summary:
            out.wrapped([(f"{target.address}: {target.closed_summary}", "dim")],
                        prefix=Text("  "), indent="    ")
        elif closed:
            out.wrapped([(f"{target.address}: closed (reachable, nothing listening): "
                          f"{', '.join(closed)}", "dim")], prefix=Text("  "), indent="    ")
    for where, note in _merged_notes(group):
        out.wrapped([(f"note{where}: ", "dim"), *_code_segments(note)], prefix=Text("  "),
                    indent="    ")
    for target in group.targets:
        for extra in target.extras:
            out.wrapped([(f"{extra.title} ({target.address})", "bold")], prefix=Text("  "),
                        indent="    ")
            for fact in extra.facts:
                out.wrapped([(f"{fact.label}: ", "dim"), (fact.value, "")], prefix=Text("    "),
                            indent="      ")


def _hosts_of(group: TargetGroup) -> set[str]:
    return {target.address if "/" in target.input else target.input for target in group.targets}


def _summary_line(target: TargetView) -> Text:
    line = Text(target.title, style="bold")
    line.append(
        f"  open {target.open_count}, closed {target.closed_count}, "
        f"filtered {target.filtered_count}"
    )
    if target.answers_all_ports:
        line.append("  (answers on every port)")
    line.append("  worst: ")
    if target.worst is not None:
        line.append(str(target.worst).upper(), style=SEVERITY_STYLES[target.worst])
    else:
        line.append("no findings")
    if target.grades:
        line.append("  TLS:")
        for grade in target.grades:
            line.append(f" {grade.port} ")
            line.append(grade.shown, style=GRADE_STYLES.get(grade.css, "bold"))
    return line


def _services_table(services: Sequence[ExposedService], group: TargetGroup,
                    several: bool) -> Table:
    table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    columns = ["  port", *(["on"] if several else []), "service", "product", "TLS", "problem",
               "seen"]
    for column in columns:
        table.add_column(column, overflow="fold")
    ports = _port_views(group)
    for service in services:
        port_view = ports.get((service.port, service.protocol))
        style = SEVERITY_STYLES[service.worst] if service.worst else "bold"
        highlights = port_view.highlights[:2] if port_view else ()
        row = [
            Text(f"  {service.label}", style=style),
            *([Text(_families(service.addresses, group))] if several else []),
            Text(service.service),
            Text(service.product_version),
            _grade_cell(service),
            Text(str(service.worst) if service.worst else "", style=style if service.worst
                 else ""),
            Text("; ".join(f"{fact.label}: {fact.value}" for fact in highlights),
                 overflow="ellipsis", no_wrap=True),
        ]
        table.add_row(*row)
    return table


def _families(addresses: Sequence[str], group: TargetGroup) -> str:
    if len(addresses) == len(group.targets):
        return "all" if len(group.targets) > 2 else "IPv4+6"
    versions = {"IPv6" if ":" in address else "IPv4" for address in addresses}
    return "+".join(sorted(versions)) if len(versions) > 1 else versions.pop()


def _port_views(group: TargetGroup) -> dict[tuple[int, str], PortView]:
    views: dict[tuple[int, str], PortView] = {}
    for target in group.targets:
        for port in target.open_ports:
            views.setdefault((port.port, port.protocol), port)
    return views


def _grade_cell(service: ExposedService) -> Text:
    if service.tls_grade is None:
        return Text("")
    css = GRADE_CLASSES.get(service.tls_grade.letter.upper(), "other")
    return Text(safe_text(service.tls_grade.display, 40), style=GRADE_STYLES.get(css, "bold"))


def _merged_notes(group: TargetGroup) -> list[tuple[str, str]]:
    """Each note once: X on port 22 of two addresses and on port 2222 becomes one line for X."""
    merged: dict[str, tuple[list[str], list[str]]] = {}
    for target in group.targets:
        for note in target.notes:
            ports, addresses = merged.setdefault(note.text, ([], []))
            if note.port is not None and str(note.port) not in ports:
                ports.append(str(note.port))
            if target.address not in addresses:
                addresses.append(target.address)
    lines = []
    for text, (ports, addresses) in merged.items():
        where = f" (port{'s' if len(ports) > 1 else ''} {', '.join(ports)})" if ports else ""
        if len(group.targets) > 1 and len(addresses) < len(group.targets):
            where += f" (only {', '.join(addresses)})"
        lines.append((where, text))
    return lines


# --- what was seen --------------------------------------------------------------------------


def _render_evidence(view: ReportView, out: _Out) -> None:
    problems = [*view.summary.urgent, *view.summary.informational]
    if not problems:
        return
    out.blank()
    out.line(Text("What was seen", style="bold underline"))
    urgent = len(view.summary.urgent)
    for index, problem in enumerate(problems, 1):
        number = f"{index:>2}. " if index <= urgent else " -  "
        out.wrapped([(problem.id, "bold"), (f"  {problem.where}", "dim")],
                    prefix=Text(number), indent="    ")
        findings = view.findings_of(problem.id)
        for finding in findings[:EVIDENCE_PLACES_SHOWN]:
            evidence = _first_line(finding.evidence, EVIDENCE_PREVIEW_CHARS)
            if evidence:
                out.wrapped([(f"{_place(finding)}: ", "dim"), (evidence, "")],
                            prefix=Text("    "), indent="      ")
        if len(findings) > EVIDENCE_PLACES_SHOWN:
            out.line(Text(f"    … and {len(findings) - EVIDENCE_PLACES_SHOWN} more places "
                          "in the JSON or HTML report", style="dim"))
        for fix in problem.fixes:
            if not _is_short(fix) or index > urgent:  # the list showed less, or nothing
                out.wrapped([("fix: ", "dim"), *_code_segments(fix)], prefix=Text("    "),
                            indent="         ")
        for reference in problem.references[:3]:
            out.wrapped([("see: ", "dim"), (reference, "")], prefix=Text("    "),
                        indent="         ")


def _place(finding: FindingView) -> str:
    where = f"port {finding.port}/{finding.protocol}" if finding.port else "host"
    return f"{where} on {', '.join(finding.all_addresses)}"


def _first_line(text: str, limit: int) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    if len(lines) > 1 and lines[0].endswith(":"):  # "address:" heading the evidence per address
        lines = [f"{lines[0]} {lines[1].strip()}", *lines[2:]]
    first = lines[0]
    if first.endswith(CUT_MARK):
        return first
    if len(first) > limit:
        return first[:limit] + EVIDENCE_MORE
    return first if len(lines) == 1 else first + EVIDENCE_MORE


# --- the Shodan view ------------------------------------------------------------------------


def _render_shodan(view: ReportView, out: _Out) -> None:
    seen: set[tuple[str, int, str, str]] = set()
    rows: list[tuple[str, PortView]] = []
    for target in view.targets:
        host = target.address if "/" in target.input else target.input
        for port in target.open_ports:
            if port.shodan is None:
                continue
            key = (host, port.port, port.protocol, port.shodan.record)
            if key not in seen:
                seen.add(key)
                rows.append((host, port))
    if not rows:
        return
    out.blank()
    out.line(Text("What internet crawlers (Shodan, Censys...) record, and the search that "
                  "finds you", style="bold underline"))
    several_hosts = len({host for host, _ in rows}) > 1
    for host, port in rows:
        assert port.shodan is not None
        label = f"  {host} {port.label}" if several_hosts else f"  {port.label}"
        segments = [(port.shodan.record or "(nothing readable)", "")]
        if port.shodan.query:
            segments += [("  search: ", "dim"), (port.shodan.query, CODE_STYLE)]
        out.wrapped(segments, prefix=Text(f"{label:<12} ", style="bold"), indent=" " * 13)


# --- diff -----------------------------------------------------------------------------------


def _render_diff(diff: DiffView, out: _Out) -> None:
    out.line(Text(
        f"Changes since scan {diff.previous_scan_id} ({diff.previous_started_at}): "
        f"{diff.count('added')} new, {diff.count('removed')} gone, "
        f"{diff.count('changed')} changed",
        style="bold",
    ))
    if not diff.changes:
        out.line(Text("  nothing changed"))
    for change in diff.changes:
        mark, style = CHANGE_MARKS[change.kind]
        # The diff's summary already says the port and what it was and is now.
        out.wrapped([(f"{change.addresses}: ", "dim"), (change.summary, "")],
                    prefix=Text(f"  {mark} ", style=style), indent="    ")
