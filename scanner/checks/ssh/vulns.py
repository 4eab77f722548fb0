"""Data: known vulnerabilities of SSH servers by version, and the distro package revisions that
fixed them. Reviewed 2026-11-23.

Small on purpose: the issues a self-hoster's exposed sshd or Dropbear is likely to have, each with
its source. Terrapin (CVE-2023-48795) is not here: `ssh.terrapin` tests its conditions in the
server's algorithm lists, which is more precise than any version range.

Distro fixes are verified against the distributions' own records:
- Debian: the openssh package changelog (/usr/share/doc/openssh-server/changelog.Debian.gz of
  1:9.2p1-2+deb12u10) and DSA-5724-1.
- Ubuntu: Canonical's OSV records of the USNs (github.com/canonical/ubuntu-security-notices,
  osv/usn/USN-*.json).
A banner whose distro revision has no record here is reported as "patch level unknown" at the
advisory's lower severity, never as confirmed.
"""

from __future__ import annotations

from dataclasses import dataclass

from scanner.checks.ssh.versions import DROPBEAR, OPENSSH
from scanner.core.findings import Severity

REVIEWED = "2026-11-23"


@dataclass(frozen=True)
class AffectedRange:
    """Upstream versions from `introduced` (inclusive, None: all older) to `fixed` (exclusive)."""

    introduced: str | None
    fixed: str | None
    note: str = ""


@dataclass(frozen=True)
class DistroFix:
    """The first package revision of `upstream` in which `family` shipped the fix."""

    family: str  # whose package revisions: "Debian" (also Raspbian) or "Ubuntu"
    upstream: str  # "9.2p1", as the banner shows it
    revision: str  # "2+deb12u3", the Debian revision after the upstream version
    source: str


@dataclass(frozen=True)
class Advisory:
    cve: str
    name: str | None
    product: str  # versions.OPENSSH or versions.DROPBEAR
    affected: tuple[AffectedRange, ...]
    severity: Severity  # the banner shows an affected build
    unknown_severity: Severity  # in range, but the banner cannot tell the patch level
    summary: str
    remediation: str
    published: str  # when the fix or advisory came out, YYYY-MM[-DD]
    references: tuple[str, ...]
    fixes: tuple[DistroFix, ...] = ()


REGRESSHION = Advisory(
    cve="CVE-2024-6387",
    name="regreSSHion",
    product=OPENSSH,
    affected=(
        AffectedRange(None, "4.4p1", "unless patched for CVE-2006-5051 and CVE-2008-4109"),
        AffectedRange("8.5p1", "9.8p1"),
    ),
    severity=Severity.HIGH,
    unknown_severity=Severity.MEDIUM,
    summary=(
        "unauthenticated remote code execution as root through a race in sshd's "
        "LoginGraceTime signal handler, on glibc-based Linux (the published exploit needs "
        "hours of connections; OpenBSD and musl-based systems are not exploitable)"
    ),
    remediation=(
        "Update OpenSSH: Debian 12 to 1:9.2p1-2+deb12u3 or later, Ubuntu 22.04 to "
        "1:8.9p1-3ubuntu0.10, Ubuntu 24.04 to 1:9.6p1-3ubuntu13.3, otherwise to 9.8p1 or "
        "later. Until then `LoginGraceTime 0` in sshd_config removes the race, at the cost "
        "of letting idle connections hold slots."
    ),
    published="2024-07-01",
    references=(
        "https://www.qualys.com/2024/07/01/cve-2024-6387/regresshion.txt",
        "https://www.openssh.com/txt/release-9.8",
        "https://security-tracker.debian.org/tracker/CVE-2024-6387",
        "https://ubuntu.com/security/notices/USN-6859-1",
    ),
    fixes=(
        DistroFix("Debian", "9.2p1", "2+deb12u3", "Debian openssh changelog; DSA-5724-1"),
        DistroFix("Ubuntu", "8.9p1", "3ubuntu0.10", "USN-6859-1 (Ubuntu 22.04 LTS)"),
        DistroFix("Ubuntu", "9.6p1", "3ubuntu13.3", "USN-6859-1 (Ubuntu 24.04 LTS)"),
    ),
)

PRIVSEP_RACE = Advisory(
    cve="CVE-2024-6409",
    name=None,
    product=OPENSSH,
    affected=(AffectedRange("8.7p1", "8.9p1"),),
    severity=Severity.MEDIUM,
    unknown_severity=Severity.LOW,
    summary=(
        "a second signal-handler race, in sshd's unprivileged privsep child, reported for "
        "OpenSSH 8.7 and 8.8 builds such as Red Hat Enterprise Linux 9's; possible remote "
        "code execution as the unprivileged sshd user"
    ),
    remediation=(
        "Install your distribution's OpenSSH security update (Red Hat Enterprise Linux 9 and "
        "its rebuilds published fixed packages in July 2024) or move to a supported release."
    ),
    published="2024-07-08",
    references=(
        "https://www.openwall.com/lists/oss-security/2024/07/08/2",
        "https://access.redhat.com/security/cve/CVE-2024-6409",
    ),
)

