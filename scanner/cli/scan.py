"""`exposure scan`, `exposure checks`, `exposure version`.

Everything the user typed is checked before the first packet: numbers, ports, target
syntax, every output path (by creating its file), the CA file (PEM with a certificate) and
an explicit history database. Then names are resolved and the scan runs.
"""

from __future__ import annotations

import enum
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from scanner import __version__
from scanner.cli import EXIT_FINDINGS, EXIT_OK, EXIT_SCAN_FAILED, Debug, NoColor, Verbose, app
from scanner.cli import console as cli_console
from scanner.cli.fleet import BrokerOption, FleetTimeoutOption, VantageOption, fleet_scanner
from scanner.cli.options import (
    INTERNETDB_DEFAULT_URL,
    SHAPING_OPTIONS,
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
from scanner.cli.outputs import OutputFormat, plan_outputs
from scanner.cli.render import render_outputs
from scanner.core.findings import Severity
from scanner.errors import BadInput

__all__ = ["FailOn", "OutputFormat", "ShownSeverity", "render_outputs"]

# The library is imported when a scan runs (scan_command), not when the CLI starts: `exposure
# --help`, `show` and the rest do not pay for the stages, and a scan pays only for those it uses.
if TYPE_CHECKING:
    from rich.console import Console

    from scanner.api import ScanObserver, ScanOptions
    from scanner.core.report import ScanReport
    from scanner.fleet.coordinator import FleetScanner
    from scanner.store import ScanRecorder


class FailOn(enum.StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    NEVER = "never"


class ShownSeverity(enum.StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"


@app.command("scan")
def scan_command(
    ctx: typer.Context,
    targets: Targets = None,
    ports: Ports = "top",
    exclude: ExcludePorts = None,
    input_list: InputList = None,
    ipv4_only: Ipv4Only = False,
    ipv6_only: Ipv6Only = False,
    engine: Engine = "auto",
    rate: Rate = 2000,
    timeout: Timeout = 1.0,
    retries: Retries = 1,
    output_format: Format = None,
    output: Output = None,
    output_all: OutputAll = None,
    fail_on: Annotated[
        FailOn, typer.Option(help="Exit 1 when a finding is at or above this severity.")
    ] = FailOn.HIGH,
    severity: Annotated[
        ShownSeverity | None,
        typer.Option(help="Show only findings at or above this severity (the history keeps "
                          "all; --fail-on still sees all)."),
    ] = None,
    shodan: Shodan = False,
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
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Table format: print only the findings.")
    ] = False,
    # --- history (scanner/store) and baseline (scanner/diff) ---
    db: Db = None,
    no_store: NoStore = False,
    baseline: BaselineFile = None,
    resume: Annotated[
        str | None,
        typer.Option(metavar="SCAN", help="Finish an interrupted scan (number or id from "
                     "history): only what it had not done, with the options it had."),
    ] = None,
    verbose: Verbose = 0,
    debug: Debug = False,
    no_color: NoColor = False,
    # --- fleet (scanner/fleet) ---
    broker: BrokerOption = None,
    vantage: VantageOption = None,
    fleet_timeout: FleetTimeoutOption = None,
) -> int:
    """Scan TARGET(s) from the outside and report what is exposed."""
    cli_console.configure(verbose=verbose, debug=debug, no_color=no_color)
    from scanner.cli.signals import StopOnSignals
    from scanner.cli.validate import check_db_path
    from scanner.diff import apply_baseline, load_baseline
    from scanner.store import ScanRecorder
    from scanner.store.paths import DB_ENV
    from scanner.targets.ports import compress_ports

    fleet = fleet_scanner(broker, db, vantage, fleet_timeout)
    if fleet is not None and resume is not None:
        raise BadInput("--resume runs on this machine: it does not combine with --broker")
    if resume is not None:
        _refuse_scan_options(ctx, resume, no_store)
        settings = None
    else:
        settings = scan_settings(ctx.params)
    plan = plan_outputs(output, output_all, output_format)
    if resume is None and not no_store and (db is not None or os.environ.get(DB_ENV)):
        check_db_path(db or Path(os.environ[DB_ENV]), "--db" if db else f"${DB_ENV}")
    if resume is not None:
        recorder = ScanRecorder.for_resume(db, resume)
        settings = recorder.resume_plan.settings if recorder.resume_plan else {}
    else:
        recorder = ScanRecorder.for_cli(db, no_store)
    assert settings is not None
    try:
        options = scan_options(settings)
        expected = load_baseline(baseline) if baseline else None
        _notes(options)
        plan.prepare()  # every output file exists (empty, hidden) from here on
    except BaseException:
        recorder.close()  # a resumed scan's history is open already
        raise
    settings["ports"] = compress_ports(options.ports)  # "top" today may not be "top" tomorrow
    try:
        # SIGTERM/SIGINT from here on: the history write in progress ends, the scan row says
        # how far it got, exit 143/130 (scanner/cli/signals.py).
        with StopOnSignals(recorder.interrupt) as guard:
            recorder.guard = guard
            with recorder.recording(settings["targets"], settings["ports"], settings):
                report = _run_with_progress(settings["targets"], options, recorder, fleet)
                report = recorder.complete_report(report)
                apply_baseline(report, expected)
                recorder.finish(report)
            render_outputs(report, plan, quiet=quiet, shodan=shodan,
                           shown=Severity(severity.value) if severity else None)
            return recorder.exit_code(_exit_code(report, fail_on))
    except BaseException:
        plan.discard()  # no half report, no hidden file left
        raise


def _notes(options: ScanOptions) -> None:
    if options.identify and options.engine != "nmap" and shutil.which("nmap") is None:
        cli_console.note("nmap is not installed: a service our own probes cannot name stays "
                         "unnamed (install nmap for its -sV fallback)")


def _refuse_scan_options(ctx: typer.Context, resume: str, no_store: bool) -> None:
    """--resume runs the rest of a scan as it was started: other targets or options would
    make one report out of two different scans."""
    if ctx.params.get("targets"):
        raise BadInput(f"--resume {resume} takes no targets: it scans what that scan had left")
    if no_store:
        raise BadInput("--resume and --no-store exclude each other: resuming completes a "
                       "stored scan")
    for parameter in ctx.command.params:
        if parameter.name not in SHAPING_OPTIONS:
            continue
        source = ctx.get_parameter_source(parameter.name)
        if source is not None and source.name == "COMMANDLINE":  # not a default or $VARIABLE
            options = "/".join([*parameter.opts, *parameter.secondary_opts])
            raise BadInput(f"--resume {resume} reuses the options that scan was started with: "
                           f"leave out {options}")


@app.command("checks")
def checks_command(
    list_all: Annotated[bool, typer.Option("--list", help="List every finding id.")] = True,
) -> int:
    """The finding catalogue: every id a check can report, with its usual severity."""
    from scanner.checks.services.catalogue import CATALOGUE, product_rows
    from scanner.core.catalogue import finding_catalogue

    for spec in finding_catalogue():
        typer.echo(f"{spec.id:34} {spec.severity!s:9} {spec.title}")
    products = product_rows(CATALOGUE.all())
    typer.echo(f"\nProducts of the services check ({len(products)}, one data file each in "
               "scanner/checks/services/products/):")
    for row in products:
        typer.echo(f"  {row}")
    return EXIT_OK


@app.command("version")
def version_command() -> int:
    """Print the version (also: exposure --version, exposure -V)."""
    typer.echo(f"exposure {__version__}")
    return EXIT_OK


def _run_with_progress(
    targets: list[str], options: ScanOptions, recorder: ScanRecorder,
    fleet: FleetScanner | None = None,
) -> ScanReport:
    """The scan, with progress on stderr (scanner/cli/progress.py); the recorder stores
    results as they come."""
    from scanner.api import scan
    from scanner.cli.progress import ProgressDisplay

    if fleet is not None:
        return _run_on_fleet(fleet, targets, options, cli_console.stderr_console(),
                             recorder.observer)
    with ProgressDisplay(cli_console.stderr_console()) as progress:
        return scan(targets, options, progress=progress.scan_callback if progress.active else None,
                    observer=recorder.observer, skip_addresses=recorder.skip_addresses)


def _run_on_fleet(
    fleet: FleetScanner, targets: list[str], options: ScanOptions, stderr: Console,
    observer: ScanObserver | None,
) -> ScanReport:
    """One bar: tasks finished by the workers (an address per vantage, or a port range)."""
    from scanner.cli.progress import WHOLE_SCAN, ProgressDisplay

    stage = "fleet tasks" + (f" from {', '.join(fleet.vantages)}" if fleet.vantages else "")
    with ProgressDisplay(stderr) as progress:

        def show(done: int, total: int) -> None:
            progress.event(stage, WHOLE_SCAN, done, total)

        return fleet(targets, options, progress=show if progress.active else None,
                     observer=observer)


def _exit_code(report: ScanReport, fail_on: FailOn) -> int:
    if not report.complete and not report.targets:
        return EXIT_SCAN_FAILED
    if fail_on is FailOn.NEVER:
        return EXIT_OK
    threshold = Severity(fail_on.value).rank
    failing = [f for f in report.all_findings() if f.severity.rank >= threshold]
    return EXIT_FINDINGS if failing else EXIT_OK

