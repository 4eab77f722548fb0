"""`exposure preflight HOST:PORT [--as-port N]`: is this LAN service safe to forward?"""

from __future__ import annotations

import enum
import json
import sys
from typing import Annotated

import typer

from scanner.cli import EXIT_FINDINGS, EXIT_OK, EXIT_SCAN_FAILED, app
from scanner.cli.options import CaFile, Timeout, check_timeout


class PreflightFormat(enum.StrEnum):
    TABLE = "table"
    JSON = "json"


@app.command("preflight")
def preflight_command(
    service: Annotated[str, typer.Argument(metavar="HOST:PORT", help="The LAN service.")],
    as_port: Annotated[
        int | None, typer.Option(help="The external port you plan to forward to it.")
    ] = None,
    ca_file: CaFile = None,
    timeout: Timeout = 1.0,
    output_format: Annotated[PreflightFormat, typer.Option("--format", "-f")] = (
        PreflightFormat.TABLE
    ),
) -> int:
    """Is this LAN service safe to port-forward? SAFE TO FORWARD (exit 0) / NOT SAFE (exit 1).

    Gives the blocking reasons and the fix for each; exit 3 when nothing answers. An SSH
    server is asked which logins it accepts (as --ssh-auth-probe does for `scan`)."""
    from rich.console import Console

    from scanner.api import ScanOptions
    from scanner.checks.base import CheckOptions
    from scanner.cli.validate import check_ca_file
    from scanner.discovery import DiscoveryOptions
    from scanner.preflight import parse_service, preflight, render_verdict
    from scanner.preflight.run import parse_port

    host, port = parse_service(service)
    external = parse_port(str(as_port), f"--as-port must be 1-65535 (got {as_port})") \
        if as_port is not None else None
    if ca_file is not None:
        check_ca_file(ca_file)
    check_timeout(timeout)
    options = ScanOptions(discovery=DiscoveryOptions(timeout=timeout))
    # The owner's own device, from the LAN, before forwarding it: ask SSH servers which logins
    # they accept (one request sshd may log as refused: scanner/checks/ssh/servers.py).
    checks = CheckOptions(ca_file=ca_file, ssh_auth_probe=True)
    verdict, _ = preflight(host, port, external, check_options=checks, scan_options=options)
    if output_format is PreflightFormat.JSON:
        sys.stdout.write(json.dumps(verdict.to_dict(), indent=2, ensure_ascii=True) + "\n")
    else:
        # Not wrapped when piped (mail, logs): wrapping is the reader's terminal's job.
        render_verdict(verdict, Console(highlight=False, soft_wrap=not sys.stdout.isatty()))
    if not verdict.reachable:
        return EXIT_SCAN_FAILED
    return EXIT_OK if verdict.safe else EXIT_FINDINGS
