"""The options that shape a scan, declared once: `scan`, `watch` and `preflight` use the same.

Each option is an `Annotated` type carrying its flags and help text, so an option means the
same and says the same in every command that takes it. `scan_settings` turns a command's
parsed parameters into the scan's settings (checked without the network, stored with a scan
and reused by --resume); `scan_options` turns settings into the library's ScanOptions. Both
are the only ones: `scan` and `watch` build their scans through them.

This module is imported at start-up by every command: it imports no stage module at the top
(the library is imported when a scan is built), only what the option declarations need.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from scanner.cli.outputs import OutputFormat
from scanner.errors import BadInput

if TYPE_CHECKING:
    from scanner.api import ScanOptions

# Kept here rather than imported: importing scanner.discovery (or scanner.identification for
# the InternetDB default) costs every command's start-up; tests/unit/test_cli_options.py
# checks both against the stage modules.
ENGINE_NAMES = ("auto", "syn", "connect", "nmap")
INTERNETDB_DEFAULT_URL = "https://internetdb.shodan.io"
MAX_LARGE_RANGE = 65536

# The settings that shape what a scan does: stored with it, reused as they were by --resume.
# targets and ports are stored as resolved from the command line: -iL and host:port folded
# into targets and ports, --exclude-ports applied, -4/-6 as family.
SCAN_SETTINGS = (
    "targets", "ports", "engine", "rate", "timeout", "retries", "allow_large_range", "active",
    "ca_file", "identify", "internetdb", "internetdb_url", "udp", "resolver_test_name",
    "ssh_auth_probe", "ssh_host_keys",
)
# The command-line parameters behind them (a resumed scan must not be given any of them).
SHAPING_OPTIONS = (*SCAN_SETTINGS, "exclude", "input_list", "ipv4_only", "ipv6_only")

# --- what to scan ----------------------------------------------------------------------------

Targets = Annotated[
    list[str] | None,
    typer.Argument(help="Hostnames, IP addresses, CIDRs, host:port; - reads them from stdin."),
]
Ports = Annotated[
    str, typer.Option("--ports", "-p", metavar="PORTS",
                      help="top, all, or a list like 22,80,8000-8100.")
]
ExcludePorts = Annotated[
    str | None, typer.Option("--exclude-ports", metavar="PORTS",
                             help="Ports not to scan (same syntax).")
]
InputList = Annotated[
    str | None,
    typer.Option("--input-list", "-iL", metavar="FILE",
                 help="Targets from FILE (- for stdin): one per line, # comments."),
]
Ipv4Only = Annotated[bool, typer.Option("-4", help="Only IPv4 addresses.")]
Ipv6Only = Annotated[bool, typer.Option("-6", help="Only IPv6 addresses.")]
AllowLargeRange = Annotated[
    bool, typer.Option(help=f"Allow networks larger than a /24 (up to {MAX_LARGE_RANGE} "
                            "addresses).")
]

# --- how fast and how long -------------------------------------------------------------------

Engine = Annotated[
    str, typer.Option(metavar="ENGINE", help=f"Discovery engine: {', '.join(ENGINE_NAMES)}.")
]
Rate = Annotated[
    int, typer.Option(metavar="PPS",
                      help="Packets (or connection attempts) per second, never exceeded.")
]
Timeout = Annotated[
    float, typer.Option(metavar="S", help="Seconds to wait for one probe's answer.")
]
Retries = Annotated[int, typer.Option(metavar="N", help="Extra probes before a port is filtered.")]

# --- what runs on each open port -------------------------------------------------------------

Identify = Annotated[
    bool, typer.Option(help="Identify services and run checks (off: port states only).")
]
Active = Annotated[
    bool,
    typer.Option(help="Confirm some findings one step further (never logs in, never writes)."),
]
CaFile = Annotated[
    Path | None, typer.Option(metavar="PEM",
                              help="PEM file of extra trusted CAs (private CA, the lab).")
]
SshAuthProbe = Annotated[
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
]
SshHostKeys = Annotated[
    bool,
    typer.Option(
        help=(
            "Fetch every SSH host key's fingerprint: OpenSSH shows one per connection, "
            "so one more connection per key, each counted as a failure by fail2ban's sshd "
            "filter in ddos and aggressive mode (which counts every SSH connection)."
        )
    ),
]
InternetDb = Annotated[
    bool, typer.Option(help="Compare with Shodan's free InternetDB record (public IPv4).")
]
InternetDbUrl = Annotated[
    str, typer.Option(envvar="EXPOSURE_INTERNETDB_URL", metavar="URL",
                      help="InternetDB base URL (a mirror).")
]
Udp = Annotated[
    bool, typer.Option("--udp", help="Also probe UDP services (DNS, NTP, SSDP, SNMP, ...).")
]
ResolverTestName = Annotated[
    str, typer.Option(metavar="NAME", help="With --udp: the name the open-resolver test asks for.")
]

# --- history and baseline --------------------------------------------------------------------

Db = Annotated[
    str | None,
    typer.Option("--db", metavar="PATH|URL",
                 help="History database: a file, or postgresql://USER@HOST/DB (default: "
                      "$EXPOSURE_DB or the per-user data directory)."),
]
NoStore = Annotated[
    bool, typer.Option("--no-store", help="Do not save the scan in the history.")
]
BaselineFile = Annotated[
    Path | None,
    typer.Option("--baseline", metavar="FILE",
                 help="TOML file of the ports you mean to expose: others are port.unexpected."),
]

# --- reports ---------------------------------------------------------------------------------

Format = Annotated[
    OutputFormat | None,
    typer.Option("--format", "-f", help="Format on stdout, and of -o files whose name has no "
                                        "known suffix (default: table)."),
]
Output = Annotated[
    list[str] | None,
    typer.Option("--output", "-o", metavar="FILE",
                 help="Write the report to FILE, format from its suffix (.txt .json .md .html "
                      ".sarif); repeatable; - is stdout."),
]
OutputAll = Annotated[
    str | None,
    typer.Option("--output-all", "-oA", metavar="BASE",
                 help="Write BASE.txt, .json, .md, .html and .sarif."),
]
Shodan = Annotated[
    bool, typer.Option("--shodan", help="Terminal: also what internet crawlers record.")
]


# --- from the command line to a scan ---------------------------------------------------------


def check_numbers(rate: int, timeout: float, retries: int) -> None:
    if rate < 1:
        raise BadInput(f"--rate must be at least 1 (got {rate})")
    check_timeout(timeout)
    if not 0 <= retries <= 10:
        raise BadInput(f"--retries must be between 0 and 10 (got {retries})")


def check_timeout(timeout: float) -> None:
    if not 0.05 <= timeout <= 60:
        raise BadInput(f"--timeout must be between 0.05 and 60 seconds (got {timeout})")


def scan_settings(params: Mapping[str, Any]) -> dict[str, Any]:
    """The scan's settings from a command's parameters, every part checked without the
    network: targets (arguments, -iL, host:port), ports (-p, host:port, --exclude-ports),
    -4/-6, the numbers and the CA file."""
    from scanner.cli.validate import check_ca_file
    from scanner.targets import check_target_syntax, collect_targets, parse_port_spec
    from scanner.targets.ports import compress_ports, exclude_ports

    check_numbers(params["rate"], params["timeout"], params["retries"])
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


def scan_options(settings: Mapping[str, Any]) -> ScanOptions:
    """The library's options from scan settings (a command line's, or a stored scan's)."""
    from scanner.api import ScanOptions
    from scanner.checks.base import CheckOptions
    from scanner.cli.validate import check_ca_file
    from scanner.discovery import DiscoveryOptions
    from scanner.targets import parse_port_spec

    check_numbers(settings["rate"], settings["timeout"], settings["retries"])
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
