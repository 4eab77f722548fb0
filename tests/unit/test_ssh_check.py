"""The SSH check's pure assessment: which findings, details and notes an audit gives."""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress

import pytest

from scanner.checks.base import CheckContext, CheckOptions, standalone_context
from scanner.checks.registry import all_checks, catalogue
from scanner.checks.ssh.audit import (
    AuditOptions,
    AuthPlan,
    AuthProbe,
    FetchedKey,
    ServerHello,
    SshAudit,
    plan_auth,
    probe_blocker,
)
from scanner.checks.ssh.check import CHECK, ROOT_LOGIN_NOTE, assess
from scanner.checks.ssh.hostkeys import HostKey, KeyFamily
from scanner.checks.ssh.kexinit import Identification, KexInit
from scanner.checks.ssh.servers import DROPBEAR_PROFILE, OPENSSH_PROFILE, OTHER_PROFILE
from scanner.core.findings import Severity
from scanner.identification.model import ServiceIdentity
from scanner.targets import Target
from tests.unit.test_ssh_algorithms import kexinit

PORT = 22
ED25519 = HostKey("ssh-ed25519", 256, "SHA256:" + "A" * 43)


DEBIAN = "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10"
SSH_IDS = {"ssh.password_auth", "ssh.no_auth", "ssh.terrapin", "ssh.weak_algorithms", "ssh.cve"}
REGRESSHION_TXT = "https://www.qualys.com/2024/07/01/cve-2024-6387/regresshion.txt"


def hello(banner: str = DEBIAN, kex: KexInit | None = None) -> ServerHello:
    head, _, comment = banner.partition(" ")
    software = head.split("-", 2)[2]
    identification = Identification(banner, "2.0", software, comment or None)
    return ServerHello(identification, kex or kexinit())


# Dropbear is asked by default: no note about what asking cost
ASKED = AuthPlan(DROPBEAR_PROFILE, "root")


def audit(
    methods: tuple[str, ...] | None = ("publickey",),
    none_accepted: bool = False,
    server: ServerHello | None = None,
    keys: tuple[HostKey, ...] = (ED25519,),
    plan: AuthPlan = ASKED,
) -> SshAudit:
    fetched = tuple(FetchedKey(KeyFamily(k.type, (k.type,)), k, "kex") for k in keys)
    auth = None
    if plan.user is not None:
        auth = AuthProbe(user=plan.user, methods=methods, none_accepted=none_accepted)
    return SshAudit(hello=server or hello(), host_keys=fetched, auth=auth, plan=plan, connections=1)


def ids(result: object) -> list[str]:
    return sorted(f.id for f in result.findings)  # type: ignore[attr-defined]


def test_registered_with_its_catalogue() -> None:
    assert CHECK in all_checks()
    listed = {spec.id for spec in catalogue()}
    assert listed >= SSH_IDS


def _context(service: str | None, port: int = 2222) -> CheckContext:
    target = Target(input="x", address=ipaddress.ip_address("203.0.113.10"), hostname=None)
    return standalone_context(target, port, ServiceIdentity(service=service), CheckOptions())


def test_applies_to_ssh_on_any_port_only() -> None:
    assert CHECK.applies(_context("ssh", 2222))
    assert CHECK.applies(_context("ssh", 443))
    assert not CHECK.applies(_context("http", 22))
    assert not CHECK.applies(_context(None, 22))


def test_keys_only_default_server_has_no_finding() -> None:
    result = assess(audit(), PORT)
    assert ids(result) == []
    assert result.notes == (ROOT_LOGIN_NOTE,)


def test_password_and_keyboard_interactive() -> None:
    (finding,) = assess(audit(methods=("publickey", "password")), PORT).findings
    assert finding.id == "ssh.password_auth" and finding.severity == Severity.MEDIUM
    assert "password" in finding.title and "keyboard" not in finding.title
    (kbd,) = assess(audit(methods=("publickey", "keyboard-interactive")), PORT).findings
    assert "keyboard-interactive" in kbd.title and "PAM" in kbd.evidence
    (both,) = assess(audit(methods=("password", "keyboard-interactive")), PORT).findings
    assert "password and keyboard-interactive" in both.title


