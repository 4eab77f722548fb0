"""The baseline file: what it accepts, what it refuses, and the port.unexpected findings."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.cli import main
from scanner.core.findings import Severity
from scanner.core.report import PortReport, ScanReport, TargetReport
from scanner.diff import apply_baseline, load_baseline
from scanner.diff.baseline import parse_baseline
from scanner.errors import BadInput

EXAMPLE = b"""
# the ports I forward on purpose
ports = [443]

[targets."home.example.org"]
ports = [443, 8123, "8883/tcp", "5000-5002", "1900/udp"]

[targets."2001:db8::10"]
ports = []
"""


def test_example_file() -> None:
    baseline = parse_baseline(EXAMPLE, "expected.toml")
    assert baseline.default == frozenset({(443, "tcp")})
    home = baseline.expected("home.example.org", "198.51.100.7")
    assert home == frozenset({(443, "tcp"), (8123, "tcp"), (8883, "tcp"), (5000, "tcp"),
                              (5001, "tcp"), (5002, "tcp"), (1900, "udp")})
    assert baseline.expected("home.example.org", "2001:db8::10") == home  # input first
    assert baseline.expected("other", "2001:db8::10") == frozenset()
    assert baseline.expected("other", "192.0.2.1") == frozenset({(443, "tcp")})


def test_file_without_default_expects_nothing_elsewhere() -> None:
    baseline = parse_baseline(b'[targets."a"]\nports = [22]\n', "b.toml")
    assert baseline.expected("b", "192.0.2.1") is None
    assert not baseline.is_expected("b", "192.0.2.1", 22, "tcp")


@pytest.mark.parametrize(
    "text",
    [
        b"ports = 443",
        b"ports = [0]",
        b"ports = [65536]",
        b'ports = ["22/sctp"]',
        b'ports = ["30-20"]',
        b"ports = [true]",
        b"ports = [1.5]",
        b"portz = [22]",
        b'[targets."x"]\nports = [22]\nextra = 1',
        b"targets = 3",
        b"not toml at all [",
        b"\xff\xfe",
    ],
)
def test_bad_files_are_bad_input(text: bytes) -> None:
    with pytest.raises(BadInput, match="baseline"):
        parse_baseline(text, "b.toml")


_TOMLISH = st.text(alphabet='ports=[]{}"0123456789/-tcpudx,. \n', max_size=60).map(str.encode)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200) | _TOMLISH)
def test_arbitrary_bytes_raise_only_bad_input(data: bytes) -> None:
    with contextlib.suppress(BadInput):
        baseline = parse_baseline(data, "b.toml")
        assert all(1 <= port <= 65535 for port, _ in baseline.default or ())


def test_missing_file_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"(?i)no such file"):
        load_baseline(tmp_path / "none.toml")


def test_apply_baseline_adds_high_findings_for_unlisted_open_ports() -> None:
    target = TargetReport(input="home.example.org", address="198.51.100.7", ports=[
        PortReport(443, "tcp", "open", service="http"),
        PortReport(22, "tcp", "open", service="ssh", product="OpenSSH"),
        PortReport(23, "tcp", "closed"),
    ])
    report = ScanReport("x", "t", "t", 0.0, "syn", 3, targets=[target])
    apply_baseline(report, parse_baseline(EXAMPLE, "expected.toml"))
    (found,) = target.findings
    assert found.id == "port.unexpected" and found.port == 22
    assert found.severity == Severity.HIGH and "OpenSSH" in found.evidence
    assert "expected.toml" in found.remediation


def test_scan_with_a_bad_baseline_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "b.toml"
    bad.write_text("ports = [99999]\n")
    assert main(["scan", "127.0.0.1", "--baseline", str(bad), "--no-store"]) == 2
    assert "exposure: error: baseline" in capsys.readouterr().err
