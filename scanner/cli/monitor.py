"""`exposure history`, `show`, `diff` and `watch`: the scan history and monitoring commands."""

from __future__ import annotations

import enum
import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from scanner.api import PIPELINE_CATALOGUE, ScanOptions, scan
from scanner.checks.base import CheckOptions
from scanner.checks.registry import catalogue
from scanner.cli import EXIT_OK, EXIT_SCAN_FAILED, app
from scanner.cli.fleet import BrokerOption, FleetTimeoutOption, VantageOption, fleet_scanner
from scanner.cli.scan import OutputFormat
from scanner.diff import ReportDiff, Side, diff_reports, load_baseline
from scanner.diff.render import render_diff
from scanner.diff.report_adapter import for_reports
from scanner.discovery import DiscoveryOptions
from scanner.errors import BadInput
from scanner.findings import Severity
from scanner.report.html import render_html
from scanner.report.json_report import render_json
from scanner.report.markdown import render_markdown
from scanner.report.model import ScanReport
from scanner.report.sanitize import safe_text
from scanner.report.sarif import render_sarif
from scanner.report.terminal import render_terminal
from scanner.store import NoDatabase, ScanRow, Store, report_from_dict
from scanner.store.location import (
    DbLocation,
    default_location,
    describe,
    open_store,
    parse_location,
)
from scanner.targets import parse_port_spec

DbOption = Annotated[
    str | None,
    typer.Option("--db", help="History database: a file, or postgresql://USER@HOST/DB "
                              "(default: $EXPOSURE_DB or per-user data dir)."),
]


class DiffFormat(enum.StrEnum):
    TABLE = "table"
    JSON = "json"


class AlertMinimum(enum.StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"


def _db_path(db: str | None) -> DbLocation:
    return parse_location(db) if db is not None else default_location()


# --- history ---------------------------------------------------------------------------------


@app.command("history")
def history_command(
    target: Annotated[str | None, typer.Argument(help="Only scans of this target.")] = None,
    db: DbOption = None,
    limit: Annotated[int, typer.Option(help="How many scans, newest first.")] = 30,
    output_format: Annotated[DiffFormat, typer.Option("--format", "-f")] = DiffFormat.TABLE,
) -> int:
    """List stored scans, newest first."""
    path = _db_path(db)
    try:
        store = open_store(path, create=False)
    except NoDatabase:
        typer.echo(f"no scans stored yet ({describe(path)})", err=True)
        if output_format is DiffFormat.JSON:
            sys.stdout.write("[]\n")
        return EXIT_OK
    with store:
        rows = store.list_scans(target, limit=max(1, limit))
    if output_format is DiffFormat.JSON:
        sys.stdout.write(json.dumps([row.to_dict() for row in rows], indent=2) + "\n")
        return EXIT_OK
    _history_table(rows)
    return EXIT_OK


def _history_table(rows: list[ScanRow]) -> None:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("#", "id", "started", "status", "targets", "open", "worst"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row.seq), row.report_id or "-", row.started_at.replace("+00:00", "Z"),
            _status_cell(row), safe_text(", ".join(row.inputs), 80),
            str(row.open_ports) if row.has_report or row.has_partial else "-",
            row.worst_severity or "-",
        )
    console = Console(highlight=False)
    console.print(table)
    # How far each unfinished scan got, in words, under the table (too long for a cell).
    for row in rows:
        if row.summary is not None:
            resume = (f"; `exposure scan --resume {row.seq}` scans the rest"
                      if row.status in ("interrupted", "failed") else "")
            console.print(f"#{row.seq} {safe_text(row.summary, 300)}{resume}", soft_wrap=True)


def _status_cell(row: ScanRow) -> str:
    if row.progress is None or row.addresses_planned is None:
        return row.status
    return f"{row.status} {row.addresses_done}/{row.addresses_planned}"


# --- show ------------------------------------------------------------------------------------


@app.command("show")
def show_command(
    scan_ref: Annotated[str, typer.Argument(metavar="SCAN", help="Number (#) or id from history.")],
    db: DbOption = None,
    output_format: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.TABLE,
    output: Annotated[Path | None, typer.Option("--output", "-o")] = None,
) -> int:
    """Render a stored scan again, in any report format (with its diff where the format has one).

    An unfinished scan (interrupted, failed, still running) shows what it stored: a partial
    report saying how far it got, without a diff (the missing addresses are not changes)."""
    with open_store(_db_path(db), create=False) as store:
        row = store.get_scan(scan_ref)
        diff = None
        if row.has_report:
            data = store.load_report(row)
            previous = store.latest_complete(inputs=row.inputs, before=row.seq)
            if previous is not None:
                diff = diff_reports(_side(store, previous), Side(data, _probed(row), row.seq))
        else:
            data = store.partial_report(row)
            _say_partial(row)
    report = report_from_dict(data)
    if output_format is OutputFormat.TABLE:
        if output:
            with output.open("w", encoding="utf-8") as handle:
                render_terminal(report, Console(file=handle, no_color=True, width=120))
        else:
            render_terminal(report, Console(highlight=False))
        return EXIT_OK
    text = _render_stored(report, output_format, diff)
    if output:
        output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _say_partial(row: ScanRow) -> None:
    how_far = row.summary or row.status
    rest = (f"; `exposure scan --resume {row.seq}` scans the rest"
            if row.status in ("interrupted", "failed") else "")
    sys.stderr.write(f"exposure: scan #{row.seq} is unfinished ({how_far}): partial report{rest}\n")


