"""The terminal report: the answer first, grouped fixes, and no server driving the terminal."""

from __future__ import annotations

import dataclasses
import io
import re

from rich.console import Console

from scanner.core.findings import Finding, Severity
from scanner.report.terminal import render_terminal, short_fix
from tests.unit.test_report_samples import hostile_diff, hostile_report, sample_diff, sample_report

# What rich itself emits for colour: SGR sequences only (ESC [ digits;... m).
SGR = re.compile(r"\x1b\[[0-9;]*m")
CIPHERS = ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
           "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
           "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
           "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384")


def _render(report: object, *, colour: bool = False, quiet: bool = False, diff: object = None,
            width: int = 120, shodan: bool = False) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, force_terminal=colour, color_system="truecolor"
                      if colour else None)
    render_terminal(report, console, quiet=quiet, diff=diff, shodan=shodan)  # type: ignore[arg-type]
    return buffer.getvalue()


def _both_addresses_report():  # type: ignore[no-untyped-def]
    """The sample with every finding of the IPv4 address on the IPv6 one too."""
    report = sample_report()
    v4, v6 = report.targets
    v6.findings = list(v4.findings)
    v6.ports = [dataclasses.replace(port) for port in v4.ports]
    return report


def test_the_answer_comes_first() -> None:
    lines = _render(sample_report(), width=100).splitlines()
    assert lines[0].startswith("exposure ") and "home.example" in lines[0]
    assert lines[1].startswith(" NOT SAFE  Not safe to leave on the internet: 1 critical and 2 "
                               "high problems on 5 open ports")
    first_fix = next(i for i, line in enumerate(lines) if line == "Fix these first")
    assert first_fix < 5
    assert lines[first_fix + 1].startswith(" 1. CRITICAL  Home Assistant has never been onboarded")
    assert lines[first_fix + 2].strip() == "8123 on IPv4 only · ha.onboarding_open"
    assert lines[first_fix + 3].strip().startswith("fix: Open Home Assistant in your browser")


def test_a_problem_on_several_ports_and_addresses_is_listed_once() -> None:
    report = _both_addresses_report()
    for target in report.targets:
        target.findings.append(Finding(
            "tls.no_hsts", Severity.LOW, "No HSTS header", "no Strict-Transport-Security",
            "Add Strict-Transport-Security: max-age=31536000.", 8123))
    text = _render(report)
    answer = text[:text.index("\nWhat was seen\n")]
    assert answer.count("tls.no_hsts") == 1 and answer.count("ha.onboarding_open") == 1
    assert "443 and 8123 on IPv4 and IPv6 · tls.no_hsts" in text.replace("\n", " ")
    assert "443 on IPv4 and IPv6; 8123 on IPv4 only" not in text
    assert "8123 on IPv4 and IPv6 · ha.onboarding_open" in text


def test_several_fixes_are_a_list() -> None:
    text = _render(sample_report())
    assert "fix: - Set PasswordAuthentication no and KbdInteractiveAuthentication no" in text
    assert re.search(r"\n {19}- Set PasswordAuthentication no\.\n", text)


def test_info_points_and_the_ipv6_note_follow_the_list() -> None:
    text = _render(sample_report())
    assert "For information: ha.version_disclosed (Home Assistant tells its version;" in text
    assert text.count("What IPv6 means here:") == 1
    assert text.index("What IPv6 means here:") < text.index("home.example (198.51.100.7)  open")


def test_no_ipv6_note_without_ipv6() -> None:
    report = sample_report()
    report.targets = report.targets[:1]
    assert "IPv6 means" not in _render(report)


def test_summary_line_per_address_and_merged_port_table() -> None:
    text = _render(sample_report())
    lines = text.splitlines()
    summary = next(line for line in lines if line.startswith("home.example (198.51.100.7)"))
    assert "open 5, closed 1, filtered 994" in summary and "worst: CRITICAL" in summary
    assert "TLS: 443 A 8123 C" in summary
    assert any(line.startswith("home.example (2001:db8::7)") and "worst: MEDIUM" in line
               for line in lines)
    assert re.search(r"22/tcp\s+IPv4\+6\s+ssh\s+OpenSSH 9\.2p1\s+medium\s+auth: publickey", text)
    assert re.search(r"443/tcp\s+IPv4\s+http\s+nginx 1\.22\.1\s+A\s+low\s+title: Welcome", text)
    assert "198.51.100.7: closed (reachable, nothing listening): 23/tcp" in text


def test_mqtt_row_says_what_the_check_found_not_our_probe() -> None:
    text = _render(sample_report())
    assert "anonymous MQTT: yes" in text
    assert "identifier rejected" not in text.split("What was seen")[0]


