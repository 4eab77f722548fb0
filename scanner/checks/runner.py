"""Runs the applicable checks on an open port (the scan calls check_port for each port as it
is identified); run_checks does all ports of a target at once, for use on its own."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from scanner.checks.base import Check, CheckContext, CheckOptions, CheckResult, port_endpoint
from scanner.checks.registry import all_checks
from scanner.core.findings import Finding
from scanner.core.report import Note, ScanError
from scanner.identification.model import ServiceIdentity
from scanner.net import Connector, Dialer, Limits, ScanBudget
from scanner.targets import Target

log = logging.getLogger(__name__)

MAX_PORTS_IN_PARALLEL = 8  # per host: politeness, and servers like sshd throttle bursts


@dataclass
class PortChecks:
    findings: list[Finding] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[Note] = field(default_factory=list)
    errors: list[ScanError] = field(default_factory=list)  # without the address: the caller's
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
    """Checks with a time bound of their own that read no other check's details (TLS grading)
    run alongside; the others one after another, within the port's deadline."""
    outcome = PortChecks()
    alongside = [check for check in checks if getattr(check, "runs_alongside", False)]
    in_order = [check for check in checks if check not in alongside]
    with ThreadPoolExecutor(max_workers=max(1, len(alongside))) as pool:
        running = [pool.submit(_run_one, check, _context(target, port, identity, options,
                                                          connector, {}), deadline_bound=False)
                   for check in alongside]
        for check in in_order:
            context = _context(target, port, identity, options, connector, outcome.details)
            _add(outcome, check, port, _run_one(check, context, deadline_bound=True))
        for check, future in zip(alongside, running, strict=True):
            _add(outcome, check, port, future.result())
    return outcome


def _context(
    target: Target, port: int, identity: ServiceIdentity, options: CheckOptions,
    connector: Connector, earlier: Mapping[str, Any],
) -> CheckContext:
    return CheckContext(target, port, identity, options, connector, earlier=dict(earlier))


# What running one check gave: its result, nothing (it did not apply), a note, or an error.
_Ran = CheckResult | str | BaseException | None


def _run_one(check: Check, context: CheckContext, *, deadline_bound: bool) -> _Ran:
    try:
        if not check.applies(context):
            return None
        if deadline_bound and context.dialer.seconds_left <= 0:
            return f"{check.name} check not run: the port's deadline passed"
        return check.run(context)
    except Exception as error:  # a check's bug or a hostile server must not end the scan
        log.debug("check %s failed on port %s", check.name, context.port, exc_info=True)
        return error


def _add(outcome: PortChecks, check: Check, port: int, ran: _Ran) -> None:
    if ran is None:
        return
    if isinstance(ran, str):
        outcome.notes.append(Note(port, ran))
        return
    if isinstance(ran, BaseException):
        outcome.errors.append(ScanError("check", repr(ran)[:300], port=port, check=check.name))
        return
    outcome.findings.extend(ran.findings)
    merge_details(outcome.details, ran.details)
    outcome.notes.extend(Note(port, note) for note in ran.notes)
    if ran.product:
        outcome.product, outcome.version = ran.product, ran.version
    if ran.service:
        outcome.service = ran.service
