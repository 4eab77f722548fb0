"""The schema migrations: numbered, recorded, atomic, and refusing a newer schema."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from scanner.store import SchemaTooNew, Store
from scanner.store import migrations as m


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def test_new_database_gets_every_migration_recorded(tmp_path: Path) -> None:
    with Store.open(tmp_path / "h.db") as store:
        assert store.schema_version() == m.LATEST_VERSION
    db = _connect(tmp_path / "h.db")
    rows = db.execute("SELECT version, description FROM schema_version ORDER BY version").fetchall()
    assert [version for version, _ in rows] == [mig.version for mig in m.MIGRATIONS]
    assert all(description for _, description in rows)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_migration_numbers_are_consecutive() -> None:
    assert [mig.version for mig in m.MIGRATIONS] == list(range(1, len(m.MIGRATIONS) + 1))


def test_reopening_applies_nothing_twice(tmp_path: Path) -> None:
    for _ in range(3):
        Store.open(tmp_path / "h.db").close()
    db = _connect(tmp_path / "h.db")
    assert db.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == len(m.MIGRATIONS)


def test_upgrade_from_version_1_keeps_scans_and_backfills_targets(tmp_path: Path) -> None:
    """A database made by the first release (migration 1 only) with a stored scan in it."""
    path = tmp_path / "old.db"
    db = _connect(path)
    m.migrate(db, m.MIGRATIONS[:1])
    report = {"scan": {"id": "aaaabbbbcccc", "complete": True},
              "targets": [{"input": "home.example", "address": "198.51.100.7",
                           "ports": [{"port": 443, "state": "open"}],
                           "findings": [{"id": "tls.grade", "severity": "medium"}]}]}
    db.execute(
        "INSERT INTO scans (report_id, status, inputs, started_at, host, pid, tool_version, report)"
        " VALUES ('aaaabbbbcccc', 'complete', '[\"home.example\"]', '2024-01-01T00:00:00+00:00',"
        " 'old-host', 1, '0.0.1', ?)",
        (json.dumps(report),),
    )
    db.close()
    with Store.open(path) as store:
        assert store.schema_version() == m.LATEST_VERSION
        (row,) = store.list_scans("198.51.100.7")
        assert row.report_id == "aaaabbbbcccc"
        assert row.addresses == ("198.51.100.7",) and row.open_ports == 1
        assert store.load_report(row) == report


def test_a_failing_migration_leaves_the_database_as_it_was(tmp_path: Path) -> None:
    db = _connect(tmp_path / "h.db")
    m.migrate(db, m.MIGRATIONS[:1])

    def broken(connection: sqlite3.Connection) -> None:
        connection.execute("CREATE TABLE half_done (x)")
        raise RuntimeError("migration bug")

    with pytest.raises(RuntimeError, match="migration bug"):
        m.migrate(db, (*m.MIGRATIONS[:1], m.Migration(2, "broken", broken)))
    assert m.current_version(db) == 1
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
    assert "half_done" not in tables


def test_a_newer_schema_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    Store.open(path).close()
    db = _connect(path)
    db.execute("INSERT INTO schema_version VALUES (99, 'from the future', 'x')")
    db.close()
    with pytest.raises(SchemaTooNew) as caught:
        Store.open(path)
    assert "newer exposure" in str(caught.value) and "99" in str(caught.value)