def test_wrapped_lines_hang_under_their_text() -> None:
    report = sample_report()
    finding = report.targets[0].findings[0]
    report.targets[0].findings[0] = dataclasses.replace(
        finding, remediation="word " * 60 + "end.")
    lines = _render(report, width=80).splitlines()
    start = next(i for i, line in enumerate(lines) if "fix: word word" in line)
    continuation = lines[start + 1]
    assert continuation.startswith(" " * 19 + "word") and len(continuation) <= 80
    assert all(len(line) <= 80 for line in lines[:start + 6])


def test_code_is_not_broken_mid_token() -> None:
    report = sample_report()
    finding = report.targets[0].findings[0]
    report.targets[0].findings[0] = dataclasses.replace(
        finding, remediation=f"In nginx: `ssl_ciphers {CIPHERS};` then reload nginx.")
    text = _render(report, width=100)
    block = text[text.index("fix: In nginx"):text.index("then reload nginx")]
    pieces = [line.strip() for line in block.splitlines()]
    assert "".join(pieces[1:]) + "" == f"{CIPHERS};" or "".join(pieces).endswith(f"{CIPHERS};")
    for line in pieces[1:]:  # every line ends at a separator or is the end of the list
        assert line.endswith((":", ";")), line
    assert "`" not in block  # the span's backticks are not printed


def test_code_is_coloured_on_a_terminal() -> None:
    report = sample_report()
    finding = report.targets[0].findings[1]
    report.targets[0].findings[1] = dataclasses.replace(
        finding, remediation="Set `allow_anonymous false` in mosquitto.conf.")
    text = _render(report, colour=True)
    assert re.search(r"\x1b\[36mallow_anonymous\x1b\[0m \x1b\[36mfalse\x1b\[0m", text)


def test_open_ports_and_good_grades_are_not_green() -> None:
    text = _render(sample_report(), colour=True)
    green = re.compile(r"\x1b\[(?:[0-9;]*;)?(32|92|38;2;0;128;0)m")
    assert not green.search(text)


def test_the_shodan_view_is_off_by_default_and_one_line_per_port() -> None:
    report = sample_report()
    report.targets[0].ports[2].details["shodan"]["banner"] = (
        "HTTP/1.1 200 OK\nServer: nginx/1.22.1\nDate: Mon, 01 Jan 2024 00:00:00 GMT\n"
        'ETag: "65a1-5e1"\nSet-Cookie: session=abc123secret\n\nSSL Certificate\n'
        "Issued To: CN=home.example")
    assert "crawlers (Shodan" not in _render(report)
    text = _render(report, shodan=True)
    section = text[text.index("What internet crawlers"):]
    line = _entry(section, "443/tcp")
    assert "HTTP/1.1 200 OK · Server: nginx/1.22.1 · title \"Welcome to nginx!\"" in line
    assert "certificate for home.example" in line and 'search: ssl.cert.subject.cn:' in line
    assert "Date" not in section and "ETag" not in section and "abc123secret" not in section


def _entry(section: str, label: str) -> str:
    """One port's entry of the Shodan section: its line and the lines hanging under it."""
    lines = section.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"  {label}"))
    entry = [lines[start]]
    for line in lines[start + 1:]:
        if not line.startswith(" " * 13):
            break
        entry.append(line.strip())
    return " ".join(entry)


def test_the_shodan_view_never_shows_our_refused_probe() -> None:
    report = sample_report()
    report.targets[0].ports[3].details["shodan"]["banner"] = "MQTT Connection Code: 1"
    text = _render(report, shodan=True)
    line = _entry(text[text.index("What internet crawlers"):], "1883/tcp")
    assert "MQTT broker that lets clients in without a password" in line
    assert "Connection Code: 1" not in text


def test_binary_greetings_are_not_printed() -> None:
    report = sample_report()
    report.targets[0].ports[4].details["shodan"] = {
        "banner": "\ufffd\ufffd\x00\ufffd" * 20, "queries": []}
    text = _render(report, shodan=True)
    line = _entry(text[text.index("What internet crawlers"):], "6379/tcp")
    assert "binary data (not text)" in line and "\ufffd" not in line


def test_evidence_follows_with_where_the_rest_is() -> None:
    text = _render(sample_report())
    seen = text[text.index("\nWhat was seen\n"):]
    assert " 1. ha.onboarding_open" in seen
    assert ("port 8123/tcp on 198.51.100.7: GET /api/onboarding answered 200 with … [more in "
            "the JSON or HTML report]") in seen.replace("\n      ", " ")
    assert "see: https://www.home-assistant.io/getting-started/onboarding/" in seen


