"""Why the history database cannot be used, in one line a user can act on.

StoreError is a ScanFailed, so the CLI maps it to exit code 3 with no traceback.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

from scanner.errors import ScanFailed

# sqlite error name prefix -> (short reason, what to do). Extended codes (SQLITE_IOERR_WRITE,
# SQLITE_READONLY_DBMOVED ...) match on their prefix. Ordered: first match wins.
_ADVICE: tuple[tuple[str, str, str], ...] = (
    ("SQLITE_NOTADB", "is not a database (corrupted, or another kind of file)",
     "move it aside and a new one is made on the next scan; `sqlite3 FILE .recover` may save "
     "earlier scans"),
    ("SQLITE_CORRUPT", "is corrupted (database disk image is malformed)",
     "copy it aside and try `sqlite3 FILE .recover > dump.sql` (exposure never repairs or "
     "deletes it)"),
    ("SQLITE_FULL", "cannot grow: the disk is full",
     "free some space; earlier scans are intact"),
    ("SQLITE_READONLY", "is read-only",
     "make the file and its directory writable, or pass --db with a writable path"),
    ("SQLITE_CANTOPEN", "cannot be opened",
     "check that its directory exists and is writable, or pass --db with another path"),
    ("SQLITE_BUSY", "is locked by another process for too long",
     "another exposure process may be stuck; try again"),
    ("SQLITE_LOCKED", "is locked by another process for too long",
     "another exposure process may be stuck; try again"),
    ("SQLITE_PERM", "is not accessible (permission denied)",
     "check the file's permissions, or pass --db with another path"),
    ("SQLITE_IOERR", "could not be read or written (I/O error: a full disk or failing storage)",
     "check free space and the disk; earlier scans are intact"),
)
_OS_ERRORS = {
    errno.ENOSPC: ("cannot grow: the disk is full", "free some space; earlier scans are intact"),
    errno.EROFS: ("is on a read-only file system", "pass --db with a writable path"),
    errno.EACCES: ("is not accessible (permission denied)", "check the permissions or --db"),
}


class StoreError(ScanFailed):
    """The history database cannot be used; the message says why and what to do."""

    def __init__(self, path: Path | str, reason: str, advice: str = "") -> None:
        self.path = path
        self.reason = reason
        self.advice = advice.replace("FILE", str(path))
        message = f"history database {path} {reason}"
        super().__init__(f"{message}: {self.advice}" if self.advice else message)


class SchemaTooNew(StoreError):
    """The database was written by a newer exposure whose schema this version does not know."""


LOW_SPACE_BYTES = 256 * 1024


def explain(path: Path, error: BaseException) -> StoreError:
    """A StoreError saying in plain words why `error` happened on the database at `path`."""
    if isinstance(error, StoreError):
        return error
    # SQLite reports a full disk or a read-only mount in several ways (SQLITE_FULL, an I/O error
    # while growing the WAL or -shm file, "unable to open" for the -shm file): the file system
    # itself tells which one it was.
    observed = file_system_state(path)
    if observed is not None and isinstance(error, sqlite3.Error | OSError):
        return StoreError(path, *observed)
    if isinstance(error, sqlite3.Error):
        name = getattr(error, "sqlite_errorname", "") or ""
        text = str(error)
        for prefix, reason, advice in _ADVICE:
            if name.startswith(prefix):
                return StoreError(path, reason, advice)
        for prefix, reason, advice in _ADVICE:  # older sqlite3 modules: only the message
            if _message_matches(prefix, text):
                return StoreError(path, reason, advice)
        return StoreError(path, f"failed: {text}")
    if isinstance(error, OSError) and error.errno in _OS_ERRORS:
        reason, advice = _OS_ERRORS[error.errno]
        return StoreError(path, reason, advice)
    return StoreError(path, f"failed: {error}")


def file_system_state(path: Path) -> tuple[str, str] | None:
    """(reason, advice) when the file system holding `path` is read-only or (almost) full."""
    try:
        info = os.statvfs(path.parent)
    except OSError:
        return None
    if info.f_flag & os.ST_RDONLY:
        return _OS_ERRORS[errno.EROFS]
    if info.f_bavail * info.f_frsize < LOW_SPACE_BYTES:
        return _OS_ERRORS[errno.ENOSPC]
    return None


_MESSAGES = {
    "SQLITE_NOTADB": "file is not a database",
    "SQLITE_CORRUPT": "malformed",
    "SQLITE_FULL": "disk is full",
    "SQLITE_READONLY": "readonly",
    "SQLITE_CANTOPEN": "unable to open",
    "SQLITE_BUSY": "database is locked",
    "SQLITE_IOERR": "disk i/o error",
}


def _message_matches(prefix: str, text: str) -> bool:
    needle = _MESSAGES.get(prefix)
    return needle is not None and needle in text.lower()
