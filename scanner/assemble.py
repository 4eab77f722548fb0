"""The merge step: one address's TargetReport from what each stage returned.

The stages do the work and say what they found (discovery its port states, notes and the
"answers on every port" finding; identification a ServiceIdentity per port; the checks a
PortChecks; UDP a UdpScan; InternetDB a lookup). This only puts those results side by side in
the report contract, so the pipeline (scanner/pipeline.py) is left with sequencing.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from scanner.checks.runner import PortChecks, merge_details
from scanner.core.report import PortReport, ScanError, TargetReport
from scanner.discovery import HostDiscovery, PortState
from scanner.discovery.udp import UdpScan
from scanner.identification import ServiceIdentity
from scanner.targets import Target

if TYPE_CHECKING:  # requests: only imported with --internetdb
    from scanner.identification.internetdb import InternetDbLookup


def target_report(target: Target, found: HostDiscovery) -> TargetReport:
    """The address as discovery left it: port states (filtered ones counted), its notes and
    findings."""
    result = TargetReport(
        input=target.input,
        address=str(target.address),
        hostname=target.hostname,
        answers_all_ports=found.answers_all_ports,
        notes=list(found.notes),
        findings=list(found.findings),
    )
    for port, state in sorted(found.states.items()):
        if state is PortState.FILTERED:
            result.filtered_count += 1
        else:
            result.ports.append(PortReport(port=port, protocol="tcp", state=str(state)))
    return result


def add_port(
    target: TargetReport, port: int, identity: ServiceIdentity | None,
    checks: PortChecks | None,
) -> list[ScanError]:
    """What identification and the checks learnt of one open TCP port; returns the checks'
    errors, now with the address (they belong to the scan's errors)."""
    entry = next(entry for entry in target.ports if entry.port == port and
                 entry.protocol == "tcp")
    if identity is not None:
        _add_identity(entry, identity)
    if checks is None:
        return []
    _add_checks(entry, checks, target)
    return [dataclasses.replace(error, address=target.address) for error in checks.errors]


def port_failed(target: TargetReport, port: int, error: BaseException) -> ScanError:
    """The work on a port crashed outside any check (a bug, or a hostile server's doing)."""
    return ScanError("port", repr(error)[:300], target.address, port)


def add_udp(target: TargetReport, udp: UdpScan) -> None:
    target.ports.extend(udp.port_reports())
    target.findings.extend(udp.findings)


def add_internetdb(target: TargetReport, lookup: InternetDbLookup) -> None:
    target.internetdb = lookup.details
    target.notes.extend(lookup.notes)


def finish(target: TargetReport) -> None:
    """Worst findings first, by port within one severity."""
    target.findings.sort(key=lambda finding: (-finding.severity.rank, finding.port or 0))


def _add_identity(port: PortReport, identity: ServiceIdentity) -> None:
    port.service = identity.service
    port.product = identity.product
    port.version = identity.version
    port.tls = identity.tls
    port.banner = identity.banner
    port.details.update(identity.details)
    if identity.source != "probe":
        port.details["identified_by"] = identity.source


def _add_checks(port: PortReport, checks: PortChecks, target: TargetReport) -> None:
    merge_details(port.details, checks.details)
    if checks.product:
        port.product, port.version = checks.product, checks.version
    if checks.service and not port.service:  # a protocol a check's probe found (X11...)
        port.service = checks.service
    target.findings.extend(checks.findings)
    target.notes.extend(checks.notes)