def test_quiet_prints_one_block_per_problem() -> None:
    text = _render(sample_report(), quiet=True)
    lines = [line for line in text.splitlines() if line.strip()]
    headers = [line for line in lines if not line.startswith("    ")]
    assert len(headers) == 7  # problems: ssh.password_auth on both addresses is one
    assert headers[0].startswith(" CRITICAL  ha.onboarding_open home.example 8123 on IPv4 only:")
    assert any("ssh.password_auth home.example 22 on IPv4 and IPv6:" in h for h in headers)
    assert "Open ports" not in text and "What was seen" not in text


def test_quiet_with_no_findings_prints_nothing() -> None:
    report = sample_report()
    for target in report.targets:
        target.findings = []
    assert _render(report, quiet=True) == ""


def test_diff_is_shown_when_given() -> None:
    text = _render(sample_report(), diff=sample_diff())
    assert "Changes since scan 1a2b3c4d5e6f" in text and "3 new, 1 gone, 1 changed" in text
    assert "+ 198.51.100.7: port 6379/tcp opened (redis, Redis 7.0.11)" in text
    assert "~ 198.51.100.7: TLS grade on port 8123/tcp: A -> C" in text
    assert "- 198.51.100.7: resolved: ssh.weak_algorithms on port 22/tcp" in text


def test_no_ansi_when_not_a_terminal() -> None:
    assert "\x1b" not in _render(sample_report())


def test_colour_when_a_terminal() -> None:
    text = _render(sample_report(), colour=True)
    assert SGR.search(text) and SGR.sub("", text).count("\x1b") == 0


def test_hostile_text_cannot_drive_the_terminal() -> None:
    for colour in (False, True):
        text = _render(hostile_report(), colour=colour, diff=hostile_diff(), shodan=True)
        text += _render(hostile_report(), colour=colour, quiet=True)
        residue = SGR.sub("", text)  # rich's own colours are allowed, nothing else
        assert "\x1b" not in residue and "\x9b" not in residue and "\x07" not in residue
        assert "\x08" not in residue and "\r" not in residue and "\x00" not in residue
        assert "\u202e" not in residue and "\u2066" not in residue
        assert "\\e]0;pwned-window-title" in residue  # shown, defused
        # rich markup in a banner stays text: no hyperlink (OSC 8), no style applied
        assert "\x1b]8" not in text and "[link=http://203.0.113.99/leak]" in residue


def test_huge_text_is_visibly_truncated_and_bounded() -> None:
    text = _render(hostile_report())
    assert "[truncated here; the full text is in the JSON report" in text
    assert len(text) < 400_000  # the report holds dozens of 1 MB strings
    # wrapped at 120 columns, except the summary lines (one line each, to grep for)
    long_lines = [line for line in text.splitlines() if len(line) > 120]
    assert all(" open " in line and "worst:" in line for line in long_lines)


def test_the_same_finding_on_both_addresses_shows_once() -> None:
    report = sample_report()
    v4, v6 = report.targets
    v6.findings = [f for f in v4.findings if f.id == "ssh.password_auth"]
    text = _render(report)
    answer = text[:text.index("\nWhat was seen\n")]
    assert answer.count("ssh.password_auth") == 1
    assert "22 on IPv4 and IPv6 · ssh.password_auth" in text
    assert "1883 on IPv4 only · mqtt.anonymous" in text
    assert "Open ports of home.example (all its addresses)" in text
    quiet = _render(report, quiet=True)
    assert "ssh.password_auth home.example 22 on IPv4 and IPv6:" in quiet


def test_a_long_fix_is_shortened_in_the_list_and_whole_below() -> None:
    report = sample_report()
    finding = report.targets[0].findings[0]
    whole = ("Onboard now: open Home Assistant and create the owner account. Until then, remove "
             "the port forward: whoever finishes onboarding first owns it. (The checklist: "
             "\"Set a password\"; " + "more words " * 20 + ") Run `ha core check` after.")
    report.targets[0].findings[0] = dataclasses.replace(finding, remediation=whole)
    text = _render(report, width=100)
    answer, details = text.split("\nWhat was seen\n")
    flat = " ".join(answer.split())
    assert ("fix: Onboard now: open Home Assistant and create the owner account. Until then, "
            "remove the port forward: whoever finishes onboarding first owns it. … [the whole fix "
            "is under What was seen, below]") in flat
    assert "more words" not in answer
    assert "ha core check" in " ".join(details.split())
    assert short_fix("`" + "x " * 200 + "`. Done.") == "`" + "x " * 200 + "`. Done."
