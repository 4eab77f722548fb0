"""The JSON report (SPEC "JSON report" contract, schema `exposure-report/2`).

With EXPOSURE_VALIDATE_REPORTS=1 in the environment every report is checked against the
package's JSON Schema before it is printed, and a mismatch is an error. The test suite sets
it (tests/conftest.py), so every JSON report any test produces, in process or through the
CLI in a lab namespace, proves the schema and the model agree. Users never pay for it.
"""

from __future__ import annotations

import json
import os
from typing import Any

from scanner.core.diff import ReportDiff
from scanner.core.report import ScanReport
from scanner.core.summary import ReportSummary, summarize
from scanner.core.text import safe_tree

VALIDATE_ENV = "EXPOSURE_VALIDATE_REPORTS"
# A ceiling, not the caps: the stages cap what they keep (banners 4 KiB, titles 200...) and
# their clean, capped text passes unchanged. This only bounds what a stage forgot to clean.
TEXT_CEILING = 64 * 1024
DEPTH_CEILING = 32
ITEMS_CEILING = 1 << 20  # a full-range scan lists up to 65,536 closed ports


def report_document(
    report: ScanReport, diff: ReportDiff | None = None, summary: ReportSummary | None = None
) -> dict[str, Any]:
    """The report as JSON data: `schema` (what this is), then the `summary` (the answer:
    verdict, counts, exposed services, problems and where each applies), then the rest."""
    body = report.to_dict()
    answer = (summary if summary is not None else summarize(report)).to_dict()
    document = {"schema": body.pop("schema"), "summary": answer, **body}
    if diff is not None:
        document["diff"] = diff.to_dict()
    cleaned: dict[str, Any] = safe_tree(
        document, text_limit=TEXT_CEILING, max_depth=DEPTH_CEILING, max_items=ITEMS_CEILING
    )
    return cleaned


def render_json(
    report: ScanReport, diff: ReportDiff | None = None, summary: ReportSummary | None = None
) -> str:
    document = report_document(report, diff, summary)
    if validation_enabled():
        from scanner.report.schema import validate_report

        validate_report(document)
    # ensure_ascii keeps any odd character a server sent as a \u escape: safe in any pipe.
    return json.dumps(document, indent=2, ensure_ascii=True) + "\n"


def validation_enabled() -> bool:
    return os.environ.get(VALIDATE_ENV) == "1"
