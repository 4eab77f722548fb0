"""The ports a user means to expose, from a TOML file they keep in git (`--baseline FILE`).

    # expected.toml: what I forward on purpose. Any other open port is port.unexpected.
    ports = [443]                       # every target not listed below

    [targets."home.example.org"]        # a target as typed, or one of its addresses
    ports = [443, 8123, "8883/tcp"]

    [targets."2001:db8::10"]            # IPv6 often bypasses the router: say what you expect
    ports = []

Items are port numbers, "N", "N/tcp", "N/udp" or ranges "N-M". A target the file does not list,
in a file without a top-level `ports`, is expected to expose nothing.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scanner.core.findings import FindingSpec, Severity
from scanner.core.report import ScanReport
from scanner.errors import BadInput

MAX_BASELINE_BYTES = 1024 * 1024
PROTOCOLS = ("tcp", "udp")
PortKey = tuple[int, str]

PORT_UNEXPECTED = FindingSpec(
    id="port.unexpected",
    severity=Severity.HIGH,
    title="An open port that your baseline does not list",
)
FINDINGS: tuple[FindingSpec, ...] = (PORT_UNEXPECTED,)  # part of scanner.core.catalogue


@dataclass(frozen=True)
class Baseline:
    source: str  # the file name, for messages
    default: frozenset[PortKey] | None = None  # top-level `ports`
    targets: Mapping[str, frozenset[PortKey]] = field(default_factory=dict)

    def expected(self, target_input: str, address: str) -> frozenset[PortKey] | None:
        """The ports expected for a target; None when the file says nothing about it."""
        for name in (target_input, address):
            if name in self.targets:
                return self.targets[name]
        return self.default

    def is_expected(self, target_input: str, address: str, port: int, protocol: str) -> bool:
        return (port, protocol) in (self.expected(target_input, address) or frozenset())


def load_baseline(path: Path) -> Baseline:
    """Read and parse a baseline file; BadInput (exit 2) with one clear line when it is wrong."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_BASELINE_BYTES + 1)
    except OSError as error:
        raise BadInput(f"--baseline {path}: {error.strerror or error}") from error
    if len(data) > MAX_BASELINE_BYTES:
        raise BadInput(f"--baseline {path}: larger than {MAX_BASELINE_BYTES} bytes")
    return parse_baseline(data, str(path))


def parse_baseline(data: bytes, source: str) -> Baseline:
    """Pure: TOML bytes -> Baseline; raises only BadInput."""
    try:
        document = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise BadInput(f"baseline {source} is not valid TOML: {error}") from error
    unknown = set(document) - {"ports", "targets"}
    if unknown:
        raise BadInput(f"baseline {source}: unknown key(s) {', '.join(sorted(unknown))} "
                       "(expected `ports` and [targets.\"NAME\"] tables)")
    default = _port_set(document["ports"], source, "ports") if "ports" in document else None
    targets_table = document.get("targets", {})
    if not isinstance(targets_table, dict):
        raise BadInput(f"baseline {source}: `targets` must be a table of [targets.\"NAME\"]")
    targets: dict[str, frozenset[PortKey]] = {}
    for name, table in targets_table.items():
        if not isinstance(table, dict) or set(table) != {"ports"}:
            raise BadInput(f"baseline {source}: [targets.{name!r}] must hold exactly `ports`")
        targets[name] = _port_set(table["ports"], source, f"targets.{name}.ports")
    return Baseline(source, default, targets)


def _port_set(value: Any, source: str, where: str) -> frozenset[PortKey]:
    if not isinstance(value, list):
        raise BadInput(f"baseline {source}: `{where}` must be a list like [443, \"8123/tcp\"]")
    keys: set[PortKey] = set()
    for item in value:
        keys.update(_port_item(item, source, where))
    return frozenset(keys)


def _port_item(item: Any, source: str, where: str) -> Iterable[PortKey]:
    problem = f"baseline {source}: bad port {item!r} in `{where}`"
    if isinstance(item, bool):
        raise BadInput(problem)
    if isinstance(item, int):
        return [(_port_number(str(item), problem), "tcp")]
    if not isinstance(item, str):
        raise BadInput(problem)
    text, _, protocol = item.strip().lower().partition("/")
    protocol = protocol or "tcp"
    if protocol not in PROTOCOLS:
        raise BadInput(f"{problem} (protocol is tcp or udp)")
    low_text, _, high_text = text.partition("-")
    low = _port_number(low_text, problem)
    high = _port_number(high_text, problem) if high_text else low
    if low > high:
        raise BadInput(problem)
    return [(port, protocol) for port in range(low, high + 1)]


def _port_number(text: str, problem: str) -> int:
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 65535:
        raise BadInput(f"{problem} (ports are 1-65535)")
    return int(text)


def apply_baseline(report: ScanReport, baseline: Baseline | None) -> None:
    """Add a port.unexpected finding (high) for every open port the baseline does not list.

    This is state, not change: every scan with --baseline says it, so --fail-on high turns a
    cron job red while the port stays open. `exposure diff`/`watch` report only new ones.
    """
    if baseline is None:
        return
    for target in report.targets:
        expected = baseline.expected(target.input, target.address)
        for port in target.open_ports:
            if (port.port, port.protocol) in (expected or frozenset()):
                continue
            what = port.product or port.service or "an unidentified service"
            target.findings.append(
                PORT_UNEXPECTED.finding(
                    port=port.port,
                    protocol=port.protocol,
                    evidence=(f"port {port.port}/{port.protocol} is open ({what}); "
                              f"{baseline.source} does not list it for {target.input}"),
                    remediation=(
                        "If you did not mean to expose it, remove the port forwarding (or the "
                        "firewall rule) on your router; if you did, add it to "
                        f"{baseline.source} so it stops being reported."
                    ),
                )
            )
        target.findings.sort(key=lambda finding: (-finding.severity.rank, finding.port or 0))
