"""The tasks' results back into one report, in the order the targets were given.

The parts of one address seen from one vantage (its port ranges) are put together first: their
ports side by side, their findings and notes once. Then, when several vantages were asked, the
address's reports from each are combined (vantage.py). A task that no worker finished, or that
failed, is an error of the report, which is then incomplete; an address no task finished is
not in it (as a single-machine scan leaves out an address whose discovery failed).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from scanner.core.report import ScanError, ScanReport, TargetReport
from scanner.fleet.spec import TaskSpec
from scanner.fleet.vantage import combine
from scanner.store.codec import report_from_dict
from scanner.store.fleet import TaskRecord


@dataclass
class _Seen:
    """One address from one vantage: its parts' reports so far."""

    targets: list[TargetReport] = field(default_factory=list)
    missing: bool = False


def merge_results(
    header: ScanReport, plan: Sequence[TaskSpec], records: Sequence[TaskRecord],
    ports: Sequence[int], vantages: Sequence[str],
) -> ScanReport:
    """Fill `header` (id, times, ports_requested set by the caller) from the task records."""
    by_key = {record.task: record for record in records}
    engines: list[str] = []
    addresses: dict[str, dict[str, _Seen]] = {}
    for spec in plan:
        seen = addresses.setdefault(spec.address, {}).setdefault(spec.vantage, _Seen())
        record = by_key.get(spec.key)
        vantage = spec.vantage if vantages else None
        if record is None or record.status != "done" or record.result is None:
            seen.missing = True
            why = record.error if record is not None and record.error else "no worker finished it"
            header.errors.append(ScanError("task", why + _which_ports(spec), spec.address,
                                           vantage=vantage))
            header.complete = False
            continue
        part = _part_report(record.result)
        if not part.complete:
            header.complete = False
        header.errors.extend(dataclasses.replace(error, vantage=vantage) if vantage else error
                             for error in part.errors)
        if part.engine and part.engine not in engines:
            engines.append(part.engine)
        seen.targets.extend(part.targets)
    header.engine = ", ".join(engines) or header.engine
    for spec in _first_of_each_address(plan):
        by_vantage = {
            vantage: _join_parts(seen.targets, spec)
            for vantage, seen in addresses[spec.address].items()
            if seen.targets and not seen.missing
        }
        if not by_vantage:
            continue
        if len(vantages) > 1:
            target = combine(by_vantage, ports)
        else:
            target = next(iter(by_vantage.values()))
        target.findings.sort(key=lambda finding: (-finding.severity.rank, finding.port or 0))
        header.targets.append(target)
    return header


def _which_ports(spec: TaskSpec) -> str:
    """Which part of the address the task was, when it was one of several."""
    if spec.part or len(spec.ports) > 40:
        return f" (ports {spec.ports[:40]}{'...' if len(spec.ports) > 40 else ''})"
    return ""


def _part_report(result: dict[str, Any]) -> ScanReport:
    report = report_from_dict(result)
    # report_from_dict knows the contract's keys; what InternetDB said comes along too.
    for target, data in zip(report.targets, result.get("targets", []), strict=False):
        internetdb = data.get("internetdb") if isinstance(data, dict) else None
        if isinstance(internetdb, dict):
            target.internetdb = internetdb
    return report


def _first_of_each_address(plan: Sequence[TaskSpec]) -> list[TaskSpec]:
    firsts: dict[str, TaskSpec] = {}
    for spec in plan:
        firsts.setdefault(spec.address, spec)
    return list(firsts.values())


def _join_parts(parts: Sequence[TargetReport], spec: TaskSpec) -> TargetReport:
    """The port ranges of one address from one vantage, as one TargetReport."""
    joined = TargetReport(input=spec.input, address=spec.address, hostname=spec.hostname)
    seen_findings: set[tuple[str, int | None, str, str]] = set()
    for part in parts:
        joined.ports.extend(part.ports)
        joined.filtered_count += part.filtered_count
        joined.answers_all_ports = joined.answers_all_ports or part.answers_all_ports
        for finding in part.findings:
            key = (finding.id, finding.port, finding.protocol, finding.evidence)
            if key not in seen_findings:
                seen_findings.add(key)
                joined.findings.append(finding)
        joined.notes.extend(note for note in part.notes if note not in joined.notes)
        if part.internetdb is not None:
            joined.internetdb = part.internetdb
    joined.ports.sort(key=lambda port: (port.protocol != "tcp", port.port))
    return joined
