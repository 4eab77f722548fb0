"""The advisory table: versions, ranges, conditions, and the severity of ha.outdated."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from scanner.checks.ha import advisories
from scanner.checks.ha.advisories import assess_version, outdated_severity, parse_version
from scanner.core.findings import Severity


def ids(version: str, facts: frozenset[str] = frozenset()) -> set[str]:
    parsed = parse_version(version)
    assert parsed is not None
    return {m.advisory.id for m in assess_version(parsed, facts).missed}


def test_version_parsing() -> None:
    assert parse_version("2024.1.6") == advisories.HaVersion((2024, 1, 6), False)
    assert parse_version("0.57") == advisories.HaVersion((0, 57, 0), False)
    assert parse_version("2023.12.0b3") == advisories.HaVersion((2023, 12, 0), True)
    assert parse_version("2024.2.0.dev20240101") == advisories.HaVersion((2024, 2, 0), True)
    assert parse_version("latest") is None
    assert parse_version("2024.1.6; drop") is None


@given(st.text(max_size=60))
def test_parse_version_never_raises(text: str) -> None:
    parse_version(text)


def test_table_is_dated_and_every_row_is_well_formed() -> None:
    assert dt.date.today() + dt.timedelta(days=1) >= advisories.TABLE_DATE
    for advisory in advisories.ADVISORIES:
        assert parse_version(advisory.fixed) is not None, advisory.id
        assert advisory.introduced is None or parse_version(advisory.introduced) is not None
        assert advisory.published <= dt.date.today()
        assert advisory.url.startswith("https://")
    assert len({a.id for a in advisories.ADVISORIES}) == len(advisories.ADVISORIES)


def test_fixed_version_misses_nothing_of_that_fix() -> None:
    assert "GHSA-m3pm-rpgg-5wj6" not in ids("2024.1.6")
    assert "GHSA-m3pm-rpgg-5wj6" in ids("2024.1.5")


def test_introduced_bound_is_respected() -> None:
    assert "GHSA-jqpc-rc7g-vf83" not in ids("2023.11.3")  # before the redesigned login page
    assert "GHSA-jqpc-rc7g-vf83" in ids("2023.12.1")
    assert "GHSA-mq77-rv97-285m" not in ids("2024.12.5")
    assert "GHSA-mq77-rv97-285m" in ids("2025.4.4")


def test_checkable_condition_needs_the_fact() -> None:
    assert "GHSA-5hxg-r395-fqxx" not in ids("2025.4.4")
    assert "GHSA-5hxg-r395-fqxx" in ids("2025.4.4", frozenset({"onboarding_open"}))
    assert "GHSA-5hxg-r395-fqxx" not in ids("2024.1.6", frozenset({"onboarding_open"}))


def test_prerelease_of_the_fix_is_undecided_not_flagged() -> None:
    version = parse_version("2024.1.6b0")
    assert version is not None
    result = assess_version(version)
    assert "GHSA-m3pm-rpgg-5wj6" in {a.id for a in result.undecided}
    assert "GHSA-m3pm-rpgg-5wj6" not in {m.advisory.id for m in result.missed}


def test_severity_is_the_worst_missed_and_unverifiable_conditions_cap_at_medium() -> None:
    old = parse_version("2023.1.0")
    assert old is not None
    assert outdated_severity(assess_version(old).missed) is Severity.CRITICAL
    recent = parse_version("2024.1.6")  # only Konnected (high) and Downloader (medium) left
    assert recent is not None
    assert outdated_severity(assess_version(recent).missed) is Severity.MEDIUM
    newest = parse_version("2026.11.0")
    assert newest is not None and assess_version(newest).missed == ()
    assert outdated_severity(()) is None
