"""Why the history database cannot be used, in one line a user can act on.

StoreError is a ScanFailed, so the CLI maps it to exit code 3 with no traceback. NotOurDatabase
is also a BadInput (exit code 2): the path names something exposure must not touch.

The reason given is what the file system says, not a guess from the SQLite error code alone:
SQLite reports a full disk, a read-only file and a read-only directory in several overlapping
ways (SQLITE_FULL, SQLITE_IOERR, SQLITE_READONLY, SQLITE_CANTOPEN), so the file and its
directory are looked at to tell which one it was.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

from scanner.errors import BadInput, ScanFailed

# sqlite error name prefix -> (short reason, what to do), for when the file system shows nothing
# wrong. Extended codes (SQLITE_IOERR_WRITE, SQLITE_READONLY_DBMOVED ...) match on their prefix.
# Ordered: first match wins.
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
    ("SQLITE_BUSY", "is locked by another process", "try again when it is done"),
    ("SQLITE_LOCKED", "is locked by another process", "try again when it is done"),
    ("SQLITE_PERM", "is not accessible (permission denied)",
     "check the file's permissions, or pass --db with another path"),
    ("SQLITE_IOERR", "could not be read or written (I/O error: failing storage?)",
     "check the disk; earlier scans are intact"),
)
_DISK_FULL = ("cannot grow: the disk is full", "free some space; earlier scans are intact")
_READ_ONLY_FS = ("is on a read-only file system", "pass --db with a writable path")
_OS_ERRORS = {
    errno.ENOSPC: _DISK_FULL,
    errno.EDQUOT: ("cannot grow: this user's disk quota is used up",
                   "free some space; earlier scans are intact"),
    errno.EROFS: _READ_ONLY_FS,
    errno.EISDIR: ("is a directory, not a database file", "pass --db with a file path"),
    errno.ENOTDIR: ("cannot be reached: a part of its path is a file, not a directory",
                    "pass --db with another path"),
    errno.ENAMETOOLONG: ("has a name too long for the file system",
                         "pass --db with a shorter path"),
    errno.ELOOP: ("cannot be reached: too many symbolic links", "pass --db with another path"),
}
# SQLite names that mean "could not write or create" rather than "the content is bad": the file
# system says which it was (full, read-only, no permission).
_WRITE_ERRORS = ("SQLITE_FULL", "SQLITE_IOERR", "SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM")


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


class NotOurDatabase(StoreError, BadInput):
    """The path is not a history exposure created: it is refused, never changed (exit code 2)."""


LOW_SPACE_BYTES = 256 * 1024


def explain(path: Path, error: BaseException) -> StoreError:
    """A StoreError saying in plain words why `error` happened on the database at `path`."""
    if isinstance(error, StoreError):
        return error
    if isinstance(error, OSError):
        return StoreError(path, *_os_error(path, error))
    if not isinstance(error, sqlite3.Error):
        return StoreError(path, f"failed: {error}")
    name = getattr(error, "sqlite_errorname", "") or ""
    text = str(error)
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or (
        not name and "database is locked" in text.lower()
    ):
        return StoreError(path, *_locked(path))
    if name.startswith(_WRITE_ERRORS) or (not name and _write_error_message(text)):
        observed = file_system_state(path) or access_problem(path)
        if observed is not None:
            return StoreError(path, *observed)
    for prefix, reason, advice in _ADVICE:
        if name.startswith(prefix):
            return StoreError(path, reason, advice)
    for prefix, reason, advice in _ADVICE:  # older sqlite3 modules: only the message
        if _message_matches(prefix, text):
            return StoreError(path, reason, advice)
    return StoreError(path, f"failed: {text}")


def _os_error(path: Path, error: OSError) -> tuple[str, str]:
    if error.errno in (errno.EACCES, errno.EPERM):
        return access_problem(path) or (
            "is not accessible (permission denied)", "check the permissions or pass --db"
        )
    if error.errno in _OS_ERRORS:
        return _OS_ERRORS[error.errno]
    if error.errno == errno.ENOENT:
        return _cannot_create_here(path)
    return file_system_state(path) or (f"failed: {error.strerror or error}", "")


def _cannot_create_here(path: Path) -> tuple[str, str]:
    """ENOENT on creating a file in a directory that exists: /proc, /sys and their kind."""
    parent = _existing_parent(path)
    if parent != path.parent:
        return f"cannot be created: {parent / path.relative_to(parent).parts[0]} does not exist", (
            "create the directory, or pass --db with another path"
        )
    kind = mounted_file_system_type(parent)
    what = f" (a {kind} file system)" if kind else ""
    return (f"cannot be created: {parent} does not accept new files{what}",
            "pass --db with a path on a normal disk")


def _existing_parent(path: Path) -> Path:
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return parent


def access_problem(path: Path) -> tuple[str, str] | None:
    """(reason, advice) when this user may not write the file or the directory it is in."""
    directory = path.parent
    try:
        path.stat()
    except FileNotFoundError:
        pass
    except OSError:  # a directory on the way this user may not search
        return (f"cannot be reached: this user may not enter {_first_closed(path)}",
                "check the directories' permissions, or pass --db with another path")
    if path.is_dir():
        return _OS_ERRORS[errno.EISDIR]
    if path.exists() and not os.access(path, os.R_OK):
        return ("is not readable by this user (permission denied)",
                "check the file's owner and permissions, or pass --db with another path")
    if path.exists() and not os.access(path, os.W_OK):
        return ("is a read-only file (no write permission for this user)",
                "make it writable (chmod u+w FILE), or pass --db with another path")
    if directory.exists() and not os.access(directory, os.W_OK | os.X_OK):
        return (f"is in a directory this user cannot write ({directory}): SQLite needs to "
                f"create {path.name}-wal and {path.name}-shm next to the database",
                f"make {directory} writable, or pass --db with a path in a writable directory")
    return None


def _first_closed(path: Path) -> Path:
    """The first directory on the way to `path` this user may not search."""
    for parent in reversed(path.parents):
        if not os.access(parent, os.X_OK):
            return parent
    return path.parent


def _locked(path: Path) -> tuple[str, str]:
    holders = lock_holders(path)
    who = f" ({', '.join(holders)})" if holders else ""
    return (f"is locked by another process{who}",
            "try again when it is done; exposure waits up to 15 s for a lock")


def lock_holders(path: Path) -> list[str]:
    """Processes holding a POSIX lock on the database or its -shm file, as 'NAME pid N'.

    Read from /proc/locks (Linux); empty elsewhere or when nobody can be named.
    """
    inodes = set()
    for candidate in (path, Path(f"{path}-shm")):
        try:
            info = candidate.stat()
        except OSError:
            continue
        inodes.add((os.major(info.st_dev), os.minor(info.st_dev), info.st_ino))
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return []
    holders: dict[int, str] = {}
    for line in lines:
        fields = line.split()
        pid, where = _lock_owner(fields)
        if pid is None or pid == os.getpid() or where not in inodes:
            continue
        holders[pid] = f"{_process_name(pid)} pid {pid}"
    return list(holders.values())


def _lock_owner(fields: list[str]) -> tuple[int | None, tuple[int, int, int] | None]:
    # "1: POSIX  ADVISORY  WRITE 1234 08:01:5678 0 EOF"; blocked waiters have "->" first.
    fields = [field for field in fields if field != "->"]
    if len(fields) < 6 or not fields[4].isdigit():
        return None, None
    try:
        major, minor, inode = fields[5].split(":")
        return int(fields[4]), (int(major, 16), int(minor, 16), int(inode))
    except ValueError:
        return None, None


def _process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() or "?"
    except OSError:
        return "?"


def file_system_state(path: Path) -> tuple[str, str] | None:
    """(reason, advice) when the file system holding `path` is read-only or (almost) full.

    A file system without blocks (proc, sysfs: statvfs says 0 of 0 free) is not full.
    """
    try:
        info = os.statvfs(_existing_parent(path))
    except OSError:
        return None
    if info.f_flag & os.ST_RDONLY:
        return _READ_ONLY_FS
    if info.f_blocks > 0 and info.f_bavail * info.f_frsize < LOW_SPACE_BYTES:
        return _DISK_FULL
    return None


def mounted_file_system_type(directory: Path) -> str | None:
    """The type of the file system `directory` is on (proc, sysfs, tmpfs ...), from
    /proc/self/mounts; None when it cannot be told."""
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
        target = directory.resolve()
    except OSError:
        return None
    best: tuple[int, str] | None = None
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        mount_point = Path(fields[1].replace("\\040", " "))
        if (target == mount_point or mount_point in target.parents) and (
            best is None or len(mount_point.parts) > best[0]
        ):
            best = (len(mount_point.parts), fields[2])
    return best[1] if best else None


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


def _write_error_message(text: str) -> bool:
    return any(_message_matches(name, text) for name in _WRITE_ERRORS)
