"""The terminal report: a summary per target, then the port table."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from scanner.findings.model import Severity
from scanner.report.model import ScanReport, TargetReport
from scanner.report.sanitize import safe_text
from scanner.targets.ports import compress_ports

MAX_CLOSED_LISTED = 10  # beyond this, closed ports are summarised as ranges (like nmap)

SEVERITY_STYLES = {
    Severity.CRITICAL: "bold white on red",
    Severity.HIGH: "bold red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "dim",
}


def render_terminal(report: ScanReport, console: Console) -> None:
    console.print(
        Text(
            f"exposure scan {report.id}: {len(report.targets)} address(es), "
            f"{report.ports_requested} ports, {report.engine} engine, {report.duration_s:.1f} s",
            style="bold",
        )
    )
    for error in report.errors:
        console.print(Text(f"error: {safe_text(error)}", style="red"))
    for target in report.targets:
        console.print()
        _render_target(target, console)
    if not report.complete:
        console.print(Text("The scan is incomplete: see the errors above.", style="red"))


def _render_target(target: TargetReport, console: Console) -> None:
    console.print(_summary_line(target))
    for note in target.notes:
        console.print(Text(f"  note: {safe_text(note)}", style="dim"))
    if target.ports:
        console.print(_port_table(target))
        if summary := _closed_summary(target):
            console.print(summary)
    elif not target.answers_all_ports:
        console.print(Text("  no open or closed port: every port probed was filtered", style="dim"))
    for finding in sorted(target.findings, key=lambda f: -f.severity.rank):
        line = Text("  ")
        line.append(f"[{finding.severity}]", style=SEVERITY_STYLES[finding.severity])
        where = f" port {finding.port}/{finding.protocol}" if finding.port else ""
        line.append(f" {finding.id}{where}: {safe_text(finding.title)}")
        console.print(line)
        console.print(Text(f"      fix: {safe_text(finding.remediation, 2000)}", style="dim"))


def _summary_line(target: TargetReport) -> Text:
    name = target.input if target.input == target.address else f"{target.input} ({target.address})"
    worst = target.worst_severity()
    summary = Text(safe_text(name), style="bold")
    summary.append(
        f"  open {len(target.open_ports)}, closed "
        f"{len(target.ports) - len(target.open_ports)}, filtered {target.filtered_count}"
    )
    if worst:
        summary.append("  worst: ")
        summary.append(str(worst), style=SEVERITY_STYLES[worst])
    return summary


def _port_table(target: TargetReport) -> Table:
    table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    for column in ("port", "state", "service", "product", "version"):
        table.add_column(column)
    closed = [port.port for port in target.ports if port.state == "closed"]
    listed = target.ports if len(closed) <= MAX_CLOSED_LISTED else target.open_ports
    for port in listed:
        table.add_row(
            f"{port.port}/{port.protocol}",
            Text(port.state, style="green" if port.state == "open" else "dim"),
            safe_text(port.service or ""),
            safe_text(port.product or ""),
            safe_text(port.version or ""),
        )
    return table


def _closed_summary(target: TargetReport) -> Text | None:
    closed = [port.port for port in target.ports if port.state == "closed"]
    if len(closed) <= MAX_CLOSED_LISTED:
        return None
    ranges = compress_ports(closed)
    if len(ranges) > 120:
        ranges = ranges[:120] + "…"
    return Text(f"  {len(closed)} closed ports not listed: {ranges}", style="dim")
