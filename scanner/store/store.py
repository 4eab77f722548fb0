"""The scan history: an SQLite database of every scan, safe for several writers at once.

- WAL journal: readers never block the writer, and a crash (kill -9, power loss) never leaves
  a half-written transaction visible: a scan row is either written or not.
- busy timeout: two scans finishing at the same moment wait for each other (up to
  BUSY_TIMEOUT_S) instead of failing with "database is locked"; every write is one short
  BEGIN IMMEDIATE transaction, so nobody holds the lock while scanning.
- a scan row is inserted as 'running' when the scan starts and completed at its end; a row
  whose process has died is marked 'interrupted' by the next process that opens the database.
- in between, each address's results are written as they complete (scan_progress), so an
  interrupted scan keeps what it learnt: `show` renders it, `scan --resume` finishes it.
- a file is opened for writing only once it is recognised as ours (ownership.py); a new
  database is made beside its path and linked into place complete, never seen half-made.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import os
import secrets
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from scanner import __version__
from scanner.core.report import SCHEMA_ID
from scanner.store import migrations
from scanner.store.dialect import SQLITE, Dialect
from scanner.store.errors import SchemaTooNew, StoreError, explain
from scanner.store.ownership import APPLICATION_ID, Ownership, adopt, recognise

BUSY_TIMEOUT_S = 15.0
STATUSES = ("running", "complete", "incomplete", "failed", "interrupted")
FINISHED_WITH_REPORT = ("complete", "incomplete")
RESUMABLE = ("interrupted", "failed")
Stage = Literal["ports", "done"]  # what scan_progress knows of an address: port states, or all
MIN_ID_PREFIX = 4  # `exposure show 3f2a` finds scan 3f2a9c01b7e4 when the prefix is unique
T = TypeVar("T")


class NoDatabase(StoreError):
    """Nothing stored yet: the database file does not exist."""


class ScanNotFound(StoreError):
    """A scan reference matches no stored scan (or several)."""


@dataclass(frozen=True)
class FindingAlert:
    """A finding still open on a target, and when watch last told the user about it."""

    target: str
    key: tuple[str, int | None, str]  # finding id, port, protocol
    severity: str
    first_seen_at: str
    last_alerted_at: str | None = None


@dataclass(frozen=True)
class ScanRow:
    """One stored scan, without its report (see Store.load_report)."""

    seq: int
    report_id: str | None
    status: str
    inputs: tuple[str, ...]
    ports: str | None
    started_at: str
    finished_at: str | None
    host: str
    pid: int
    tool_version: str
    worst_severity: str | None
    error: str | None
    addresses: tuple[str, ...] = ()
    open_ports: int = 0
    # How far an unfinished scan got (scan_progress): None when not known (older scans).
    addresses_planned: int | None = None
    addresses_done: int = 0
    ports_only: tuple[str, ...] = ()  # addresses with port states, not identified/checked yet

    @property
    def has_report(self) -> bool:
        return self.status in FINISHED_WITH_REPORT

    @property
    def has_partial(self) -> bool:
        """Unfinished, with some results stored: `show` gives the partial report."""
        return not self.has_report and bool(self.addresses_done or self.ports_only)

    @property
    def progress(self) -> str | None:
        """How far an unfinished scan got: '3 of 16 addresses; port states only for 10.0.0.4'."""
        if self.has_report or self.addresses_planned is None:
            return None
        text = f"{self.addresses_done} of {self.addresses_planned} addresses"
        if self.ports_only:
            text += f"; port states only for {', '.join(self.ports_only)}"
        return text

    @property
    def summary(self) -> str | None:
        """The status with the progress: 'interrupted after 3 of 16 addresses; ...'."""
        if self.progress is None:
            return None
        if self.status == "running":
            return f"still running: {self.progress} so far"
        return f"{self.status} after {self.progress}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "id": self.report_id,
            "status": self.status,
            "inputs": list(self.inputs),
            "ports": self.ports,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "worst_severity": self.worst_severity,
            "open_ports": self.open_ports,
            "addresses": list(self.addresses),
            "error": self.error,
            "tool_version": self.tool_version,
            "progress": None if self.progress is None else {
                "addresses_planned": self.addresses_planned,
                "addresses_done": self.addresses_done,
                "ports_only": list(self.ports_only),
                "summary": self.summary,
            },
        }


@dataclass(frozen=True)
class StoredTarget:
    """One address of an unfinished scan, as far as it got (a scan_progress row)."""

    position: int
    address: str
    stage: Stage
    target: dict[str, Any]  # the exposure-report/1 "targets" item


def _process_start(pid: int) -> str | None:
    """Start time of `pid` in clock ticks (field 22 of /proc/PID/stat): tells pid reuse apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(pid: int, started: str | None) -> bool:
    current = _process_start(pid)
    if current is None:
        if Path("/proc/self/stat").exists():
            return False  # Linux: no /proc entry means no such process
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return started is None or current == started


