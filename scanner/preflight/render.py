"""The preflight verdict for a terminal: the answer first, then why, then the fixes."""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

from scanner.core.text import safe_text
from scanner.preflight.verdict import Reason, Verdict


def render_verdict(verdict: Verdict, console: Console) -> None:
    style = "bold green" if verdict.safe else "bold red"
    if not verdict.reachable:
        style = "bold yellow"
    headline = Text(verdict.label, style=style)
    headline.append(f"  {safe_text(verdict.host)}:{verdict.port}", style="bold")
    if verdict.as_port != verdict.port:
        headline.append(f" forwarded as external port {verdict.as_port}")
    console.print(headline)
    console.print(Text(
        f"Seen from the LAN: {verdict.service}. This is what this machine sees; the internet "
        "may see something else (below).",
        style="dim",
    ))
    if not verdict.reachable:
        console.print(f"Nothing answers on {safe_text(verdict.host)}:{verdict.port} from here: "
                      "is the service running, and is the address right?")
    if verdict.blocking:
        console.print(Text("\nWhy not (fix each before forwarding):", style="bold"))
        for number, reason in enumerate(verdict.blocking, 1):
            _reason(console, reason, f"{number}.")
    if verdict.warnings:
        console.print(Text("\nAlso worth knowing:", style="bold"))
        for reason in verdict.warnings:
            _reason(console, reason, "-")
    console.print(Text("\nWhat may differ from outside:", style="bold"))
    for line in verdict.outside:
        console.print(f"  - {line}")


def _reason(console: Console, reason: Reason, bullet: str) -> None:
    console.print(Text(f"  {bullet} [{reason.severity}] {reason.id}: {reason.title}"))
    if reason.why:
        console.print(Text(f"     seen: {reason.why}", style="dim"))
    console.print(Text(f"     fix:  {reason.fix}"))
