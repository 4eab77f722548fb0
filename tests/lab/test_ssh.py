"""The SSH check against real servers: OpenSSH 9.2p1 (Debian 12) in six configurations, Dropbear
2022.83 twice, and paramiko servers for what those cannot do (accept `none`, lack strict kex).

The CLI scans the scanned ports twice from the scan namespace: asking everything it can
(`target`: --ssh-auth-probe --ssh-host-keys) and with the defaults (`default_target`); the finer
tests call the audit in-process inside the scan namespace. Some servers are touched by one test
only, so their logs count exactly what one audit did; the syslogged ones (fail2ban section) are
judged by Debian's fail2ban-regex, each test on what its own scan added to the log.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import paramiko
import pytest

from scanner.checks.ssh.algorithms import WEAK
from scanner.checks.ssh.audit import CONNECTION_TIMEOUTS, AuditOptions, SshAudit, audit_ssh
from scanner.checks.ssh.evaluate import verdict
from scanner.net import Connector, Dialer, Endpoint, Limits, ScanBudget
from tests.lab import support_ssh as servers
from tests.lab.daemons import Daemon
from tests.lab.netns import Lab
from tests.lab.nsutil import call_in_netns
from tests.lab.scanning import LAB_SPEED, scan_json

pytestmark = pytest.mark.lab

PRE_AUTH_BANNER = b"Authorised access only\x1b]0;owned\x07\x1b[2J\r\n"
SCANNED: dict[int, Any] = {
    22: servers.openssh(22, "openssh-password"),
    2201: servers.openssh(2201, "openssh-keys", servers.KEYS_ONLY, banner=PRE_AUTH_BANNER),
    2202: servers.openssh(2202, "openssh-kbd", servers.KEYBOARD_INTERACTIVE),
    2203: servers.openssh(2203, "openssh-hardened", servers.HARDENED),
    2204: servers.openssh(2204, "openssh-legacy", servers.LEGACY),
    2205: servers.openssh(2205, "openssh-legacy-only", servers.LEGACY_ONLY),
    2206: servers.openssh(2206, "openssh-plain-banner", servers.PLAIN_BANNER),
    2207: servers.openssh(2207, "openssh-unpatched-banner", servers.UNPATCHED_DEBIAN_BANNER),
    2022: servers.dropbear(2022, "dropbear"),
    2023: servers.dropbear(2023, "dropbear-keys", ["-s"]),
    2300: servers.paramiko_sshd(2300, "paramiko-none", accept_none=True),
    2301: servers.paramiko_sshd(2301, "paramiko-terrapin", strict_kex=False),
}
COUNTED_OPENSSH = 2210  # audited by one test only: its log counts one audit
COUNTED_DROPBEAR = 2024
# Logging through syslog for fail2ban-regex; only the fail2ban tests touch them.
F2B_OPENSSH = 2230  # the lab's defaults: passwords on, LogLevel VERBOSE
F2B_OPENSSH_INFO = 2231  # keys only, LogLevel INFO (Debian's default level)
F2B_OPENSSH_ALLOW = 2232  # AllowUsers: the user the opt-in probe asks as may not log in
F2B_DROPBEAR = 2040
F2B_DROPBEAR_NO_ROOT = 2041  # -w: Dropbear refuses root, and says so
SYSLOGGED: dict[int, Any] = {
    F2B_OPENSSH: servers.syslogged_openssh(F2B_OPENSSH, "f2b-openssh"),
    F2B_OPENSSH_INFO: servers.syslogged_openssh(
        F2B_OPENSSH_INFO, "f2b-openssh-info", servers.KEYS_ONLY + "LogLevel INFO\n"
    ),
    F2B_OPENSSH_ALLOW: servers.syslogged_openssh(
        F2B_OPENSSH_ALLOW, "f2b-openssh-allowusers", "AllowUsers alice\n"
    ),
    F2B_DROPBEAR: servers.syslogged_dropbear(F2B_DROPBEAR, "f2b-dropbear"),
    F2B_DROPBEAR_NO_ROOT: servers.syslogged_dropbear(
        F2B_DROPBEAR_NO_ROOT, "f2b-dropbear-noroot", ["-w"]
    ),
}
SERVICES = [
    *SCANNED.values(),
    servers.openssh(COUNTED_OPENSSH, "openssh-counted"),
    servers.dropbear(COUNTED_DROPBEAR, "dropbear-counted"),
    *SYSLOGGED.values(),
]
EVERYTHING = ("--ssh-auth-probe", "--ssh-host-keys")

EXPECTED: dict[int, set[str]] = {
    22: {"ssh.password_auth"},
    2201: set(),
    2202: {"ssh.password_auth"},
    2203: set(),
    2204: {"ssh.password_auth", "ssh.weak_algorithms"},
    2205: {"ssh.password_auth", "ssh.weak_algorithms"},
    2206: {"ssh.cve"},
    2207: {"ssh.cve"},
    2022: {"ssh.password_auth", "ssh.weak_algorithms"},
    2023: {"ssh.weak_algorithms"},
    2300: {"ssh.no_auth", "ssh.weak_algorithms"},
    2301: {"ssh.terrapin", "ssh.weak_algorithms"},
}
# By default only Dropbear is asked about logins (as root): nothing fail2ban counts.
NOT_ASKED_BY_DEFAULT = {"ssh.password_auth", "ssh.no_auth"}
DROPBEAR_PORTS = (2022, 2023)
EXPECTED_DEFAULT: dict[int, set[str]] = {
    port: expected if port in DROPBEAR_PORTS else expected - NOT_ASKED_BY_DEFAULT
    for port, expected in EXPECTED.items()
}
DEBIAN_OPENSSH = (22, 2201, 2202, 2203, 2204, 2205)
SSH_AUDIT_PORTS = (22, 2203, 2204, 2205, 2022)


@pytest.fixture(scope="module")
def ssh_lab() -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.fail("lab tests need root (network namespaces)", pytrace=False)
    with Lab(services=SERVICES) as lab:
        yield lab


def scan_target(lab: Lab, ports: Any, *extra: str) -> dict[str, Any]:
    listed = ",".join(str(port) for port in ports)
    report = scan_json(lab, Lab.HOME_V4, "--ports", listed, *LAB_SPEED, *extra)
    (found,) = report["targets"]
    return found


@pytest.fixture(scope="module")
def target(ssh_lab: Lab) -> dict[str, Any]:
    """Everything the check can learn: the opt-in login probe and every host key."""
    return scan_target(ssh_lab, SCANNED, *EVERYTHING)


@pytest.fixture(scope="module")
def default_target(ssh_lab: Lab) -> dict[str, Any]:
    return scan_target(ssh_lab, SCANNED)


def port_entry(target: dict[str, Any], port: int) -> dict[str, Any]:
    return next(entry for entry in target["ports"] if entry["port"] == port)


def findings(target: dict[str, Any], port: int, prefix: str = "ssh.") -> list[dict[str, Any]]:
    return [f for f in target["findings"] if f["port"] == port and f["id"].startswith(prefix)]


def daemon(lab: Lab, name: str) -> Daemon:
    return next(d for d in lab.daemons if d.name == name)


def in_scan(lab: Lab, address: str, port: int, options: AuditOptions | None = None) -> SshAudit:
    def audit() -> SshAudit:
        budget = ScanBudget(Limits(timeout=5.0 / CONNECTION_TIMEOUTS))
        return audit_ssh(Connector(Dialer.for_port(budget), Endpoint(address, port)), options)

    return call_in_netns(lab.scan_ns, audit)


ASK_EVERYTHING = AuditOptions(auth_probe=True, all_host_keys=True)


# --- findings fire where they should, and only there -----------------------------------------


@pytest.mark.parametrize("port", list(EXPECTED))
def test_each_server_gets_exactly_its_findings(target: dict[str, Any], port: int) -> None:
    assert port_entry(target, port)["service"] == "ssh"
    assert {f["id"] for f in findings(target, port)} == EXPECTED[port]


@pytest.mark.parametrize("port", list(EXPECTED_DEFAULT))
def test_default_scan_gets_all_but_what_it_did_not_ask(
    default_target: dict[str, Any], port: int
) -> None:
    assert {f["id"] for f in findings(default_target, port)} == EXPECTED_DEFAULT[port]
    ssh = port_entry(default_target, port)["details"]["ssh"]
    assert ssh["connections"] == 1  # one connection per SSH port
    notes = [n["text"] for n in default_target["notes"] if n["port"] == port]
    not_asked = [n for n in notes if "cannot be verified from outside without" in n]
    if port in DROPBEAR_PORTS:  # asked as root: fail2ban's dropbear filter never counts it
        assert not_asked == [] and ssh["auth_asked_as"] == "root"
        assert all(key["sha256"] for key in ssh["host_keys"])  # every key, by re-keying
    else:
        (note,) = not_asked
        assert "--ssh-auth-probe" in note
        # OpenSSH: fail2ban counts what it logs; paramiko: what it logs is not known
        assert ("fail2ban" if ssh["product"] == "OpenSSH" else "not known") in note
        assert ssh["auth_methods"] is None and ssh["none_auth_accepted"] is None
        fetched = [key for key in ssh["host_keys"] if key["sha256"]]
        assert len(fetched) == 1  # one key per OpenSSH connection: RSA, whose size matters
        assert fetched[0]["type"] in ("ssh-rsa", ssh["host_keys"][0]["type"])


def test_opt_in_probe_says_what_it_may_have_cost(target: dict[str, Any]) -> None:
    notes = [n["text"] for n in target["notes"] if n["port"] == 22]
    assert any("--ssh-auth-probe" in n and "user nobody" in n for n in notes)
    assert port_entry(target, 22)["details"]["ssh"]["auth_asked_as"] == "nobody"
    assert port_entry(target, 2300)["details"]["ssh"]["auth_asked_as"] == "root"


@pytest.mark.parametrize("port", [2201, 2203])
def test_keys_only_and_hardened_have_nothing_above_info(target: dict[str, Any], port: int) -> None:
    assert [f for f in findings(target, port, "") if f["severity"] != "info"] == []


def test_password_findings_say_which_method(target: dict[str, Any]) -> None:
    (password,) = findings(target, 22)
    assert password["severity"] == "medium" and "with password" in password["title"]
    (kbd,) = findings(target, 2202)
    assert "keyboard-interactive" in kbd["title"] and "keyboard-interactive" in kbd["evidence"]
    assert port_entry(target, 2202)["details"]["ssh"]["auth_methods"] == [
        "publickey",
        "keyboard-interactive",
    ]


def test_pre_authentication_banner_is_kept_sanitised(target: dict[str, Any]) -> None:
    banner = port_entry(target, 2201)["details"]["ssh"]["auth_banner"]
    assert banner.startswith("Authorised access only")
    assert "\x1b" not in banner and "\x07" not in banner and "\r" not in banner


def test_no_auth_is_critical(target: dict[str, Any]) -> None:
    (no_auth,) = findings(target, 2300, "ssh.no_auth")
    assert no_auth["severity"] == "critical"
    assert port_entry(target, 2300)["details"]["ssh"]["none_auth_accepted"] is True


def test_weak_algorithms_say_which_and_why(target: dict[str, Any]) -> None:
    (weak,) = findings(target, 2204, "ssh.weak_algorithms")
    assert weak["severity"] == "low"
    for name in (
        "diffie-hellman-group1-sha1",
        "diffie-hellman-group14-sha1",
        "ssh-rsa",
        "aes128-cbc",
        "3des-cbc",
        "hmac-md5",
        "hmac-sha1-96",
    ):
        assert name in weak["evidence"], name
    assert "SHA-1" in weak["evidence"] and "CBC" in weak["evidence"]


def test_terrapin_fires_without_strict_kex_only(target: dict[str, Any]) -> None:
    (terrapin,) = findings(target, 2301, "ssh.terrapin")
    assert terrapin["severity"] == "medium"
    assert "kex-strict-s-v00@openssh.com" in terrapin["evidence"]
    assert "-cbc" in terrapin["evidence"] and "-etm@openssh.com" in terrapin["evidence"]
    # Debian's sshd with CBC and EtM MACs switched on still has strict kex: not exposed
    legacy = port_entry(target, 2204)["details"]["ssh"]
    assert legacy["strict_kex"] and "aes128-cbc" in legacy["ciphers"]
    assert findings(target, 2204, "ssh.terrapin") == []


def test_debian_bookworm_openssh_is_neither_regresshion_nor_terrapin(
    target: dict[str, Any],
) -> None:
    installed = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", "openssh-server"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    fixed = subprocess.run(
        ["dpkg", "--compare-versions", installed, "ge", "1:9.2p1-2+deb12u3"], check=False
    )
    assert installed.startswith("1:9.2p1-2+deb12u") and fixed.returncode == 0, installed
    revision = installed.split("-", 1)[1]
    for port in DEBIAN_OPENSSH:
        ssh = port_entry(target, port)["details"]["ssh"]
        assert ssh["banner"] == f"SSH-2.0-OpenSSH_9.2p1 Debian-{revision}"
        assert ssh["strict_kex"] is True
        statuses = {a["id"]: a["status"] for a in ssh["advisories"]}
        assert statuses["CVE-2024-6387"] == "fixed-by-distro"
        assert findings(target, port, "ssh.cve") == []
        assert findings(target, port, "ssh.terrapin") == []


def test_cve_when_the_banner_cannot_tell_the_patch_level(target: dict[str, Any]) -> None:
    """`DebianBanner no`: the same patched sshd, but the banner says only OpenSSH_9.2p1."""
    assert port_entry(target, 2206)["banner"] == "SSH-2.0-OpenSSH_9.2p1"
    by_cve = {f["title"].split(" by ")[-1]: f for f in findings(target, 2206, "ssh.cve")}
    regresshion = by_cve["CVE-2024-6387 (regreSSHion), patch level unknown"]
    assert regresshion["severity"] == "medium"
    assert "cannot be seen from outside" in regresshion["evidence"]
    assert by_cve["CVE-2023-38408, patch level unknown"]["severity"] == "info"


def test_cve_when_the_banner_shows_an_unpatched_package(target: dict[str, Any]) -> None:
    """The banner announces Debian's 1:9.2p1-2+deb12u2, the update before the fix."""
    assert port_entry(target, 2207)["banner"] == "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u2"
    (regresshion,) = findings(target, 2207, "ssh.cve")
    assert regresshion["severity"] == "high"
    assert regresshion["title"] == "SSH server is vulnerable to CVE-2024-6387 (regreSSHion)"
    assert "predates the fixed 9.2p1-2+deb12u3" in regresshion["evidence"]
    assert any("qualys.com" in ref for ref in regresshion["references"])


