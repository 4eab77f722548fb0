"""safe_text and safe_tree: what every report relies on to print hostile text safely."""

from __future__ import annotations

import json
import math
import time
import unicodedata
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.core.text import (
    ELIDED,
    MAX_COMBINING_RUN,
    TRUNCATION_MARK,
    safe_text,
    safe_tree,
)
from tests.lab.support_hostile import ALL_TEXT, INVALID_UTF8, TERMINAL_PAYLOADS

BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


def _unsafe_chars(text: str) -> list[str]:
    """Characters that must never survive: controls, format characters, separators..."""
    return [
        char for char in text
        if (ord(char) < 0x20 and char not in "\n\t")
        or 0x7F <= ord(char) <= 0x9F
        or char in BIDI_CONTROLS
        or char in "\u2028\u2029"
        or (unicodedata.category(char) in ("Cf", "Cs", "Co", "Cn") and char not in "\u200c\u200d")
    ]


def test_every_terminal_payload_is_neutralised() -> None:
    for payload in TERMINAL_PAYLOADS:
        cleaned = safe_text(payload)
        assert _unsafe_chars(cleaned) == [], (payload, cleaned)
        assert "\x1b" not in cleaned and "\x07" not in cleaned and "\x9b" not in cleaned


def test_escape_is_shown_not_dropped() -> None:
    assert safe_text("a\x1b[2Jb") == "a\\e[2Jb"  # the reader sees that something was there


def test_bidi_overrides_become_visible_replacement_characters() -> None:
    assert safe_text("\u202etxt.exe") == "\ufffdtxt.exe"


def test_invisible_and_line_breaking_characters_go() -> None:
    cleaned = safe_text("zero\u200bwidth\ufeff tag\U000e0041 line\u2028para\u2029")
    assert cleaned == "zerowidth tag line\ufffdpara\ufffd"


def test_emoji_joiners_are_kept() -> None:
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    assert safe_text(family) == family


def test_combining_pile_up_is_capped() -> None:
    cleaned = safe_text("Z" + "\u0301" * 500)
    assert cleaned == "Z" + "\u0301" * MAX_COMBINING_RUN


def test_newlines_are_visible_or_kept() -> None:
    assert safe_text("a\nb\tc") == "a\\nb c"
    assert safe_text("a\nb\tc\r\n", keep_newlines=True) == "a\nb\tc\ufffd\n"


def test_invalid_utf8() -> None:
    assert safe_text(b"ok " + INVALID_UTF8).startswith("ok \ufffd")
    assert _unsafe_chars(safe_text(INVALID_UTF8)) == []


def test_a_megabyte_costs_no_more_than_a_line() -> None:
    huge = ALL_TEXT + "A" * 1_000_000
    started = time.perf_counter()
    cleaned = safe_text(huge, 300)
    assert time.perf_counter() - started < 0.05
    assert cleaned.endswith(TRUNCATION_MARK) and len(cleaned) == 300 + len(TRUNCATION_MARK)


def test_cleaning_that_lengthens_text_still_respects_the_limit() -> None:
    cleaned = safe_text("\x1b" * 100, 50)  # every ESC becomes two characters
    assert len(cleaned) == 50 + len(TRUNCATION_MARK)


def test_clean_ascii_is_returned_as_is() -> None:
    text = "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3"
    assert safe_text(text) is text


@settings(max_examples=300)
@given(st.one_of(st.text(), st.binary()), st.integers(min_value=0, max_value=300), st.booleans())
def test_output_is_safe_and_bounded(value: str | bytes, limit: int, keep: bool) -> None:
    cleaned = safe_text(value, limit, keep_newlines=keep)
    assert _unsafe_chars(cleaned) == []
    assert len(cleaned) <= limit + len(TRUNCATION_MARK)
    if not keep:
        assert "\n" not in cleaned and "\t" not in cleaned
    cleaned.encode("utf-8")  # never a lone surrogate


@settings(max_examples=300)
@given(st.text(), st.integers(min_value=0, max_value=200), st.booleans())
def test_idempotent(value: str, limit: int, keep: bool) -> None:
    once = safe_text(value, limit, keep_newlines=keep)
    assert safe_text(once, limit, keep_newlines=keep) == once


@given(st.text(alphabet=st.characters(codec="utf-8"), min_size=0, max_size=50))
def test_text_that_needs_nothing_is_unchanged(value: str) -> None:
    if not _unsafe_chars(value) and "\n" not in value and "\t" not in value and not any(
        unicodedata.combining(char) for char in value
    ) and not value.endswith(TRUNCATION_MARK):
        assert safe_text(value) == value


# --- safe_tree ------------------------------------------------------------------------------

JSON_LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(), st.binary()
)
TREES = st.recursive(
    JSON_LEAVES,
    lambda children: st.one_of(
        st.lists(children, max_size=6),
        st.dictionaries(st.text(max_size=20), children, max_size=6),
        st.tuples(children, children),
    ),
    max_leaves=40,
)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for key, item in value.items() for s in [key, *_strings(item)]]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


@settings(max_examples=200)
@given(TREES)
def test_tree_is_json_clean_and_bounded(value: Any) -> None:
    cleaned = safe_tree(value, text_limit=100, max_depth=4, max_items=5)
    json.dumps(cleaned, allow_nan=False)  # valid JSON: no NaN, no bytes, no tuples
    for text in _strings(cleaned):
        assert _unsafe_chars(text) == []
        assert len(text) <= 128 + len(TRUNCATION_MARK)


def test_tree_caps_depth_and_items() -> None:
    deep: Any = "leaf"
    for _ in range(50):
        deep = [deep]
    assert json.dumps(safe_tree(deep, max_depth=3)) == json.dumps([[[ELIDED]]])
    assert safe_tree(list(range(10)), max_items=3) == [0, 1, 2, ELIDED]
    capped = safe_tree({str(i): i for i in range(10)}, max_items=2)
    assert capped == {"0": 0, "1": 1, ELIDED: "8 more"}


def test_tree_turns_odd_values_into_text() -> None:
    assert safe_tree({"nan": math.nan, "set": {1}, "obj": object}) == {
        "nan": "nan", "set": [1], "obj": "<class 'object'>",
    }
