"""`exposure history`, `show`, `diff` and `watch`: the scan history and monitoring commands."""

from __future__ import annotations

import enum
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from scanner.cli import EXIT_FINDINGS, EXIT_OK, EXIT_SCAN_FAILED, Debug, NoColor, Verbose, app
from scanner.cli import console as cli_console
from scanner.cli.fleet import BrokerOption, FleetTimeoutOption, VantageOption, fleet_scanner
from scanner.cli.options import (
    INTERNETDB_DEFAULT_URL,
    Active,
    AllowLargeRange,
    BaselineFile,
    CaFile,
    Db,
    Engine,
    ExcludePorts,
    Format,
    Identify,
    InputList,
    InternetDb,
    InternetDbUrl,
    Ipv4Only,
    Ipv6Only,
    NoStore,
    Output,
    OutputAll,
    Ports,
    Rate,
    ResolverTestName,
    Retries,
    Shodan,
    SshAuthProbe,
    SshHostKeys,
    Targets,
    Timeout,
    Udp,
    scan_options,
    scan_settings,
)
from scanner.cli.outputs import plan_outputs
from scanner.errors import BadInput

# The store, the diff and the monitor are imported by the command that uses them: every
# other command (and every scan's start-up) would pay for them.
if TYPE_CHECKING:
    from rich.console import Console

    from scanner.core.report import ScanReport
    from scanner.diff import ReportDiff, Side
    from scanner.monitor.watch import IterationResult
    from scanner.store import ScanRow, Store
    from scanner.store.location import DbLocation


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
    from scanner.store.location import default_location, parse_location

    return parse_location(db) if db is not None else default_location()


# --- history ---------------------------------------------------------------------------------


@app.command("history")
def history_command(
    target: Annotated[str | None, typer.Argument(help="Only scans of this target.")] = None,
    db: Db = None,
    limit: Annotated[int, typer.Option(help="How many scans, newest first.")] = 30,
    output_format: Annotated[DiffFormat, typer.Option("--format", "-f")] = DiffFormat.TABLE,
    no_color: NoColor = False,
) -> int:
    """List stored scans, newest first."""
    cli_console.configure(no_color=no_color)
    from scanner.store import NoDatabase
    from scanner.store.location import describe, open_store

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
    from scanner.core.summary import open_port_count
    from scanner.store import StoreError, report_from_dict

    if not row.has_report:
        return row.open_ports
    try:
        return open_port_count(report_from_dict(store.load_report(row)))
    except (StoreError, KeyError, TypeError, ValueError):
        return row.open_ports


def _history_table(rows: list[ScanRow], counts: dict[int, int]) -> None:
    from rich.table import Table

    from scanner.core.text import safe_text

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
    db: Db = None,
    output_format: Format = None,
    output: Output = None,
    output_all: OutputAll = None,
    shodan: Shodan = False,
    no_color: NoColor = False,
) -> int:
    """Render a stored scan again, in any report format (with its diff where the format has one).

    An unfinished scan (interrupted, failed, still running) shows what it stored: a partial
    report saying how far it got, without a diff (the missing addresses are not changes)."""
    cli_console.configure(no_color=no_color)
    from scanner.cli.render import render_outputs
    from scanner.diff import Side, diff_reports
    from scanner.store import report_from_dict

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
    render_outputs(report_from_dict(data), plan, shodan=shodan, diff=diff)
    return EXIT_OK


def _say_partial(row: ScanRow) -> None:
    how_far = row.summary or row.status
    rest = (f"; `exposure scan --resume {row.seq}` scans the rest"
            if row.status in ("interrupted", "failed") else "")
    sys.stderr.write(f"exposure: scan #{row.seq} is unfinished ({how_far}): partial report{rest}\n")


def _open_store(db: str | None) -> Store:
    """The history for reading; none yet is bad input for show/diff (there is nothing to show)."""
    from scanner.store import NoDatabase
    from scanner.store.location import open_store

    try:
        return open_store(_db_path(db), create=False)
    except NoDatabase as error:
        raise BadInput(f"no scan stored yet: {error}") from None


def _get_scan(store: Store, ref: str) -> ScanRow:
    from scanner.store import ScanNotFound

    try:
        return store.get_scan(ref)
    except ScanNotFound as error:
        raise BadInput(str(error)) from None


# --- diff ------------------------------------------------------------------------------------


