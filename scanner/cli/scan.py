"""`exposure scan`, `exposure checks`, `exposure version`."""

from __future__ import annotations

import enum
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from scanner import __version__
from scanner.api import PIPELINE_CATALOGUE, ScanObserver, ScanOptions, scan
from scanner.checks.base import CheckOptions
from scanner.checks.registry import catalogue
from scanner.cli import EXIT_FINDINGS, EXIT_OK, EXIT_SCAN_FAILED, app
from scanner.cli.fleet import (
    BrokerOption,
    FleetTimeoutOption,
    VantageOption,
    fleet_scanner,
)
from scanner.cli.signals import StopOnSignals
from scanner.diff import apply_baseline, load_baseline
from scanner.diff.baseline import PORT_UNEXPECTED
from scanner.discovery import ENGINE_NAMES, DiscoveryOptions
from scanner.errors import BadInput
from scanner.findings import Severity
from scanner.identification.internetdb import DEFAULT_BASE_URL as INTERNETDB_DEFAULT_URL
from scanner.report.html import render_html
from scanner.report.json_report import render_json
from scanner.report.markdown import render_markdown
from scanner.report.model import ScanReport
from scanner.report.sanitize import safe_text
from scanner.report.sarif import render_sarif
from scanner.report.terminal import render_terminal
from scanner.store import ScanRecorder
from scanner.targets import Target, parse_port_spec
from scanner.targets.ports import compress_ports

if TYPE_CHECKING:
    from scanner.fleet.coordinator import FleetScanner


class OutputFormat(enum.StrEnum):
    TABLE = "table"
    JSON = "json"
    MARKDOWN = "markdown"
    HTML = "html"
    SARIF = "sarif"


class FailOn(enum.StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    NEVER = "never"


# The options that shape what a scan does: stored with it, reused as they were by --resume.
SCAN_SETTINGS = (
    "targets", "ports", "engine", "rate", "timeout", "retries", "allow_large_range", "active",
    "ca_file", "identify", "internetdb", "internetdb_url", "udp", "resolver_test_name",
    "ssh_auth_probe", "ssh_host_keys",
)


@app.command("scan")
def scan_command(
    ctx: typer.Context,
    targets: Annotated[
        list[str] | None, typer.Argument(help="Hostnames, IP addresses or CIDRs.")
    ] = None,
    ports: Annotated[str, typer.Option(help="top, all, or a list like 22,80,8000-8100.")] = "top",
    engine: Annotated[
        str, typer.Option(help=f"Discovery engine: {', '.join(ENGINE_NAMES)}.")
    ] = "auto",
    rate: Annotated[
        int, typer.Option(help="Packets (or connection attempts) per second, never exceeded.")
    ] = 2000,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for one probe's answer.")] = 1.0,
    retries: Annotated[int, typer.Option(help="Extra probes before a port is filtered.")] = 1,
    output_format: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="Report format.")
    ] = OutputFormat.TABLE,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the report to this file.")
    ] = None,
    fail_on: Annotated[
        FailOn, typer.Option(help="Exit 1 when a finding is at or above this severity.")
    ] = FailOn.HIGH,
    allow_large_range: Annotated[
        bool, typer.Option(help=f"Allow networks larger than a /24 (up to {65536} addresses).")
    ] = False,
    active: Annotated[
        bool,
        typer.Option(help="Confirm some findings one step further (never logs in, never writes)."),
    ] = False,
    ca_file: Annotated[
        Path | None, typer.Option(help="PEM file of extra trusted CAs (private CA, the lab).")
    ] = None,
    ssh_auth_probe: Annotated[
        bool,
        typer.Option(
            help=(
                "Also ask OpenSSH and other SSH servers (Dropbear is always asked, as root) "
                "whether they accept passwords or no authentication: one 'none' login request, "
                "as user nobody on OpenSSH. OpenSSH logs it as a refused login, which "
                "fail2ban's sshd filter counts, when nobody may not log in there (AllowUsers, "
                "AllowGroups, DenyUsers, DenyGroups, an account locked without PAM)."
            )
        ),
    ] = False,
    ssh_host_keys: Annotated[
        bool,
        typer.Option(
            help=(
                "Fetch every SSH host key's fingerprint: OpenSSH shows one per connection, "
                "so one more connection per key, each counted as a failure by fail2ban's sshd "
                "filter in ddos and aggressive mode (which counts every SSH connection)."
            )
        ),
    ] = False,
    identify: Annotated[
        bool, typer.Option(help="Identify services and run checks (off: port states only).")
    ] = True,
    internetdb: Annotated[
        bool,
        typer.Option(help="Compare with Shodan's free InternetDB record (public IPv4)."),
    ] = False,
    internetdb_url: Annotated[
        str,
        typer.Option(envvar="EXPOSURE_INTERNETDB_URL", help="InternetDB base URL (a mirror)."),
    ] = INTERNETDB_DEFAULT_URL,
    udp: Annotated[
        bool, typer.Option("--udp", help="Also probe UDP services (DNS, NTP, SSDP, SNMP, ...).")
    ] = False,
    resolver_test_name: Annotated[
        str, typer.Option(help="With --udp: the name the open-resolver test asks for.")
    ] = "example.com",
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Table format: print only the findings.")
    ] = False,
    # --- history (scanner/store) and baseline (scanner/diff) ---
    db: Annotated[
        str | None,
        typer.Option("--db", help="Save the scan in this history database (a file, or "
                                  "postgresql://USER@HOST/DB)."),
    ] = None,
    no_store: Annotated[
        bool, typer.Option("--no-store", help="Do not save this scan in the history.")
    ] = False,
    baseline: Annotated[
        Path | None,
        typer.Option(help="TOML file of the ports you mean to expose: others are port.unexpected."),
    ] = None,
    resume: Annotated[
        str | None,
        typer.Option(metavar="SCAN", help="Finish an interrupted scan (number or id from "
                     "history): only what it had not done, with the options it had."),
    ] = None,
    # --- fleet (scanner/fleet) ---
    broker: BrokerOption = None,
    vantage: VantageOption = None,
    fleet_timeout: FleetTimeoutOption = None,
) -> int:
    """Scan TARGET(s) from the outside and report what is exposed."""
    fleet = fleet_scanner(broker, db, vantage, fleet_timeout)
    if fleet is not None and resume is not None:
        raise BadInput("--resume runs on this machine: it does not combine with --broker")
    if resume is not None:
        _refuse_scan_options(ctx, resume, no_store)
        recorder = ScanRecorder.for_resume(db, resume)
        settings = recorder.resume_plan.settings if recorder.resume_plan else {}
    else:
        if not targets:
            raise BadInput("give at least one target to scan (or --resume SCAN)")
        settings = {name: ctx.params[name] for name in SCAN_SETTINGS}
        settings["ca_file"] = str(ca_file.absolute()) if ca_file is not None else None
        recorder = ScanRecorder.for_cli(db, no_store)
    try:
        options = _options_from(settings)
        expected = load_baseline(baseline) if baseline else None
    except BaseException:
        recorder.close()  # a resumed scan's history is open already
        raise
    settings["ports"] = compress_ports(options.ports)  # "top" today may not be "top" tomorrow
    # SIGTERM/SIGINT from here on: the history write in progress ends, the scan row says
    # how far it got, exit 143/130 (scanner/cli/signals.py).
    with StopOnSignals(recorder.interrupt) as guard:
        recorder.guard = guard
        with recorder.recording(settings["targets"], settings["ports"], settings):
            report = _run_with_progress(settings["targets"], options, recorder, fleet)
            report = recorder.complete_report(report)
            apply_baseline(report, expected)
            recorder.finish(report)
        _write_report(report, output_format, output, quiet=quiet)
        return recorder.exit_code(_exit_code(report, fail_on))


