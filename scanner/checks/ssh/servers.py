"""What each SSH server software logs for what the audit sends, and what the audit may therefore
send it: data, read from the servers' sources and checked in the lab against Debian's fail2ban.

Learning the login methods takes one SSH_MSG_USERAUTH_REQUEST (method `none`), and that request
names a user. What the server logs then depends on the name:

- OpenSSH (auth2.c input_userauth_request -> auth.c getpwnamallow/allowed_user) looks the name
  up before anything else. An unknown name logs `Invalid user NAME from ADDR port N`; a known
  name that AllowUsers, AllowGroups, DenyUsers or DenyGroups leaves out logs `User NAME from ADDR
  not allowed because ...`; without PAM, an account whose password field starts with `!` logs
  `User NAME not allowed because account is locked`. fail2ban's `sshd` filter counts each of
  these lines as a failure in every mode. A name that may log in logs nothing (the `none` method
  itself is not logged unless PermitEmptyPasswords is on). Which names may log in cannot be seen
  from outside, so on OpenSSH the request is opt-in (`--ssh-auth-probe`). It then asks as
  `nobody`, the account nearly every Unix has that a DenyUsers root rule (the most common
  one) does not name, and that has no password to match an empty one.
- Dropbear (svr-auth.c checkusername) logs only `Login attempt for nonexistent user` (with
  `from ADDR:PORT` since 2024.84; fail2ban's `dropbear` filter counts that form), `root login
  rejected` (-w), a group (-G) or shell refusal; the filter counts none but the first. Every
  system Dropbear runs on has `root`, so asking as root is never counted: it is asked by
  default. (With -B and an empty root password the `none` request succeeds: that is the
  critical ssh.no_auth finding, and Dropbear logs `Auth succeeded with blank password`.)
- Any other server: what it logs is unknown, so the request is opt-in.

Re-keying before login: Dropbear accepts a second key exchange asking for another host key in the
same connection; OpenSSH does not before authentication (it logs `dispatch_protocol_error: type 20`
and answers UNIMPLEMENTED), so each further OpenSSH host key costs one more connection.

Connections themselves: fail2ban's `sshd` filter in `ddos` and `aggressive` mode counts every
connection that closes before login (`Connection closed by ADDR port N [preauth]`, and
`kex_exchange_identification: Connection closed by remote host` for one that sends nothing),
whatever the client did, so no scan of an OpenSSH port can stay at zero there: the audit uses one
connection per port unless asked for more (`--ssh-host-keys`). OpenSSH 9.8+ PerSourcePenalties
add 1 s per such connection (`noauth`; a `none` request is not an authentication attempt) and
refuse the address once 15 s have accrued; MaxStartups (10:30:100) counts connections open at
once. Closing the TCP connection, rather than sending SSH_MSG_DISCONNECT, keeps OpenSSH's
`Disconnected from authenticating user ...` line (counted in `extra` mode) out of its log.
"""

from __future__ import annotations

from dataclasses import dataclass

from scanner.checks.ssh.versions import DROPBEAR, OPENSSH, OPENSSH_WINDOWS


@dataclass(frozen=True)
class ServerProfile:
    """How the audit treats one SSH server software."""

    name: str  # what the notes call it
    probe_user: str  # the user name of the one `none` request
    asked_by_default: bool  # True only where no fail2ban filter can count the request
    rekeys_before_login: bool  # further host keys in the same connection
    refusal: str  # what the server logs for the request when probe_user may not log in
    on_the_host: str = ""  # how the owner reads the same settings on the host itself

    def request(self) -> str:
        return f"one login request as user {self.probe_user}"


_SSHD_T = " On the host: sshd -T | grep -Ei 'passwordauth|kbdinteractive|permitempty'"

OPENSSH_PROFILE = ServerProfile(
    name="OpenSSH",
    probe_user="nobody",
    asked_by_default=False,
    rekeys_before_login=False,
    refusal=(
        "which OpenSSH logs as a refused login, counted by fail2ban, if that user may not log "
        "in there (AllowUsers, AllowGroups, DenyUsers, DenyGroups, a locked account)"
    ),
    on_the_host=_SSHD_T,
)
OPENSSH_WINDOWS_PROFILE = ServerProfile(
    name="OpenSSH for Windows",
    probe_user="nobody",
    asked_by_default=False,
    rekeys_before_login=False,
    refusal="which OpenSSH logs as 'Invalid user nobody' (Windows has no such account)",
    on_the_host=_SSHD_T,
)
DROPBEAR_PROFILE = ServerProfile(
    name="Dropbear",
    probe_user="root",
    asked_by_default=True,
    rekeys_before_login=True,
    refusal="which Dropbear logs as 'root login rejected' under -w, not counted by fail2ban",
)
OTHER_PROFILE = ServerProfile(
    name="SSH",
    probe_user="root",
    asked_by_default=False,
    rekeys_before_login=False,
    refusal="which this server may log as a failed login (what it logs is not known)",
)
PROFILES = {
    OPENSSH: OPENSSH_PROFILE,
    OPENSSH_WINDOWS: OPENSSH_WINDOWS_PROFILE,
    DROPBEAR: DROPBEAR_PROFILE,
}


def profile_for(product: str | None) -> ServerProfile:
    """The profile for a product parsed from the identification line (versions.parse_software)."""
    return PROFILES.get(product or "", OTHER_PROFILE)
