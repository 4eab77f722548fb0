"""Pre-port-forward verification: is this LAN service safe to expose? (SAFE / NOT SAFE)"""

from scanner.preflight.render import render_verdict
from scanner.preflight.run import parse_service, preflight
from scanner.preflight.verdict import PREFLIGHT_SCHEMA, Reason, Verdict, decide

__all__ = [
    "PREFLIGHT_SCHEMA",
    "Reason",
    "Verdict",
    "decide",
    "parse_service",
    "preflight",
    "render_verdict",
]
