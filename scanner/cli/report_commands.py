"""`exposure schema`: the JSON Schema of `exposure scan --format json`."""

from __future__ import annotations

import sys

from scanner.cli import EXIT_OK, app


@app.command("schema")
def schema_command() -> int:
    """Print the JSON Schema (exposure-report/2) that every JSON report follows."""
    from scanner.report.schema import schema_text

    text = schema_text()
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return EXIT_OK