def _options_from(settings: dict[str, Any]) -> ScanOptions:
    """The library's options from the scan settings (the command line, or a stored scan's)."""
    _check_numbers(settings["rate"], settings["timeout"], settings["retries"])
    ca_file = Path(settings["ca_file"]) if settings.get("ca_file") else None
    if ca_file is not None and not ca_file.is_file():
        raise BadInput(f"--ca-file {ca_file}: no such file")
    return ScanOptions(
        ports=parse_port_spec(settings["ports"]),
        engine=settings["engine"],
        discovery=DiscoveryOptions(
            rate=settings["rate"], timeout=settings["timeout"], retries=settings["retries"]
        ),
        allow_large_range=settings["allow_large_range"],
        identify=settings["identify"],
        checks=CheckOptions(
            active=settings["active"],
            ca_file=ca_file,
            ssh_auth_probe=bool(settings.get("ssh_auth_probe")),
            ssh_host_keys=bool(settings.get("ssh_host_keys")),
        ),
        internetdb_url=settings["internetdb_url"] if settings["internetdb"] else None,
        udp=settings["udp"],
        udp_dns_name=settings["resolver_test_name"],
    )


def _refuse_scan_options(ctx: typer.Context, resume: str, no_store: bool) -> None:
    """--resume runs the rest of a scan as it was started: other targets or options would
    make one report out of two different scans."""
    if ctx.params.get("targets"):
        raise BadInput(f"--resume {resume} takes no targets: it scans what that scan had left")
    if no_store:
        raise BadInput("--resume and --no-store exclude each other: resuming completes a "
                       "stored scan")
    for parameter in ctx.command.params:
        if parameter.name not in SCAN_SETTINGS:
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

    specs = [*catalogue(), *PIPELINE_CATALOGUE, PORT_UNEXPECTED]
    for spec in sorted(specs, key=lambda spec: spec.id):
        typer.echo(f"{spec.id:34} {spec.severity!s:9} {spec.title}")
    products = product_rows(CATALOGUE.all())
    typer.echo(f"\nProducts of the services check ({len(products)}, one data file each in "
               "scanner/checks/services/products/):")
    for row in products:
        typer.echo(f"  {row}")
    return EXIT_OK


