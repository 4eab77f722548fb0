"""The library API: what the CLI calls, and what a user can call from Python.

    from scanner.api import ScanOptions, scan
    report = scan(["home.example"], ScanOptions(ports=(22, 443, 8123)))
    print(report.to_dict())
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from scanner.checks.base import CheckOptions
from scanner.checks.runner import PortChecks, merge_details, run_checks
from scanner.discovery import DiscoveryOptions, HostDiscovery, PortState, choose_engine, discover
from scanner.discovery.udp import UDP_CATALOGUE, UdpOptions, probe_udp, udp_findings
from scanner.findings import Finding, FindingSpec, Severity
from scanner.identification import IdentifyOptions, ServiceIdentity, identify_services
from scanner.report.model import PortReport, ScanReport, TargetReport
from scanner.targets import TOP_PORTS, Target, parse_targets

# (target, phase, steps done, steps total) -> None; phase: "discovery", "identification", "checks"
ScanProgress = Callable[[Target, str, int, int], None]


@dataclass(frozen=True)
class ScanOptions:
    ports: tuple[int, ...] = TOP_PORTS
    engine: str = "auto"
    discovery: DiscoveryOptions = field(default_factory=DiscoveryOptions)
    allow_large_range: bool = False
    identify: bool = True  # what runs on each open port (off: discovery only)
    identification: IdentifyOptions = field(default_factory=IdentifyOptions)
    run_checks: bool = True  # needs identify
    checks: CheckOptions = field(default_factory=CheckOptions)
    # --internetdb: compare with what Shodan already has on record (None: off)
    internetdb_url: str | None = None
    udp: bool = False  # --udp: probe the UDP services self-hosters expose (DNS, NTP, SSDP...)
    udp_dns_name: str = "example.com"  # the name the open-resolver test asks for
    family: int | None = None  # 4 or 6 (-4 / -6): only the addresses of that IP version


def scan(
    inputs: Sequence[str],
    options: ScanOptions | None = None,
    progress: ScanProgress | None = None,
) -> ScanReport:
    """Resolve the inputs, then run the pipeline on every address.

    Raises BadInput for input that cannot be scanned and ScanFailed when the scan cannot
    run at all (e.g. the chosen engine is unavailable). A failure on one address is
    recorded in the report's errors and the scan goes on with the next.
    """
    options = options or ScanOptions()
    targets = parse_targets(
        list(inputs), allow_large_range=options.allow_large_range, family=options.family
    )
    engine = choose_engine(options.engine)
    started_wall = _now()
    started = time.monotonic()
    report = ScanReport(
        id=uuid.uuid4().hex[:12],
        started_at=started_wall,
        finished_at=started_wall,
        duration_s=0.0,
        engine=engine.name,
        ports_requested=len(options.ports),
    )
    for target in targets:
        def report_progress(done: int, total: int, target: Target = target) -> None:
            if progress:
                progress(target, "discovery", done, total)

        try:
            found = discover(
                target.address, options.ports, engine, options.discovery, report_progress
            )
        except OSError as error:
            report.complete = False
            report.errors.append(f"{target.address}: discovery failed: {error}")
            continue
        target_report = _target_report(target, found)
        report.targets.append(target_report)
        open_ports = [] if found.answers_all_ports else found.ports_in(PortState.OPEN)
        if options.identify and open_ports:
            _identify_and_check(target, target_report, open_ports, options, progress, report)
        if options.udp:
            _probe_udp(target, target_report, options, progress)
        if options.internetdb_url:
            _compare_with_internetdb(target, target_report, open_ports, options.internetdb_url)
    report.finished_at = _now()
    report.duration_s = time.monotonic() - started
    for target_report in report.targets:
        target_report.findings.sort(key=lambda finding: (-finding.severity.rank, finding.port or 0))
    return report


def _identify_and_check(
    target: Target,
    target_report: TargetReport,
    open_ports: list[int],
    options: ScanOptions,
    progress: ScanProgress | None,
    report: ScanReport,
) -> None:
    if progress:
        progress(target, "identification", 0, len(open_ports))
    identify_options = dataclasses.replace(options.identification, sni=target.hostname)
    identities = identify_services(target.address, open_ports, identify_options)
    if progress:
        progress(target, "identification", len(open_ports), len(open_ports))
    by_port = {port.port: port for port in target_report.ports}
    for port, identity in identities.items():
        _apply_identity(by_port[port], identity)
    if not options.run_checks:
        return
    if progress:
        progress(target, "checks", 0, len(open_ports))
    for port, outcome in sorted(run_checks(target, identities, options.checks).items()):
        _apply_checks(by_port[port], outcome, target_report, report)
    if progress:
        progress(target, "checks", len(open_ports), len(open_ports))


def _probe_udp(
    target: Target, target_report: TargetReport, options: ScanOptions,
    progress: ScanProgress | None,
) -> None:
    if progress:
        progress(target, "udp", 0, 1)
    udp_options = UdpOptions(
        timeout=options.discovery.timeout,
        retries=options.discovery.retries,
        rate=options.discovery.rate,
        dns_name=options.udp_dns_name,
    )
    services = probe_udp(target.address, udp_options)
    for service in services:
        entry = service.to_port_dict()
        target_report.ports.append(PortReport(**entry))
    target_report.findings.extend(udp_findings(services))
    if progress:
        progress(target, "udp", 1, 1)


def _compare_with_internetdb(
    target: Target, target_report: TargetReport, open_ports: list[int], base_url: str
) -> None:
    """Side by side with Shodan's record. A failure is a note, never a failed scan."""
    from scanner.identification import internetdb  # requests: only paid for with --internetdb

    own_server = base_url.rstrip("/") != internetdb.DEFAULT_BASE_URL
    # Shodan only has public IPv4; a server the user points us at may know other addresses.
    if not (internetdb.eligible(target.address) or (own_server and target.address.version == 4)):
        target_report.internetdb = {"skipped": "InternetDB covers public IPv4 addresses only"}
        return
    result = internetdb.fetch_internetdb(target.address, base_url)
    if result.record is None:
        target_report.internetdb = {"warning": result.warning}
        target_report.notes.append(result.warning or "InternetDB lookup failed")
        return
    comparison = internetdb.compare_with_scan(result.record, open_ports)
    target_report.internetdb = comparison.details


