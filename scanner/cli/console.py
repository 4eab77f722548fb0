"""Where the CLI writes, and how loudly: consoles, colour, -v/--debug logging, warnings.

stdout carries only the report; everything else (progress, notes, -v stage logs) goes to
stderr through one rich Console, so a log line printed while a progress bar is shown lands
above the bar instead of through it.

- Notes (logging WARNING: "fell back to the connect engine", "nmap is not installed") are
  always shown, as `exposure: note: ...`.
- `-v`: what each stage does (INFO of the `exposure` and `scanner` loggers).
- `-vv` / `--debug`: DEBUG of ours, warnings of every library, Python warnings.
- Without --debug no Python warning and no library log reaches the screen: a scanned server
  chooses the data that makes a library warn (a 200-character certificate name), and asyncio
  complains about what a hostile server left half-done; neither is the user's business.
- `--no-color` or NO_COLOR (any value, https://no-color.org): no colour anywhere.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from dataclasses import dataclass

from rich.console import Console
from rich.text import Text

from scanner.core.text import safe_text

OUR_LOGGERS = ("exposure", "scanner")
LOG_LINE_CHARS = 2000


@dataclass
class Settings:
    verbosity: int = 0  # 0 notes only, 1 stages (-v), 2 debug (-vv, --debug)
    no_color: bool = False


SETTINGS = Settings()
_stderr: Console | None = None
_handler: logging.Handler | None = None


def configure(*, verbose: int = 0, debug: bool = False, no_color: bool = False) -> Settings:
    """Apply the command line's -v/--debug/--no-color (on top of those before the command)."""
    SETTINGS.verbosity = max(SETTINGS.verbosity, 2 if debug else min(verbose, 2))
    SETTINGS.no_color = SETTINGS.no_color or no_color or "NO_COLOR" in os.environ
    global _stderr
    _stderr = None  # rebuilt with the colour setting
    _install_logging()
    return SETTINGS


def reset() -> None:
    """Back to the defaults (tests call main() many times in one process)."""
    SETTINGS.verbosity, SETTINGS.no_color = 0, False
    global _stderr
    _stderr = None
    _install_logging()


def stderr_console() -> Console:
    global _stderr
    if _stderr is None:
        _stderr = Console(stderr=True, highlight=False, no_color=SETTINGS.no_color or None)
    return _stderr


def stdout_console(width: int | None = None) -> Console:
    return Console(highlight=False, width=width, no_color=SETTINGS.no_color or None)


def note(message: str) -> None:
    """One `exposure: note: ...` line on stderr (a logging WARNING of the exposure logger)."""
    logging.getLogger("exposure").warning(message)


class _ConsoleHandler(logging.Handler):
    """Log records as one cleaned line each on the stderr console."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = safe_text(self.format(record), LOG_LINE_CHARS)
        except Exception:  # a broken record must not break the scan
            return
        stderr_console().print(Text(text), markup=False, emoji=False, highlight=False,
                               soft_wrap=True)


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno >= logging.ERROR:
            return f"exposure: error: {message}"
        if record.levelno >= logging.WARNING:
            return f"exposure: note: {message}"
        if SETTINGS.verbosity >= 2:
            return f"exposure: {record.levelname.lower()} {record.name}: {message}"
        return f"exposure: {message}"


def _install_logging() -> None:
    global _handler
    root = logging.getLogger()
    if _handler is not None:
        for name in (*OUR_LOGGERS, "", "py.warnings"):
            logging.getLogger(name).removeHandler(_handler)
    _handler = _ConsoleHandler()
    _handler.setFormatter(_Formatter())
    level = {0: logging.WARNING, 1: logging.INFO}.get(SETTINGS.verbosity, logging.DEBUG)
    for name in OUR_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.addHandler(_handler)
        logger.propagate = False
    # No handler anywhere else would make Python print library records itself (its "last
    # resort"): a NullHandler on the root keeps them off the screen unless --debug.
    if not any(isinstance(handler, logging.NullHandler) for handler in root.handlers):
        root.addHandler(logging.NullHandler())
    if SETTINGS.verbosity >= 2:
        root.addHandler(_handler)
        _handler.setLevel(logging.DEBUG)
        root.setLevel(logging.WARNING)  # libraries: their warnings, not their chatter
        logging.captureWarnings(True)
        warnings.resetwarnings()
        warnings.simplefilter("default")
    else:
        logging.captureWarnings(False)
        warnings.simplefilter("ignore")


def stderr_is_terminal() -> bool:
    return sys.stderr.isatty()
