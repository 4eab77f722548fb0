"""`exposure history`, `show`, `diff` and `watch`: the scan history and monitoring commands."""

from __future__ import annotations

import enum
import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from scanner.api import ScanOptions, scan
from scanner.checks.base import CheckOptions
from scanner.cli import EXIT_FINDINGS, EXIT_OK, EXIT_SCAN_FAILED, Debug, NoColor, Verbose, app
from scanner.cli import console as cli_console
from scanner.cli.fleet import BrokerOption, FleetTimeoutOption, VantageOption, fleet_scanner
from scanner.cli.outputs import OutputFormat, plan_outputs
from scanner.cli.scan import render_outputs
from scanner.cli.validate import check_ca_file, check_db_path
from scanner.core.findings import Severity
from scanner.core.summary import open_port_count
from scanner.core.text import safe_text
from scanner.diff import ReportDiff, Side, diff_reports, load_baseline
from scanner.diff.render import render_diff
from scanner.discovery import DiscoveryOptions
from scanner.errors import BadInput
from scanner.store import (
    NoDatabase,
    ScanNotFound,
    ScanRow,
    Store,
    StoreError,
    report_from_dict,
)
from scanner.store.location import (
    DbLocation,
    default_location,
    describe,
    open_store,
    parse_location,
)
from scanner.store.paths import DB_ENV
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
    no_color: NoColor = False,
) -> int:
    """List stored scans, newest first."""
    cli_console.configure(no_color=no_color)
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
        counts = {row.seq: _open_ports(store, row) for row in rows}
    if output_format is DiffFormat.JSON:
        listed = [{**row.to_dict(), "open_ports": counts.get(row.seq, row.open_ports)}
                  for row in rows]
        sys.stdout.write(json.dumps(listed, indent=2) + "\n")
        return EXIT_OK
    _history_table(rows, counts)
    return EXIT_OK


def _open_ports(store: Store, row: ScanRow) -> int:
    """Open ports as every report counts them (scanner.core.summary), from the stored
    report: the per-address numbers the store keeps count a name's IPv4 and IPv6 twice."""
    if not row.has_report:
        return row.open_ports
    try:
        return open_port_count(report_from_dict(store.load_report(row)))
    except (StoreError, KeyError, TypeError, ValueError):
        return row.open_ports


def _history_table(rows: list[ScanRow], counts: dict[int, int]) -> None:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("#", "id", "started", "status", "targets", "open", "worst"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row.seq), row.report_id or "-", row.started_at.replace("+00:00", "Z"),
            _status_cell(row), safe_text(", ".join(row.inputs), 80),
            str(counts.get(row.seq, row.open_ports)) if row.has_report or row.has_partial
            else "-",
            row.worst_severity or "-",
        )
    console = cli_console.stdout_console()
    console.print(table)
    # How far each unfinished scan got, in words, under the table (too long for a cell).
    for row in rows:
        if row.summary is not None:
            resume = (f"; `exposure scan --resume {row.seq}` scans the rest"
                      if row.status in ("interrupted", "failed") else "")
            console.print(f"#{row.seq} {safe_text(row.summary, 300)}{resume}", soft_wrap=True,
                          markup=False, highlight=False)


def _status_cell(row: ScanRow) -> str:
    if row.progress is None or row.addresses_planned is None:
        return row.status
    return f"{row.status} {row.addresses_done}/{row.addresses_planned}"


# --- show ------------------------------------------------------------------------------------


