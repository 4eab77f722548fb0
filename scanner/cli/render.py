"""The one way the CLI turns a report into text: `render(report, format, diff=None)`.

`scan`, `show` and `watch` (its --html-report) all render through it, so a format looks the
same whichever command wrote it. `render_outputs` sends one report to every destination of
an output plan (stdout and -o/-oA files). The renderers are imported when a format is
rendered: a JSON scan does not pay for jinja2, nor a table for SARIF.
"""

from __future__ import annotations

import dataclasses
import io
import sys
from typing import TYPE_CHECKING

from scanner.cli import console as cli_console
from scanner.cli.outputs import OutputFormat, OutputPlan
from scanner.core.findings import Severity
from scanner.core.report import ScanReport
from scanner.core.summary import ReportSummary, summarize
from scanner.core.text import safe_text
from scanner.errors import ScanFailed

if TYPE_CHECKING:
    from rich.console import Console

    from scanner.core.diff import ReportDiff


def render(
    report: ScanReport,
    output_format: OutputFormat,
    diff: ReportDiff | None = None,
    *,
    summary: ReportSummary | None = None,
    quiet: bool = False,
    shodan: bool = False,
    console: Console | None = None,
) -> str:
    """The report in one format. Markdown and HTML show `diff` (the changes since the scan
    before) when given; the table is drawn for `console` (its width and colours) when given,
    else as plain text in the terminal renderer's PIPE_WIDTH columns."""
    if output_format is OutputFormat.TABLE:
        return _table(report, summary, quiet=quiet, shodan=shodan, console=console)
    if output_format is OutputFormat.JSON:
        from scanner.report.json_report import render_json

        return render_json(report, summary=summary)
    if output_format is OutputFormat.MARKDOWN:
        from scanner.report.markdown import render_markdown

        return render_markdown(report, diff, summary)
    if output_format is OutputFormat.HTML:
        from scanner.report.html import render_html

        return render_html(report, diff, summary)
    from scanner.core.catalogue import finding_catalogue
    from scanner.report.sarif import render_sarif

    return render_sarif(report, tuple(finding_catalogue()), summary)


def _table(report: ScanReport, summary: ReportSummary | None, *, quiet: bool, shodan: bool,
           console: Console | None) -> str:
    from rich.console import Console

    from scanner.report.terminal import PIPE_WIDTH, render_terminal

    if console is None:
        console = Console(file=io.StringIO(), no_color=True, width=PIPE_WIDTH,
                          force_terminal=False)
    with console.capture() as captured:
        render_terminal(report, console, quiet=quiet, shodan=shodan, summary=summary)
    return captured.get()


def shown_report(report: ScanReport, minimum: Severity | None) -> tuple[ScanReport, int]:
    """The report with the findings below `minimum` left out (--severity), and how many."""
    if minimum is None:
        return report, 0
    hidden = 0
    targets = []
    for target in report.targets:
        kept = [f for f in target.findings if f.severity.rank >= minimum.rank]
        hidden += len(target.findings) - len(kept)
        targets.append(dataclasses.replace(target, findings=kept))
    return dataclasses.replace(report, targets=targets), hidden


def render_outputs(
    report: ScanReport,
    plan: OutputPlan,
    *,
    quiet: bool = False,
    shodan: bool = False,
    shown: Severity | None = None,
    diff: ReportDiff | None = None,
) -> None:
    """Every destination of the plan, from one summary (computed once for all of them)."""
    visible, hidden = shown_report(report, shown)
    summary = summarize(visible, hidden_below=shown if hidden else None, hidden=hidden)
    failures: list[ScanFailed] = []
    for destination in plan.destinations:
        terminal = (_stdout_console() if destination.is_stdout
                    and destination.format is OutputFormat.TABLE else None)
        text = render(visible, destination.format, diff, summary=summary, quiet=quiet,
                      shodan=shodan, console=terminal)
        if destination.is_stdout:
            sys.stdout.write(text)
            continue
        try:
            destination.write(text)
        except ScanFailed as failure:  # the other reports are still written
            failures.append(failure)
    if quiet and plan.to_stdout is not None:  # errors are not findings; cron must hear of them
        for error in report.errors:
            sys.stderr.write(f"exposure: scan error: {safe_text(error.line(), 500)}\n")
    if failures:
        raise failures[0]


def _stdout_console() -> Console:
    from scanner.report.terminal import PIPE_WIDTH

    # A pipe or a log file gets PIPE_WIDTH columns, as -o does; a terminal its own width.
    return cli_console.stdout_console(None if sys.stdout.isatty() else PIPE_WIDTH)
