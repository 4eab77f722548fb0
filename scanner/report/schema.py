"""The JSON report's schema (exposure-report/2), shipped inside the package.

`exposure schema` prints it; validate_report() checks a report against it. jsonschema is
needed only to validate (a development dependency): printing the schema needs nothing.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

SCHEMA_RESOURCE = "exposure-report-2.json"


class ReportInvalid(ValueError):
    """A report does not match the published schema: a bug in the report code."""


def schema_text() -> str:
    """The schema file exactly as shipped."""
    return resources.files("scanner.report").joinpath("schemas", SCHEMA_RESOURCE).read_text(
        encoding="utf-8"
    )


@cache
def load_schema() -> dict[str, Any]:
    return json.loads(schema_text())


def validate_report(document: dict[str, Any]) -> None:
    """Raise ReportInvalid listing every place where `document` breaks the schema."""
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(load_schema())
    errors = sorted(validator.iter_errors(document), key=lambda error: list(error.path))
    if errors:
        lines = [f"{_path(error.absolute_path)}: {error.message[:300]}" for error in errors[:20]]
        raise ReportInvalid("the report does not match its schema:\n" + "\n".join(lines))


def _path(parts: Any) -> str:
    return "/" + "/".join(str(part) for part in parts)