@app.command("show")
def show_command(
    scan_ref: Annotated[str, typer.Argument(metavar="SCAN", help="Number (#) or id from history.")],
    db: DbOption = None,
    output_format: Annotated[
        OutputFormat | None, typer.Option("--format", "-f", help="Format on stdout.")
    ] = None,
    output: Annotated[
        list[str] | None,
        typer.Option("--output", "-o", metavar="FILE",
                     help="Write to FILE, format from its suffix; repeatable."),
    ] = None,
    output_all: Annotated[
        str | None, typer.Option("--output-all", "-oA", metavar="BASE",
                                 help="Write BASE.txt, .json, .md, .html and .sarif.")
    ] = None,
    shodan: Annotated[bool, typer.Option("--shodan", help="Terminal: crawler records.")] = False,
    no_color: NoColor = False,
) -> int:
    """Render a stored scan again, in any report format (with its diff where the format has one).

    An unfinished scan (interrupted, failed, still running) shows what it stored: a partial
    report saying how far it got, without a diff (the missing addresses are not changes)."""
    cli_console.configure(no_color=no_color)
    plan = plan_outputs(output, output_all, output_format)
    with _open_store(db) as store:
        row = _get_scan(store, scan_ref)
        diff = None
        if row.has_report:
            data = store.load_report(row)
            previous = store.latest_complete(inputs=row.inputs, before=row.seq)
            if previous is not None:
                diff = diff_reports(_side(store, previous), Side(data, _probed(row), row.seq))
        else:
            data = store.partial_report(row)
            _say_partial(row)
    plan.prepare()
    render_outputs(report_from_dict(data), plan, shodan=shodan,
                   diff_for_files=diff)
    return EXIT_OK


def _say_partial(row: ScanRow) -> None:
    how_far = row.summary or row.status
    rest = (f"; `exposure scan --resume {row.seq}` scans the rest"
            if row.status in ("interrupted", "failed") else "")
    sys.stderr.write(f"exposure: scan #{row.seq} is unfinished ({how_far}): partial report{rest}\n")


def _open_store(db: str | None) -> Store:
    """The history for reading; none yet is bad input for show/diff (there is nothing to show)."""
    try:
        return open_store(_db_path(db), create=False)
    except NoDatabase as error:
        raise BadInput(f"no scan stored yet: {error}") from None


def _get_scan(store: Store, ref: str) -> ScanRow:
    try:
        return store.get_scan(ref)
    except ScanNotFound as error:
        raise BadInput(str(error)) from None


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
    no_color: NoColor = False,
) -> int:
    """What changed between two scans (default: the last two of the same target(s)).

    Exit 0 when nothing changed, 1 when something did (like diff(1)), 2 on bad input."""
    cli_console.configure(no_color=no_color)
    expected = load_baseline(baseline) if baseline else None
    with _open_store(db) as store:
        before, after = _pick_pair(store, scan_a, scan_b, target)
        diff = diff_reports(
            _side(store, before) if before else None, _side(store, after),
            baseline=expected, only_target=target,
        )
    _print_diff(diff, output_format)
    return EXIT_OK if diff.empty else EXIT_FINDINGS


def _pick_pair(
    store: Store, scan_a: str | None, scan_b: str | None, target: str | None
) -> tuple[ScanRow | None, ScanRow]:
    if scan_a and scan_b:
        return _get_scan(store, scan_a), _get_scan(store, scan_b)
    if scan_a:
        chosen = _get_scan(store, scan_a)
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
    verbose: Verbose = 0,
    debug: Debug = False,
    no_color: NoColor = False,
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
    cli_console.configure(verbose=verbose, debug=debug, no_color=no_color)
    if not 0 <= jitter <= 0.5:
        raise BadInput(f"--jitter must be between 0 and 0.5 (got {jitter})")
    if max_iterations is not None and max_iterations < 1:
        raise BadInput("--max-iterations must be at least 1")
    if rate < 1 or not 0.05 <= timeout <= 60:
        raise BadInput("--rate must be >= 1 and --timeout between 0.05 and 60 s")
    if ca_file is not None:
        check_ca_file(ca_file)
    if not no_store and (db is not None or os.environ.get(DB_ENV)):
        check_db_path(db or Path(os.environ[DB_ENV]), "--db" if db else f"${DB_ENV}")
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
    return Console(highlight=False, soft_wrap=not sys.stdout.isatty(),
                   no_color=cli_console.SETTINGS.no_color or None)


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
        logger.propagate = False  # the CLI's own stderr handler (console.py) would repeat it

