"""The library API: what the CLI calls, and what a user can call from Python.

    from scanner.api import ScanOptions, scan
    report = scan(["home.example"], ScanOptions(ports=(22, 443, 8123)))
    print(report.to_dict())
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from scanner.discovery import DiscoveryOptions, HostDiscovery, PortState, choose_engine, discover
from scanner.findings import Finding, Severity
from scanner.report.model import PortReport, ScanReport, TargetReport
from scanner.targets import TOP_PORTS, Target, parse_targets

# (target being scanned, ports done, ports total) -> None
ScanProgress = Callable[[Target, int, int], None]


@dataclass(frozen=True)
class ScanOptions:
    ports: tuple[int, ...] = TOP_PORTS
    engine: str = "auto"
    discovery: DiscoveryOptions = field(default_factory=DiscoveryOptions)
    allow_large_range: bool = False


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
    targets = parse_targets(list(inputs), allow_large_range=options.allow_large_range)
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
                progress(target, done, total)

        try:
            found = discover(
                target.address, options.ports, engine, options.discovery, report_progress
            )
        except OSError as error:
            report.complete = False
            report.errors.append(f"{target.address}: discovery failed: {error}")
            continue
        report.targets.append(_target_report(target, found))
    report.finished_at = _now()
    report.duration_s = time.monotonic() - started
    return report


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


def _answers_all_ports_finding(found: HostDiscovery) -> Finding:
    return Finding(
        id="discovery.answers_all_ports",
        severity=Severity.INFO,
        title="The host accepts connections on every port",
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
