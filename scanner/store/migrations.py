"""The database schema, as numbered migrations applied in order, each in its own transaction.

Why plain sqlite3 and not SQLAlchemy/Alembic: the schema is two tables, every query is a few
lines of SQL, and the standard library is always there. What Alembic would give us (ordered,
recorded, tested upgrades) is the 40 lines below: a `schema_version` table with one row per
applied migration, a migration never edited once released (a change is a new migration), and a
test that upgrades a database built by the previous version with data in it.

A database whose version is higher than the newest migration here was written by a newer
exposure: it is refused (SchemaTooNew), never "downgraded".
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from scanner.store.dialect import dialect_of


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[sqlite3.Connection], None]


def _create_scans(db: sqlite3.Connection) -> None:
    # One row per scan, written as 'running' when the scan starts and completed at its end, so
    # a process killed in between leaves a row that says so (see Store.mark_interrupted).
    db.execute(
        f"""
        CREATE TABLE scans (
            seq            {dialect_of(db).serial_key},  -- what `exposure show 12` means
            report_id      TEXT UNIQUE,        -- scan.id of the JSON report, once finished
            status         TEXT NOT NULL CHECK (status IN
                             ('running', 'complete', 'incomplete', 'failed', 'interrupted')),
            inputs         TEXT NOT NULL,      -- JSON list: the targets as the user typed them
            ports          TEXT,               -- the port list probed, compressed: 22,80,8000-8100
            started_at     TEXT NOT NULL,      -- ISO-8601 UTC
            finished_at    TEXT,
            host           TEXT NOT NULL,      -- machine and process that run the scan: tells
            pid            INTEGER NOT NULL,   -- a scan still running from one that was killed
            pid_start      TEXT,               -- start time of pid (pid reuse)
            tool_version   TEXT NOT NULL,
            worst_severity TEXT,
            error          TEXT,               -- why a scan failed or was interrupted
            report         TEXT                -- the exposure-report/1 JSON, once finished
        )
        """
    )
    db.execute("CREATE INDEX scans_by_start ON scans (started_at)")


def _create_scan_targets(db: sqlite3.Connection) -> None:
    # The addresses each scan covered, so `history TARGET` and `diff` find a target's scans
    # without parsing every stored report. Backfilled from the reports already stored.
    db.execute(
        f"""
        CREATE TABLE scan_targets (
            scan_seq       INTEGER NOT NULL REFERENCES scans (seq) ON DELETE CASCADE,
            input          TEXT NOT NULL,
            address        TEXT NOT NULL,
            open_ports     INTEGER NOT NULL,
            worst_severity TEXT,
            PRIMARY KEY (scan_seq, address){dialect_of(db).rowid_column}
        )
        """
    )
    db.execute("CREATE INDEX scan_targets_by_input ON scan_targets (input)")
    db.execute("CREATE INDEX scan_targets_by_address ON scan_targets (address)")
    rows = db.execute("SELECT seq, report FROM scans WHERE report IS NOT NULL").fetchall()
    for seq, report in rows:
        insert_target_rows(db, seq, json.loads(report))


def insert_target_rows(db: sqlite3.Connection, seq: int, report: dict) -> None:
    """One scan_targets row per target of a report dict (exposure-report/1)."""
    for target in report.get("targets", []):
        open_ports = sum(1 for port in target.get("ports", []) if port.get("state") == "open")
        db.execute(
            "INSERT INTO scan_targets (scan_seq, input, address, open_ports, worst_severity)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (scan_seq, address) DO UPDATE SET"
            " input = excluded.input, open_ports = excluded.open_ports,"
            " worst_severity = excluded.worst_severity",
            (seq, target.get("input", ""), target.get("address", ""), open_ports,
             worst_severity_of(target.get("findings", []))),
        )


def _create_scan_progress(db: sqlite3.Connection) -> None:
    # What an unfinished scan has learnt, written as it goes: one row per address, as its port
    # states are known ('ports') and when it is finished ('done'). A killed scan keeps them,
    # `show` renders them, `scan --resume` skips the addresses that are done. Deleted once the
    # whole report is stored in scans.report.
    db.execute("ALTER TABLE scans ADD COLUMN settings TEXT")  # JSON: how to rerun it (--resume)
    db.execute("ALTER TABLE scans ADD COLUMN header TEXT")  # JSON: the report's "scan" so far
    db.execute("ALTER TABLE scans ADD COLUMN addresses_planned INTEGER")
    db.execute(
        f"""
        CREATE TABLE scan_progress (
            scan_seq  INTEGER NOT NULL REFERENCES scans (seq) ON DELETE CASCADE,
            position  INTEGER NOT NULL,    -- the address's place in the report
            address   TEXT NOT NULL,
            stage     TEXT NOT NULL CHECK (stage IN ('ports', 'done')),
            target    TEXT NOT NULL,       -- the exposure-report/1 "targets" item, as known
            PRIMARY KEY (scan_seq, address){dialect_of(db).rowid_column}
        )
        """
    )


_SEVERITY_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


def worst_severity_of(findings: list[dict]) -> str | None:
    severities = [str(f["severity"]) for f in findings if f.get("severity") in _SEVERITY_RANK]
    return max(severities, key=_SEVERITY_RANK.__getitem__, default=None)


def _create_finding_alerts(db: sqlite3.Connection) -> None:
    # What `watch` told the user about each finding still open: when it was first seen and last
    # alerted, so reminders come every --remind interval across runs (cron's --once included)
    # and a first scan does not repeat what an earlier watch already said.
    db.execute(
        """
        CREATE TABLE finding_alerts (
            target          TEXT NOT NULL,     -- the target as the user typed it
            finding_key     TEXT NOT NULL,     -- JSON [id, port or null, protocol]
            finding_id      TEXT NOT NULL,
            severity        TEXT NOT NULL,
            first_seen_at   TEXT NOT NULL,     -- ISO-8601 UTC
            last_alerted_at TEXT,              -- NULL: never alerted (below the thresholds)
            PRIMARY KEY (target, finding_key)
        )
        """
    )


def _create_fleet_tables(db: sqlite3.Connection) -> None:
    # A fleet scan (scanner/fleet): its tasks, one per address (and port range) and vantage,
    # each stored by the worker that ran it. The primary key is what makes a redelivered task
    # store its address once: the first worker to finish it wins, later ones find it done.
    db.execute(
        """
        CREATE TABLE fleet_jobs (
            job         TEXT PRIMARY KEY,   -- the report id of the fleet scan
            status      TEXT NOT NULL CHECK (status IN ('running', 'finished', 'cancelled')),
            inputs      TEXT NOT NULL,      -- JSON list: the targets as the user typed them
            tasks       INTEGER NOT NULL,   -- how many tasks were sent
            alive_until DOUBLE PRECISION,   -- the coordinator's lease: epoch, database clock
            started_at  TEXT NOT NULL,
            finished_at TEXT
        )
        """
    )
    db.execute(
        """
        CREATE TABLE fleet_tasks (
            job         TEXT NOT NULL REFERENCES fleet_jobs (job) ON DELETE CASCADE,
            task        TEXT NOT NULL,      -- what the task covers: vantage, address, ports
            vantage     TEXT NOT NULL,      -- the vantage asked for ('' when any would do)
            address     TEXT NOT NULL,
            status      TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed')),
            worker      TEXT NOT NULL,      -- host:pid of the worker that holds or held it
            lease_until DOUBLE PRECISION,   -- while running: epoch seconds, database clock
            attempts    INTEGER NOT NULL,   -- how many times a worker started it
            seen_from   TEXT,               -- the vantage of the worker that finished it
            result      TEXT,               -- its exposure-report/1 JSON (one address)
            error       TEXT,               -- why it failed
            finished_at TEXT,
            PRIMARY KEY (job, task)
        )
        """
    )


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "scans: one row per scan, running -> complete", _create_scans),
    Migration(
        2, "scan_targets: addresses of each scan, for history by target", _create_scan_targets
    ),
    Migration(
        3, "scan_progress: results of each address as it completes, for killed scans",
        _create_scan_progress,
    ),
    Migration(4, "finding_alerts: open findings watch has alerted, for reminders",
              _create_finding_alerts),
    Migration(5, "fleet_jobs, fleet_tasks: fleet scans, one row per task", _create_fleet_tables),
)
LATEST_VERSION = MIGRATIONS[-1].version


def current_version(db: sqlite3.Connection) -> int:
    exists = db.execute(dialect_of(db).table_exists, ("schema_version",)).fetchone()
    if not exists:
        return 0
    (version,) = db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
    return int(version)


def pending(
    db: sqlite3.Connection, migrations: tuple[Migration, ...] = MIGRATIONS
) -> list[Migration]:
    version = current_version(db)
    return [migration for migration in migrations if migration.version > version]


def migrate(db: sqlite3.Connection, migrations: tuple[Migration, ...] = MIGRATIONS) -> int:
    """Apply every pending migration, each atomically; returns the version reached.

    The connection must be in autocommit mode (isolation_level=None). BEGIN IMMEDIATE takes the
    write lock before the version is read, so two processes opening a new database at once do
    not both apply migration 1: the second waits, then finds nothing pending. An up-to-date
    database is only read (no lock): `history` is not held up by a scan that is writing.
    """
    if not pending(db, migrations):
        return current_version(db)
    dialect = dialect_of(db)
    for migration in migrations:
        db.execute(dialect.begin_write)
        try:
            if dialect.schema_lock:
                db.execute(dialect.schema_lock)
            _ensure_version_table(db)
            if current_version(db) >= migration.version:
                db.execute("COMMIT")
                continue
            migration.apply(db)
            db.execute(
                "INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.description, _now()),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    return current_version(db)


def _ensure_version_table(db: sqlite3.Connection) -> None:
    db.execute(
        """
        CREATE TABLE IF NOT EXISTS schema_version (
            version     INTEGER PRIMARY KEY,
            description TEXT NOT NULL,
            applied_at  TEXT NOT NULL
        )
        """
    )


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
