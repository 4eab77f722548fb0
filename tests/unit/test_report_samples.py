"""Sample reports for the report tests: a realistic home, and the same full of hostile text.

The realistic one has what the checks produce (details.ssh/tls/ha/http/mqtt/shodan, TLS
grades with scores and caps, findings of every severity), plus a details key no renderer
knows ("redis"), which must still show. The hostile one puts every payload of
tests.lab.support_hostile into every string a server can influence.
"""

from __future__ import annotations

import copy
from typing import Any

from scanner.core.diff import Change, ChangeKind, ReportDiff, ScanRef
from scanner.core.findings import Finding, Severity
from scanner.core.report import Note, PortReport, ScanError, ScanReport, TargetReport
from scanner.core.text import safe_text
from scanner.diff import Side, diff_reports
from scanner.report.json_report import report_document
from scanner.report.schema import validate_report
from tests.lab.support_hostile import ALL_TEXT, HUGE_LINE, INVALID_UTF8

HOME = "home.example"
ADDRESS = "198.51.100.7"
ADDRESS6 = "2001:db8::7"


def _shodan(banner: str, *queries: str) -> dict[str, Any]:
    return {"banner": banner, "queries": list(queries)}


def _ports() -> list[PortReport]:
    ssh_banner = "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3"
    return [
        PortReport(22, "tcp", "open", "ssh", "OpenSSH", "9.2p1", False, ssh_banner, {
            "ssh": {
                "software": "OpenSSH_9.2p1", "distro": "Debian", "distro_revision": "2+deb12u3",
                "auth_methods": ["publickey", "password"],
                "kex": ["sntrup761x25519-sha512@openssh.com", "curve25519-sha256",
                        "diffie-hellman-group14-sha256"],
                "host_key_algorithms": ["ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512"],
                "ciphers": ["chacha20-poly1305@openssh.com", "aes256-gcm@openssh.com"],
                "macs": ["hmac-sha2-256-etm@openssh.com"],
                "strict_kex": False,
            },
            "shodan": _shodan(ssh_banner, f'"{ssh_banner}"'),
        }),
        PortReport(23, "tcp", "closed"),
        PortReport(443, "tcp", "open", "http", "nginx", "1.22.1", True, "HTTP/1.1 200 OK", {
            "http": {"status": 200, "title": "Welcome to nginx!", "server": "nginx/1.22.1",
                     "favicon_mmh3": None, "missing_security_headers": ["content-security-policy"]},
            "tls": {
                "grade": "A", "scores": {"protocol": 100, "key_exchange": 90, "cipher": 90},
                "caps": [], "protocols": ["TLSv1.2", "TLSv1.3"],
                "certificate": {"subject_cn": HOME, "issuer_cn": "R3",
                                "not_after": "2025-01-01T00:00:00+00:00", "self_signed": False},
            },
            "shodan": _shodan("HTTP/1.1 200 OK\nServer: nginx/1.22.1\n\nSSL Certificate\n"
                              f"Issued To: CN={HOME}", f'ssl.cert.subject.cn:"{HOME}"',
                              'http.title:"Welcome to nginx!"'),
        }),
        PortReport(1883, "tcp", "open", "mqtt", None, None, False,
                   "CONNACK return code 2 (identifier rejected)", {
            "mqtt": {"connack_return_code": 2, "connack_meaning": "identifier rejected",
                     "anonymous": True},
            "shodan": _shodan("MQTT Connection Code: 0", '"MQTT Connection Code" port:1883'),
        }),
        PortReport(6379, "tcp", "open", "redis", "Redis", "7.0.11", False, "-NOAUTH", {
            "redis": {"version": "7.0.11", "auth_required": False, "mode": "standalone",
                      "modules": ["search", "json"], "nested": {"deep": {"deeper": [1, 2]}}},
        }),
        PortReport(8123, "tcp", "open", "http", "Home Assistant", "2023.1.7", True,
                   "HTTP/1.1 200 OK", {
            "http": {"status": 200, "title": "Home Assistant", "server": None,
                     "favicon_mmh3": -1148350386},
            "ha": {"version": "2023.1.7", "onboarding": True, "auth_providers": ["homeassistant"]},
            "tls": {
                "grade": "C", "scores": {"protocol": 80, "key_exchange": 90, "cipher": 80},
                "caps": [{"grade": "C", "reason": "TLS 1.0 is offered"},
                         {"grade": "B", "reason": "no forward secrecy with some clients"}],
                "protocols": ["TLSv1", "TLSv1.2"],
                "certificate": {"subject_cn": "homeassistant.local", "self_signed": True},
            },
            "shodan": _shodan("HTTP/1.1 200 OK\nContent-Type: text/html",
                              'http.title:"Home Assistant"', "http.favicon.hash:-1148350386"),
        }),
    ]


