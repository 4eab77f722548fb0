"""Is this file an exposure history? Decided before SQLite may change a single byte of it.

Opening a file with SQLite read-write is not harmless: switching it to WAL rewrites its header,
and a connection creates `-wal` and `-shm` files next to it. So a file is only opened that way
once it is recognised as ours:

- by its header, read as plain bytes: a database exposure creates carries APPLICATION_ID
  (SQLite's `PRAGMA application_id`, bytes 68-71 of the file);
- a database of an earlier release (before the id existed: id 0) by its schema, read through an
  `immutable=1` connection, which takes no lock and creates no file. Such a database is adopted
  (the id is set) when it is opened for writing.

Anything else (another program's SQLite file, a text file, a directory, an empty file) raises
NotOurDatabase and is left byte-for-byte as it was.
"""

from __future__ import annotations

import enum
import sqlite3
import stat
from pathlib import Path

from scanner.store.errors import NotOurDatabase, explain

# "EXPO": what `PRAGMA application_id` holds in every database exposure creates.
APPLICATION_ID = 0x4558504F
SQLITE_MAGIC = b"SQLite format 3\x00"
HEADER_BYTES = 100
_APPLICATION_ID_OFFSET = 68

# The schema of the first release (migration 1 of migrations.py): what recognises a database an
# earlier exposure made, which has no application id.
_LEGACY_TABLES = {
    "schema_version": {"version", "description", "applied_at"},
    "scans": {
        "seq", "report_id", "status", "inputs", "ports", "started_at", "finished_at", "host",
        "pid", "pid_start", "tool_version", "worst_severity", "error", "report",
    },
}


class Ownership(enum.Enum):
    MISSING = "missing"  # nothing at the path: exposure may create it
    OURS = "ours"  # carries our application id
    EARLIER_RELEASE = "earlier release"  # our schema, no id yet: adopted on the first write


def recognise(path: Path) -> Ownership:
    """Whose file is at `path`; raises NotOurDatabase for anything exposure did not create.

    Reads only: never opens the file for writing, never lets SQLite create a file beside it.
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        return Ownership.MISSING
    except OSError as error:
        raise explain(path, error) from error
    if stat.S_ISDIR(info.st_mode):
        raise NotOurDatabase(
            path, "is a directory, not a database file",
            f"pass --db with a file path, such as {path / 'exposure.db'}",
        )
    if not stat.S_ISREG(info.st_mode):
        raise NotOurDatabase(path, "is not a regular file", "pass --db with a database file path")
    header = _read_header(path)
    if not header:
        raise NotOurDatabase(
            path, "is an empty file, not a database exposure created",
            "exposure creates its own file: remove the empty one or pass --db with a new path",
        )
    if not header.startswith(SQLITE_MAGIC) or len(header) < HEADER_BYTES:
        raise NotOurDatabase(
            path, "is not an exposure history database (not an SQLite file: another kind of "
            "file, or a damaged one)",
            "pass --db with another path; if it was a history, `sqlite3 FILE .recover` may "
            "save earlier scans (exposure never changes it)",
        )
    application_id = int.from_bytes(
        header[_APPLICATION_ID_OFFSET:_APPLICATION_ID_OFFSET + 4], "big"
    )
    if application_id == APPLICATION_ID:
        return Ownership.OURS
    if application_id == 0 and _has_earlier_release_schema(path):
        return Ownership.EARLIER_RELEASE
    whose = (f"SQLite application id {application_id:#010x}" if application_id
             else "its tables are not exposure's")
    raise NotOurDatabase(
        path, f"is an SQLite database of another program ({whose})",
        "pass --db with another path (exposure leaves this file untouched)",
    )


def _read_header(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            return handle.read(HEADER_BYTES)
    except OSError as error:
        raise explain(path, error) from error


def _has_earlier_release_schema(path: Path) -> bool:
    """Our tables, seen without a lock or a new file.

    immutable=1 reads the main file only. A database in WAL mode whose process was killed
    may still hold its tables in the -wal file only; when -wal and -shm are both there, a
    read-only connection reads them without creating anything new.
    """
    if _tables_match(f"{path.absolute().as_uri()}?immutable=1"):
        return True
    companions = (Path(f"{path}-wal"), Path(f"{path}-shm"))
    if all(companion.is_file() for companion in companions):
        return _tables_match(f"{path.absolute().as_uri()}?mode=ro")
    return False


def _tables_match(uri: str) -> bool:
    try:
        db = sqlite3.connect(uri, uri=True, isolation_level=None)
    except sqlite3.Error:
        return False
    try:
        for table, wanted in _LEGACY_TABLES.items():
            # PRAGMA table_info takes no argument binding; the names are our own constants.
            columns = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
            if not wanted <= columns:
                return False
        return True
    except sqlite3.Error:
        return False
    finally:
        db.close()


def adopt(db: sqlite3.Connection) -> None:
    """Mark a database of an earlier release (recognised by its schema) as ours from now on."""
    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")

