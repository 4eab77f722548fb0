"""`exposure preflight HOST:PORT`: scan one LAN service through the library API, then decide."""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Callable, Sequence

from scanner.api import ScanOptions, scan
from scanner.checks.base import CheckOptions
from scanner.core.report import ScanReport
from scanner.errors import BadInput
from scanner.preflight.verdict import Verdict, decide

ScanFunction = Callable[[Sequence[str], ScanOptions], ScanReport]


def parse_service(text: str) -> tuple[str, int]:
    """'192.168.1.20:8123' -> ('192.168.1.20', 8123); '[fd00::5]:22'; 'nas.lan:5000'.

    Pure; raises BadInput with one line for anything else.
    """
    value = text.strip()
    problem = f"expected HOST:PORT (e.g. 192.168.1.20:8123 or [fd00::20]:22), got {text[:80]!r}"
    if value.startswith("["):
        host, separator, port_text = value[1:].partition("]:")
        if not separator:
            raise BadInput(problem)
        try:
            ipaddress.IPv6Address(host)
        except ValueError as error:
            raise BadInput(problem) from error
    else:
        host, separator, port_text = value.rpartition(":")
        if not separator or not host or ":" in host:
            raise BadInput(problem)
    return host, parse_port(port_text, problem)


def parse_port(text: str, problem: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 65535:
        raise BadInput(problem)
    return int(text)


def preflight(
    host: str,
    port: int,
    as_port: int | None = None,
    *,
    check_options: CheckOptions | None = None,
    scan_options: ScanOptions | None = None,
    scanner: ScanFunction = scan,
) -> tuple[Verdict, ScanReport]:
    """Discovery + identification + every check on one port, then the verdict."""
    base = scan_options or ScanOptions()
    # "safe to forward" needs an SSH server's login methods: ask them (see the CLI)
    checks = check_options or dataclasses.replace(base.checks, ssh_auth_probe=True)
    options = dataclasses.replace(
        base, ports=(port,), identify=True, run_checks=True, checks=checks,
    )
    report = scanner([host], options)
    return decide(report.to_dict(), host, port, as_port), report