def _findings() -> list[Finding]:
    return [
        Finding("ha.onboarding_open", Severity.CRITICAL,
                "Home Assistant has never been onboarded: anyone can create the owner account",
                "GET /api/onboarding answered 200 with\n"
                '[{"step": "user", "done": false}]',
                "Open Home Assistant in your browser now and create the owner account, or stop "
                "forwarding port 8123 until you have.", 8123,
                references=("https://www.home-assistant.io/getting-started/onboarding/",)),
        Finding("mqtt.anonymous", Severity.HIGH, "The MQTT broker accepts clients without a "
                "password", "CONNECT without credentials: CONNACK 0 (accepted)",
                "Set allow_anonymous false and give every client a password.", 1883),
        Finding("service.unauthenticated", Severity.HIGH, "Redis answers without "
                "authentication", "PING answered +PONG", "Bind Redis to localhost or set "
                "requirepass; never forward its port.", 6379),
        Finding("ssh.password_auth", Severity.MEDIUM, "SSH accepts passwords",
                "auth methods offered: publickey,password",
                "Set PasswordAuthentication no and KbdInteractiveAuthentication no in "
                "sshd_config, then restart sshd.", 22),
        Finding("tls.grade", Severity.MEDIUM, "TLS grade C on port 8123",
                "capped at C: TLS 1.0 is offered", "Turn off TLS 1.0 and 1.1.", 8123),
        Finding("tls.no_hsts", Severity.LOW, "No HSTS header", "no Strict-Transport-Security",
                "Add Strict-Transport-Security: max-age=31536000.", 443),
        Finding("ha.version_disclosed", Severity.INFO, "Home Assistant tells its version",
                "websocket greeting: ha_version 2023.1.7", "Nothing to do; keep it updated.",
                8123),
    ]


def sample_report() -> ScanReport:
    home = TargetReport(HOME, ADDRESS, HOME, _ports(), filtered_count=994,
                        findings=_findings(),
                        notes=[Note(22, "PermitRootLogin cannot be verified from outside")],
                        internetdb={"known": True, "ports": [22, 443, 8080],
                                    "hostnames": [HOME], "tags": [], "vulns": [],
                                    "cpes": ["cpe:/a:openbsd:openssh:9.2"],
                                    "indexed_but_closed_now": [8080],
                                    "open_but_not_indexed": [1883, 6379, 8123]})
    home6 = TargetReport(HOME, ADDRESS6, HOME, [
        PortReport(22, "tcp", "open", "ssh", "OpenSSH", "9.2p1", False,
                   "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3", {}),
    ], filtered_count=999, findings=[
        Finding("ssh.password_auth", Severity.MEDIUM, "SSH accepts passwords",
                "auth methods offered: publickey,password",
                "Set PasswordAuthentication no.", 22),
    ])
    return ScanReport(
        id="3f2a9c1b7d4e", started_at="2024-05-01T08:00:00+00:00",
        finished_at="2024-05-01T08:00:04+00:00", duration_s=3.91, engine="syn",
        ports_requested=1000, targets=[home, home6],
    )


