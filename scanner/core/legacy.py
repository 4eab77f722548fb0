"""Reports stored by earlier versions (exposure-report/1) in today's shape (exposure-report/2).

/1 wrote notes and errors as sentences ("port 22: ...", "203.0.113.7: ha check on port 8123
failed: ..."); /2 writes them as objects (core.report.Note, ScanError). Histories keep /1 rows,
so every reader of stored JSON passes it through upgrade_report() (the store does on load) and
only ever sees /2. This module is the one place that reads those old sentences: it knows the
few ways /1 worded them, and anything else becomes a note or error without a port.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from scanner.core.report import SCHEMA_ID, Note, ScanError

LEGACY_SCHEMA_ID = "exposure-report/1"

# How exposure-report/1 worded them (scanner/api.py and scanner/checks/runner.py of then).
_PORT_NOTE = re.compile(r"^port (?P<port>\d+): (?P<text>.*)$", re.DOTALL)
_CHECK_ERROR = re.compile(
    r"^(?P<address>\S+): (?P<check>\S+) check on port (?P<port>\d+) failed: (?P<message>.*)$",
    re.DOTALL)
_PORT_ERROR = re.compile(r"^(?P<address>\S+): port (?P<port>\d+) failed: (?P<message>.*)$",
                         re.DOTALL)
_DISCOVERY_ERROR = re.compile(r"^discovery failed: (?P<message>.*)$", re.DOTALL)


def upgrade_report(data: Mapping[str, Any]) -> dict[str, Any]:
    """A report dict of either schema, as /2 (a /2 dict comes back equal, as a copy)."""
    upgraded = dict(data)
    if "scan" in data and isinstance(data["scan"], Mapping):
        upgraded["scan"] = upgrade_header(data["scan"])
    if "targets" in data:
        upgraded["targets"] = [upgrade_target(target) for target in data["targets"]]
    if data.get("schema") == LEGACY_SCHEMA_ID:
        upgraded["schema"] = SCHEMA_ID
    return upgraded


def upgrade_header(scan: Mapping[str, Any]) -> dict[str, Any]:
    """The report's "scan" object with its errors as ScanError dicts."""
    header = dict(scan)
    if "errors" in scan:
        header["errors"] = [error.to_dict() for error in errors_of(scan)]
    return header


def upgrade_target(target: Mapping[str, Any]) -> dict[str, Any]:
    """One "targets" item with its notes as Note dicts."""
    upgraded = dict(target)
    if "notes" in target:
        upgraded["notes"] = [note.to_dict() for note in notes_of(target)]
    return upgraded


def errors_of(scan: Mapping[str, Any]) -> list[ScanError]:
    """The errors of a report's "scan" object, of either schema."""
    return [_error(item) for item in scan.get("errors", []) or []]


def notes_of(target: Mapping[str, Any]) -> list[Note]:
    """The notes of a "targets" item, of either schema."""
    return [_note(item) for item in target.get("notes", []) or []]


def _note(item: Any) -> Note:
    if isinstance(item, Mapping):
        return Note.from_dict(item)
    text = str(item)
    match = _PORT_NOTE.match(text)
    return Note(int(match["port"]), match["text"]) if match else Note(None, text)


def _error(item: Any) -> ScanError:
    if isinstance(item, Mapping):
        return ScanError.from_dict(item)
    text = str(item)
    if match := _CHECK_ERROR.match(text):
        return ScanError("check", match["message"], match["address"], int(match["port"]),
                         check=match["check"])
    if match := _PORT_ERROR.match(text):
        return ScanError("port", match["message"], match["address"], int(match["port"]))
    if match := _DISCOVERY_ERROR.match(text):
        return ScanError("discovery", match["message"])
    return ScanError("scan", text)
