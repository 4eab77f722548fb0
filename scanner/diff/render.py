"""The diff for people: grouped by target, worst first, coloured by severity on a terminal."""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

from scanner.core.diff import Change, ReportDiff, ScanRef
from scanner.core.findings import Severity
from scanner.core.text import safe_text

SEVERITY_STYLES = {
    Severity.CRITICAL: "bold white on red",
    Severity.HIGH: "bold red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "dim",
}


def render_diff(diff: ReportDiff, console: Console) -> None:
    console.print(Text(header(diff), style="bold"))
    if diff.empty:
        console.print("  no change")
    for target, changes in _by_target(diff.changes).items():
        addresses = sorted({address for change in changes for address in change.addresses})
        line = Text(safe_text(target), style="bold")
        if addresses != [target]:
            line.append(f"  ({', '.join(safe_text(a, 64) for a in addresses)})")
        console.print(line)
        for change in changes:
            console.print(change_text(change, indent="  "))
    if diff.still_unexpected:
        console.print(Text(f"still open, not in the baseline {diff.baseline}:", style="bold"))
        for item in diff.still_unexpected:
            where = safe_text(item.target)
            if item.address != item.target:
                where += f" ({item.address})"
            console.print(f"  {where} port {item.port}/{item.protocol}")
    for note in diff.notes:
        console.print(Text(f"note: {safe_text(note)}", style="dim"))


def header(diff: ReportDiff) -> str:
    before = _ref(diff.before) if diff.before else "nothing known"
    return f"exposure diff: {before} -> {_ref(diff.after)}: {len(diff.changes)} change(s)"


def change_text(change: Change, indent: str = "") -> Text:
    text = Text(indent)
    text.append(f"[{change.severity}]", style=SEVERITY_STYLES[change.severity])
    text.append(f" {change.summary}")
    return text


def change_line(change: Change) -> str:
    """One plain line for a change (alerts, logs): target, severity, summary."""
    where = ", ".join(change.addresses)
    target = change.target if change.addresses == (change.target,) else (
        f"{change.target} ({where})")
    return f"{target}: [{change.severity}] {change.summary}"


def _ref(ref: ScanRef) -> str:
    number = f"#{ref.seq} " if ref.seq is not None else ""
    return f"scan {number}{ref.id} ({ref.started_at})"


def _by_target(changes: tuple[Change, ...]) -> dict[str, list[Change]]:
    grouped: dict[str, list[Change]] = {}
    for change in sorted(changes, key=lambda c: -c.severity.rank):
        grouped.setdefault(change.target, []).append(change)
    return grouped
