"""The preflight verdict policy, HOST:PORT parsing, and the command on loopback services."""

from __future__ import annotations

import functools
import http.server
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scanner.cli import main
from scanner.errors import BadInput
from scanner.preflight import decide, parse_service
from scanner.preflight.policy import ALSO_BLOCKING, VANTAGE_DEPENDENT


def lan_report(port: dict[str, Any] | None, findings: list[dict[str, Any]]) -> dict[str, Any]:
    return {"scan": {"id": "abc"},
            "targets": [{"input": "192.168.1.20", "address": "192.168.1.20",
                         "ports": [port] if port else [], "findings": findings}]}


def http_port(number: int = 8123, tls: bool = False, service: str | None = "http") -> dict:
    return {"port": number, "state": "open", "service": service, "product": "Home Assistant",
            "version": None, "tls": tls}


def finding(finding_id: str, severity: str, port: int | None = 8123) -> dict[str, Any]:
    return {"id": finding_id, "severity": severity, "port": port, "title": f"{finding_id}!",
            "evidence": "seen", "remediation": f"fix {finding_id}"}


def test_no_findings_is_safe_and_says_what_differs_outside() -> None:
    verdict = decide(lan_report(http_port(tls=True), []), "192.168.1.20", 8123, 443)
    assert verdict.safe and verdict.label == "SAFE TO FORWARD" and verdict.as_port == 443
    text = " ".join(verdict.outside)
    assert "external port 443 goes to 192.168.1.20:8123" in text
    assert "IPv6" in text and "reverse proxy" in text.lower()
    assert verdict.to_dict()["seen_from"] == "the LAN"


@pytest.mark.parametrize("severity", ["critical", "high"])
def test_high_and_critical_block(severity: str) -> None:
    verdict = decide(lan_report(http_port(), [finding("ha.onboarding_open", severity)]),
                     "192.168.1.20", 8123)
    assert not verdict.safe and verdict.label == "NOT SAFE"
    (reason,) = verdict.blocking
    assert reason.id == "ha.onboarding_open" and reason.fix == "fix ha.onboarding_open"


def test_listed_medium_findings_block_with_the_reason() -> None:
    for finding_id, why in ALSO_BLOCKING.items():
        report = lan_report(http_port(22, service="ssh"), [finding(finding_id, "medium", 22)])
        verdict = decide(report, "192.168.1.20", 22)
        assert not verdict.safe and why in verdict.blocking[0].why


def test_other_medium_and_low_are_warnings_info_is_silent() -> None:
    findings = [finding("ssh.terrapin", "medium", 22), finding("ssh.weak_algorithms", "low", 22),
                finding("ssh.version_disclosed", "info", 22)]
    verdict = decide(lan_report(http_port(22, service="ssh"), findings), "h", 22)
    assert verdict.safe and [r.id for r in verdict.warnings] == ["ssh.terrapin",
                                                                  "ssh.weak_algorithms"]


def test_vantage_dependent_findings_are_not_judged_from_the_lan() -> None:
    findings = [finding(finding_id, "critical") for finding_id in VANTAGE_DEPENDENT]
    verdict = decide(lan_report(http_port(), findings), "h", 8123)
    assert verdict.safe and len(verdict.warnings) == len(VANTAGE_DEPENDENT)
    assert all("LAN" in reason.why or "trusted" in reason.why for reason in verdict.warnings)


def test_findings_of_other_ports_are_ignored() -> None:
    verdict = decide(lan_report(http_port(), [finding("x.y", "critical", 22)]), "h", 8123)
    assert verdict.safe


def test_unidentified_service_is_not_safe() -> None:
    verdict = decide(lan_report(http_port(service=None), []), "h", 8123)
    assert not verdict.safe and verdict.blocking[0].id == "preflight.unidentified"


def test_a_check_that_failed_is_never_safe() -> None:
    report = lan_report(http_port(), [])
    report["scan"]["errors"] = ["192.168.1.20: ha check on port 8123 failed: AttributeError(...)"]
    verdict = decide(report, "192.168.1.20", 8123)
    assert not verdict.safe
    (reason,) = verdict.blocking
    assert reason.id == "preflight.check_failed" and "ha check" in reason.why


def test_nothing_answering_cannot_tell() -> None:
    verdict = decide(lan_report(None, []), "h", 8123)
    assert not verdict.reachable and verdict.label == "CANNOT TELL" and not verdict.safe


def test_https_port_without_tls_is_mentioned() -> None:
    verdict = decide(lan_report(http_port(tls=False), []), "h", 8123, 443)
    assert verdict.safe and verdict.warnings[0].id == "preflight.https_port_without_tls"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("192.168.1.20:8123", ("192.168.1.20", 8123)), ("[fd00::20]:22", ("fd00::20", 22)),
     ("nas.lan:5000", ("nas.lan", 5000)), (" 10.0.0.1:1 ", ("10.0.0.1", 1))],
)
def test_parse_service(text: str, expected: tuple[str, int]) -> None:
    assert parse_service(text) == expected


@pytest.mark.parametrize("text", ["192.168.1.20", "fd00::20:22", "[fd00::20]", ":80", "h:0",
                                  "h:65536", "h:x", "[nothost]:22", "h:８０"])
def test_parse_service_rejects(text: str) -> None:
    with pytest.raises(BadInput, match="HOST:PORT"):
        parse_service(text)


@given(st.text(max_size=60))
def test_parse_service_raises_only_bad_input(text: str) -> None:
    try:
        host, port = parse_service(text)
    except BadInput:
        return
    assert 1 <= port <= 65535 and host


# --- the command on loopback ----------------------------------------------------------------


@pytest.fixture
def web_port(tmp_path: Path) -> Iterator[int]:
    (tmp_path / "index.html").write_text("<html><title>A static page</title></html>")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_cli_static_web_page_is_safe(web_port: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["preflight", f"127.0.0.1:{web_port}", "--format", "json"]) == 0
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["verdict"] == "SAFE TO FORWARD" and verdict["service"].startswith("http")


def test_cli_nothing_listening_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert main(["preflight", f"127.0.0.1:{port}"]) == 3
    out = capsys.readouterr().out
    assert "CANNOT TELL" in out and "Nothing answers" in out


def test_cli_bad_target_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["preflight", "192.168.1.20"]) == 2
    assert "HOST:PORT" in capsys.readouterr().err
