"""What a check is: one small unit that looks at one open port and may produce findings.

A check declares the findings it can produce (its catalogue entries), says whether it applies
to a port from what identification learnt, and runs. It never prints: findings and details
are data, rendered later by the reports. Adding a check is adding one module to this package
that defines `CHECK` (see registry.py), its details dataclass with `DETAILS` (a
scanner.core.details.DetailsRecord: how its details are written, loaded and shown), plus its
tests (README "Adding a check").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from scanner.core.findings import Finding, FindingSpec, Severity
from scanner.identification.model import ServiceIdentity
from scanner.net import Connector, Dialer, Endpoint, Limits, ScanBudget
from scanner.targets import Target

# Re-exported so a check module needs only this one import for the framework's types.
__all__ = [
    "Check",
    "CheckContext",
    "CheckOptions",
    "CheckResult",
    "Finding",
    "FindingSpec",
    "Severity",
]


@dataclass(frozen=True)
class CheckOptions:
    active: bool = False  # --active: confirmations one step further (never tokens, never writes)
    ca_file: Path | None = None  # --ca-file: extra trust anchors for TLS checks
    # --ssh-auth-probe: ask OpenSSH (and servers other than Dropbear) their login methods,
    # a request their logs may count as a failed login (scanner/checks/ssh/servers.py)
    ssh_auth_probe: bool = False
    ssh_host_keys: bool = False  # --ssh-host-keys: one more SSH connection per host key


@dataclass(frozen=True)
class CheckContext:
    """Everything a check may know about the port it looks at."""

    target: Target  # address, and the hostname the user typed (TLS SNI, HTTP Host)
    port: int
    identity: ServiceIdentity
    options: CheckOptions
    # The only way a check reaches the port: connections under the scan's budget and the
    # port's deadline, to this endpoint (TLS as identified, SNI and Host as the user typed).
    connector: Connector
    # details other checks produced for this port first (see Check.after)
    earlier: Mapping[str, Any] = field(default_factory=dict)

    @property
    def host_header(self) -> str:
        return self.connector.endpoint.host

    @property
    def dialer(self) -> Dialer:
        return self.connector.dialer


def host_header(target: Target, port: int) -> str:
    """The Host header a browser would send for what the user typed."""
    name = target.hostname or str(target.address)
    if target.hostname is None and target.address.version == 6:
        name = f"[{name}]"
    return name if port in (80, 443) else f"{name}:{port}"


def port_endpoint(target: Target, port: int, identity: ServiceIdentity) -> Endpoint:
    """Where the checks of a port connect: TLS as identification found it."""
    return Endpoint(str(target.address), port, identity.tls, target.hostname,
                    host_header(target, port))


def standalone_context(
    target: Target, port: int, identity: ServiceIdentity, options: CheckOptions | None = None,
    timeout: float = 3.0,
) -> CheckContext:
    """A context for running a check on its own (outside a scan): a budget of its own."""
    budget = ScanBudget(Limits(timeout=timeout))
    connector = Connector(Dialer.for_port(budget), port_endpoint(target, port, identity))
    return CheckContext(target, port, identity, options or CheckOptions(), connector)


@dataclass(frozen=True)
class CheckResult:
    findings: tuple[Finding, ...] = ()
    # merged into the port's details: {key: its DetailsRecord's to_dict()}
    details: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # what could not be verified, said plainly
    # The product this check confirmed on the port, with its own evidence (e.g. Home Assistant
    # behind nginx): replaces what identification guessed from headers.
    product: str | None = None
    version: str | None = None
    # The protocol this check found on a port identification could not name (X11, PostgreSQL)
    service: str | None = None


class Check(Protocol):
    """A check may also say `runs_alongside = True`: it has a time bound of its own and reads
    no other check's details (TLS grading), so it runs next to the others, not after them."""

    name: str  # short, unique: "ssh", "tls", "ha", "mqtt" ...
    catalogue: tuple[FindingSpec, ...]
    after: tuple[str, ...]  # names of checks whose details this one reads (run them first)

    def applies(self, context: CheckContext) -> bool: ...

    def run(self, context: CheckContext) -> CheckResult: ...