class Store:
    """Open with Store.open(); use as a context manager or call close().

    The SQLite history. PostgresStore (postgres.py) is the same store on PostgreSQL: every query
    here is shared; what differs is how the database is opened, its Dialect and its errors.
    """

    dialect: Dialect = SQLITE
    _errors: tuple[type[Exception], ...] = (sqlite3.Error,)

    def __init__(
        self, path: Path | str, db: sqlite3.Connection, readonly: bool,
        why_readonly: StoreError | None = None,
    ) -> None:
        self.path = path
        self._db = db
        self.readonly = readonly
        # Why a database opened for reading only cannot be written (full disk, read-only mount)
        self.why_readonly = why_readonly

    # --- opening ---------------------------------------------------------------------------

    @classmethod
    def open(
        cls, path: Path, *, create: bool = True, busy_timeout: float = BUSY_TIMEOUT_S
    ) -> Store:
        """Open (and create or upgrade) the database; StoreError says why when it cannot.

        create=False: a missing file raises NoDatabase instead of being created (read commands
        never leave an empty database behind). A database that cannot be written (read-only
        file system) is still opened for reading when it is up to date.
        """
        path = Path(path).expanduser()
        ownership = recognise(path)  # reads only: nothing is changed before it is known ours
        if ownership is Ownership.MISSING:
            if not create:
                raise NoDatabase(path, "does not exist yet", "run `exposure scan` to start one")
            _create_database(path)
            ownership = recognise(path)  # ours, or one another exposure linked there first
        try:
            db = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
        except (sqlite3.Error, OSError) as error:
            raise explain(path, error) from error
        try:
            store = cls._prepare(path, db, busy_timeout, ownership)
        except BaseException as error:
            db.close()
            if isinstance(error, sqlite3.Error | OSError):
                problem = explain(path, error)
                readonly = _open_readonly(path, busy_timeout, error, problem)
                if readonly is not None:
                    return readonly
                raise problem from error
            raise
        return store

    @classmethod
    def _prepare(
        cls, path: Path, db: sqlite3.Connection, busy_timeout: float, ownership: Ownership
    ) -> Store:
        db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        _retry_busy(lambda: db.execute("PRAGMA journal_mode = WAL").fetchone(), busy_timeout)
        # NORMAL is safe in WAL mode: a crash can lose the last commit, never corrupt the file.
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA foreign_keys = ON")
        _refuse_newer_schema(path, db)
        if ownership is Ownership.EARLIER_RELEASE:
            _in_transaction(db, adopt)
        migrations.migrate(db)
        store = cls(path, db, readonly=False)
        store.mark_interrupted()
        return store

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writing ---------------------------------------------------------------------------

    def begin_scan(
        self, inputs: Sequence[str], ports: str | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> int:
        """Insert a 'running' row for a scan about to start; returns its number (seq).

        `settings`: what `scan --resume` needs to run the rest of it (JSON-able).
        """
        row = (
            _inputs_json(inputs), ports, _now(), socket.gethostname(), os.getpid(),
            _process_start(os.getpid()), __version__,
            None if settings is None else json.dumps(settings, ensure_ascii=True),
        )

        def insert(db: sqlite3.Connection) -> int:
            cursor = db.execute(
                "INSERT INTO scans (status, inputs, ports, started_at, host, pid, pid_start,"
                " tool_version, settings) VALUES ('running', ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
            return int(cursor.lastrowid or 0)

        return self._write(insert)

    def record_start(self, seq: int, header: Mapping[str, Any], addresses_planned: int) -> None:
        """The report's "scan" object as the scan starts, and how many addresses it covers."""
        values = (json.dumps(header, ensure_ascii=True), addresses_planned, header.get("id"), seq)
        self._write(lambda db: db.execute(
            "UPDATE scans SET header = ?, addresses_planned = ?,"
            " report_id = COALESCE(report_id, ?) WHERE seq = ?", values))

    def save_progress(
        self, seq: int, position: int, target: Mapping[str, Any], stage: Stage,
        header: Mapping[str, Any] | None = None,
    ) -> None:
        """What one address has given so far (stage 'ports': port states; 'done': all of it),
        in one transaction with the report header (errors, duration) as it now stands.

        A 'ports' row never replaces a 'done' one: the address is finished.
        """
        address = str(target.get("address", ""))
        text = json.dumps(target, ensure_ascii=True)

        def upsert(db: sqlite3.Connection) -> None:
            cursor = db.execute(
                "INSERT INTO scan_progress (scan_seq, position, address, stage, target)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (scan_seq, address) DO UPDATE SET"
                " position = excluded.position, stage = excluded.stage, target = excluded.target"
                " WHERE scan_progress.stage = 'ports' OR excluded.stage = 'done'",
                (seq, position, address, stage, text),
            )
            if cursor.rowcount:
                migrations.insert_target_rows(db, seq, {"targets": [target]})
            if header is not None:
                db.execute("UPDATE scans SET header = ? WHERE seq = ?",
                           (json.dumps(header, ensure_ascii=True), seq))

        self._write(upsert)

    def resume_scan(self, seq: int) -> None:
        """An interrupted or failed scan is running again, in this process."""
        values = (socket.gethostname(), os.getpid(), _process_start(os.getpid()), seq)

        def claim(db: sqlite3.Connection) -> int:
            return db.execute(
                "UPDATE scans SET status = 'running', host = ?, pid = ?, pid_start = ?,"
                " finished_at = NULL, error = NULL WHERE seq = ? AND status IN"
                f" ({', '.join(repr(status) for status in RESUMABLE)})", values).rowcount

        if not self._write(claim):
            raise ScanNotFound(self.path, f"has no interrupted scan #{seq} to resume",
                               "`exposure history` shows which scans were interrupted")

    def finish_scan(self, seq: int, report: dict[str, Any]) -> None:
        """Store the finished scan's report (exposure-report/1 dict) and mark the row done."""
        scan = report.get("scan", {})
        status = "complete" if scan.get("complete", True) else "incomplete"
        findings = [f for target in report.get("targets", []) for f in target.get("findings", [])]
        values = (
            scan.get("id"), status, scan.get("finished_at") or _now(),
            migrations.worst_severity_of(findings), _errors_text(scan.get("errors")),
            json.dumps(report, ensure_ascii=True), seq,
        )

        def update(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE scans SET report_id = ?, status = ?, finished_at = ?, worst_severity = ?,"
                " error = ?, report = ? WHERE seq = ?",
                values,
            )
            # The report now holds every address: the partial rows have served.
            db.execute("DELETE FROM scan_progress WHERE scan_seq = ?", (seq,))
            db.execute("DELETE FROM scan_targets WHERE scan_seq = ?", (seq,))
            migrations.insert_target_rows(db, seq, report)

        self._write(update)

    def end_scan_without_report(
        self, seq: int, status: str, error: str, header: Mapping[str, Any] | None = None
    ) -> None:
        """The scan failed or was interrupted before it produced a report; `header`: the
        report's "scan" object as it stood then (duration, errors), if the scan had begun."""
        if status not in ("failed", "interrupted"):
            raise ValueError(f"not an ending without report: {status}")
        text = None if header is None else json.dumps(header, ensure_ascii=True)

        def update(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE scans SET status = ?, finished_at = ?, error = ?,"
                " header = COALESCE(?, header) WHERE seq = ? AND status = 'running'",
                (status, _now(), error[:500], text, seq),
            )

        self._write(update)

    def forget_scan(self, seq: int) -> None:
        """Remove a 'running' row of a scan that never started (its input was refused)."""
        self._write(lambda db: db.execute(
            "DELETE FROM scans WHERE seq = ? AND status = 'running'", (seq,)))

    def save_report(
        self, report: dict[str, Any], inputs: Sequence[str], ports: str | None = None
    ) -> int:
        """begin_scan + finish_scan for a report made elsewhere (imports, tests)."""
        seq = self.begin_scan(inputs, ports)
        self.finish_scan(seq, report)
        return seq

    def mark_interrupted(self) -> int:
        """Mark 'running' rows of dead processes on this machine as interrupted; how many."""
        if self.readonly:
            return 0
        host = socket.gethostname()
        rows = self._db.execute(
            "SELECT seq, pid, pid_start FROM scans WHERE status = 'running' AND host = ?", (host,)
        ).fetchall()
        dead = [seq for seq, pid, started in rows if not _alive(pid, started)]
        for seq in dead:
            self.end_scan_without_report(
                seq, "interrupted", "the scanning process ended before the scan finished"
            )
        return len(dead)

    def save_finding_alerts(
        self, targets: Sequence[str], alerts: Sequence[FindingAlert]
    ) -> None:
        """Replace what is kept for `targets` by `alerts` (the findings open there now)."""

        def replace_rows(db: sqlite3.Connection) -> None:
            for target in dict.fromkeys(targets):
                db.execute("DELETE FROM finding_alerts WHERE target = ?", (target,))
            db.executemany(
                "INSERT INTO finding_alerts (target, finding_key, finding_id, severity,"
                " first_seen_at, last_alerted_at) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (target, finding_key) DO UPDATE SET finding_id = excluded.finding_id,"
                " severity = excluded.severity, first_seen_at = excluded.first_seen_at,"
                " last_alerted_at = excluded.last_alerted_at",
                [(a.target, json.dumps(list(a.key)), a.key[0], a.severity, a.first_seen_at,
                  a.last_alerted_at) for a in alerts],
            )

        self._write(replace_rows)

    # --- reading ---------------------------------------------------------------------------

    def finding_alerts(self, targets: Sequence[str]) -> list[FindingAlert]:
        """What is kept about the open findings of these targets."""
        marks = ", ".join("?" for _ in targets) or "NULL"
        rows = self._read(lambda db: db.execute(
            "SELECT target, finding_key, severity, first_seen_at, last_alerted_at"
            f" FROM finding_alerts WHERE target IN ({marks})", list(targets)).fetchall())
        found = []
        for target, key, severity, first_seen, last_alerted in rows:
            try:
                finding_id, port, protocol = json.loads(key)
            except (ValueError, TypeError):
                continue
            found.append(FindingAlert(target, (str(finding_id), port if isinstance(port, int)
                                               else None, str(protocol)),
                                      severity, first_seen, last_alerted))
        return found

    def list_scans(self, target: str | None = None, limit: int | None = 50) -> list[ScanRow]:
        """Newest first; `target` matches what the user typed or an address scanned."""
        query = f"SELECT {_ROW_COLUMNS} FROM scans"
        args: list[Any] = []
        if target is not None:
            query += f" WHERE {self._target_match()}"
            args += [target, target, target]
        query += " ORDER BY seq DESC"
        if limit is not None:
            query += " LIMIT ?"
            args.append(limit)
        return self._read(lambda db: [self._row(db, r) for r in db.execute(query, args)])

    def get_scan(self, ref: str) -> ScanRow:
        """A scan by number (12, #12) or by report id or a unique prefix of it (>= 4 chars)."""
        text = ref.strip().removeprefix("#")
        if text.isdigit():
            rows = self._select("WHERE seq = ?", [int(text)])
        elif len(text) >= MIN_ID_PREFIX:
            rows = self._select("WHERE report_id LIKE ? ESCAPE '\\'", [_like_prefix(text)])
        else:
            rows = []
        if len(rows) != 1:
            why = "matches several scans" if rows else "matches no stored scan"
            raise ScanNotFound(
                self.path, f"has no single scan {ref!r}: it {why}",
                "`exposure history` lists them (use the number in the first column)",
            )
        return rows[0]

    def load_report(self, row: ScanRow) -> dict[str, Any]:
        """The report of a finished scan (see partial_report for the others)."""
        if not row.has_report:
            raise ScanNotFound(
                self.path, f"has no report for scan #{row.seq}: it is {row.status}",
                row.error or "",
            )
        (text,) = self._read(
            lambda db: db.execute("SELECT report FROM scans WHERE seq = ?", (row.seq,)).fetchone()
        )
        return json.loads(text)

    def progress(self, seq: int) -> list[StoredTarget]:
        """The addresses an unfinished scan has stored, in report order."""
        rows = self._read(lambda db: db.execute(
            "SELECT position, address, stage, target FROM scan_progress WHERE scan_seq = ?"
            " ORDER BY position, rowid", (seq,)).fetchall())
        return [StoredTarget(position, address, stage, json.loads(target))
                for position, address, stage, target in rows]

    def load_header(self, seq: int) -> dict[str, Any] | None:
        """The report's "scan" object as last stored for an unfinished scan."""
        (text,) = self._read(lambda db: db.execute(
            "SELECT header FROM scans WHERE seq = ?", (seq,)).fetchone() or (None,))
        return None if text is None else json.loads(text)

    def load_settings(self, seq: int) -> dict[str, Any] | None:
        """What the scan was started with (begin_scan's settings); None for older scans."""
        (text,) = self._read(lambda db: db.execute(
            "SELECT settings FROM scans WHERE seq = ?", (seq,)).fetchone() or (None,))
        return None if text is None else json.loads(text)

    def partial_report(self, row: ScanRow) -> dict[str, Any]:
        """An unfinished scan's report, made of the addresses it stored: marked incomplete, its
        first error saying how far it got ("interrupted after 3 of 16 addresses; ...")."""
        header = self.load_header(row.seq)
        if header is None:
            raise ScanNotFound(
                self.path, f"has no report for scan #{row.seq}: it is {row.status}",
                row.error or "",
            )
        notes = [note for note in (row.summary, row.error) if note]
        return {
            "schema": SCHEMA_ID,
            "tool": {"name": "exposure", "version": row.tool_version},
            "scan": {
                **header,
                "finished_at": row.finished_at or header.get("finished_at") or _now(),
                "complete": False,
                "errors": [*notes, *header.get("errors", [])],
            },
            "targets": [stored.target for stored in self.progress(row.seq)],
        }

    def latest_complete(
        self,
        *,
        inputs: Sequence[str] | None = None,
        target: str | None = None,
        before: int | None = None,
    ) -> ScanRow | None:
        """The newest complete scan of exactly these inputs, or covering `target`."""
        clauses: list[str] = ["status = 'complete'"]
        args: list[str | int] = []
        if inputs is not None:
            clauses.append("inputs = ?")
            args.append(_inputs_json(inputs))
        if target is not None:
            clauses.append(self._target_match())
            args += [target, target, target]
        if before is not None:
            clauses.append("seq < ?")
            args.append(before)
        rows = self._select("WHERE " + " AND ".join(clauses) + " ORDER BY seq DESC LIMIT 1", args)
        return rows[0] if rows else None

    def schema_version(self) -> int:
        return self._read(migrations.current_version)

    def integrity_ok(self) -> bool:
        return self._read(lambda db: db.execute("PRAGMA integrity_check").fetchone()[0] == "ok")

    # --- internals -------------------------------------------------------------------------

    def _select(self, where: str, args: Sequence[Any]) -> list[ScanRow]:
        query = f"SELECT {_ROW_COLUMNS} FROM scans {where}"
        return self._read(lambda db: [self._row(db, r) for r in db.execute(query, list(args))])

    @staticmethod
    def _row(db: sqlite3.Connection, values: Sequence[Any]) -> ScanRow:
        targets = db.execute(
            "SELECT address, open_ports FROM scan_targets WHERE scan_seq = ? ORDER BY rowid",
            (values[0],),
        ).fetchall()
        stages = db.execute(
            "SELECT address, stage FROM scan_progress WHERE scan_seq = ? ORDER BY position, rowid",
            (values[0],),
        ).fetchall()
        return ScanRow(
            seq=values[0], report_id=values[1], status=values[2],
            inputs=tuple(json.loads(values[3])), ports=values[4], started_at=values[5],
            finished_at=values[6], host=values[7], pid=values[8], tool_version=values[9],
            worst_severity=values[10], error=values[11],
            addresses=tuple(address for address, _ in targets),
            open_ports=sum(count for _, count in targets),
            addresses_planned=values[12],
            addresses_done=sum(1 for _, stage in stages if stage == "done"),
            ports_only=tuple(address for address, stage in stages if stage == "ports"),
        )

    def _target_match(self) -> str:
        return _TARGET_MATCH.format(
            inputs=self.dialect.json_list_contains.format(column="scans.inputs"))

    def _explain(self, error: Exception) -> StoreError:
        return explain(Path(self.path), error)

    def _read(self, action: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return action(self._db)
        except self._errors as error:
            raise self._explain(error) from error

    def _write(self, action: Callable[[sqlite3.Connection], T]) -> T:
        if self.readonly:
            raise self.why_readonly or StoreError(
                self.path, "is read-only", "pass --db with a writable path"
            )
        try:
            self._db.execute(self.dialect.begin_write)
            try:
                result = action(self._db)
                self._db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(*self._errors):
                    self._db.execute("ROLLBACK")
                raise
        except self._errors as error:
            raise self._explain(error) from error
        return result


_ROW_COLUMNS = (
    "seq, report_id, status, inputs, ports, started_at, finished_at, host, pid, tool_version,"
    " worst_severity, error, addresses_planned"
)
_TARGET_MATCH = (
    "(EXISTS (SELECT 1 FROM scan_targets t WHERE t.scan_seq = scans.seq"
    " AND (t.input = ? OR t.address = ?))"
    " OR {inputs})"
)


def _create_database(path: Path) -> None:
    """A new database at `path`, complete (our application id, every migration) before any
    other process can see it: made beside it under a temporary name, then linked into place.

    The directory is created 0700 and the file 0600: reports describe a home. When another
    process links its new database first, that one is used (both are empty and equal).
    """
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as error:
        raise explain(path, error) from error
    temporary = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.new")
    try:
        os.close(os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        db = sqlite3.connect(temporary, isolation_level=None)
        try:
            db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            db.execute("PRAGMA journal_mode = WAL")
            migrations.migrate(db)
        finally:
            db.close()  # the last connection: its WAL is checkpointed into the file, and removed
        _link_into_place(temporary, path)
    except (OSError, sqlite3.Error) as error:
        raise explain(path, error) from error
    finally:
        for leftover in (temporary, Path(f"{temporary}-wal"), Path(f"{temporary}-shm")):
            with contextlib.suppress(OSError):
                leftover.unlink()


def _link_into_place(temporary: Path, path: Path) -> None:
    try:
        os.link(temporary, path)
    except FileExistsError:
        return  # another exposure made it a moment ago: recognise() checks it on open
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        # No hard links on this file system (FAT, some network mounts): a rename, which
        # could only replace a database another exposure made in the same instant.
        if not path.exists():
            os.rename(temporary, path)


def _in_transaction(db: sqlite3.Connection, action: Callable[[sqlite3.Connection], None]) -> None:
    db.execute("BEGIN IMMEDIATE")
    try:
        action(db)
        db.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        raise


def _open_readonly(
    path: Path, busy_timeout: float, cause: BaseException, problem: StoreError
) -> Store | None:
    """A read-only Store when `cause` says the file cannot be written but can be read.

    mode=ro first (sees the newest commits, needs the -shm file); else immutable=1, which reads
    the main file alone: right on a read-only or full file system where nobody can write, though
    scans still in a WAL file left by a killed writer are not seen then.
    """
    name = getattr(cause, "sqlite_errorname", "") or ""
    unwritable = name.startswith(_UNWRITABLE) or (
        isinstance(cause, OSError) and cause.errno in (errno.EROFS, errno.EACCES, errno.ENOSPC)
    )
    if not unwritable:
        return None
    for parameters in ("mode=ro", "immutable=1"):
        try:
            db = sqlite3.connect(
                f"{path.absolute().as_uri()}?{parameters}", uri=True, timeout=busy_timeout,
                isolation_level=None,
            )
        except sqlite3.Error:
            continue
        try:
            version = migrations.current_version(db)
        except sqlite3.Error:
            db.close()
            continue
        if version == migrations.LATEST_VERSION:
            return Store(path, db, readonly=True, why_readonly=problem)
        db.close()
        return None
    return None


_UNWRITABLE = ("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_FULL", "SQLITE_IOERR")


def _refuse_newer_schema(path: Path, db: sqlite3.Connection) -> None:
    version = migrations.current_version(db)
    if version > migrations.LATEST_VERSION:
        raise SchemaTooNew(
            path,
            f"was written by a newer exposure (schema {version}, this one knows "
            f"{migrations.LATEST_VERSION})",
            "upgrade exposure, or pass --db with another path",
        )


def _retry_busy(action: Callable[[], T], timeout: float) -> T:
    # Switching to WAL takes an exclusive lock and may report BUSY without waiting on the busy
    # handler (two processes creating the database at the same moment): retry until timeout.
    deadline = time.monotonic() + timeout
    while True:
        try:
            return action()
        except sqlite3.OperationalError as error:
            busy = (getattr(error, "sqlite_errorname", "") or "").startswith("SQLITE_BUSY")
            if not busy or time.monotonic() >= deadline:
                raise
            time.sleep(0.02)


def _inputs_json(inputs: Sequence[str]) -> str:
    # Sorted and deduplicated: "scan a b" and "scan b a" are the same watch target.
    return json.dumps(sorted(set(inputs)), ensure_ascii=True)


def _errors_text(errors: Any) -> str | None:
    if not errors:
        return None
    return "; ".join(str(error) for error in errors)[:500]


def _like_prefix(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@contextlib.contextmanager
def opened(path: Path, *, create: bool = True) -> Iterator[Store]:
    store = Store.open(path, create=create)
    try:
        yield store
    finally:
        store.close()