def test_none_accepted_is_critical_and_only_that() -> None:
    result = assess(audit(methods=("none",), none_accepted=True), PORT)
    assert ids(result) == ["ssh.no_auth"]
    assert result.findings[0].severity == Severity.CRITICAL
    assert "'root'" in result.findings[0].evidence and "no session" in result.findings[0].evidence
    assert result.details["ssh"]["none_auth_accepted"] is True
    assert result.details["ssh"]["auth_asked_as"] == "root"


def test_unknown_methods_are_a_note_not_a_finding() -> None:
    result = assess(audit(methods=None), PORT)
    assert ids(result) == []
    assert any("could not be read" in note for note in result.notes)
    assert result.details["ssh"]["auth_methods"] is None


def test_weak_algorithms_and_terrapin() -> None:
    legacy = kexinit(
        kex=("curve25519-sha256", "diffie-hellman-group1-sha1"),
        ciphers=("aes128-ctr", "aes128-cbc"),
        macs=("hmac-sha2-256-etm@openssh.com",),
    )
    result = assess(audit(server=hello(kex=legacy)), PORT)
    assert ids(result) == ["ssh.terrapin", "ssh.weak_algorithms"]
    weak = next(f for f in result.findings if f.id == "ssh.weak_algorithms")
    assert "diffie-hellman-group1-sha1" in weak.evidence and "aes128-cbc" in weak.evidence
    assert weak.severity == Severity.LOW
    terrapin = next(f for f in result.findings if f.id == "ssh.terrapin")
    assert "aes128-cbc" in terrapin.evidence
    assert "hmac-sha2-256-etm@openssh.com" in terrapin.evidence


def test_small_rsa_host_key_is_weak() -> None:
    result = assess(audit(keys=(HostKey("ssh-rsa", 1024, "SHA256:x"),)), PORT)
    assert ids(result) == ["ssh.weak_algorithms"]
    assert "1024-bit" in result.findings[0].evidence


def test_cve_confirmed_and_unknown() -> None:
    confirmed = assess(audit(server=hello("SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13")), PORT)
    regresshion = next(f for f in confirmed.findings if "CVE-2024-6387" in f.title)
    assert regresshion.severity == Severity.HIGH and "vulnerable to" in regresshion.title
    assert REGRESSHION_TXT in regresshion.references
    unknown = assess(audit(server=hello("SSH-2.0-OpenSSH_9.7p1")), PORT)
    regresshion = next(f for f in unknown.findings if "CVE-2024-6387" in f.title)
    assert regresshion.severity == Severity.MEDIUM and "patch level unknown" in regresshion.title


def test_debian_bookworm_patched_has_no_cve_finding_and_says_why() -> None:
    result = assess(audit(), PORT)
    assert ids(result) == []
    advisories = {a["id"]: a for a in result.details["ssh"]["advisories"]}
    assert advisories["CVE-2024-6387"]["status"] == "fixed-by-distro"
    assert advisories["CVE-2024-6387"]["severity"] is None


def test_details_shape() -> None:
    identified = {"protocol": "2.0", "comment": "from identification", "extra": 1}
    details = assess(audit(methods=("publickey", "password")), PORT, identified).details["ssh"]
    for key in (
        "banner",
        "software",
        "version",
        "distro",
        "kex",
        "host_keys",
        "ciphers",
        "macs",
        "compression",
        "strict_kex",
        "auth_methods",
    ):
        assert key in details, key
    assert details["extra"] == 1  # what identification learnt is kept
    assert details["comment"] == "Debian-2+deb12u10"  # ... and refreshed where we know better
    assert details["version"] == "9.2p1" and details["distro"] == "Debian"
    assert details["strict_kex"] is True
    assert details["host_keys"][0]["sha256"] == ED25519.sha256
    assert details["auth_methods"] == ["publickey", "password"]
    assert "hmac-sha1" in {a["name"] for a in details["legacy_algorithms"]}


def test_no_answer_at_all() -> None:
    result = assess(SshAudit(hello=None, errors=("algorithms: EOFError: closed",)), PORT)
    assert ids(result) == []
    assert result.notes[0] == ROOT_LOGIN_NOTE
    assert any("could not read the server's algorithms" in note for note in result.notes)


