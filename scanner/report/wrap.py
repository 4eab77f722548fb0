"""Word wrapping for the terminal report: hanging indents, and code that breaks cleanly.

rich wraps at spaces and folds anything longer than the line mid-character, back at column 0
for a plain print. Our remediations quote config lines (an nginx `ssl_ciphers` list is 300
characters without a space), so this wraps itself: continuation lines hang under the text
they continue, and a token too long for a line is broken after a separator (`:` `,` `;` `/`
... then `-` `.` `_`) before it is ever cut between two letters.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rich.cells import cell_len
from rich.text import Text

FIRST_CHOICE_BREAKS = frozenset(":,;/|&=?")
SECOND_CHOICE_BREAKS = frozenset("-._+")
MIN_TEXT_COLUMNS = 24  # a very narrow terminal still gets this much text per line
_TOKENS = re.compile(r"\n|[ \t]+|[^\s]+")


@dataclass
class _Unit:
    text: Text
    space_before: bool


def wrap(
    segments: Sequence[tuple[str, str]],
    width: int,
    *,
    prefix: Text | None = None,
    indent: str = "",
) -> list[Text]:
    """(text, style) segments as lines of at most `width` cells: the first after `prefix`,
    the rest after `indent`. A newline in the text starts a new line (also indented)."""
    width = max(width, cell_len(indent) + MIN_TEXT_COLUMNS)
    lines: list[Text] = []
    current = prefix.copy() if prefix is not None else Text()
    empty = True
    for index, paragraph in enumerate(_paragraphs(segments)):
        if index:
            lines.append(current)
            current, empty = Text(indent), True
        for unit in paragraph:
            current, empty = _place(unit, current, empty, width, indent, lines)
    lines.append(current)
    return lines


def _place(unit: _Unit, current: Text, empty: bool, width: int, indent: str,
           lines: list[Text]) -> tuple[Text, bool]:
    used = cell_len(current.plain)
    need = cell_len(unit.text.plain) + (1 if unit.space_before and not empty else 0)
    if used + need <= width:
        if unit.space_before and not empty:
            current.append(" ")
        current.append_text(unit.text)
        return current, False
    if not empty:
        lines.append(current)
        current = Text(indent)
    piece = unit.text
    while cell_len(piece.plain) > width - cell_len(current.plain):
        cut = _cut(piece.plain, width - cell_len(current.plain))
        current.append_text(piece[:cut])
        lines.append(current)
        current = Text(indent)
        piece = piece[cut:]
    current.append_text(piece)
    return current, False


def _cut(text: str, room: int) -> int:
    """Where to break `text` to fit `room` cells: after a separator if one is in reach."""
    room = max(room, 1)
    fits = _fitting_prefix(text, room)
    for breaks in (FIRST_CHOICE_BREAKS, SECOND_CHOICE_BREAKS):
        for position in range(fits, 0, -1):
            if text[position - 1] in breaks and position > fits // 4:
                return position
    return max(fits, 1)


def _fitting_prefix(text: str, room: int) -> int:
    """The number of characters of `text` that fit in `room` cells."""
    used = 0
    for index, char in enumerate(text):
        used += cell_len(char)
        if used > room:
            return index
    return len(text)


def _paragraphs(segments: Sequence[tuple[str, str]]) -> list[list[_Unit]]:
    """Units to place, per line of the text: glued tokens (no space between them, even across
    segments: "`code`," is one unit) remember whether a space came before them."""
    paragraphs: list[list[_Unit]] = [[]]
    pending: Text | None = None
    pending_space = False  # was there a space before the unit being built?
    space_seen = False
    for text, style in segments:
        for token in _TOKENS.findall(text):
            if token == "\n" or token.isspace():
                if pending is not None:
                    paragraphs[-1].append(_Unit(pending, pending_space))
                    pending = None
                if token == "\n":
                    paragraphs.append([])
                space_seen = token != "\n"
                continue
            if pending is None:
                pending, pending_space, space_seen = Text(), space_seen, False
            pending.append(token, style=style or None)
    if pending is not None:
        paragraphs[-1].append(_Unit(pending, pending_space))
    return paragraphs
