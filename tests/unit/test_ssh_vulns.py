"""The CVE table and its engine: version ranges, distro patch levels, honest uncertainty.

The banners of versions that cannot run in the lab are in fixtures/ssh/banners.json, each with
where its package version comes from and what the table must conclude.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scanner.checks.ssh.evaluate import (
    AFFECTED,
    FIXED_BY_DISTRO,
    PATCH_LEVEL_UNKNOWN,
    match_advisories,
)
from scanner.checks.ssh.kexinit import parse_identification_line
from scanner.checks.ssh.versions import (
    compare_debian_versions,
    parse_distro,
    parse_software,
    version_key,
)
from scanner.checks.ssh.vulns import ADVISORIES, REGRESSHION
from scanner.core.findings import Severity

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "ssh" / "banners.json"
BANNERS: list[dict[str, Any]] = json.loads(FIXTURE.read_text())["banners"]


def _statuses(banner: str) -> dict[str, str]:
    identification = parse_identification_line(banner.encode())
    assert identification is not None
    software = parse_software(identification.software)
    distro = parse_distro(identification.comment)
    return {match.advisory.cve: match.status for match in match_advisories(software, distro)}


@pytest.mark.parametrize("entry", BANNERS, ids=[entry["banner"] for entry in BANNERS])
def test_recorded_banners(entry: dict[str, Any]) -> None:
    assert entry["source"], "every fixture says where it comes from"
    assert _statuses(entry["banner"]) == entry["expect"]


def test_debian_bookworm_current_is_not_regresshion() -> None:
    """The acceptance case: Debian 12's OpenSSH with a deb12u patch level >= 3."""
    for revision in ("2+deb12u3", "2+deb12u4", "2+deb12u10", "2+deb12u11"):
        statuses = _statuses(f"SSH-2.0-OpenSSH_9.2p1 Debian-{revision}")
        assert statuses.get(REGRESSHION.cve) == FIXED_BY_DISTRO, revision


def test_severities_follow_certainty() -> None:
    software = parse_software("OpenSSH_9.6p1")
    ubuntu = parse_distro("Ubuntu-3ubuntu13")
    confirmed = {m.advisory.cve: m for m in match_advisories(software, ubuntu)}
    unknown = {m.advisory.cve: m for m in match_advisories(software, None)}
    assert confirmed[REGRESSHION.cve].status == AFFECTED
    assert confirmed[REGRESSHION.cve].severity == Severity.HIGH
    assert unknown[REGRESSHION.cve].status == PATCH_LEVEL_UNKNOWN
    assert unknown[REGRESSHION.cve].severity == Severity.MEDIUM
    assert "cannot be seen from outside" in unknown[REGRESSHION.cve].explanation


def test_fixed_matches_have_no_severity() -> None:
    matches = match_advisories(parse_software("OpenSSH_9.2p1"), parse_distro("Debian-2+deb12u3"))
    fixed = [m for m in matches if m.advisory.cve == REGRESSHION.cve]
    assert fixed and fixed[0].severity is None
    assert "includes the fix" in fixed[0].explanation


@pytest.mark.parametrize("advisory", ADVISORIES, ids=[a.cve for a in ADVISORIES])
def test_table_entries_are_complete_and_consistent(advisory: Any) -> None:
    assert advisory.cve.startswith("CVE-") and advisory.summary and advisory.remediation
    assert advisory.references and all(r.startswith("https://") for r in advisory.references)
    assert advisory.published[:2] == "20"
    # the uncertain case is never reported higher than the confirmed one
    assert advisory.unknown_severity.rank <= advisory.severity.rank
    for affected in advisory.affected:
        for bound in (affected.introduced, affected.fixed):
            assert bound is None or version_key(advisory.product, bound) is not None
    for fix in advisory.fixes:
        assert fix.family in ("Debian", "Ubuntu") and fix.source
        # a distro fix is only meaningful for an upstream version inside an affected range
        hits = match_advisories(parse_software(f"OpenSSH_{fix.upstream}"), None, [advisory])
        assert hits, f"{fix} is for a version outside the affected ranges"
        older = f"{fix.upstream}-{fix.revision.rsplit('.', 1)[0]}"
        assert compare_debian_versions(older, f"{fix.upstream}-{fix.revision}") <= 0


def test_windows_and_unknown_products_have_no_advisories() -> None:
    assert match_advisories(parse_software("OpenSSH_for_Windows_8.6"), None) == []
    assert match_advisories(parse_software("paramiko_2.0"), None) == []
    assert match_advisories(parse_software("dropbear"), None) == []
