"""Make remote text safe to print: servers may send escape sequences, huge strings, junk.

Everything a scanned server sends is hostile data. Before it reaches a terminal, a report or
a log we remove what could act on the reader rather than be read:

- C0/C1 control characters: ESC starts cursor moves, title changes (OSC 0), hyperlinks (OSC 8),
  screen clears; 0x9B is a one-byte CSI; BEL, backspace and CR overwrite what was printed.
  ESC becomes a visible `\\e`, the others U+FFFD, so the reader sees that something was there.
- Unicode format characters (category Cf): bidirectional overrides and isolates can make text
  read differently than it is ("Trojan Source"), zero-width characters hide text, tag
  characters carry invisible text; line/paragraph separators (U+2028/U+2029) break lines
  in some viewers. Bidi controls become U+FFFD (visible), the rest are dropped, except the
  zero-width joiners that emoji sequences need.
- Surrogates, private-use and unassigned code points (cannot be encoded or shown reliably).
- Runs of combining marks ("Zalgo" text) beyond a few, which smear over neighbouring lines.

Length is capped, visibly: the result ends in TRUNCATION_MARK when something was cut.
safe_text is idempotent: cleaning text that is already clean (and already capped with the
same limit) returns it unchanged, so every layer may call it again without harm.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

DEFAULT_LIMIT = 512
TRUNCATION_MARK = "… [truncated]"
MAX_COMBINING_RUN = 3  # enough for real scripts (Vietnamese stacks 2), not for Zalgo

# C0 and C1 controls except tab/newline, DEL, and the Unicode controls that reorder text
# (U+061C, U+200E/U+200F, U+202A..U+202E, U+2066..U+2069) or break lines (U+2028/U+2029).
_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]"
)
_NON_ASCII_RUN = re.compile("[^\x00-\x7f]+")
_DROPPED_CATEGORIES = frozenset({"Cs", "Co", "Cn", "Cf"})
_KEPT_FORMAT = frozenset({"\u200c", "\u200d"})  # ZWNJ/ZWJ: needed by emoji and some scripts


def safe_text(
    value: str | bytes, limit: int = DEFAULT_LIMIT, *, keep_newlines: bool = False
) -> str:
    """Printable text of at most `limit` characters (plus a visible truncation mark).

    Without keep_newlines, newlines become a visible `\\n` and tabs a space, so the result is
    one line. Bytes are decoded as UTF-8 with U+FFFD for anything invalid.
    """
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    if len(text) <= limit and text.isascii() and text.isprintable():
        return text  # the common case, and nothing to clean: printable ASCII only
    body, already_truncated = _split_mark(text, limit)
    # Only look at what can survive the cap: a 1 MB string costs no more than a short one.
    # Cleaning can lengthen text (ESC -> "\e") or shorten it (dropped characters): read a
    # margin beyond the limit so the cap below is exact either way.
    window = body[: 2 * limit + 64]
    cleaned = _clean(window, keep_newlines)
    if already_truncated or len(body) > len(window) or len(cleaned) > limit:
        return cleaned[:limit] + TRUNCATION_MARK
    return cleaned


def _split_mark(text: str, limit: int) -> tuple[str, bool]:
    """Text already capped by safe_text with this limit keeps its single mark."""
    if text.endswith(TRUNCATION_MARK) and len(text) - len(TRUNCATION_MARK) <= limit:
        return text[: -len(TRUNCATION_MARK)], True
    return text, False


def _clean(text: str, keep_newlines: bool) -> str:
    cleaned = _UNSAFE.sub(_replacement, text)
    if not keep_newlines:
        cleaned = cleaned.replace("\n", "\\n").replace("\t", " ")
    # Only non-ASCII characters can be format characters or combining marks, and an ASCII
    # character ends a run of marks: cleaning each non-ASCII run alone gives the same result
    # as a pass over every character, at a fraction of the cost on long mostly-ASCII text.
    return _NON_ASCII_RUN.sub(_clean_run, cleaned)


def _clean_run(match: re.Match[str]) -> str:
    return _cap_combining("".join(ch for ch in match.group(0) if _kept(ch)))


def _kept(char: str) -> bool:
    return char in _KEPT_FORMAT or unicodedata.category(char) not in _DROPPED_CATEGORIES


def _cap_combining(text: str) -> str:
    out: list[str] = []
    run = 0
    for char in text:
        if unicodedata.combining(char):
            run += 1
            if run > MAX_COMBINING_RUN:
                continue
        else:
            run = 0
        out.append(char)
    return "".join(out)


def _replacement(match: re.Match[str]) -> str:
    char = match.group(0)
    return "\\e" if char == "\x1b" else "\ufffd"


# --- structured data (a port's `details`) --------------------------------------------------

MAX_DEPTH = 8
MAX_ITEMS = 200  # per list or mapping
TREE_TEXT_LIMIT = 4096
ELIDED = "…"


def safe_tree(
    value: Any,
    *,
    text_limit: int = TREE_TEXT_LIMIT,
    max_depth: int = MAX_DEPTH,
    max_items: int = MAX_ITEMS,
) -> Any:
    """A JSON-compatible copy of `value` with every string (keys too) through safe_text.

    Bounded in depth and in items per container (the cut is marked with "…"), so rendering
    whatever a check put into `details` cannot blow up a report. Non-JSON values become text.
    """
    return _tree(value, text_limit, max_depth, max_items)


def _tree(value: Any, text_limit: int, depth: int, max_items: int) -> Any:
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str | bytes):
        return safe_text(value, text_limit, keep_newlines=True)
    if depth <= 0:
        return ELIDED
    if isinstance(value, Mapping):
        return _tree_mapping(value, text_limit, depth, max_items)
    if isinstance(value, list | tuple | set | frozenset):
        items = list(value)
        kept = [_tree(item, text_limit, depth - 1, max_items) for item in items[:max_items]]
        return [*kept, ELIDED] if len(items) > max_items else kept
    return safe_text(str(value), text_limit)


def _tree_mapping(
    value: Mapping[Any, Any], text_limit: int, depth: int, max_items: int
) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for index, (key, item) in enumerate(value.items()):
        if index >= max_items:
            result[ELIDED] = f"{len(value) - max_items} more"
            break
        result[safe_text(str(key), 128)] = _tree(item, text_limit, depth - 1, max_items)
    return result
