"""Software, distro marker and version comparisons; dpkg's algorithm checked against dpkg."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from scanner.checks.ssh.versions import (
    DROPBEAR,
    OPENSSH,
    OPENSSH_WINDOWS,
    Distro,
    Software,
    compare_debian_versions,
    dropbear_version_key,
    openssh_version_key,
    parse_distro,
    parse_software,
)


@pytest.mark.parametrize(
    ("software", "expected"),
    [
        ("OpenSSH_9.2p1", Software(OPENSSH, "9.2p1")),
        ("OpenSSH_8.7", Software(OPENSSH, "8.7")),  # RHEL builds drop the p1
        ("OpenSSH_7.4p1-hpn14v12", Software(OPENSSH, "7.4p1")),
        ("OpenSSH_for_Windows_9.5", Software(OPENSSH_WINDOWS, "9.5")),
        ("dropbear_2022.83", Software(DROPBEAR, "2022.83")),
        ("dropbear", Software(DROPBEAR, None)),  # OpenWrt's bare banner
        ("paramiko_5.1.0", Software(None, None)),
        ("OpenSSH_", Software(None, None)),
    ],
)
def test_parse_software(software: str, expected: Software) -> None:
    assert parse_software(software) == expected


@pytest.mark.parametrize(
    ("comment", "expected"),
    [
        ("Debian-2+deb12u3", Distro("Debian", "2+deb12u3")),
        ("Ubuntu-3ubuntu0.10", Distro("Ubuntu", "3ubuntu0.10")),
        ("Raspbian-2+deb12u3", Distro("Raspbian", "2+deb12u3")),
        ("FreeBSD-20240701", Distro("FreeBSD", "20240701")),
        ("Debian-2+deb12u3 extra words", Distro("Debian", "2+deb12u3")),
        ("hello", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_distro(comment: str | None, expected: Distro | None) -> None:
    assert parse_distro(comment) == expected


def test_package_families() -> None:
    assert Distro("Raspbian", "1").family == "Debian"
    assert Distro("Ubuntu", "1").family == "Ubuntu"
    assert Distro("FreeBSD", "1").family is None


def test_openssh_versions_order() -> None:
    ordered = ["3.8.1p1", "4.3p2", "4.4p1", "8.5p1", "8.9p1", "9.2p1", "9.3p2", "9.8p1", "10.0p1"]
    keys = [openssh_version_key(v) for v in ordered]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert openssh_version_key("9.8") == openssh_version_key("9.8p1")
    assert openssh_version_key("junk") is None


def test_dropbear_versions_order() -> None:
    keys = [dropbear_version_key(v) for v in ("0.52", "2016.73", "2016.74", "2022.83", "2025.88")]
    assert keys == sorted(keys)
    assert dropbear_version_key("x") is None


KNOWN_ORDER = [
    ("1:9.2p1-2+deb12u2", "1:9.2p1-2+deb12u3", -1),
    ("1:9.2p1-2+deb12u10", "1:9.2p1-2+deb12u3", 1),
    ("1:9.6p1-3ubuntu13.11", "1:9.6p1-3ubuntu13.3", 1),
    ("1:9.6p1-3ubuntu13", "1:9.6p1-3ubuntu13.3", -1),
    ("1:8.9p1-3ubuntu0.10", "1:8.9p1-3ubuntu0.7", 1),
    ("1.0~rc1", "1.0", -1),
    ("1.0", "1.0-0", 0),
    ("2:0.1", "1:9.9", 1),
    ("9.2p1-2~bpo11+1", "9.2p1-2", -1),
]


@pytest.mark.parametrize(("a", "b", "expected"), KNOWN_ORDER)
def test_debian_versions_known_order(a: str, b: str, expected: int) -> None:
    assert compare_debian_versions(a, b) == expected
    assert compare_debian_versions(b, a) == -expected


DPKG = shutil.which("dpkg")
version_part = st.text(alphabet="0123456789abz.+~", min_size=1, max_size=8).filter(
    lambda s: s[0].isdigit()
)
revision_part = st.text(alphabet="0123456789abuntdeb.+~", min_size=1, max_size=10)
debian_version = st.builds(
    lambda epoch, upstream, revision: f"{epoch}{upstream}{revision}",
    st.sampled_from(["", "1:", "2:"]),
    version_part,
    st.sampled_from(["", "-"]).flatmap(
        lambda dash: revision_part.map(lambda r: dash + r) if dash else st.just("")
    ),
)


def _dpkg_compare(a: str, b: str) -> int:
    for result, op in ((-1, "lt"), (0, "eq"), (1, "gt")):
        if subprocess.run([DPKG or "dpkg", "--compare-versions", a, op, b]).returncode == 0:
            return result
    raise AssertionError(f"dpkg could not compare {a!r} and {b!r}")


@pytest.mark.skipif(DPKG is None, reason="dpkg is part of every Debian system this runs on")
@given(debian_version, debian_version)
@settings(max_examples=60, deadline=None)
@example("1:9.2p1-2+deb12u10", "1:9.2p1-2+deb12u3")
@example("1:9.6p1-3ubuntu13.3", "1:9.6p1-3ubuntu13")
def test_debian_versions_agree_with_dpkg(a: str, b: str) -> None:
    assert compare_debian_versions(a, b) == _dpkg_compare(a, b)


@given(st.text(max_size=60), st.text(max_size=60))
@settings(max_examples=300)
def test_version_functions_never_raise(a: str, b: str) -> None:
    assert compare_debian_versions(a, b) in (-1, 0, 1)
    openssh_version_key(a)
    dropbear_version_key(a)
    parse_software(a)
    parse_distro(a)
