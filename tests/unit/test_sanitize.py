from hypothesis import given
from hypothesis import strategies as st

from scanner.core.text import TRUNCATION_MARK, safe_text


def test_escape_sequences_are_neutralised() -> None:
    hostile = "ok\x1b]0;pwned\x07\x1b[2J\x1b]8;;http://evil/\x1b\\link\u202eevil"
    cleaned = safe_text(hostile)
    assert "\x1b" not in cleaned and "\x07" not in cleaned and "\u202e" not in cleaned
    assert cleaned.startswith("ok")


def test_long_text_is_visibly_truncated() -> None:
    cleaned = safe_text("A" * 1_000_000, limit=100)
    assert cleaned.endswith(TRUNCATION_MARK) and len(cleaned) == 100 + len(TRUNCATION_MARK)


def test_invalid_utf8_bytes() -> None:
    assert safe_text(b"caf\xe9 \xff\xfe") == "caf\ufffd \ufffd\ufffd"


@given(st.one_of(st.text(), st.binary()), st.integers(min_value=1, max_value=300))
def test_never_emits_control_characters(value: str | bytes, limit: int) -> None:
    cleaned = safe_text(value, limit=limit)
    assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in cleaned)
    assert len(cleaned) <= limit + len(TRUNCATION_MARK)
