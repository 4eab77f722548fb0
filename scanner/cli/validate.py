"""Files named on the command line, checked before any packet is sent (bad input: exit 2).

Each check says in one line what is wrong with the file, in the terms of the option.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from scanner.errors import BadInput

if TYPE_CHECKING:
    from scanner.store.location import DbLocation

MAX_CA_FILE_BYTES = 10 * 1024 * 1024  # a bundle of every public CA is ~250 KB
PEM_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"
# A full or read-only file system, a directory this user may not write: a state of the disk
# or of permissions, which the store reports after the scan (its policy: the report first).
# What is left (no file can ever be made there: /proc, a path through a file) is bad input.
RUNTIME_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})


def check_ca_file(path: Path, option: str = "--ca-file") -> Path:
    """A readable PEM file holding at least one certificate that parses."""
    label = f"{option} {path}"
    try:
        info = path.stat()
    except FileNotFoundError:
        raise BadInput(f"{label}: no such file") from None
    except OSError as error:
        raise BadInput(f"{label}: cannot be read: {error.strerror or error}") from None
    if stat.S_ISDIR(info.st_mode):
        raise BadInput(f"{label}: is a directory, not a PEM file of CA certificates")
    if info.st_size > MAX_CA_FILE_BYTES:
        raise BadInput(f"{label}: larger than {MAX_CA_FILE_BYTES // 2**20} MB; not a CA file")
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_CA_FILE_BYTES + 1)
    except OSError as error:
        raise BadInput(f"{label}: cannot be read: {error.strerror or error}") from None
    if PEM_CERTIFICATE not in data:
        raise BadInput(f"{label}: not a PEM file of CA certificates (no "
                       f"'{PEM_CERTIFICATE.decode()}' block in it)")
    from cryptography import x509  # only paid for when a CA file is given

    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise BadInput(f"{label}: a certificate in it cannot be parsed (a "
                       f"'{PEM_CERTIFICATE.decode()}' block that is not a valid certificate)") \
            from None
    if not certificates:
        raise BadInput(f"{label}: holds no certificate")
    return path


def check_db_path(value: str | Path, option: str = "--db") -> DbLocation:
    """A path that can hold the history: an existing regular file, or a file we may create
    (a PostgreSQL URL is the fleet store's: it is checked when it is opened).

    Only what makes the path wrong is bad input. A database that cannot be written *now*
    (a full disk, a read-only mount) is the store's business: the scan runs, its report is
    printed, and the store says why it was not saved (scanner.store.recorder's policy)."""
    from scanner.store.location import parse_location

    location = parse_location(value)
    if not isinstance(location, Path):
        return location
    path = location
    label = f"{option} {path}"
    if path.is_dir():
        raise BadInput(f"{label}: is a directory; name a file in it, e.g. {path / 'exposure.db'}")
    if path.exists():
        if not stat.S_ISREG(path.stat().st_mode):
            raise BadInput(f"{label}: is not a regular file")
        return path
    existing = _nearest_existing(path.parent)
    if not existing.is_dir():
        raise BadInput(f"{label}: {existing} is not a directory")
    _try_creating_in(existing, label, path)
    return path


def _nearest_existing(directory: Path) -> Path:
    """The directory itself, or the closest parent that exists (the store creates the rest)."""
    current = directory.absolute()
    while not current.exists() and current != current.parent:
        current = current.parent
    return current


def _try_creating_in(directory: Path, label: str, database: Path) -> None:
    """Create (and at once remove) an empty file of our own: the only honest test that the
    file system lets us create one (root passes every permission check, /proc does not)."""
    try:
        handle, name = tempfile.mkstemp(dir=directory, prefix=".exposure-check-")
    except OSError as error:
        if error.errno in RUNTIME_ERRNOS:
            return  # the disk or permissions, not the path: the store says so after the scan
        from scanner.store.errors import explain  # the store's own words for the same error

        why = explain(database, error)
        advice = f"; {why.advice}" if why.advice else ""
        raise BadInput(f"{label}: {why.reason}{advice}") from None
    os.close(handle)
    with contextlib.suppress(OSError):
        os.unlink(name)
