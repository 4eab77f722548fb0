"""The SSH check: algorithms, host keys, authentication methods and known vulnerabilities of
every port identification says speaks SSH, whatever its number.

`SshCheck.run` does the network part (audit.py); `assess` turns what was seen into findings,
details and notes and is pure, so tests can feed it any audit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from scanner.checks.base import (
    CheckContext,
    CheckResult,
    Finding,
    FindingSpec,
    Severity,
)
from scanner.checks.ssh.algorithms import LEGACY, TERRAPIN_REFERENCES, WEAK
from scanner.checks.ssh.audit import (
    AuditOptions,
    AuthPlan,
    AuthProbe,
    ServerHello,
    SshAudit,
    audit_ssh,
)
from scanner.checks.ssh.details import Advisory, HostKey, SshDetails
from scanner.checks.ssh.details import FlaggedAlgorithm as FlaggedAlgorithmDetails
from scanner.checks.ssh.evaluate import (
    AFFECTED,
    AdvisoryMatch,
    FlaggedAlgorithm,
    TerrapinExposure,
    flag_algorithms,
    flag_small_keys,
    match_advisories,
    terrapin_exposure,
)
from scanner.checks.ssh.kexinit import STRICT_KEX_SERVER, KexInit
from scanner.checks.ssh.versions import parse_distro, parse_software
from scanner.core.text import safe_text

SECURING_PAGE = "https://www.home-assistant.io/docs/configuration/securing/"

PASSWORD_AUTH = FindingSpec(
    id="ssh.password_auth",
    severity=Severity.MEDIUM,
    title="SSH server accepts password logins",
    references=(SECURING_PAGE,),
)
NO_AUTH = FindingSpec(
    id="ssh.no_auth",
    severity=Severity.CRITICAL,
    title="SSH server lets anyone in without authentication",
)
TERRAPIN = FindingSpec(
    id="ssh.terrapin",
    severity=Severity.MEDIUM,
    title="SSH server is exposed to the Terrapin attack (CVE-2023-48795)",
    references=TERRAPIN_REFERENCES,
)
WEAK_ALGORITHMS = FindingSpec(
    id="ssh.weak_algorithms",
    severity=Severity.LOW,
    title="SSH server offers weak or deprecated algorithms",
    references=(
        "https://www.rfc-editor.org/rfc/rfc9142",
        "https://www.openssh.com/releasenotes.html",
    ),
)
CVE = FindingSpec(
    id="ssh.cve",
    severity=Severity.HIGH,
    title="SSH server version has a known vulnerability",
)

PASSWORD_METHODS = ("password", "keyboard-interactive")
ROOT_LOGIN_NOTE = (
    "Root login over SSH (OpenSSH PermitRootLogin, Dropbear -w) cannot be verified from "
    "outside: the server answers an unauthenticated client alike for every user name. On the "
    "host, `sshd -T | grep -i permitrootlogin` should say no."
)
EVIDENCE_CHARS = 1500


class SshCheck:
    name = "ssh"
    catalogue = (PASSWORD_AUTH, NO_AUTH, TERRAPIN, WEAK_ALGORITHMS, CVE)
    after: tuple[str, ...] = ()

    def applies(self, context: CheckContext) -> bool:
        return context.identity.service == "ssh"

    def run(self, context: CheckContext) -> CheckResult:
        options = AuditOptions(
            auth_probe=context.options.ssh_auth_probe,
            all_host_keys=context.options.ssh_host_keys,
        )
        audit = audit_ssh(context.connector, options)
        return assess(audit, context.port, context.identity.details.get("ssh", {}))


CHECK = SshCheck()


# --- pure assessment -------------------------------------------------------------------------


def assess(audit: SshAudit, port: int, identified: Mapping[str, Any] | None = None) -> CheckResult:
    """Findings, details and notes for one SSH port from what the audit saw."""
    findings: list[Finding] = []
    notes = [ROOT_LOGIN_NOTE]
    flagged: list[FlaggedAlgorithm] = []
    matches: list[AdvisoryMatch] = []
    if audit.hello is None:
        notes.append(f"The SSH audit could not read the server's algorithms: {_errors(audit)}")
    else:
        kexinit = audit.hello.kexinit
        identification = audit.hello.identification
        flagged = flag_algorithms(kexinit) + flag_small_keys(
            fetched.key for fetched in audit.host_keys if fetched.key is not None
        )
        matches = match_advisories(
            parse_software(identification.software), parse_distro(identification.comment)
        )
        findings += _algorithm_findings(kexinit, flagged, port)
        findings += [_cve_finding(match, port) for match in matches if match.severity]
    findings += _auth_findings(audit.auth, port)
    if audit.hello is not None and audit.plan is not None:
        notes += _auth_notes(audit.plan, audit.auth)
    details = _details(audit, identified or {}, flagged, matches)
    return CheckResult(findings=tuple(findings), details={"ssh": details}, notes=tuple(notes))


def _auth_notes(plan: AuthPlan, auth: AuthProbe | None) -> list[str]:
    """What was not learnt about logins and why, and what asking may have cost."""
    profile = plan.profile
    if plan.left_to_the_user:
        return [
            f"Whether this {profile.name} server accepts passwords (or no authentication at "
            f"all) cannot be verified from outside without {profile.request()}, "
            f"{profile.refusal}: --ssh-auth-probe makes it.{profile.on_the_host}"
        ]
    if auth is None or auth.methods is None:
        reason = plan.blocker or (auth.error if auth else None) or "no answer"
        return [f"The SSH authentication methods could not be read: {reason}."]
    if plan.opt_in:
        return [
            f"Login methods asked (--ssh-auth-probe) with {profile.request()}, {profile.refusal}."
        ]
    return []


def _errors(audit: SshAudit) -> str:
    return "; ".join(audit.errors) or "no answer"


def _cap(text: str) -> str:
    return safe_text(text, EVIDENCE_CHARS)


def _auth_findings(auth: AuthProbe | None, port: int) -> list[Finding]:
    if auth is None or auth.methods is None:
        return []
    if auth.none_accepted:
        return [
            NO_AUTH.finding(
                port=port,
                evidence=_cap(
                    f"The server accepted an SSH 'none' authentication request (no password, no "
                    f"key) for the user {auth.user!r}: anyone can log in as {auth.user} with "
                    "nothing at all. The scanner opened no session and hung up at once."
                ),
                remediation=(
                    "Block the port at the router now, then require keys on the device (on "
                    "OpenSSH never combine PermitEmptyPasswords with accounts that have no "
                    "password; on appliances, set a login method in the SSH settings)."
                ),
            )
        ]
    offered = [method for method in PASSWORD_METHODS if method in auth.methods]
    if not offered:
        return []
    return [_password_finding(auth, offered, port)]


def _password_finding(auth: AuthProbe, offered: list[str], port: int) -> Finding:
    which = " and ".join(offered)
    kbd_note = (
        " keyboard-interactive asks for the account password (through PAM); a server that "
        "uses it only as a second factor lists publickey alone first."
        if "keyboard-interactive" in offered
        else ""
    )
    return PASSWORD_AUTH.finding(
        port=port,
        title=f"SSH server accepts logins with {which}",
        evidence=_cap(
            f"Asked which methods may log in (one 'none' request as user {auth.user}), the "
            f"server listed: {', '.join(auth.methods or ())}. With {which} anyone on the "
            f"internet can try to guess passwords.{kbd_note}"
        ),
        remediation=(
            "Log in with SSH keys only: set `PasswordAuthentication no` and "
            "`KbdInteractiveAuthentication no` in sshd_config and reload sshd (Dropbear: start "
            "it with -s; Home Assistant's SSH add-on: remove the password, keep authorized_keys)."
        ),
    )


def _algorithm_findings(
    kexinit: KexInit, flagged: list[FlaggedAlgorithm], port: int
) -> list[Finding]:
    findings = []
    weak = [item for item in flagged if item.tier == WEAK]
    if weak:
        # names first: a report that shortens the evidence still shows every one of them
        names = ", ".join(item.name for item in weak)
        reasons = "; ".join(f"{item.kind} {item.name}: {item.why}" for item in weak)
        findings.append(
            WEAK_ALGORITHMS.finding(
                port=port,
                evidence=_cap(f"The server offers {names}. Why each is weak: {reasons}."),
                remediation=(
                    "Remove them from KexAlgorithms, HostKeyAlgorithms, Ciphers and MACs in "
                    "sshd_config (or upgrade the device's SSH server); modern clients do not "
                    "need them. RSA host keys should have at least 2048 bits."
                ),
            )
        )
    exposure = terrapin_exposure(kexinit)
    if exposure is not None:
        findings.append(_terrapin_finding(exposure, port))
    return findings


def _terrapin_finding(exposure: TerrapinExposure, port: int) -> Finding:
    modes = []
    if exposure.chacha20:
        modes.append(", ".join(exposure.chacha20))
    if exposure.cbc_ciphers:
        modes.append(
            f"CBC cipher(s) {', '.join(exposure.cbc_ciphers)} with encrypt-then-MAC "
            f"{', '.join(exposure.etm_macs)}"
        )
    return TERRAPIN.finding(
        port=port,
        evidence=_cap(
            f"The server's key exchange list has no {STRICT_KEX_SERVER} (the strict key "
            f"exchange countermeasure) and it offers {' and '.join(modes)}. A man in the "
            "middle can then silently drop the first encrypted messages of a session with a "
            "client that negotiates these, downgrading protocol extensions."
        ),
        remediation=(
            "Update the SSH server (OpenSSH 9.6 or a distro build with the Terrapin fix; "
            "Dropbear 2024.84 or a patched package). Until then remove "
            "chacha20-poly1305@openssh.com and the -etm MACs (with CBC ciphers) from the "
            "server's configuration."
        ),
    )


def _cve_finding(match: AdvisoryMatch, port: int) -> Finding:
    advisory = match.advisory
    label = advisory.cve + (f" ({advisory.name})" if advisory.name else "")
    title = (
        f"SSH server is vulnerable to {label}"
        if match.status == AFFECTED
        else f"SSH server version is in the range affected by {label}, patch level unknown"
    )
    finding = CVE.finding(
        port=port,
        title=title,
        severity=match.severity,
        evidence=_cap(f"{match.explanation}. {label}: {advisory.summary}."),
        remediation=advisory.remediation,
    )
    return dataclasses.replace(finding, references=advisory.references)


# --- details -----------------------------------------------------------------------------------


def _details(
    audit: SshAudit,
    identified: Mapping[str, Any],
    flagged: list[FlaggedAlgorithm],
    matches: list[AdvisoryMatch],
) -> dict[str, Any]:
    # Our "ssh" key replaces identification's in the port's details: keep what it learnt.
    details = SshDetails.from_dict(identified)
    if audit.hello is not None:
        details = _with_hello(details, audit.hello, audit).updated(
            weak_algorithms=tuple(_flagged(f) for f in flagged if f.tier == WEAK),
            legacy_algorithms=tuple(_flagged(f) for f in flagged if f.tier == LEGACY),
            advisories=tuple(Advisory.from_dict(match.to_dict()) for match in matches),
        )
    auth = audit.auth
    learnt = auth is not None and auth.methods is not None
    details = details.updated(
        auth_methods=tuple(auth.methods) if auth and auth.methods is not None else None,
        none_auth_accepted=auth.none_accepted if auth and learnt else None,
    )
    if auth is not None:
        details = details.updated(auth_asked_as=auth.user)
    if auth and auth.banner:
        details = details.updated(auth_banner=auth.banner)
    details = details.updated(connections=audit.connections,
                              audit_seconds=round(audit.seconds, 3))
    if audit.errors:
        details = details.updated(errors=tuple(audit.errors))
    return details.to_dict()


def _flagged(flag: FlaggedAlgorithm) -> FlaggedAlgorithmDetails:
    return FlaggedAlgorithmDetails.from_dict(flag.to_dict())


def _with_hello(details: SshDetails, hello: ServerHello, audit: SshAudit) -> SshDetails:
    identification = hello.identification
    kexinit = hello.kexinit
    software = parse_software(identification.software)
    distro = parse_distro(identification.comment)
    details = details.updated(
        banner=identification.line,
        protocol=identification.protocol,
        software=identification.software,
        comment=identification.comment,
        product=software.product,
        version=software.version,
        distro=distro.name if distro else None,
        distro_revision=distro.revision if distro else None,
        kex=tuple(kexinit.kex),
        host_key_algorithms=tuple(kexinit.host_key),
        host_keys=tuple(HostKey.from_dict(fetched.to_dict()) for fetched in audit.host_keys),
        ciphers=tuple(kexinit.ciphers_c2s),
        macs=tuple(kexinit.macs_c2s),
        compression=tuple(kexinit.compression_c2s),
        strict_kex=kexinit.strict_kex,
    )
    # the server-to-client lists only where they differ from client-to-server
    if kexinit.ciphers_c2s != kexinit.ciphers_s2c:
        details = details.updated(ciphers_server_to_client=tuple(kexinit.ciphers_s2c))
    if kexinit.macs_c2s != kexinit.macs_s2c:
        details = details.updated(macs_server_to_client=tuple(kexinit.macs_s2c))
    if kexinit.compression_c2s != kexinit.compression_s2c:
        details = details.updated(compression_server_to_client=tuple(kexinit.compression_s2c))
    return details
