"""Runs the applicable checks on an open port (the scan calls check_port for each port as it
is identified); run_checks does all ports of a target at once, for use on its own."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from scanner.checks.base import Check, CheckContext, CheckOptions, port_endpoint
from scanner.checks.registry import all_checks
from scanner.findings import Finding
from scanner.identification.model import ServiceIdentity
from scanner.net import Connector, Dialer, Limits, ScanBudget
from scanner.targets import Target

log = logging.getLogger(__name__)

MAX_PORTS_IN_PARALLEL = 8  # per host: politeness, and servers like sshd throttle bursts


@dataclass
class PortChecks:
    findings: list[Finding] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    product: str | None = None
    version: str | None = None
    service: str | None = None


def run_checks(
    target: Target,
    identities: Mapping[int, ServiceIdentity],
    options: CheckOptions,
    checks: Sequence[Check] | None = None,
    budget: ScanBudget | None = None,
) -> dict[int, PortChecks]:
    """Every port of `target`, a few at once, under `budget` (default: a budget of its own)."""
    budget = budget or ScanBudget(Limits())
    ports = sorted(identities)

    def one(port: int) -> PortChecks:
        return check_port(target, port, identities[port], options, Dialer.for_port(budget),
                          checks)

    with ThreadPoolExecutor(max_workers=max(1, min(MAX_PORTS_IN_PARALLEL, len(ports)))) as pool:
        return dict(zip(ports, pool.map(one, ports), strict=True))


def check_port(
    target: Target,
    port: int,
    identity: ServiceIdentity,
    options: CheckOptions,
    dialer: Dialer,
    checks: Sequence[Check] | None = None,
) -> PortChecks:
    """The checks of one port, in dependency order, each seeing the details of those before;
    every connection through `dialer` (the scan's budget, the port's deadline)."""
    connector = Connector(dialer, port_endpoint(target, port, identity))
    return _check_port(target, port, identity, options, connector,
                       list(checks if checks is not None else all_checks()))


def merge_details(into: dict[str, Any], new: Mapping[str, Any]) -> None:
    """Nested merge: a check adding details["tls"]["grade"] keeps what identification put in
    details["tls"] before (the certificate it saw); on a conflict the later, deeper look wins."""
    for key, value in new.items():
        current = into.get(key)
        if isinstance(current, dict) and isinstance(value, Mapping):
            merged = dict(current)
            merge_details(merged, value)
            into[key] = merged
        else:
            into[key] = value


def _check_port(
    target: Target,
    port: int,
    identity: ServiceIdentity,
    options: CheckOptions,
    connector: Connector,
    checks: Sequence[Check],
) -> PortChecks:
    outcome = PortChecks()
    for check in checks:
        context = CheckContext(target, port, identity, options, connector,
                               earlier=dict(outcome.details))
        try:
            if not check.applies(context):
                continue
            if connector.dialer.seconds_left <= 0:
                outcome.notes.append(f"{check.name} check not run: the port's deadline passed")
                continue
            result = check.run(context)
        except Exception as error:  # a check's bug or a hostile server must not end the scan
            log.debug("check %s failed on port %s", check.name, port, exc_info=True)
            outcome.errors.append(f"{check.name} check on port {port} failed: {error!r}"[:300])
            continue
        outcome.findings.extend(result.findings)
        merge_details(outcome.details, result.details)
        outcome.notes.extend(result.notes)
        if result.product:
            outcome.product, outcome.version = result.product, result.version
        if result.service:
            outcome.service = result.service
    return outcome
