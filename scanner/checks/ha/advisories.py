"""Security advisories of Home Assistant Core, as data, and which ones a version misses.

The table is a dated snapshot. Sources, read on TABLE_DATE:
- HA's own list of past advisories, home-assistant.io source/security/index.markdown;
- the GitHub Advisory Database entries for the PyPI package `homeassistant` (affected ranges).

Only advisories about HA Core itself are here (not the iOS/Android apps, not HA's GitHub
Actions). Where HA's own text shows a flaw arrived later than the database's ">=0", the table
says so (`introduced`). `condition` names what must also be true for the advisory to matter;
"onboarding_open" is checked from outside, every other condition cannot be verified from
outside and is said so in the finding.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from scanner.core.findings import Severity

TABLE_DATE = dt.date(2026, 11, 23)
TABLE_SOURCES = (
    "https://www.home-assistant.io/security/",
    "https://github.com/advisories?query=ecosystem%3Apip+homeassistant",
)

# Conditions the scanner can check from outside; all others are stated, not checked.
CHECKABLE_CONDITIONS = frozenset({"onboarding_open"})


@dataclass(frozen=True)
class Advisory:
    id: str  # GHSA id (CVE when HA published none)
    cve: str | None
    title: str
    severity: Severity
    fixed: str  # first HA Core version with the fix
    published: dt.date
    introduced: str | None = None  # first affected version, when known to be later than 0
    condition: str | None = None  # what else must hold for the flaw to matter

    @property
    def url(self) -> str:
        if self.id.startswith("GHSA-"):
            return f"https://github.com/advisories/{self.id}"
        return f"https://nvd.nist.gov/vuln/detail/{self.id}"


def _adv(
    ghsa: str, cve: str | None, title: str, severity: Severity, fixed: str, published: str,
    introduced: str | None = None, condition: str | None = None,
) -> Advisory:
    return Advisory(ghsa, cve, title, severity, fixed, dt.date.fromisoformat(published),
                    introduced, condition)


C, H, M, L = Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW

ADVISORIES: tuple[Advisory, ...] = (
    # The database says ">=0"; the onboarding backup upload it abuses came with core PR #136051
    # (merged 2025-01-20, so 2025.2.0): absent from 2024.1.6's onboarding views, present in
    # 2025.4.4's (both read in the installed packages).
    _adv("GHSA-5hxg-r395-fqxx", "CVE-2026-64825",
         "Path traversal via backup upload during onboarding (unauthenticated file write)",
         C, "2026.6.0", "2026-07-21", introduced="2025.2.0", condition="onboarding_open"),
    _adv("GHSA-x84v-g949-293w", "CVE-2026-54317",
         "Konnected alarm-panel state and zone topology disclosed without authentication",
         H, "2026.6.0", "2026-06-19", condition="the Konnected integration is set up"),
    _adv("GHSA-mq77-rv97-285m", "CVE-2025-62172",
         "Stored XSS in the Energy dashboard from an energy entity's name",
         H, "2025.10.2", "2025-10-14", introduced="2025.1.0"),
    _adv("GHSA-pp3g-xmm4-5cw9", "CVE-2025-65713",
         "Directory traversal in the Downloader integration",
         M, "2025.8.0", "2025-12-23", condition="the Downloader integration is set up"),
    _adv("GHSA-m3pm-rpgg-5wj6", "CVE-2025-25305",
         "SSL certificates of outgoing requests not validated in core and used libraries",
         H, "2024.1.6", "2025-02-18"),
    # HA's advisory: "Starting the Home Assistant 2023.12 release" (the redesigned login page).
    _adv("GHSA-jqpc-rc7g-vf83", "CVE-2023-50715",
         "User accounts disclosed to unauthenticated actors on the LAN",
         M, "2023.12.3", "2023-12-15", introduced="2023.12.0"),
    _adv("GHSA-jvxq-x42r-f7mv", "CVE-2023-41895",
         "Full takeover via javascript URI in auth_callback login", C, "2023.9.0", "2023-10-19"),
    _adv("GHSA-cr83-q7r2-7f5q", "CVE-2023-41896",
         "Fake websocket server installation permits full takeover", C, "2023.9.0",
         "2023-10-19"),
    _adv("GHSA-935v-rmg9-44mw", "CVE-2023-41897",
         "Lack of X-Frame-Options header allows clickjacking", C, "2023.9.0", "2023-10-19"),
    _adv("GHSA-qhhj-7hrc-gqj5", "CVE-2023-41893",
         "Account takeover via auth_callback login", M, "2023.9.0", "2023-10-19"),
    _adv("GHSA-wx3j-3v2j-rf45", "CVE-2023-41894",
         "Local-only webhooks externally accessible via SniTun", L, "2023.9.0", "2023-10-19",
         condition="Home Assistant Cloud remote access is in use"),
    _adv("GHSA-4r74-h49q-rr3h", "CVE-2023-41899",
         "Partial server-side request forgery in Core", L, "2023.9.0", "2023-10-19"),
    _adv("GHSA-2j8f-h4mr-qr25", "CVE-2023-27482",
         "Authentication bypass of the Supervisor API", C, "2023.3.2", "2023-03-08",
         condition="the installation runs the Supervisor (HA OS or Supervised)"),
    _adv("GHSA-mh78-8f49-vjg3", "CVE-2018-21019",
         "Unauthenticated read of the error log via the API", H, "0.67.0", "2022-05-24"),
    _adv("CVE-2017-16782", "CVE-2017-16782", "Cross-site scripting in Markdown output", M,
         "0.57", "2017-10-11"),
)


# --- versions --------------------------------------------------------------------------------

_VERSION = re.compile(
    r"^(?P<major>\d{1,4})\.(?P<minor>\d{1,3})(?:\.(?P<patch>\d{1,4}))?"
    r"(?P<pre>(?:b|rc|\.dev)\d{1,12})?$"
)


@dataclass(frozen=True, order=True)
class HaVersion:
    release: tuple[int, int, int]
    prerelease: bool  # a beta/rc/dev build of `release`

    def __str__(self) -> str:
        text = ".".join(map(str, self.release))
        return f"{text} (pre-release)" if self.prerelease else text


def parse_version(text: str) -> HaVersion | None:
    found = _VERSION.match(text.strip()[:40])
    if not found:
        return None
    release = (int(found["major"]), int(found["minor"]), int(found["patch"] or 0))
    return HaVersion(release, found["pre"] is not None)


@dataclass(frozen=True)
class Missed:
    advisory: Advisory
    condition_unverified: bool  # the advisory needs something we cannot see from outside


@dataclass(frozen=True)
class Assessment:
    missed: tuple[Missed, ...]
    undecided: tuple[Advisory, ...]  # pre-release of the fixed version: cannot tell


def assess_version(version: HaVersion, facts: frozenset[str] = frozenset()) -> Assessment:
    """The advisories `version` misses; `facts` holds the checkable conditions seen true."""
    missed: list[Missed] = []
    undecided: list[Advisory] = []
    for advisory in ADVISORIES:
        fixed = parse_version(advisory.fixed)
        introduced = parse_version(advisory.introduced) if advisory.introduced else None
        if fixed is None:
            continue
        if introduced is not None and version.release < introduced.release:
            continue
        if version.release > fixed.release or (
            version.release == fixed.release and not version.prerelease
        ):
            continue
        if version.release == fixed.release:  # a beta of the fixing release: may have it
            undecided.append(advisory)
            continue
        condition = advisory.condition
        if condition in CHECKABLE_CONDITIONS:
            if condition in facts:
                missed.append(Missed(advisory, False))
            continue
        missed.append(Missed(advisory, condition is not None))
    return Assessment(tuple(missed), tuple(undecided))


def outdated_severity(missed: tuple[Missed, ...]) -> Severity | None:
    """The worst severity among missed advisories; one whose condition cannot be verified from
    outside counts at most as medium, so a guess never makes a finding critical."""
    ranks = []
    for item in missed:
        severity = item.advisory.severity
        if item.condition_unverified and severity.rank > Severity.MEDIUM.rank:
            severity = Severity.MEDIUM
        ranks.append(severity)
    return max(ranks, key=lambda s: s.rank, default=None)


def table_age_days(today: dt.date) -> int:
    return (today - TABLE_DATE).days