def _render_stored(report: ScanReport, output_format: OutputFormat, diff: ReportDiff | None) -> str:
    """The file formats; Markdown and HTML show the changes since the scan before this one."""
    adapted = for_reports(diff) if diff is not None else None
    if output_format is OutputFormat.JSON:
        return render_json(report)
    if output_format is OutputFormat.MARKDOWN:
        return render_markdown(report, adapted)
    if output_format is OutputFormat.HTML:
        return render_html(report, adapted)
    return render_sarif(report, [*catalogue(), *PIPELINE_CATALOGUE])


# --- diff ------------------------------------------------------------------------------------


@app.command("diff")
def diff_command(
    scan_a: Annotated[str | None, typer.Argument(metavar="[SCAN_A]")] = None,
    scan_b: Annotated[str | None, typer.Argument(metavar="[SCAN_B]")] = None,
    db: DbOption = None,
    target: Annotated[
        str | None, typer.Option(help="Without SCAN_A/SCAN_B: the last two scans of this target.")
    ] = None,
    baseline: Annotated[
        Path | None, typer.Option(help="TOML file of the ports you mean to expose.")
    ] = None,
    output_format: Annotated[DiffFormat, typer.Option("--format", "-f")] = DiffFormat.TABLE,
) -> int:
    """What changed between two scans (default: the last two of the same target(s))."""
    expected = load_baseline(baseline) if baseline else None
    with open_store(_db_path(db), create=False) as store:
        before, after = _pick_pair(store, scan_a, scan_b, target)
        diff = diff_reports(
            _side(store, before) if before else None, _side(store, after),
            baseline=expected, only_target=target,
        )
    _print_diff(diff, output_format)
    return EXIT_OK


def _pick_pair(
    store: Store, scan_a: str | None, scan_b: str | None, target: str | None
) -> tuple[ScanRow | None, ScanRow]:
    if scan_a and scan_b:
        return store.get_scan(scan_a), store.get_scan(scan_b)
    if scan_a:
        chosen = store.get_scan(scan_a)
        latest = store.latest_complete(inputs=chosen.inputs)
        if latest is not None and latest.seq > chosen.seq:
            return chosen, latest
        return store.latest_complete(inputs=chosen.inputs, before=chosen.seq), chosen
    latest = store.latest_complete(target=target)
    if latest is None:
        where = f" of {target}" if target else ""
        raise BadInput(f"no complete scan{where} stored in {store.path}")
    if target is not None:
        return store.latest_complete(target=target, before=latest.seq), latest
    return store.latest_complete(inputs=latest.inputs, before=latest.seq), latest


def _side(store: Store, row: ScanRow) -> Side:
    return Side(store.load_report(row), _probed(row), row.seq)


def _probed(row: ScanRow) -> tuple[int, ...] | None:
    if not row.ports:
        return None
    try:
        return parse_port_spec(row.ports)
    except BadInput:
        return None


def _print_diff(diff: ReportDiff, output_format: DiffFormat) -> None:
    if output_format is DiffFormat.JSON:
        sys.stdout.write(json.dumps(diff.to_dict(), indent=2, ensure_ascii=True) + "\n")
    else:
        render_diff(diff, _console())


# --- watch -----------------------------------------------------------------------------------


