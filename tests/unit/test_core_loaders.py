"""The typed loaders of stored JSON (notes, errors, diff changes): whatever a history row holds,
they give back values the schema accepts, and exactly what they wrote."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from scanner.core.diff import Change, ChangeKind, ScanRef
from scanner.core.findings import Severity
from scanner.core.report import ERROR_STAGES, Note, ScanError, port_or_none

JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()


def test_json_true_is_not_a_port() -> None:
    assert port_or_none(True) is None and port_or_none(False) is None
    assert port_or_none(0) is None and port_or_none(65536) is None and port_or_none("22") is None
    assert port_or_none(22) == 22 and port_or_none(65535) == 65535
    assert Note.from_dict({"port": True, "text": "x"}) == Note(None, "x")
    assert ScanError.from_dict({"stage": "check", "message": "m", "port": True}).port is None
    change = Change.from_dict({"kind": "port.opened", "port": True})
    assert change.port is None and change.kind is ChangeKind.PORT_OPENED
    assert ScanRef.from_dict({"id": "a", "started_at": "t", "seq": True}).seq is None


@given(port=JSON_SCALARS, text=JSON_SCALARS, stage=JSON_SCALARS, address=JSON_SCALARS)
def test_whatever_is_stored_loads_into_schema_shapes(
    port: Any, text: Any, stage: Any, address: Any
) -> None:
    note = Note.from_dict({"port": port, "text": text})
    error = ScanError.from_dict({"stage": stage, "message": text, "port": port,
                                 "address": address})
    for loaded in (note.port, error.port):
        assert loaded is None or (type(loaded) is int and 1 <= loaded <= 65535)
    assert isinstance(note.text, str) and error.stage in ERROR_STAGES


@given(port=st.none() | st.integers(min_value=1, max_value=65535), text=st.text())
def test_what_is_written_loads_back_the_same(port: int | None, text: str) -> None:
    note = Note(port, text)
    assert Note.from_dict(note.to_dict()) == note
    error = ScanError("check", text, "203.0.113.7", port, "tls", None)
    assert ScanError.from_dict(error.to_dict()) == error
    change = Change(ChangeKind.FINDING_NEW, Severity.HIGH, "home.example", ("203.0.113.7",),
                    text, port=port)
    assert Change.from_dict(change.to_dict()) == change