def _apply_identity(port: PortReport, identity: ServiceIdentity) -> None:
    port.service = identity.service
    port.product = identity.product
    port.version = identity.version
    port.tls = identity.tls
    port.banner = identity.banner
    port.details.update(identity.details)
    if identity.source != "probe":
        port.details["identified_by"] = identity.source


def _apply_checks(
    port: PortReport, outcome: PortChecks, target_report: TargetReport, report: ScanReport
) -> None:
    merge_details(port.details, outcome.details)
    if outcome.product:
        port.product, port.version = outcome.product, outcome.version
    target_report.findings.extend(outcome.findings)
    target_report.notes.extend(f"port {port.port}: {note}" for note in outcome.notes)
    for error in outcome.errors:
        report.errors.append(f"{target_report.address}: {error}")


def _target_report(target: Target, found: HostDiscovery) -> TargetReport:
    result = TargetReport(
        input=target.input,
        address=str(target.address),
        hostname=target.hostname,
        answers_all_ports=found.answers_all_ports,
        notes=list(found.notes),
    )
    for port, state in sorted(found.states.items()):
        if state is PortState.FILTERED:
            result.filtered_count += 1
        else:
            result.ports.append(PortReport(port=port, protocol="tcp", state=str(state)))
    if found.answers_all_ports:
        result.findings.append(_answers_all_ports_finding(found))
    return result


ANSWERS_ALL_PORTS = FindingSpec(
    id="discovery.answers_all_ports",
    severity=Severity.INFO,
    title="The host accepts connections on every port",
)
# Findings the pipeline itself produces (not a check): part of `exposure checks --list`.
PIPELINE_CATALOGUE = (ANSWERS_ALL_PORTS, *UDP_CATALOGUE)


def _answers_all_ports_finding(found: HostDiscovery) -> Finding:
    return ANSWERS_ALL_PORTS.finding(
        port=None,
        evidence=found.notes[0] if found.notes else "random canary ports answered as open",
        remediation=(
            "Something in front of this address (a tarpit, honeypot, or a firewall/CDN "
            "that completes handshakes itself) answers on all ports, so open ports cannot be "
            "told apart from the outside. Scan the device behind it from your LAN "
            "(exposure preflight) or check the router's port-forwarding table."
        ),
    )


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