def test_dropbear_is_handled_like_openssh(target: dict[str, Any]) -> None:
    ssh = port_entry(target, 2022)["details"]["ssh"]
    assert ssh["product"] == "Dropbear" and ssh["version"] == "2022.83"
    assert ssh["strict_kex"] is True  # Debian's 2022.83-1+deb12u1 has the Terrapin fix
    assert ssh["auth_methods"] == ["publickey", "password"]
    assert {key["type"] for key in ssh["host_keys"]} == {"ssh-ed25519", "ssh-rsa"}
    assert findings(target, 2022, "ssh.cve") == []


def test_legacy_only_server_still_answers_our_auth_probe(target: dict[str, Any]) -> None:
    """ssh-rsa host key + diffie-hellman-group14-sha1 only, as on old routers."""
    ssh = port_entry(target, 2205)["details"]["ssh"]
    assert ssh["kex"][:1] == ["diffie-hellman-group14-sha1"]
    assert ssh["auth_methods"] == ["publickey", "password"]
    assert [key["type"] for key in ssh["host_keys"]] == ["ssh-rsa"]


def test_permit_root_login_said_once_per_ssh_port(target: dict[str, Any]) -> None:
    for port in SCANNED:
        notes = [n["text"] for n in target["notes"] if n["port"] == port]
        root = [n for n in notes if "PermitRootLogin" in n]  # once per port, said plainly
        assert len(root) == 1 and "cannot be verified from outside" in root[0], port


