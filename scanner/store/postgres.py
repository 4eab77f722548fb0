"""The scan history in PostgreSQL (`--db postgresql://USER@HOST/DB`): the same Store, shared.

Every query and migration of store.py and migrations.py runs here unchanged: this module only
opens the database, adapts psycopg to the sqlite3 calls the Store makes (`?` placeholders,
cursor.lastrowid) and says in plain words why a database cannot be used.

- Our tables live in their own schema, `exposure`, so a database that holds other things is
  never touched outside it. The schema is made by exposure and says so (its comment); a schema
  of that name without our comment is refused unchanged, like a file that is not ours.
- Many writers (every fleet worker, several coordinators) at once: each write is one short
  transaction; the schema is created and migrated under an advisory lock, so two processes
  opening a new database at the same moment do not both create it.
- Connections are in autocommit mode; Store._write opens and commits each transaction itself,
  exactly as it does on SQLite.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
import psycopg.errors

from scanner.store import migrations
from scanner.store.dialect import POSTGRES, Dialect
from scanner.store.errors import SchemaTooNew, StoreError
from scanner.store.location import redact
from scanner.store.store import NoDatabase, Store

SCHEMA = "exposure"
SCHEMA_COMMENT = "exposure: scan history (made by exposure; do not put other tables here)"
CONNECT_TIMEOUT_S = 10
ERROR_TEXT_CHARS = 300


def to_pyformat(sql: str) -> str:
    """sqlite3's `?` placeholders as psycopg's `%s` (and a literal % as %%), outside quotes."""
    out: list[str] = []
    quote: str | None = None
    for char in sql:
        if quote is not None:
            if char == quote:
                quote = None
        elif char in ("'", '"'):
            quote = char
        elif char == "?":
            out.append("%s")
            continue
        if char == "%":
            out.append("%%")
            continue
        out.append(char)
    return "".join(out)


class _Cursor:
    """What the Store reads of an sqlite3 cursor: rows, rowcount, lastrowid."""

    def __init__(self, cursor: psycopg.Cursor[Any], connection: psycopg.Connection[Any]) -> None:
        self._cursor = cursor
        self._connection = connection

    def fetchone(self) -> Any:
        return self._cursor.fetchone() if self._cursor.description else None

    def fetchall(self) -> list[Any]:
        return self._cursor.fetchall() if self._cursor.description else []

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int:
        # The identity value this session drew last: the row the INSERT before made.
        row = self._connection.execute("SELECT lastval()").fetchone()
        return int(row[0]) if row else 0


class PostgresConnection:
    """A psycopg connection that takes the SQL written for sqlite3."""

    dialect: Dialect = POSTGRES

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self._connection = connection

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> _Cursor:
        cursor = self._connection.execute(to_pyformat(sql), tuple(parameters))
        return _Cursor(cursor, self._connection)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._connection.cursor() as cursor:
            cursor.executemany(to_pyformat(sql), [tuple(row) for row in rows])

    def close(self) -> None:
        self._connection.close()


class PostgresStore(Store):
    """Open with PostgresStore.open_url() (or scanner.store.open_store)."""

    dialect = POSTGRES
    _errors = (psycopg.Error,)

    @classmethod
    def open_url(cls, url: str, *, create: bool = True) -> PostgresStore:
        """Connect, make (or recognise) our schema, migrate it; StoreError says why not.

        create=False: a database without our schema raises NoDatabase instead of getting one.
        """
        where = redact(url)
        try:
            connection = psycopg.connect(
                url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                application_name=f"exposure {socket.gethostname()}:{os.getpid()}",
            )
        except psycopg.Error as error:
            raise explain_postgres(where, error) from error
        db = PostgresConnection(connection)
        try:
            _prepare_schema(where, db, create)
            db.execute(f"SET search_path TO {SCHEMA}")
            _refuse_newer_schema(where, db)
            migrations.migrate(db)  # type: ignore[arg-type]
            store = cls(where, db, readonly=False)  # type: ignore[arg-type]
            store.mark_interrupted()
        except BaseException as error:
            connection.close()
            if isinstance(error, psycopg.Error):
                raise explain_postgres(where, error) from error
            raise
        return store

    def integrity_ok(self) -> bool:
        # PostgreSQL checks its pages itself (and says so in its log); a query that runs is ok.
        return bool(self._read(lambda db: db.execute("SELECT 1").fetchone()))

    def _explain(self, error: Exception) -> StoreError:
        return explain_postgres(str(self.path), error)


def _prepare_schema(where: str, db: PostgresConnection, create: bool) -> None:
    state = _schema_state(db)
    if state == "ours":
        return
    if state == "foreign":
        raise StoreError(
            where, f"has a schema named {SCHEMA!r} that exposure did not make",
            f"exposure keeps its tables in schema {SCHEMA!r}: use another database",
        )
    if not create:
        raise NoDatabase(where, "has no exposure history yet",
                         "run `exposure scan --db URL` to start one")
    db.execute("BEGIN")
    try:
        db.execute(POSTGRES.schema_lock or "")
        if _schema_state(db) == "missing":  # another process may have made it meanwhile
            db.execute(f"CREATE SCHEMA {SCHEMA}")
            db.execute(f"COMMENT ON SCHEMA {SCHEMA} IS '{SCHEMA_COMMENT}'")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    if _schema_state(db) != "ours":
        raise StoreError(where, f"has a schema named {SCHEMA!r} that exposure did not make",
                         f"exposure keeps its tables in schema {SCHEMA!r}: use another database")


def _schema_state(db: PostgresConnection) -> str:
    row = db.execute(
        "SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = ?",
        (SCHEMA,),
    ).fetchone()
    if row is None:
        return "missing"
    return "ours" if row[0] == SCHEMA_COMMENT else "foreign"


def _refuse_newer_schema(where: str, db: PostgresConnection) -> None:
    version = migrations.current_version(db)  # type: ignore[arg-type]
    if version > migrations.LATEST_VERSION:
        raise SchemaTooNew(
            where,
            f"was written by a newer exposure (schema {version}, this one knows "
            f"{migrations.LATEST_VERSION})",
            "upgrade exposure, or pass --db with another database",
        )


# (error class, reason, what to do): first match wins.
_ADVICE: tuple[tuple[type[Exception], str, str], ...] = (
    (psycopg.errors.InsufficientPrivilege, "refuses this user (permission denied)",
     f"grant the user CREATE on the database, or make schema {SCHEMA!r} owned by it"),
    (psycopg.errors.DiskFull, "cannot grow: the server's disk is full",
     "free some space on the database server; earlier scans are intact"),
    (psycopg.errors.ReadOnlySqlTransaction, "is read-only (a standby server?)",
     "point --db at the primary server"),
    (psycopg.errors.InvalidCatalogName, "does not exist on that server",
     "create it first (createdb), or fix the database name in the URL"),
    (psycopg.errors.InvalidPassword, "refuses the password",
     "check the user and password (URL, $PGPASSWORD or ~/.pgpass)"),
)


def explain_postgres(where: str, error: BaseException) -> StoreError:
    """A StoreError saying in plain words why the PostgreSQL database cannot be used."""
    if isinstance(error, StoreError):
        return error
    for kind, reason, advice in _ADVICE:
        if isinstance(error, kind):
            return StoreError(where, reason, advice)
    text = _first_line(error)
    if isinstance(error, psycopg.OperationalError):
        return StoreError(
            where, f"cannot be reached: {text}",
            "check the URL, that PostgreSQL runs there and that pg_hba.conf lets this user in",
        )
    return StoreError(where, f"failed: {text}")


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return (lines[0] if lines else type(error).__name__)[:ERROR_TEXT_CHARS]
