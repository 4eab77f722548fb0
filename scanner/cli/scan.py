"""`exposure scan`, `exposure checks`, `exposure version`.

Everything the user typed is checked before the first packet: numbers, ports, target
syntax, every output path (by creating its file), the CA file (PEM with a certificate) and
an explicit history database. Then names are resolved and the scan runs.
"""

from __future__ import annotations

import dataclasses
import enum
import io
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from scanner import __version__
from scanner.api import ScanObserver, ScanOptions, scan
from scanner.checks.base import CheckOptions
from scanner.cli import EXIT_FINDINGS, EXIT_OK, EXIT_SCAN_FAILED, Debug, NoColor, Verbose, app
from scanner.cli import console as cli_console
from scanner.cli.fleet import (
    BrokerOption,
    FleetTimeoutOption,
    VantageOption,
    fleet_scanner,
)
from scanner.cli.outputs import OutputFormat, OutputPlan, plan_outputs
from scanner.cli.progress import WHOLE_SCAN, ProgressDisplay
from scanner.cli.signals import StopOnSignals
from scanner.cli.validate import check_ca_file, check_db_path
from scanner.core.catalogue import finding_catalogue
from scanner.core.diff import ReportDiff
from scanner.core.findings import Severity
from scanner.core.report import ScanReport
from scanner.core.summary import ReportSummary, summarize
from scanner.core.text import safe_text
from scanner.diff import apply_baseline, load_baseline
from scanner.discovery import ENGINE_NAMES, DiscoveryOptions
from scanner.errors import BadInput, ScanFailed
from scanner.identification.internetdb import DEFAULT_BASE_URL as INTERNETDB_DEFAULT_URL
from scanner.report.html import render_html
from scanner.report.json_report import render_json
from scanner.report.markdown import render_markdown
from scanner.report.sarif import render_sarif
from scanner.report.terminal import PIPE_WIDTH, render_terminal
from scanner.store import ScanRecorder
from scanner.store.paths import DB_ENV
from scanner.targets import check_target_syntax, collect_targets, parse_port_spec
from scanner.targets.ports import compress_ports, exclude_ports

__all__ = ["FailOn", "OutputFormat", "ShownSeverity", "render_outputs"]

if TYPE_CHECKING:
    from scanner.fleet.coordinator import FleetScanner