DOUBLE_FREE_9_1 = Advisory(
    cve="CVE-2023-25136",
    name=None,
    product=OPENSSH,
    affected=(AffectedRange("9.1p1", "9.2p1"),),
    severity=Severity.MEDIUM,
    unknown_severity=Severity.LOW,
    summary=(
        "pre-authentication double free in sshd 9.1 (OpenSSH considers it not exploitable: "
        "it happens in the unprivileged, sandboxed process)"
    ),
    remediation="Update OpenSSH to 9.2p1 or later.",
    published="2023-02-02",
    references=("https://www.openssh.com/txt/release-9.2",),
)

PING_DOS = Advisory(
    cve="CVE-2025-26466",
    name=None,
    product=OPENSSH,
    affected=(AffectedRange("9.5p1", "9.9p2"),),
    severity=Severity.MEDIUM,
    unknown_severity=Severity.LOW,
    summary=(
        "pre-authentication denial of service: unauthenticated clients can make sshd use "
        "memory and CPU without bound through SSH2_MSG_PING"
    ),
    remediation=(
        "Update OpenSSH: Ubuntu 24.04 to 1:9.6p1-3ubuntu13.8 or later, otherwise to 9.9p2 or "
        "later. LoginGraceTime and MaxStartups limit the impact meanwhile."
    ),
    published="2025-02-18",
    references=(
        "https://www.openssh.com/txt/release-9.9p2",
        "https://ubuntu.com/security/notices/USN-7270-1",
    ),
    fixes=(DistroFix("Ubuntu", "9.6p1", "3ubuntu13.8", "USN-7270-1 (Ubuntu 24.04 LTS)"),),
)

AGENT_PKCS11 = Advisory(
    cve="CVE-2023-38408",
    name=None,
    product=OPENSSH,
    affected=(AffectedRange(None, "9.3p2"),),
    # The flaw is in ssh-agent, which ships with the same OpenSSH build as this sshd; it only
    # matters when someone forwards their agent from this host to a malicious server.
    severity=Severity.LOW,
    unknown_severity=Severity.INFO,
    summary=(
        "remote code execution through a forwarded ssh-agent (PKCS#11 library loading); this "
        "concerns the ssh-agent of the OpenSSH build this sshd belongs to, and only users who "
        "forward their agent from this host to an untrusted server"
    ),
    remediation=(
        "Update OpenSSH: Debian 12 to 1:9.2p1-2+deb12u1 or later, Ubuntu 22.04 to "
        "1:8.9p1-3ubuntu0.3, Ubuntu 20.04 to 1:8.2p1-4ubuntu0.8, otherwise to 9.3p2 or later. "
        "Forward agents only to hosts you trust."
    ),
    published="2023-07-19",
    references=(
        "https://www.openssh.com/txt/release-9.3p2",
        "https://ubuntu.com/security/notices/USN-6242-1",
    ),
    fixes=(
        DistroFix("Debian", "9.2p1", "2+deb12u1", "Debian openssh changelog 1:9.2p1-2+deb12u1"),
        DistroFix("Ubuntu", "8.9p1", "3ubuntu0.3", "USN-6242-1 (Ubuntu 22.04 LTS)"),
        DistroFix("Ubuntu", "8.2p1", "4ubuntu0.8", "USN-6242-1 (Ubuntu 20.04 LTS)"),
    ),
)

# Dropbear's banner never names a distro package, so these are always "patch level unknown".
DROPBEAR_FORMAT_STRING = Advisory(
    cve="CVE-2016-7406",
    name=None,
    product=DROPBEAR,
    affected=(AffectedRange(None, "2016.74"),),
    severity=Severity.HIGH,
    unknown_severity=Severity.MEDIUM,
    summary=(
        "format string injection: remote code execution as root when user names containing "
        "'%' can exist on the system"
    ),
    remediation="Update Dropbear to 2016.74 or later (on a router: update its firmware).",
    published="2016-07-21",
    references=("https://matt.ucc.asn.au/dropbear/CHANGES",),
)

DROPBEAR_DOUBLE_FREE = Advisory(
    cve="CVE-2017-9078",
    name=None,
    product=DROPBEAR,
    affected=(AffectedRange(None, "2017.75"),),
    severity=Severity.HIGH,
    unknown_severity=Severity.MEDIUM,
    summary=(
        "double free in the cleanup of TCP listeners (with -a): a logged-in user may run code "
        "as root"
    ),
    remediation="Update Dropbear to 2017.75 or later (on a router: update its firmware).",
    published="2017-05-18",
    references=(
        "https://matt.ucc.asn.au/dropbear/CHANGES",
        "https://www.debian.org/security/2017/dsa-3859",
    ),
)

DROPBEAR_USER_ENUMERATION = Advisory(
    cve="CVE-2018-15599",
    name=None,
    product=DROPBEAR,
    affected=(AffectedRange(None, "2018.76"),),
    severity=Severity.MEDIUM,
    unknown_severity=Severity.LOW,
    summary="remote user enumeration through different replies for existing and unknown users",
    remediation="Update Dropbear to 2018.76 or later (on a router: update its firmware).",
    published="2018-08",
    references=("https://matt.ucc.asn.au/dropbear/CHANGES",),
)

ADVISORIES: tuple[Advisory, ...] = (
    REGRESSHION,
    PRIVSEP_RACE,
    DOUBLE_FREE_9_1,
    PING_DOS,
    AGENT_PKCS11,
    DROPBEAR_FORMAT_STRING,
    DROPBEAR_DOUBLE_FREE,
    DROPBEAR_USER_ENUMERATION,
)