@app.command("watch")
def watch_command(
    targets: Annotated[list[str], typer.Argument(help="What to watch (as for scan).")],
    every: Annotated[str, typer.Option(help="Interval: 30m, 6h, 1d, 1h30m.")] = "6h",
    jitter: Annotated[float, typer.Option(help="Spread each interval by +/- this fraction.")] = 0.1,
    alert: Annotated[
        list[str] | None,
        typer.Option(help="Notifier to use (repeatable): webhook, ntfy, homeassistant, email, "
                          "mqtt. Default: every configured one. Secrets: env or config file."),
    ] = None,
    alert_config: Annotated[
        Path | None, typer.Option(help="Alerts config file (default ~/.config/exposure/...).")
    ] = None,
    alert_min_severity: Annotated[
        AlertMinimum, typer.Option(help="Send alerts for changes (and, at a target's first "
                                        "scan, for open findings) at or above this.")
    ] = AlertMinimum.INFO,
    alert_existing: Annotated[
        bool, typer.Option(help="At a target's first scan, alert on the findings already open.")
    ] = True,
    remind: Annotated[
        str, typer.Option(help="Remind of findings still open every interval (1d, 12h), or "
                               "'never'.")
    ] = "1d",
    remind_min_severity: Annotated[
        AlertMinimum, typer.Option(help="Reminders only for open findings at or above this.")
    ] = AlertMinimum.HIGH,
    html_report: Annotated[
        Path | None, typer.Option(help="Write the HTML report here after every scan (e.g. into "
                                       "Home Assistant's www/ folder).")
    ] = None,
    report_url: Annotated[
        str | None,
        typer.Option("--report-link", help="The http(s) URL of that report, linked from the "
                                           "Home Assistant device page."),
    ] = None,
    once: Annotated[bool, typer.Option(help="One scan, then exit (cron, tests).")] = False,
    max_iterations: Annotated[int | None, typer.Option(help="Stop after N scans.")] = None,
    db: DbOption = None,
    no_store: Annotated[bool, typer.Option("--no-store", help="Keep no history.")] = False,
    baseline: Annotated[
        Path | None, typer.Option(help="TOML file of the ports you mean to expose.")
    ] = None,
    ports: Annotated[str, typer.Option(help="top, all, or a list like 22,80,8000-8100.")] = "top",
    engine: Annotated[str, typer.Option(help="Discovery engine.")] = "auto",
    rate: Annotated[int, typer.Option(help="Packets per second, never exceeded.")] = 2000,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for one probe.")] = 1.0,
    active: Annotated[bool, typer.Option(help="As for scan --active.")] = False,
    ca_file: Annotated[Path | None, typer.Option(help="PEM file of extra trusted CAs.")] = None,
    identify: Annotated[
        bool, typer.Option(help="Identify services and run checks (off: port states only).")
    ] = True,
    broker: BrokerOption = None,
    vantage: VantageOption = None,
    fleet_timeout: FleetTimeoutOption = None,
) -> int:
    """Scan every interval (with jitter), keep the history, alert only on changes."""
    if not 0 <= jitter <= 0.5:
        raise BadInput(f"--jitter must be between 0 and 0.5 (got {jitter})")
    if max_iterations is not None and max_iterations < 1:
        raise BadInput("--max-iterations must be at least 1")
    if rate < 1 or not 0.05 <= timeout <= 60:
        raise BadInput("--rate must be >= 1 and --timeout between 0.05 and 60 s")
    if ca_file is not None and not ca_file.is_file():
        raise BadInput(f"--ca-file {ca_file}: no such file")
    # Imported here: every other command (and every scan's start-up) would pay for them.
    from scanner.alerts import load_settings, notifiers_from
    from scanner.monitor import Watcher, WatchOptions, parse_interval

    if report_url is not None and not report_url.startswith(("http://", "https://")):
        raise BadInput("--report-link must be an http:// or https:// URL")
    if html_report is not None and not html_report.parent.is_dir():
        raise BadInput(f"--html-report {html_report}: no such directory")
    fleet = fleet_scanner(broker, db, vantage, fleet_timeout)
    notifiers = notifiers_from(load_settings(alert_config), _alert_names(alert))
    options = WatchOptions(
        inputs=tuple(targets),
        every_s=parse_interval(every),
        jitter=jitter,
        max_iterations=1 if once else max_iterations,
        min_severity=Severity(alert_min_severity.value),
        baseline=load_baseline(baseline) if baseline else None,
        db=None if no_store else _db_path(db),
        alert_existing=alert_existing,
        remind_s=None if remind.strip().lower() in ("never", "off", "0") else (
            parse_interval(remind)),
        remind_min_severity=Severity(remind_min_severity.value),
        html_report=html_report,
        report_url=report_url,
    )
    scan_options = ScanOptions(
        ports=parse_port_spec(ports),
        engine=engine,
        discovery=DiscoveryOptions(rate=rate, timeout=timeout),
        identify=identify,
        checks=CheckOptions(active=active, ca_file=ca_file),
    )
    _log_to_stderr()
    logging.getLogger("exposure.watch").info(
        "watching %s every %s (+/- %d %%), alerts: %s", ", ".join(targets), every,
        round(jitter * 100), ", ".join(n.name for n in notifiers) or "none")
    console = _console()
    watcher = Watcher(
        options, scan_options, notifiers, fleet or scan,
        on_iteration=lambda result: result.diff is not None and not result.diff.empty
        and render_diff(result.diff, console),
    )
    watcher.stop_on_signals()
    results = watcher.run()
    return EXIT_SCAN_FAILED if results and results[-1].error else EXIT_OK


def _console() -> Console:
    # Not wrapped when piped (cron mail, journald): wrapping is the reader's terminal's job.
    return Console(highlight=False, soft_wrap=not sys.stdout.isatty())


def _alert_names(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def _log_to_stderr() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    for name in ("exposure.watch", "scanner.alerts"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO)
        logger.addHandler(handler)