def test_auth_probe_is_skipped_when_it_cannot_work() -> None:
    """No connection is spent on a probe our client cannot complete; the note says why."""
    assert probe_blocker(kexinit()) is None
    assert probe_blocker(kexinit(kex=("sntrup761x25519-sha512@openssh.com",))) is not None
    assert "chacha20" in (probe_blocker(kexinit(ciphers=("chacha20-poly1305@openssh.com",))) or "")
    assert probe_blocker(kexinit(host_key=("ssh-dss",))) is not None
    zlib_only = dataclasses.replace(kexinit(), compression_c2s=("zlib",), compression_s2c=("zlib",))
    assert "compression" in (probe_blocker(zlib_only) or "")
    # the legacy algorithms old routers need are within reach
    legacy = kexinit(
        kex=("diffie-hellman-group14-sha1",),
        host_key=("ssh-rsa",),
        ciphers=("aes128-cbc",),
        macs=("hmac-sha1",),
    )
    assert probe_blocker(legacy) is None
    blocked = AuthPlan(DROPBEAR_PROFILE, None, blocker="no cipher in common")
    skipped = SshAudit(hello=hello(), auth=None, plan=blocked)
    assert any("no cipher in common" in note for note in assess(skipped, PORT).notes)


DROPBEAR_BANNER = "SSH-2.0-dropbear_2022.83"


@pytest.mark.parametrize(
    ("banner", "probe", "user"),
    [
        (DEBIAN, False, None),  # OpenSSH: asking may be a counted failure: opt-in
        (DEBIAN, True, "nobody"),
        ("SSH-2.0-OpenSSH_for_Windows_9.5", False, None),
        (DROPBEAR_BANNER, False, "root"),  # Dropbear: never counted, asked by default as root
        (DROPBEAR_BANNER, True, "root"),
        ("SSH-2.0-paramiko_3.4.0", False, None),  # unknown logs: opt-in
        ("SSH-2.0-paramiko_3.4.0", True, "root"),
    ],
)
def test_who_is_asked_and_as_whom(banner: str, probe: bool, user: str | None) -> None:
    plan = plan_auth(hello(banner), AuditOptions(auth_probe=probe))
    assert plan.user == user
    assert plan.opt_in == (not banner.startswith(DROPBEAR_BANNER))
    assert plan.left_to_the_user == (user is None)


def test_opt_in_probe_not_used_says_what_cannot_be_verified_and_why() -> None:
    result = assess(audit(plan=AuthPlan(OPENSSH_PROFILE, None, opt_in=True)), PORT)
    assert ids(result) == []
    (note,) = result.notes[1:]
    assert "cannot be verified from outside without one login request" in note
    assert "user nobody" in note and "fail2ban" in note and "AllowUsers" in note
    assert "--ssh-auth-probe" in note and "sshd -T" in note
    details = result.details["ssh"]
    assert details["auth_methods"] is None and details["none_auth_accepted"] is None
    assert "auth_asked_as" not in details


def test_opt_in_probe_used_says_what_it_may_have_cost() -> None:
    plan = AuthPlan(OPENSSH_PROFILE, "nobody", opt_in=True)
    result = assess(audit(methods=("publickey", "password"), plan=plan), PORT)
    assert ids(result) == ["ssh.password_auth"]
    assert "as user nobody" in result.findings[0].evidence
    (note,) = result.notes[1:]
    assert "--ssh-auth-probe" in note and "refused login" in note


def test_unknown_server_software_note_says_its_logs_are_unknown() -> None:
    result = assess(audit(plan=AuthPlan(OTHER_PROFILE, None, opt_in=True)), PORT)
    (note,) = result.notes[1:]
    assert "user root" in note and "not known" in note and "sshd -T" not in note


def test_cli_help_says_what_the_opt_in_ssh_probes_cost(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from scanner.cli import main

    monkeypatch.setenv("COLUMNS", "500")
    with contextlib.suppress(SystemExit):
        main(["scan", "--help"])
    text = " ".join(capsys.readouterr().out.replace("│", " ").split())
    assert "--ssh-auth-probe" in text and "--ssh-host-keys" in text
    assert "as user nobody on OpenSSH" in text and "refused login" in text
    assert "fail2ban's sshd filter counts" in text and "AllowUsers" in text
    assert "ddos and aggressive mode" in text