class FailOn(enum.StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    NEVER = "never"


# The options that shape what a scan does: stored with it, reused as they were by --resume.
# targets and ports are stored as resolved from the command line: -iL and host:port folded
# into targets and ports, --exclude-ports applied, -4/-6 as family.
SCAN_SETTINGS = (
    "targets", "ports", "engine", "rate", "timeout", "retries", "allow_large_range", "active",
    "ca_file", "identify", "internetdb", "internetdb_url", "udp", "resolver_test_name",
    "ssh_auth_probe", "ssh_host_keys",
)
# Options a resumed scan must not be given: they would change what it scans.
SHAPING_OPTIONS = (*SCAN_SETTINGS, "exclude", "input_list", "ipv4_only", "ipv6_only")


class ShownSeverity(enum.StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"


@app.command("scan")
def scan_command(
    ctx: typer.Context,
    targets: Annotated[
        list[str] | None,
        typer.Argument(help="Hostnames, IP addresses, CIDRs, host:port; - reads them from "
                            "stdin."),
    ] = None,
    ports: Annotated[
        str, typer.Option("--ports", "-p", metavar="PORTS",
                          help="top, all, or a list like 22,80,8000-8100.")
    ] = "top",
    exclude: Annotated[
        str | None, typer.Option("--exclude-ports", metavar="PORTS",
                                 help="Ports not to scan (same syntax).")
    ] = None,
    input_list: Annotated[
        str | None,
        typer.Option("--input-list", "-iL", metavar="FILE",
                     help="Targets from FILE (- for stdin): one per line, # comments."),
    ] = None,
    ipv4_only: Annotated[bool, typer.Option("-4", help="Only IPv4 addresses.")] = False,
    ipv6_only: Annotated[bool, typer.Option("-6", help="Only IPv6 addresses.")] = False,
    engine: Annotated[
        str, typer.Option(metavar="ENGINE", help=f"Discovery engine: {', '.join(ENGINE_NAMES)}.")
    ] = "auto",
    rate: Annotated[
        int, typer.Option(metavar="PPS",
                          help="Packets (or connection attempts) per second, never exceeded.")
    ] = 2000,
    timeout: Annotated[
        float, typer.Option(metavar="S", help="Seconds to wait for one probe's answer.")
    ] = 1.0,
    retries: Annotated[
        int, typer.Option(metavar="N", help="Extra probes before a port is filtered.")
    ] = 1,
    output_format: Annotated[
        OutputFormat | None,
        typer.Option("--format", "-f", help="Format on stdout, and of -o files whose name "
                                            "has no known suffix (default: table)."),
    ] = None,
    output: Annotated[
        list[str] | None,
        typer.Option("--output", "-o", metavar="FILE",
                     help="Write the report to FILE, format from its suffix (.txt .json .md "
                          ".html .sarif); repeatable; - is stdout."),
    ] = None,
    output_all: Annotated[
        str | None,
        typer.Option("--output-all", "-oA", metavar="BASE",
                     help="Write BASE.txt, .json, .md, .html and .sarif."),
    ] = None,
    fail_on: Annotated[
        FailOn, typer.Option(help="Exit 1 when a finding is at or above this severity.")
    ] = FailOn.HIGH,
    severity: Annotated[
        ShownSeverity | None,
        typer.Option(help="Show only findings at or above this severity (the history keeps "
                          "all; --fail-on still sees all)."),
    ] = None,
    shodan: Annotated[
        bool, typer.Option("--shodan", help="Terminal: also what internet crawlers record.")
    ] = False,
    allow_large_range: Annotated[
        bool, typer.Option(help=f"Allow networks larger than a /24 (up to {65536} addresses).")
    ] = False,
    active: Annotated[
        bool,
        typer.Option(help="Confirm some findings one step further (never logs in, never writes)."),
    ] = False,
    ca_file: Annotated[
        Path | None, typer.Option(metavar="PEM",
                                  help="PEM file of extra trusted CAs (private CA, the lab).")
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
        typer.Option(envvar="EXPOSURE_INTERNETDB_URL", metavar="URL",
                     help="InternetDB base URL (a mirror)."),
    ] = INTERNETDB_DEFAULT_URL,
    udp: Annotated[
        bool, typer.Option("--udp", help="Also probe UDP services (DNS, NTP, SSDP, SNMP, ...).")
    ] = False,
    resolver_test_name: Annotated[
        str, typer.Option(metavar="NAME",
                          help="With --udp: the name the open-resolver test asks for.")
    ] = "example.com",
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Table format: print only the findings.")
    ] = False,
    # --- history (scanner/store) and baseline (scanner/diff) ---
    db: Annotated[
        str | None,
        typer.Option("--db", metavar="PATH|URL",
                     help="Save the scan in this history database (a file, or "
                          "postgresql://USER@HOST/DB)."),
    ] = None,
    no_store: Annotated[
        bool, typer.Option("--no-store", help="Do not save this scan in the history.")
    ] = False,
    baseline: Annotated[
        Path | None,
        typer.Option(metavar="FILE",
                     help="TOML file of the ports you mean to expose: others are port.unexpected."),
    ] = None,
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
    fleet = fleet_scanner(broker, db, vantage, fleet_timeout)
    if fleet is not None and resume is not None:
        raise BadInput("--resume runs on this machine: it does not combine with --broker")
    if resume is not None:
        _refuse_scan_options(ctx, resume, no_store)
        settings = None
    else:
        settings = _settings_from(ctx)
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
        options = _options_from(settings)
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


def _settings_from(ctx: typer.Context) -> dict[str, Any]:
    """The scan's settings from the command line, every part checked without the network:
    targets (arguments, -iL, host:port), ports (-p, host:port, --exclude-ports), -4/-6."""
    params = ctx.params
    _check_numbers(params["rate"], params["timeout"], params["retries"])
    if params["ipv4_only"] and params["ipv6_only"]:
        raise BadInput("-4 and -6 together leave no address to scan; give one of them")
    inputs = collect_targets(params["targets"] or [], params["input_list"])
    for host in inputs.hosts:
        check_target_syntax(host)
    port_list = tuple(sorted({*parse_port_spec(params["ports"]), *inputs.extra_ports}))
    if params["exclude"]:
        port_list = exclude_ports(port_list, params["exclude"])
    settings = {name: params[name] for name in SCAN_SETTINGS}
    settings["targets"] = list(inputs.hosts)
    settings["ports"] = compress_ports(port_list)
    settings["family"] = 4 if params["ipv4_only"] else 6 if params["ipv6_only"] else None
    ca_file = params["ca_file"]
    if ca_file is not None:
        check_ca_file(ca_file)
    settings["ca_file"] = str(ca_file.absolute()) if ca_file is not None else None
    return settings


def _options_from(settings: dict[str, Any]) -> ScanOptions:
    """The library's options from the scan settings (the command line, or a stored scan's)."""
    _check_numbers(settings["rate"], settings["timeout"], settings["retries"])
    ca_file = Path(settings["ca_file"]) if settings.get("ca_file") else None
    if ca_file is not None:
        check_ca_file(ca_file)
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
        family=settings.get("family"),
    )


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
        source = ctx.get_parameter_source(parameter.name)  # type: ignore[arg-type]
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
    """The scan, with progress on stderr (scanner/cli/progress.py); the recorder stores
    results as they come."""
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
    stage = "fleet tasks" + (f" from {', '.join(fleet.vantages)}" if fleet.vantages else "")
    with ProgressDisplay(stderr) as progress:

        def show(done: int, total: int) -> None:
            progress.event(stage, WHOLE_SCAN, done, total)

        return fleet(targets, options, progress=show if progress.active else None,
                     observer=observer)


# --- the reports --------------------------------------------------------------------------


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
    diff_for_files: ReportDiff | None = None,
) -> None:
    """Every destination of the plan, from one summary (computed once for all of them)."""
    visible, hidden = shown_report(report, shown)
    summary = summarize(visible, hidden_below=shown if hidden else None, hidden=hidden)
    failures: list[ScanFailed] = []
    for destination in plan.destinations:
        text = None
        if destination.format is not OutputFormat.TABLE:
            text = render_file_format(visible, destination.format, summary, diff_for_files)
        if destination.is_stdout:
            if text is None:
                _print_table(visible, summary, quiet=quiet, shodan=shodan)
            else:
                sys.stdout.write(text)
            continue
        if text is None:
            text = table_text(visible, summary, quiet=quiet, shodan=shodan)
        try:
            destination.write(text)
        except ScanFailed as failure:  # the other reports are still written
            failures.append(failure)
    if quiet and plan.to_stdout is not None:  # errors are not findings; cron must hear of them
        for error in report.errors:
            sys.stderr.write(f"exposure: scan error: {safe_text(error.line(), 500)}\n")
    if failures:
        raise failures[0]