def earlier_report() -> ScanReport:
    """The sample home a day before: Redis not yet forwarded, TLS on 8123 still graded A, a
    weak SSH algorithm not yet removed."""
    report = sample_report()
    report.id, report.started_at = "1a2b3c4d5e6f", "2024-04-30T08:00:00+00:00"
    report.finished_at = "2024-04-30T08:00:04+00:00"
    home = report.targets[0]
    home.ports = [port for port in home.ports if port.port != 6379]
    dropped = {("service.unauthenticated", 6379), ("tls.grade", 8123)}  # found since
    home.findings = [finding for finding in home.findings
                     if (finding.id, finding.port) not in dropped]
    next(port for port in home.ports if port.port == 8123).details["tls"]["grade"] = "A"
    home.findings.append(Finding("ssh.weak_algorithms", Severity.LOW, "Weak SSH algorithms",
                                 "diffie-hellman-group1-sha1", "Remove it.", 22))
    return report


def sample_diff() -> ReportDiff:
    """What the diff engine says between earlier_report() and sample_report()."""
    return diff_reports(Side(earlier_report().to_dict()), Side(sample_report().to_dict()))


# --- hostile --------------------------------------------------------------------------------

HOSTILE = ALL_TEXT + " " + INVALID_UTF8.decode("utf-8", "replace")
HOSTILE_HUGE = HOSTILE + " " + HUGE_LINE.decode()


def _hostile_tree(value: Any) -> Any:
    """The same structure with every string replaced by hostile text (keys too)."""
    if isinstance(value, str):
        return HOSTILE_HUGE
    if isinstance(value, dict):
        return {HOSTILE[:60] + key: _hostile_tree(item) for key, item in value.items()} | {
            key: _hostile_tree(item) for key, item in value.items()
        }
    if isinstance(value, list):
        return [_hostile_tree(item) for item in value]
    return value


def hostile_report() -> ScanReport:
    """Every remote-influenced string hostile and unsanitised (a check that forgot to clean).

    Titles and remediations are ours in practice, but a check may quote remote text in them,
    so they are hostile here too. The port details keep their keys (so the known renderers
    run) and also get hostile keys.
    """
    report = sample_report()
    for target in report.targets:
        target.input = HOSTILE
        target.notes = [Note(None, HOSTILE_HUGE)]
        target.internetdb = _hostile_tree({"hostnames": ["x"], "warning": "x"})
        for port in target.ports:
            port.service, port.product, port.version = HOSTILE, HOSTILE, HOSTILE
            port.banner = HOSTILE_HUGE
            port.details = _hostile_tree(copy.deepcopy(port.details))
            if "tls" in port.details:
                port.details["tls"]["grade"] = HOSTILE
        target.findings = [
            Finding(finding.id, finding.severity, HOSTILE_HUGE, HOSTILE_HUGE, HOSTILE_HUGE,
                    finding.port, references=(HOSTILE, f"javascript:window.__pwned=1//{HOSTILE}"))
            for finding in target.findings
        ]
    report.errors = [ScanError("scan", HOSTILE_HUGE)]
    return report


def hostile_diff() -> ReportDiff:
    """A diff whose every text is hostile (the engine sanitises; a renderer must not rely on
    it)."""
    return ReportDiff(ScanRef(HOSTILE, HOSTILE), ScanRef(HOSTILE, HOSTILE), (
        Change(ChangeKind.PORT_OPENED, Severity.HIGH, HOSTILE, (HOSTILE,), HOSTILE_HUGE,
               port=8123, before=HOSTILE, after={"service": HOSTILE, "product": HOSTILE}),
    ), notes=(HOSTILE_HUGE,))


# --- tests of the samples themselves --------------------------------------------------------


def test_sample_report_follows_the_schema() -> None:
    validate_report(report_document(sample_report()))


def test_hostile_report_really_is_hostile() -> None:
    report = hostile_report()
    assert "\x1b" in report.targets[0].findings[0].evidence
    assert len(report.targets[0].ports[0].banner or "") > 1_000_000
    assert safe_text(HOSTILE) != HOSTILE
