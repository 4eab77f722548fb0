"""`Code spans` in our texts: remediations quote config lines between backticks.

One parser for every renderer (HTML <code>, Markdown code spans, terminal style), so the
three agree on what is code. As in CommonMark, a run of N backticks opens a span that the
next run of exactly N backticks closes, whatever its length (a 300-character `ssl_ciphers`
line is still one span); a run with no partner is plain text. A span never crosses a blank
line, so one stray backtick cannot turn the rest of a text into code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TICKS = re.compile(r"`+")


@dataclass(frozen=True)
class Piece:
    text: str
    code: bool


def split_code_spans(text: str) -> list[Piece]:
    """The text as alternating prose and code pieces (backticks of spans removed)."""
    pieces: list[Piece] = []
    prose_start = 0
    position = 0
    while True:
        opening = _TICKS.search(text, position)
        if opening is None:
            break
        closing = _closing(text, opening)
        if closing is None:
            position = opening.end()
            continue
        if opening.start() > prose_start:
            pieces.append(Piece(text[prose_start:opening.start()], False))
        pieces.append(Piece(_strip_one_space(text[opening.end():closing.start()]), True))
        prose_start = position = closing.end()
    if prose_start < len(text):
        pieces.append(Piece(text[prose_start:], False))
    return _merged(pieces)


def _closing(text: str, opening: re.Match[str]) -> re.Match[str] | None:
    length = len(opening.group(0))
    paragraph_end = text.find("\n\n", opening.end())
    limit = len(text) if paragraph_end < 0 else paragraph_end
    for candidate in _TICKS.finditer(text, opening.end(), limit):
        if len(candidate.group(0)) == length:
            return candidate
    return None


def _strip_one_space(code: str) -> str:
    """CommonMark: `` `x` `` holds `x`; one space on both sides is padding, not content."""
    if len(code) > 2 and code.startswith(" ") and code.endswith(" ") and code.strip():
        return code[1:-1]
    return code


def _merged(pieces: list[Piece]) -> list[Piece]:
    merged: list[Piece] = []
    for piece in pieces:
        if merged and not piece.code and not merged[-1].code:
            merged[-1] = Piece(merged[-1].text + piece.text, False)
        elif piece.text or piece.code:
            merged.append(piece)
    return merged


def plain(text: str) -> str:
    """The text without span backticks (for one-line logs and titles)."""
    return "".join(piece.text for piece in split_code_spans(text))
