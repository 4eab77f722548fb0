"""Runs the applicable checks on every open port of a target, ports concurrently."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from scanner.checks.base import Check, CheckContext, CheckOptions
from scanner.checks.registry import all_checks
from scanner.findings import Finding
from scanner.identification.model import ServiceIdentity
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
) -> dict[int, PortChecks]:
    chosen = list(checks if checks is not None else all_checks())
    ports = sorted(identities)
    with ThreadPoolExecutor(max_workers=max(1, min(MAX_PORTS_IN_PARALLEL, len(ports)))) as pool:
        results = pool.map(
            lambda port: _check_port(target, port, identities[port], options, chosen), ports
        )
        return dict(zip(ports, results, strict=True))


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
    checks: Sequence[Check],
) -> PortChecks:
    """Checks of one port run in dependency order, each seeing the details of those before."""
    outcome = PortChecks()
    for check in checks:
        context = CheckContext(target, port, identity, options, earlier=dict(outcome.details))
        try:
            if not check.applies(context):
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
