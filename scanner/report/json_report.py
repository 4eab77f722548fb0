"""The JSON report (SPEC "JSON report" contract, schema `exposure-report/1`)."""

from __future__ import annotations

import json

from scanner.report.model import ScanReport


def render_json(report: ScanReport) -> str:
    # ensure_ascii keeps any odd character a server sent as a \u escape: safe in any pipe.
    return json.dumps(report.to_dict(), indent=2, ensure_ascii=True) + "\n"
