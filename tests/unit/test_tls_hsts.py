"""HSTS from the header identification kept: RFC 6797 parsing, never raising, bounded."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scanner.checks.tls.hsts import RAW_CHARS, hsts_from_identity, parse_hsts


@pytest.mark.parametrize(
    ("value", "present", "max_age", "subdomains", "preload"),
    [
        ("max-age=31536000", True, 31536000, False, False),
        ("max-age=63072000; includeSubDomains; preload", True, 63072000, True, True),
        ('MAX-AGE="15552000" ; INCLUDESUBDOMAINS', True, 15552000, True, False),
        ("max-age=0", True, 0, False, False),
        ("includeSubDomains", False, None, True, False),  # no max-age: browsers ignore it
        ("max-age=abc", False, None, False, False),
        ("max-age=-5", False, None, False, False),
        ("max-age=10; max-age=20", True, 10, False, False),  # the first one counts
        ("max-age=99999999999999999999", True, 10**12, False, False),
        ("", False, None, False, False),
    ],
)
def test_parse(value: str, present: bool, max_age: int | None, subdomains: bool,
               preload: bool) -> None:
    hsts = parse_hsts(value)
    assert (hsts.present, hsts.max_age, hsts.include_subdomains, hsts.preload) == (
        present, max_age, subdomains, preload)
    assert hsts.applicable


def test_absent_header() -> None:
    hsts = parse_hsts(None)
    assert hsts.applicable and not hsts.present and hsts.raw is None


def test_from_identity_reads_the_https_survey() -> None:
    details = {"http": {"headers": {"strict-transport-security": "max-age=600"}}}
    assert hsts_from_identity("http", details).max_age == 600
    assert not hsts_from_identity("http", {}).present
    assert hsts_from_identity("http", {"http": "garbage"}).applicable


def test_not_applicable_outside_http() -> None:
    details = {"http": {"headers": {"strict-transport-security": "max-age=600"}}}
    assert not hsts_from_identity("mqtt", details).applicable
    assert not hsts_from_identity(None, {}).applicable


@given(st.text(max_size=5000))
def test_never_raises_and_stays_bounded(value: str) -> None:
    hsts = parse_hsts(value)
    assert hsts.raw is None or len(hsts.raw) <= RAW_CHARS + len("… [truncated]")
    assert hsts.max_age is None or 0 <= hsts.max_age <= 10**12
    assert "\x1b" not in (hsts.raw or "")