def render_file_format(report: ScanReport, output_format: OutputFormat,
                       summary: ReportSummary | None = None,
                       diff: ReportDiff | None = None) -> str:
    """JSON, Markdown, HTML or SARIF (Markdown and HTML show `diff` when given)."""
    if output_format is OutputFormat.JSON:
        return render_json(report, summary=summary)
    if output_format is OutputFormat.MARKDOWN:
        return render_markdown(report, diff, summary)
    if output_format is OutputFormat.HTML:
        return render_html(report, diff, summary)
    return render_sarif(report, finding_catalogue(), summary)


def table_text(report: ScanReport, summary: ReportSummary | None = None, *,
               quiet: bool = False, shodan: bool = False) -> str:
    """The terminal report as plain text (for a file): no colour, 120 columns."""
    buffer = io.StringIO()
    console = Console(file=buffer, no_color=True, width=PIPE_WIDTH, force_terminal=False)
    render_terminal(report, console, quiet=quiet, shodan=shodan, summary=summary)
    return buffer.getvalue()


def _print_table(report: ScanReport, summary: ReportSummary, *, quiet: bool,
                 shodan: bool) -> None:
    # A pipe or a log file gets 120 columns, as -o does; a terminal its own width.
    width = None if sys.stdout.isatty() else PIPE_WIDTH
    render_terminal(report, cli_console.stdout_console(width), quiet=quiet, shodan=shodan,
                    summary=summary)


def _exit_code(report: ScanReport, fail_on: FailOn) -> int:
    if not report.complete and not report.targets:
        return EXIT_SCAN_FAILED
    if fail_on is FailOn.NEVER:
        return EXIT_OK
    threshold = Severity(fail_on.value).rank
    failing = [f for f in report.all_findings() if f.severity.rank >= threshold]
    return EXIT_FINDINGS if failing else EXIT_OK

