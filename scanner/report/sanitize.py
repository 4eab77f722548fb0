"""Make remote text safe to print: servers may send escape sequences, huge strings, junk.

Everything a scanned server sends is hostile data. Before it reaches a terminal we remove
control characters (ESC starts cursor moves, OSC 8 links, title changes), bidirectional
overrides (which can make text read differently than it is), and cap the length visibly.
"""

from __future__ import annotations

import re
import unicodedata

DEFAULT_LIMIT = 512
TRUNCATION_MARK = "… [truncated]"

# C0 and C1 controls except tab/newline, DEL, and the Unicode bidi/format controls that
# reorder text (U+202A..U+202E, U+2066..U+2069, U+200E/U+200F, U+061C).
_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


def safe_text(
    value: str | bytes, limit: int = DEFAULT_LIMIT, *, keep_newlines: bool = False
) -> str:
    """Printable text of at most `limit` characters (plus a visible truncation mark)."""
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    cleaned = _UNSAFE.sub(_replacement, text[: limit + 1])
    if not keep_newlines:
        cleaned = cleaned.replace("\n", "\\n").replace("\t", " ")
    cleaned = "".join(ch for ch in cleaned if unicodedata.category(ch) not in ("Cs", "Co", "Cn"))
    if len(text) > limit or len(cleaned) > limit:  # escapes may lengthen it: cap the result
        return cleaned[:limit] + TRUNCATION_MARK
    return cleaned


def _replacement(match: re.Match[str]) -> str:
    char = match.group(0)
    return "\\e" if char == "\x1b" else "\ufffd"
