"""Where the reports go: stdout and any number of files, each in its own format.

    -o report.html -o report.json     the format from each file's suffix
    -oA BASE                          BASE.txt BASE.json BASE.md BASE.html BASE.sarif
    -o -                              stdout (also in the list)
    --format F                        stdout's format, and that of files without a known suffix

Every path is checked before the scan starts, by creating the file that will hold it (a
temporary file next to it): a report that cannot be written is bad input (exit 2), found
before any packet is sent, not a traceback after the whole scan. Each report is written to
that temporary file and renamed over the destination at the end, so a killed scan never
leaves half a report, and a file that is not a regular file (/dev/stdout, a pipe) is
written in place.
"""

from __future__ import annotations

import contextlib
import enum
import os
import stat
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from scanner.errors import BadInput, ScanFailed


class OutputFormat(enum.StrEnum):
    TABLE = "table"
    JSON = "json"
    MARKDOWN = "markdown"
    HTML = "html"
    SARIF = "sarif"


SUFFIXES: dict[str, OutputFormat] = {
    ".txt": OutputFormat.TABLE, ".text": OutputFormat.TABLE, ".log": OutputFormat.TABLE,
    ".json": OutputFormat.JSON,
    ".md": OutputFormat.MARKDOWN, ".markdown": OutputFormat.MARKDOWN,
    ".html": OutputFormat.HTML, ".htm": OutputFormat.HTML,
    ".sarif": OutputFormat.SARIF,
}
ALL_SUFFIXES = (  # -oA BASE: one file per format
    (".txt", OutputFormat.TABLE), (".json", OutputFormat.JSON), (".md", OutputFormat.MARKDOWN),
    (".html", OutputFormat.HTML), (".sarif", OutputFormat.SARIF),
)
STDOUT = "-"


@dataclass
class Destination:
    """One report to write: to stdout (path None) or to a file, in one format."""

    format: OutputFormat
    path: Path | None = None
    label: str = "stdout"
    _temporary: Path | None = None
    _direct: IO[str] | None = None
    _mode: int = 0o600

    @property
    def is_stdout(self) -> bool:
        return self.path is None

    def prepare(self) -> None:
        """Make sure the report can be written; raise BadInput saying why not."""
        if self.path is None:
            return
        path = self.path
        if path.is_dir():
            raise BadInput(f"{self.label}: is a directory; name a file in it, e.g. "
                           f"{path / ('report' + _suffix_for(self.format))}")
        parent = path.parent
        if not parent.exists():
            raise BadInput(f"{self.label}: directory {parent} does not exist")
        if not parent.is_dir():
            raise BadInput(f"{self.label}: {parent} is not a directory")
        if path.exists() and not stat.S_ISREG(path.stat().st_mode):
            self._open_in_place()
            return
        if path.exists():
            if not os.access(path, os.W_OK):
                raise BadInput(f"{self.label}: {path} exists and is not writable")
            self._mode = stat.S_IMODE(path.stat().st_mode)
        try:
            handle, name = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".part")
        except OSError as error:
            raise BadInput(f"{self.label}: cannot create a file in {parent}: "
                           f"{error.strerror or error}") from None
        os.close(handle)
        self._temporary = Path(name)

    def _open_in_place(self) -> None:
        assert self.path is not None
        try:
            self._direct = self.path.open("w", encoding="utf-8")
        except OSError as error:
            raise BadInput(f"{self.label}: cannot be written: {error.strerror or error}") \
                from None

    def write(self, text: str) -> None:
        """Write the report; ScanFailed (one line) when the disk refuses it at the end."""
        try:
            if self._direct is not None:
                handle, self._direct = self._direct, None
                with handle:
                    handle.write(text)
                return
            assert self._temporary is not None and self.path is not None
            self._temporary.write_text(text, encoding="utf-8")
            os.chmod(self._temporary, self._mode)
            os.replace(self._temporary, self.path)
            self._temporary = None
        except OSError as error:
            self.discard()
            raise ScanFailed(f"{self.label}: the report could not be written: "
                             f"{error.strerror or error}") from None

    def discard(self) -> None:
        """The scan did not get as far as a report: leave nothing behind."""
        if self._temporary is not None:
            with contextlib.suppress(OSError):
                self._temporary.unlink()
            self._temporary = None
        if self._direct is not None:
            with contextlib.suppress(OSError):
                self._direct.close()
            self._direct = None


@dataclass
class OutputPlan:
    destinations: list[Destination] = field(default_factory=list)

    @property
    def to_stdout(self) -> Destination | None:
        return next((d for d in self.destinations if d.is_stdout), None)

    def prepare(self) -> None:
        prepared = []
        try:
            for destination in self.destinations:
                destination.prepare()
                prepared.append(destination)
        except BaseException:
            for destination in prepared:
                destination.discard()
            raise

    def discard(self) -> None:
        for destination in self.destinations:
            destination.discard()


def plan_outputs(
    outputs: Sequence[str] | None,
    output_all: str | None,
    output_format: OutputFormat | None,
) -> OutputPlan:
    """The destinations of -o, -oA and --format (stdout alone when there is no -o/-oA)."""
    destinations: list[Destination] = []
    for text in outputs or ():
        destinations.append(_destination(text, output_format))
    if output_all is not None:
        if not output_all or output_all == STDOUT:
            raise BadInput("-oA needs a base name for its files, e.g. -oA scans/home")
        for suffix, fmt in ALL_SUFFIXES:
            path = Path(output_all + suffix)
            destinations.append(Destination(fmt, _resolved(path), f"-oA {output_all} ({path})"))
    if not destinations:
        destinations.append(Destination(output_format or OutputFormat.TABLE))
    seen: set[str] = set()
    for destination in destinations:
        key = str(destination.path) if destination.path else STDOUT
        if key in seen:
            raise BadInput(f"{destination.label}: the same destination twice")
        seen.add(key)
    return OutputPlan(destinations)


def _destination(text: str, output_format: OutputFormat | None) -> Destination:
    if text == STDOUT:
        return Destination(output_format or OutputFormat.TABLE)
    if not text:
        raise BadInput("-o needs a file name (or - for stdout)")
    path = Path(text)
    by_name = format_of(path)
    if by_name and output_format and by_name is not output_format:
        raise BadInput(f"-o {text} is {by_name} by its name, but --format {output_format} was "
                       "given: drop --format, or rename the file")
    return Destination(by_name or output_format or OutputFormat.TABLE, _resolved(path),
                       f"-o {text}")


def format_of(path: Path) -> OutputFormat | None:
    name = path.name.lower()
    if name.endswith(".sarif.json"):
        return OutputFormat.SARIF
    return SUFFIXES.get(Path(name).suffix)


def _resolved(path: Path) -> Path:
    """Through symlinks, so the rename replaces the file the link points at, not the link."""
    try:
        return path.resolve(strict=False)
    except (OSError, RuntimeError):
        return path.absolute()


def _suffix_for(fmt: OutputFormat) -> str:
    return next(suffix for suffix, each in ALL_SUFFIXES if each is fmt)
