"""Where the history lives: an SQLite file (the default) or a PostgreSQL database (a URL).

`--db PATH` and `--db postgresql://USER@HOST/DB` name one or the other; $EXPOSURE_DB may hold
either. Nothing here imports the PostgreSQL driver: a single-machine user never needs it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from scanner.store.errors import StoreError
from scanner.store.paths import DB_ENV, default_db_path

if TYPE_CHECKING:
    from scanner.store.store import Store

# A PostgreSQL URL is kept as text: Path("postgresql://u@h/db") would fold "//" into "/".
DbLocation = Path | str
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
FLEET_EXTRA = "pip install 'exposure[fleet]'"


def is_postgres(location: object) -> bool:
    return isinstance(location, str) and location.strip().lower().startswith(POSTGRES_SCHEMES)


def parse_location(value: str | Path) -> DbLocation:
    """A --db value: a PostgreSQL URL as it is, anything else as a file path."""
    if is_postgres(value):
        return str(value).strip()
    return Path(value).expanduser()


def default_location(environ: Mapping[str, str] | None = None) -> DbLocation:
    """$EXPOSURE_DB (a path or a URL), else the per-user SQLite file."""
    env = os.environ if environ is None else environ
    if is_postgres(env.get(DB_ENV, "")):
        return env[DB_ENV].strip()
    return default_db_path(env)


def describe(location: DbLocation) -> str:
    """For messages: a URL without its password."""
    if is_postgres(location):
        return redact(str(location))
    return str(location)


_PASSWORD_IN_URL = re.compile(r"(?P<head>://[^:/@?#]*:)[^@/?#]*(?=@)")
_PASSWORD_PARAMETER = re.compile(r"(?i)(?P<head>[?&]password=)[^&#]*")


def redact(url: str) -> str:
    url = _PASSWORD_IN_URL.sub(r"\g<head>***", url)
    return _PASSWORD_PARAMETER.sub(r"\g<head>***", url)


def open_store(location: DbLocation, *, create: bool = True) -> Store:
    """Store.open for a file, PostgresStore.open_url for a URL (StoreError says why not)."""
    if is_postgres(location):
        try:
            from scanner.store.postgres import PostgresStore
        except ImportError as error:
            raise StoreError(
                redact(str(location)), f"needs the PostgreSQL driver ({error.name} is missing)",
                FLEET_EXTRA,
            ) from error
        return PostgresStore.open_url(str(location), create=create)
    from scanner.store.store import Store

    return Store.open(Path(location), create=create)