@app.command("diff")
def diff_command(
    scan_a: Annotated[str | None, typer.Argument(metavar="[SCAN_A]")] = None,
    scan_b: Annotated[str | None, typer.Argument(metavar="[SCAN_B]")] = None,
    db: Db = None,
    target: Annotated[
        str | None, typer.Option(help="Without SCAN_A/SCAN_B: the last two scans of this target.")
    ] = None,
    baseline: BaselineFile = None,
    output_format: Annotated[DiffFormat, typer.Option("--format", "-f")] = DiffFormat.TABLE,
    no_color: NoColor = False,
) -> int:
    """What changed between two scans (default: the last two of the same target(s)).

    Exit 0 when nothing changed, 1 when something did (like diff(1)), 2 on bad input."""
    cli_console.configure(no_color=no_color)
    from scanner.diff import diff_reports, load_baseline

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
    from scanner.diff import Side

    return Side(store.load_report(row), _probed(row), row.seq)


def _probed(row: ScanRow) -> tuple[int, ...] | None:
    from scanner.targets import parse_port_spec

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
        from scanner.diff.render import render_diff

        render_diff(diff, _console())


# --- watch -----------------------------------------------------------------------------------


@app.command("watch")
def watch_command(
    ctx: typer.Context,
    targets: Targets = None,
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
    # --- what each scan does: the same options as `exposure scan` (scanner/cli/options.py) ---
    ports: Ports = "top",
    exclude: ExcludePorts = None,
    input_list: InputList = None,
    ipv4_only: Ipv4Only = False,
    ipv6_only: Ipv6Only = False,
    engine: Engine = "auto",
    rate: Rate = 2000,
    timeout: Timeout = 1.0,
    retries: Retries = 1,
    allow_large_range: AllowLargeRange = False,
    active: Active = False,
    ca_file: CaFile = None,
    ssh_auth_probe: SshAuthProbe = False,
    ssh_host_keys: SshHostKeys = False,
    identify: Identify = True,
    internetdb: InternetDb = False,
    internetdb_url: InternetDbUrl = INTERNETDB_DEFAULT_URL,
    udp: Udp = False,
    resolver_test_name: ResolverTestName = "example.com",
    db: Db = None,
    no_store: NoStore = False,
    baseline: BaselineFile = None,
    verbose: Verbose = 0,
    debug: Debug = False,
    no_color: NoColor = False,
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
    if not targets and input_list is None:
        raise BadInput("no target given to watch (a hostname, an IP address, a small CIDR, "
                       "or -iL FILE)")
    settings = scan_settings(ctx.params)  # targets, ports and numbers checked as scan does
    from scanner.cli.validate import check_db_path
    from scanner.store.paths import DB_ENV

    if not no_store and (db is not None or os.environ.get(DB_ENV)):
        check_db_path(db or Path(os.environ[DB_ENV]), "--db" if db else f"${DB_ENV}")
    from scanner.alerts import load_settings, notifiers_from
    from scanner.api import scan
    from scanner.core.findings import Severity
    from scanner.diff import load_baseline
    from scanner.diff.render import render_diff
    from scanner.monitor import Watcher, WatchOptions, parse_interval

    if report_url is not None and not report_url.startswith(("http://", "https://")):
        raise BadInput("--report-link must be an http:// or https:// URL")
    if html_report is not None and not html_report.parent.is_dir():
        raise BadInput(f"--html-report {html_report}: no such directory")
    fleet = fleet_scanner(broker, db, vantage, fleet_timeout)
    notifiers = notifiers_from(load_settings(alert_config), _alert_names(alert))
    options = WatchOptions(
        inputs=tuple(settings["targets"]),
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
    _log_to_stderr()
    logging.getLogger("exposure.watch").info(
        "watching %s every %s (+/- %d %%), alerts: %s", ", ".join(options.inputs), every,
        round(jitter * 100), ", ".join(n.name for n in notifiers) or "none")
    console = _console()

    def show_changes(result: IterationResult) -> None:
        if result.diff is not None and not result.diff.empty:
            render_diff(result.diff, console)

    watcher = Watcher(options, scan_options(settings), notifiers, fleet or scan,
                      on_iteration=show_changes, render_html=_html_report)
    watcher.stop_on_signals()
    results = watcher.run()
    return EXIT_SCAN_FAILED if results and results[-1].error else EXIT_OK


def _html_report(report: ScanReport, diff: ReportDiff) -> str:
    """--html-report: the report as `scan -o report.html` and `show` write it."""
    from scanner.cli.outputs import OutputFormat
    from scanner.cli.render import render

    return render(report, OutputFormat.HTML, diff)


def _console() -> Console:
    from rich.console import Console

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

