"""Where the history database lives when the user does not say (--db)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

DB_FILENAME = "exposure.db"
APP_DIR = "exposure"
# Overrides the default path (tests, containers); --db still wins over it.
DB_ENV = "EXPOSURE_DB"


def default_db_path(environ: Mapping[str, str] | None = None, home: Path | None = None) -> Path:
    """$EXPOSURE_DB, else $XDG_DATA_HOME/exposure/exposure.db, else ~/.local/share/exposure/...

    The XDG Base Directory spec says a relative $XDG_DATA_HOME is invalid and must be ignored.
    """
    env = os.environ if environ is None else environ
    if env.get(DB_ENV):
        return Path(env[DB_ENV]).expanduser()
    xdg = env.get("XDG_DATA_HOME", "")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / APP_DIR / DB_FILENAME
    base = home if home is not None else Path.home()
    return base / ".local" / "share" / APP_DIR / DB_FILENAME
