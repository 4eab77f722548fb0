"""What an SSH identification line says about the software and its packaging, and how versions
compare: OpenSSH (9.2p1), Dropbear (2022.83), and Debian package versions (dpkg's algorithm,
for the distro revision in `OpenSSH_9.2p1 Debian-2+deb12u3`). Pure functions on sanitised
text; none raises.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

OPENSSH = "OpenSSH"
OPENSSH_WINDOWS = "OpenSSH for Windows"
DROPBEAR = "Dropbear"

_SOFTWARE_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (OPENSSH_WINDOWS, re.compile(r"^OpenSSH_for_Windows_(?P<version>[0-9][\w.]{0,30})")),
    (OPENSSH, re.compile(r"^OpenSSH_(?P<version>[0-9][\w.]{0,30})")),
    (DROPBEAR, re.compile(r"^dropbear(?:_(?P<version>[0-9][\w.]{0,30}))?$", re.IGNORECASE)),
)
_OPENSSH_VERSION = re.compile(r"^(\d{1,4})\.(\d{1,4})(?:\.(\d{1,4}))?(?:p(\d{1,4}))?")
_DROPBEAR_VERSION = re.compile(r"^(\d{1,4})\.(\d{1,4})")
# The packaging marker Debian's and Ubuntu's builds put in the comment field; Raspbian
# (Raspberry Pi OS) rebuilds Debian's source with the same package revisions.
_DISTRO = re.compile(
    r"^(?P<name>Debian|Ubuntu|Raspbian|FreeBSD)[-_](?P<revision>[0-9][0-9A-Za-z.+~:-]{0,40})",
    re.IGNORECASE,
)
_DISTRO_NAMES = {
    "debian": "Debian",
    "ubuntu": "Ubuntu",
    "raspbian": "Raspbian",
    "freebsd": "FreeBSD",
}
# Whose package revisions a distro's banner carries.
PACKAGE_FAMILY = {"Debian": "Debian", "Raspbian": "Debian", "Ubuntu": "Ubuntu"}

VersionKey = tuple[int, ...]


@dataclass(frozen=True)
class Software:
    """Product and version from the identification line's softwareversion field."""

    product: str | None  # OPENSSH, OPENSSH_WINDOWS, DROPBEAR, or None for anything else
    version: str | None  # "9.2p1", "2022.83"; None when the server does not say


@dataclass(frozen=True)
class Distro:
    """A distribution's package marker in the comment field."""

    name: str  # "Debian", "Ubuntu", "Raspbian", "FreeBSD"
    revision: str  # "2+deb12u3", "3ubuntu0.10": the Debian revision (after the last '-')

    @property
    def family(self) -> str | None:
        """Whose package revisions these are ("Debian" for Raspbian too); None if not dpkg."""
        return PACKAGE_FAMILY.get(self.name)


def parse_software(software: str) -> Software:
    for product, pattern in _SOFTWARE_PATTERNS:
        found = pattern.match(software)
        if found:
            return Software(product, found.group("version"))
    return Software(None, None)


def parse_distro(comment: str | None) -> Distro | None:
    if not comment:
        return None
    found = _DISTRO.match(comment)
    if not found:
        return None
    return Distro(_DISTRO_NAMES[found.group("name").lower()], found.group("revision"))


def openssh_version_key(version: str) -> VersionKey | None:
    """Comparable (major, minor, micro, portable) for "9.2p1", "3.8.1p1" or "9.7".

    A version without a portable suffix ("9.7", OpenBSD's own sshd or a build that strips it)
    counts as p1, the first portable release of that version.
    """
    found = _OPENSSH_VERSION.match(version)
    if not found:
        return None
    major, minor, micro, portable = found.groups()
    return (int(major), int(minor), int(micro or 0), int(portable or 1))


def dropbear_version_key(version: str) -> VersionKey | None:
    found = _DROPBEAR_VERSION.match(version)
    return (int(found.group(1)), int(found.group(2))) if found else None


def version_key(product: str, version: str) -> VersionKey | None:
    if product in (OPENSSH, OPENSSH_WINDOWS):
        return openssh_version_key(version)
    if product == DROPBEAR:
        return dropbear_version_key(version)
    return None


# --- Debian package versions (dpkg's comparison) -----------------------------------------------


def _order(char: str) -> int:
    """dpkg's order(): '~' before everything (even the end), letters before other symbols."""
    if char == "~":
        return -1
    if char.isascii() and char.isdigit():
        return 0
    if char.isascii() and char.isalpha():
        return ord(char)
    return ord(char) + 256


def _compare_fragment(a: str, b: str) -> int:
    """dpkg's verrevcmp(): alternating non-digit and digit runs."""
    i = j = 0
    while i < len(a) or j < len(b):
        while (i < len(a) and not _is_digit(a[i])) or (j < len(b) and not _is_digit(b[j])):
            left = _order(a[i]) if i < len(a) else 0
            right = _order(b[j]) if j < len(b) else 0
            if left != right:
                return -1 if left < right else 1
            i, j = i + 1, j + 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        first_difference = 0
        while i < len(a) and _is_digit(a[i]) and j < len(b) and _is_digit(b[j]):
            if not first_difference:
                first_difference = ord(a[i]) - ord(b[j])
            i, j = i + 1, j + 1
        if i < len(a) and _is_digit(a[i]):
            return 1
        if j < len(b) and _is_digit(b[j]):
            return -1
        if first_difference:
            return -1 if first_difference < 0 else 1
    return 0


def _is_digit(char: str) -> bool:
    return "0" <= char <= "9"


def _split_debian_version(version: str) -> tuple[int, str, str]:
    """(epoch, upstream, revision); lenient: a malformed epoch counts as 0."""
    epoch_text, colon, rest = version.partition(":")
    if not colon:
        epoch_text, rest = "0", version
    epoch = int(epoch_text) if epoch_text.isascii() and epoch_text.isdigit() else 0
    upstream, hyphen, revision = rest.rpartition("-")
    if not hyphen:
        upstream, revision = rest, ""
    return min(epoch, 2**31), upstream, revision


def compare_debian_versions(a: str, b: str) -> int:
    """-1, 0 or 1 like `dpkg --compare-versions a lt|eq|gt b`."""
    epoch_a, upstream_a, revision_a = _split_debian_version(a)
    epoch_b, upstream_b, revision_b = _split_debian_version(b)
    if epoch_a != epoch_b:
        return -1 if epoch_a < epoch_b else 1
    return _compare_fragment(upstream_a, upstream_b) or _compare_fragment(revision_a, revision_b)
