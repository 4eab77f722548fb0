"""The terminal report: what it shows, in which order, and that no server can drive the terminal."""

from __future__ import annotations

import io
import re

from rich.console import Console

from scanner.report.terminal import render_terminal
from tests.unit.test_report_samples import hostile_diff, hostile_report, sample_diff, sample_report

# What rich itself emits for colour: SGR sequences only (ESC [ digits;... m).
SGR = re.compile(r"\x1b\[[0-9;]*m")


def _render(report: object, *, colour: bool, quiet: bool = False, diff: object = None) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, width=120, force_terminal=colour, color_system="truecolor"
                      if colour else None)
    render_terminal(report, console, quiet=quiet, diff=diff)  # type: ignore[arg-type]
    return buffer.getvalue()


def test_summary_line_per_target() -> None:
    text = _render(sample_report(), colour=False)
    lines = text.splitlines()
    summary = next(line for line in lines if line.startswith("home.example (198.51.100.7)"))
    assert "open 5, closed 1, filtered 994" in summary
    assert "worst: CRITICAL" in summary
    assert "TLS: 443 A 8123 C" in summary
    assert any(line.startswith("home.example (2001:db8::7)") and "worst: MEDIUM" in line
               for line in lines)


def test_findings_worst_first_with_remediation_then_ports_then_shodan() -> None:
    text = _render(sample_report(), colour=False)
    order = [text.index(marker) for marker in (
        "CRITICAL  ha.onboarding_open", "HIGH      mqtt.anonymous", "MEDIUM    ssh.password_auth",
        "LOW       tls.no_hsts", "INFO      ha.version_disclosed", "  Ports",
        "What internet scanners", "search: http.favicon.hash:-1148350386",
    )]
    assert order == sorted(order)
    assert "fix:  Set allow_anonymous false" in text
    assert "seen: GET /api/onboarding answered 200 with …" in text  # first line, marked


def test_port_table_and_highlights() -> None:
    text = _render(sample_report(), colour=False)
    assert re.search(r"443/tcp\s+open\s+http\s+nginx 1\.22\.1\s+A\s+title: Welcome to nginx!", text)
    assert re.search(r"23/tcp\s+closed", text)
    assert "auth: publickey, password" in text


def test_quiet_prints_only_findings() -> None:
    text = _render(sample_report(), colour=False, quiet=True)
    lines = [line for line in text.splitlines() if line.strip()]
    headers = [line for line in lines if not line.startswith("    ")]
    assert len(headers) == 8  # 7 + 1 findings, one header line each
    assert headers[0].startswith(" CRITICAL  ha.onboarding_open home.example (198.51.100.7) port")
    assert all("fix:" in line for line in lines if line.startswith("    fix:"))
    assert "Ports" not in text and "What internet scanners" not in text and "open 5" not in text


def test_quiet_with_no_findings_prints_nothing() -> None:
    report = sample_report()
    for target in report.targets:
        target.findings = []
    assert _render(report, colour=False, quiet=True) == ""


def test_diff_is_shown_when_given() -> None:
    text = _render(sample_report(), colour=False, diff=sample_diff())
    assert "Changes since scan 1a2b3c4d5e6f" in text and "1 new, 1 gone, 1 changed" in text
    assert "+ 198.51.100.7 port 6379/tcp: port 6379/tcp is now open" in text
    assert "~ 198.51.100.7 port 8123/tcp: TLS grade dropped (A -> C)" in text


def test_no_ansi_when_not_a_terminal() -> None:
    assert "\x1b" not in _render(sample_report(), colour=False)


def test_colour_when_a_terminal() -> None:
    text = _render(sample_report(), colour=True)
    assert SGR.search(text) and SGR.sub("", text).count("\x1b") == 0


def test_hostile_text_cannot_drive_the_terminal() -> None:
    for colour in (False, True):
        text = _render(hostile_report(), colour=colour, diff=hostile_diff())
        text += _render(hostile_report(), colour=colour, quiet=True)
        residue = SGR.sub("", text)  # rich's own colours are allowed, nothing else
        assert "\x1b" not in residue and "\x9b" not in residue and "\x07" not in residue
        assert "\x08" not in residue and "\r" not in residue and "\x00" not in residue
        assert "\u202e" not in residue and "\u2066" not in residue
        assert "\\e]0;pwned-window-title" in residue  # shown, defused
        # rich markup in a banner stays text: no hyperlink (OSC 8), no style applied
        assert "\x1b]8" not in text and "[link=http://203.0.113.99/leak]" in residue


def test_huge_text_is_visibly_truncated_and_bounded() -> None:
    text = _render(hostile_report(), colour=False)
    assert "[truncated]" in text
    assert len(text) < 200_000  # the report holds dozens of 1 MB strings
    # wrapped at 120 columns, except the summary lines (one line each, to grep for)
    assert max(len(line) for line in text.splitlines()) <= 600


def test_the_same_finding_on_both_addresses_shows_once() -> None:
    report = sample_report()
    v4, v6 = report.targets
    v6.findings = [f for f in v4.findings if f.id == "ssh.password_auth"]
    text = _render(report, colour=False)
    assert text.count("ssh.password_auth") == 1
    assert "ssh.password_auth  port 22/tcp  (all 2 addresses)" in text
    assert "mqtt.anonymous  port 1883/tcp  (only 198.51.100.7)" in text
    assert "  Ports of 198.51.100.7" in text and "  Ports of 2001:db8::7" in text
    quiet = _render(report, colour=False, quiet=True)
    assert "ssh.password_auth home.example (198.51.100.7, 2001:db8::7) port 22/tcp:" in quiet