@pytest.mark.parametrize("port", list(SCANNED))
def test_details_are_complete(target: dict[str, Any], port: int) -> None:
    ssh = port_entry(target, port)["details"]["ssh"]
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
        assert key in ssh, key
    assert ssh["host_keys"] and all(key["sha256"].startswith("SHA256:") for key in ssh["host_keys"])
    assert ssh["audit_seconds"] < 1.0
    assert "errors" not in ssh


def test_ipv6_gives_the_same_answers(ssh_lab: Lab, target: dict[str, Any]) -> None:
    audit = in_scan(ssh_lab, Lab.HOME_V6, 22, ASK_EVERYTHING)
    v4 = port_entry(target, 22)["details"]["ssh"]
    assert audit.auth is not None and audit.auth.methods == ("publickey", "password")
    ours = [fetched.key.sha256 for fetched in audit.host_keys if fetched.key]
    assert ours == [key["sha256"] for key in v4["host_keys"]]


# --- agreement with ssh-audit (Debian's ssh-audit 2.5.0) -----------------------------------------


def ssh_audit_json(lab: Lab, port: int) -> dict[str, Any]:
    run = lab.run_in_scan(
        ["ssh-audit", "-j", "-p", str(port), Lab.HOME_V4],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.stdout.strip(), run.stderr
    return json.loads(run.stdout)


@pytest.mark.parametrize("port", SSH_AUDIT_PORTS)
def test_lists_and_fingerprints_agree_with_ssh_audit(
    ssh_lab: Lab, target: dict[str, Any], port: int
) -> None:
    theirs = ssh_audit_json(ssh_lab, port)
    ours = port_entry(target, port)["details"]["ssh"]
    assert ours["banner"] == theirs["banner"]["raw"]
    assert ours["kex"] == [entry["algorithm"] for entry in theirs["kex"]]
    assert ours["host_key_algorithms"] == [entry["algorithm"] for entry in theirs["key"]]
    assert ours["ciphers"] == theirs["enc"]
    assert ours["macs"] == theirs["mac"]
    assert ours["compression"] == theirs["compression"]
    by_type = {key["type"]: key for key in ours["host_keys"]}
    for fingerprint in theirs["fingerprints"]:
        if fingerprint["hash_alg"] == "SHA256":
            assert by_type[fingerprint["hostkey"]]["sha256"] == "SHA256:" + fingerprint["hash"]
    for entry in theirs["key"]:
        if "keysize" in entry and entry["algorithm"].startswith(("rsa-", "ssh-rsa")):
            assert by_type["ssh-rsa"]["bits"] == entry["keysize"]


SSH_AUDIT_KINDS = {"kex": "kex", "key": "host_key", "enc": "cipher", "mac": "mac"}
# ssh-audit fails the NIST P-curves ("using weak elliptic curves"); we deliberately do not
# (RFC 9142 recommends ecdh-sha2-nistp256; see scanner/checks/ssh/algorithms.py).
CURVES_ONLY = "using weak elliptic curves"


def test_weak_verdicts_agree_with_ssh_audit_database() -> None:
    """Every algorithm ssh-audit fails we call weak (NIST curves aside); everything we call weak,
    ssh-audit fails or warns about."""
    dump = subprocess.run(
        [
            "/usr/bin/python3",
            "-c",
            "import json; from ssh_audit.ssh2_kexdb import SSH2_KexDB as D; "
            "print(json.dumps(D.ALGORITHMS))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    database = json.loads(dump)
    disagreements = []
    for their_kind, our_kind in SSH_AUDIT_KINDS.items():
        for name, entry in database[their_kind].items():
            fails = set(entry[1]) if len(entry) > 1 else set()
            warns = set(entry[2]) if len(entry) > 2 else set()
            found = verdict(our_kind, name)
            weak = found is not None and found.tier == WEAK
            if fails - {CURVES_ONLY} and not weak:
                disagreements.append(f"ssh-audit fails {name}, we do not")
            if weak and not (fails or warns):
                disagreements.append(f"we call {name} weak, ssh-audit does not")
    assert disagreements == []


# --- what the servers' logs show: few connections, no password attempt --------------------------


SCAN_V4_CONNECTION = re.compile(rf"Connection from {re.escape(Lab.SCAN_V4)} port \d+ on ")
PASSWORD_TRACES = re.compile(r"Failed (password|keyboard-interactive)|Accepted|password for", re.I)


def test_openssh_log_one_audit(ssh_lab: Lab) -> None:
    log = daemon(ssh_lab, "openssh-counted").log_path
    audit = in_scan(ssh_lab, Lab.HOME_V4, COUNTED_OPENSSH)
    assert audit.seconds < 1.0, f"one SSH endpoint took {audit.seconds:.3f} s"
    text = log.read_text()
    # the defaults: one connection, the algorithms and one host key, no login request
    assert len(SCAN_V4_CONNECTION.findall(text)) == audit.connections == 1
    assert audit.auth is None and "user" not in text.split("rdomain", 1)[-1]
    assert [k.family.name for k in audit.host_keys if k.key] == ["ssh-rsa"]
    mark = servers.LogMark.now(log)
    everything = in_scan(ssh_lab, Lab.HOME_V4, COUNTED_OPENSSH, ASK_EVERYTHING)
    added = _settled(mark)
    # the login probe as user nobody in the first connection, one more per other host key
    assert len(SCAN_V4_CONNECTION.findall(added)) == everything.connections == 3
    assert len(everything.host_keys) == 3 and all(k.key for k in everything.host_keys)
    assert everything.auth is not None and everything.auth.methods == ("publickey", "password")
    assert everything.auth.user == "nobody"
    assert "Invalid user" not in added and "not allowed" not in added
    assert PASSWORD_TRACES.findall(text + added) == []
    assert "Failed" not in added


def _settled(mark: servers.LogMark, quiet: float = 0.3, limit: float = 5.0) -> str:
    """What the log gained since `mark`, once it has stopped growing (servers log the end of a
    connection a moment after the client hung up)."""
    deadline = time.monotonic() + limit
    size = -1
    while time.monotonic() < deadline:
        current = mark.path.stat().st_size
        if current == size:
            break
        size = current
        time.sleep(quiet)
    return mark.since()


def test_dropbear_log_one_audit(ssh_lab: Lab) -> None:
    audit = in_scan(ssh_lab, Lab.HOME_V4, COUNTED_DROPBEAR)
    assert audit.seconds < 1.0
    log = _settled(servers.LogMark(daemon(ssh_lab, "dropbear-counted").log_path, 0))
    # one connection: both host keys (re-keying), and the methods asked as root
    assert log.count(f"Child connection from {Lab.SCAN_V4}:") == audit.connections == 1
    assert audit.auth is not None and audit.auth.methods == ("publickey", "password")
    assert audit.auth.user == "root"
    assert {k.family.name for k in audit.host_keys if k.key} == {"ssh-ed25519", "ssh-rsa"}
    assert "nonexistent user" not in log
    assert "(user 'root', 0 fails)" in log
    assert re.findall(r"password|Bad|auth succeeded", log, re.I) == []


# --- fail2ban: what Debian's fail2ban-regex counts in a full scan's log --------------------------

SSHD_MODES = ("normal", "extra", "ddos", "aggressive")
COUNTS_EVERY_CONNECTION = ("ddos", "aggressive")  # any connection closed before login
SCAN_CLOSE = re.compile(
    rf"(?:Connection (?:closed|reset) by|Disconnected from) (?:\S+ user \S+ )?"
    rf"{re.escape(Lab.SCAN_V4)} port \d+"
)


def syslogged(lab: Lab, port: int) -> Daemon:
    return daemon(lab, SYSLOGGED[port].name)


def scan_logged(lab: Lab, *extra: str) -> tuple[dict[str, Any], dict[int, str]]:
    """A full `exposure scan` of the syslogged ports, and what each server logged for it."""
    marks = {port: servers.LogMark.now(syslogged(lab, port).log_path) for port in SYSLOGGED}
    found = scan_target(lab, SYSLOGGED, *extra)
    return found, {port: _settled(mark) for port, mark in marks.items()}


def sshd_verdicts(log: str) -> dict[str, servers.Fail2banResult]:
    return {
        mode: servers.fail2ban_failures(log, f"sshd[mode={mode}]", Lab.SCAN_V4)
        for mode in SSHD_MODES
    }


def assert_only_connections_counted(log: str, port: int) -> int:
    """normal and extra mode count nothing; ddos and aggressive count each connection once,
    which no client can avoid. Returns the number of connections."""
    connections = len(SCAN_CLOSE.findall(log))
    verdicts = sshd_verdicts(log)
    for mode, counted in verdicts.items():
        expected = connections if mode in COUNTS_EVERY_CONNECTION else 0
        assert counted.failures == expected, f"port {port} {mode}:\n{counted.matched}\n{log}"
    return connections


def test_default_scan_leaves_no_fail2ban_failure(ssh_lab: Lab) -> None:
    found, logs = scan_logged(ssh_lab)
    for port in (F2B_OPENSSH, F2B_OPENSSH_INFO, F2B_OPENSSH_ALLOW):
        connections = assert_only_connections_counted(logs[port], port)
        checked = port_entry(found, port)["details"]["ssh"]["connections"]
        # identification reads the banner once, the SSH check opens one connection
        assert (checked, connections) == (1, 2), logs[port]
        assert "user" not in logs[port].replace("authenticating user", "")  # no login request
    assert f"Connection from {Lab.SCAN_V4} port" in logs[F2B_OPENSSH]  # VERBOSE did log it
    for port in (F2B_DROPBEAR, F2B_DROPBEAR_NO_ROOT):
        counted = servers.fail2ban_failures(logs[port], "dropbear", Lab.SCAN_V4)
        assert counted.failures == 0, counted.matched
        assert logs[port].count(f"Child connection from {Lab.SCAN_V4}:") == 2
        assert "nonexistent user" not in logs[port]
    assert "root login rejected" in logs[F2B_DROPBEAR_NO_ROOT]  # -w: said, not counted
    # and the findings that need no login request are all there
    assert {f["id"] for f in findings(found, F2B_DROPBEAR)} == {
        "ssh.password_auth",
        "ssh.weak_algorithms",
    }
    assert findings(found, F2B_OPENSSH) == findings(found, F2B_OPENSSH_INFO) == []


def test_opt_in_scan_costs_what_its_help_says(ssh_lab: Lab) -> None:
    found, logs = scan_logged(ssh_lab, *EVERYTHING)
    for port in (F2B_OPENSSH, F2B_OPENSSH_INFO):  # nobody may log in: nothing counted
        connections = assert_only_connections_counted(logs[port], port)
        assert connections == 1 + 3  # identification, then one per host key (--ssh-host-keys)
    assert {f["id"] for f in findings(found, F2B_OPENSSH)} == {"ssh.password_auth"}
    # AllowUsers leaves nobody out: the one refused login --ssh-auth-probe warns about
    allow = logs[F2B_OPENSSH_ALLOW]
    assert "User nobody from 203.0.113.1 not allowed because not listed in AllowUsers" in allow
    connections = len(SCAN_CLOSE.findall(allow))
    for mode, counted in sshd_verdicts(allow).items():
        expected = 1 + (connections if mode in COUNTS_EVERY_CONNECTION else 0)
        assert counted.failures == expected, f"{mode}:\n{counted.matched}"
    notes = [n["text"] for n in found["notes"] if n["port"] == F2B_OPENSSH_ALLOW]
    assert any("AllowUsers" in n and "--ssh-auth-probe" in n for n in notes)
    for port in (F2B_DROPBEAR, F2B_DROPBEAR_NO_ROOT):
        counted = servers.fail2ban_failures(logs[port], "dropbear", Lab.SCAN_V4)
        assert counted.failures == 0, counted.matched
        assert logs[port].count(f"Child connection from {Lab.SCAN_V4}:") == 2  # no more


def _paramiko_attempt(port: int, attempt: Any) -> None:
    sock = socket.create_connection((Lab.HOME_V4, port), timeout=5)
    transport = paramiko.Transport(sock)
    try:
        transport.start_client(timeout=5)
        with contextlib.suppress(paramiko.AuthenticationException):
            attempt(transport)
    finally:
        transport.close()


def test_fail2ban_sees_what_the_old_probe_did(ssh_lab: Lab) -> None:
    """The pipeline counts a strike when there is one: the `none` request for a random user
    name that the SSH check used to send (OpenSSH: `Invalid user`)."""
    mark = servers.LogMark.now(syslogged(ssh_lab, F2B_OPENSSH).log_path)
    user = f"exposure-{secrets.token_hex(4)}"
    call_in_netns(
        ssh_lab.scan_ns, lambda: _paramiko_attempt(F2B_OPENSSH, lambda t: t.auth_none(user))
    )
    verdicts = sshd_verdicts(_settled(mark))
    assert verdicts["normal"].failures == verdicts["extra"].failures == 1
    assert verdicts["aggressive"].failures == 2  # the invalid user, and the close


def test_fail2ban_dropbear_filter_sees_a_wrong_password(ssh_lab: Lab) -> None:
    """The same for Dropbear's log: a wrong password for root (made here, against the lab's own
    server; the scanner never sends a password) is one failure for fail2ban's dropbear filter."""
    mark = servers.LogMark.now(syslogged(ssh_lab, F2B_DROPBEAR).log_path)
    secret = secrets.token_hex(8)
    call_in_netns(
        ssh_lab.scan_ns,
        lambda: _paramiko_attempt(F2B_DROPBEAR, lambda t: t.auth_password("root", secret)),
    )
    counted = servers.fail2ban_failures(_settled(mark), "dropbear", Lab.SCAN_V4)
    assert counted.failures == 1, counted.matched