@app.command("version")
def version_command() -> int:
    """Print the version."""
    typer.echo(f"exposure {__version__}")
    return EXIT_OK


def _check_numbers(rate: int, timeout: float, retries: int) -> None:
    if rate < 1:
        raise BadInput(f"--rate must be at least 1 (got {rate})")
    if not 0.05 <= timeout <= 60:
        raise BadInput(f"--timeout must be between 0.05 and 60 seconds (got {timeout})")
    if not 0 <= retries <= 10:
        raise BadInput(f"--retries must be between 0 and 10 (got {retries})")


def _run_with_progress(
    targets: list[str], options: ScanOptions, recorder: ScanRecorder,
    fleet: FleetScanner | None = None,
) -> ScanReport:
    """The scan, with a progress bar on a terminal; the recorder stores results as they come."""
    observer, skip = recorder.observer, recorder.skip_addresses
    stderr = Console(stderr=True)
    if fleet is not None:
        return _run_on_fleet(fleet, targets, options, stderr, observer)
    if not stderr.is_terminal:
        return scan(targets, options, observer=observer, skip_addresses=skip)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=stderr, transient=True) as bar:
        tasks: dict[str, int] = {}

        def show(target: Target | None, phase: str, done: int, total: int) -> None:
            where = "all addresses" if target is None else str(target.address)
            if phase == "open":  # a count, not a stage of its own
                phase, done, total = "open ports found", done, done
            key = f"{where} {phase}"
            if key not in tasks:
                tasks[key] = bar.add_task(f"{where}: {phase}", total=total)
            bar.update(tasks[key], completed=done, total=total)

        return scan(targets, options, progress=show, observer=observer, skip_addresses=skip)


def _run_on_fleet(
    fleet: FleetScanner, targets: list[str], options: ScanOptions, stderr: Console,
    observer: ScanObserver | None,
) -> ScanReport:
    """One bar: tasks finished by the workers (an address per vantage, or a port range)."""
    if not stderr.is_terminal:
        return fleet(targets, options, observer=observer)
    columns = (TextColumn("{task.description}"), BarColumn(),
               TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn())
    with Progress(*columns, console=stderr, transient=True) as bar:
        where = f" from {', '.join(fleet.vantages)}" if fleet.vantages else ""
        task = bar.add_task(f"fleet tasks{where}", total=None)

        def show(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return fleet(targets, options, progress=show, observer=observer)


def _write_report(
    report: ScanReport, output_format: OutputFormat, output: Path | None, *, quiet: bool = False
) -> None:
    """The report on stdout, or in `output`. Only the table knows --quiet; the other formats
    are for programs and files, and always complete."""
    if output_format is OutputFormat.TABLE:
        _write_table(report, output, quiet)
        return
    text = _render_file_format(report, output_format)
    if output:
        output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


PIPE_WIDTH = 120


def _render_file_format(report: ScanReport, output_format: OutputFormat) -> str:
    if output_format is OutputFormat.JSON:
        return render_json(report)
    if output_format is OutputFormat.MARKDOWN:
        return render_markdown(report)
    if output_format is OutputFormat.HTML:
        return render_html(report)
    return render_sarif(report, [*catalogue(), *PIPELINE_CATALOGUE])


def _write_table(report: ScanReport, output: Path | None, quiet: bool) -> None:
    if output:
        with output.open("w", encoding="utf-8") as handle:
            console = Console(file=handle, no_color=True, width=PIPE_WIDTH, force_terminal=False)
            render_terminal(report, console, quiet=quiet)
        return
    # A pipe or a log file gets 120 columns, as -o does; a terminal its own width.
    width = None if sys.stdout.isatty() else PIPE_WIDTH
    render_terminal(report, Console(highlight=False, width=width), quiet=quiet)
    if quiet:  # the errors are not findings, but cron must still hear of them
        for error in report.errors:
            sys.stderr.write(f"exposure: scan error: {safe_text(error, 500)}\n")


def _exit_code(report: ScanReport, fail_on: FailOn) -> int:
    if not report.complete and not report.targets:
        return EXIT_SCAN_FAILED
    if fail_on is FailOn.NEVER:
        return EXIT_OK
    threshold = Severity(fail_on.value).rank
    failing = [f for f in report.all_findings() if f.severity.rank >= threshold]
    return EXIT_FINDINGS if failing else EXIT_OK


