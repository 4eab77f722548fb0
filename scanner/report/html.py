"""The HTML report: one self-contained file a self-hoster is glad to open.

Safety, in layers, because every banner, title and certificate field in it came from a
server that may be hostile:

1. Jinja2 autoescaping: every value is HTML-escaped unless it is Markup we built. Remote
   text only ever lands in element content or quoted attributes; never in a URL, a style,
   a class name (those come from fixed tables) or a script (there is none).
2. The view (scanner.report.view) already stripped control characters and capped sizes;
   `finalize` runs safe_text again on every plain string the template prints.
3. A strict Content-Security-Policy in a meta tag: no script of any kind, no request of any
   kind (default-src 'none'), and the one stylesheet allowed by its hash, not by
   'unsafe-inline'. So even an escaping bug could neither run code nor inject a style that
   loads anything; the page never needs the network (no fonts, no images). The only links are
   the catalogue's https references (plain URLs checked by view.is_safe_url, rel=noopener
   noreferrer): followed when clicked, never fetched by the page.
"""

from __future__ import annotations

import base64
import hashlib
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup, escape

from scanner.core.diff import ReportDiff
from scanner.core.findings import Severity
from scanner.core.report import ScanReport
from scanner.core.summary import ReportSummary
from scanner.core.text import safe_text
from scanner.report.inline import split_code_spans
from scanner.report.view import SEVERITY_ORDER, build_view, severity_summary

TEMPLATE = "report.html.j2"
STYLESHEET = "report.css"
# Plain strings printed by the template pass through safe_text once more (already clean:
# unchanged). The limit is far above any cap in the view; it only bounds a future mistake.
FINALIZE_LIMIT = 200_000

SEVERITY_CLASSES = {severity: f"sev-{severity}" for severity in Severity}
CHANGE_LABELS = {"added": "new", "removed": "gone", "changed": "changed"}


STATUS_CLASSES = {"not_safe": "status-not-safe", "needs_attention": "status-attention",
                  "ok": "status-ok", "unknown": "status-unknown"}
STATUS_LABELS = {"not_safe": "Not safe", "needs_attention": "Needs attention", "ok": "OK",
                 "unknown": "Unknown"}


def render_html(
    report: ScanReport, diff: ReportDiff | None = None, summary: ReportSummary | None = None
) -> str:
    view = build_view(report, diff, summary)
    css = _stylesheet()
    return _environment().get_template(TEMPLATE).render(
        view=view,
        css=Markup(css),
        csp=content_security_policy(css),
        severity_order=SEVERITY_ORDER,
        severity_class=SEVERITY_CLASSES,
        severity_summary=severity_summary,
        change_labels=CHANGE_LABELS,
        status_class=STATUS_CLASSES,
        status_label=STATUS_LABELS,
    )


def content_security_policy(css: str) -> str:
    digest = base64.b64encode(hashlib.sha256(css.encode("utf-8")).digest()).decode("ascii")
    return "; ".join(
        [
            "default-src 'none'",
            f"style-src 'sha256-{digest}'",
            "img-src data:",
            "base-uri 'none'",
            "form-action 'none'",
        ]
    )


@cache
def _environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("scanner.report", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_finalize,
    )
    environment.filters["code_spans"] = code_spans
    return environment


def code_spans(text: str) -> Markup:
    """Escaped text whose `backtick` spans become <code> (remediations quote config lines).
    Each piece is escaped on its own; only our fixed <code> tags are added around them
    (scanner.report.inline decides what a span is, for every format alike)."""
    pieces = split_code_spans(safe_text(text, FINALIZE_LIMIT, keep_newlines=True))
    return Markup("".join(
        f"<code>{escape(piece.text)}</code>" if piece.code else str(escape(piece.text))
        for piece in pieces
    ))


def _finalize(value: Any) -> Any:
    if isinstance(value, str) and not isinstance(value, Markup):
        return safe_text(value, FINALIZE_LIMIT, keep_newlines=True)
    return value


@cache
def _stylesheet() -> str:
    loader = _environment().loader
    assert loader is not None
    source, _, _ = loader.get_source(_environment(), STYLESHEET)
    return source.strip()
