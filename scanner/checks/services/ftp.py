"""FTP: does the server let the public `anonymous` account in?

We read the greeting, ask FEAT (which extensions, AUTH TLS among them), then log in once as
`anonymous` the way Shodan and nmap's ftp-anon do: it is the public anonymous account, not a
credential guess. A refusal is one failed login in the server's log (fail2ban's FTP filters
count it), so there is exactly one attempt per address per scan (`AnonymousLedger`), and
nothing after a 230 but QUIT: no listing, no data connection, no write.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass

from scanner.checks.services.model import NOT_IDENTIFIED, Auth, ProbeOutcome
from scanner.core.text import safe_text
from scanner.identification.products import GREETING_RULES, match_product
from scanner.net import Connector, NetError, Stream

REPLY_CAP = 8 * 1024
CONNECTION_CAP = 32 * 1024
ANONYMOUS_USER = b"anonymous"
ANONYMOUS_PASSWORD = b"anonymous@"
LEDGER_WINDOW_S = 15 * 60.0  # one scan of an address takes far less; watch runs hours apart
_REPLY_LINE = re.compile(rb"^(\d{3})([ -])(.*)$")


@dataclass(frozen=True)
class Reply:
    code: int
    text: str  # the reply's lines joined with " | ", sanitised

    @property
    def first_digit(self) -> int:
        return self.code // 100


def reply_complete(data: bytes) -> bool:
    return parse_reply(data) is not None


def parse_reply(data: bytes) -> Reply | None:
    """One FTP reply (RFC 959 4.2: single line "220 text", or "220-" ... "220 text");
    None while incomplete or when the bytes are not an FTP reply. Never raises."""
    lines = data[:REPLY_CAP].split(b"\n")
    first = _REPLY_LINE.match(lines[0].rstrip(b"\r"))
    if first is None:
        return None
    code = first.group(1)
    texts = [first.group(3)]
    if first.group(2) == b" ":
        return _reply(code, texts) if len(lines) > 1 else None
    for line in lines[1:-1]:  # the last element has no newline yet: incomplete
        line = line.rstrip(b"\r")
        if line.startswith(code + b" "):
            return _reply(code, [*texts, line[4:]])
        texts.append(line.removeprefix(code + b"-"))
    return None


def _reply(code: bytes, texts: list[bytes]) -> Reply:
    text = " | ".join(part.decode("utf-8", "replace").strip() for part in texts if part.strip())
    return Reply(int(code), safe_text(text, 300))


def features(reply: Reply | None) -> tuple[str, ...]:
    """FEAT's extension lines (211-Features | AUTH TLS | ... | End)."""
    if reply is None or reply.code != 211:
        return ()
    parts = [part.strip() for part in reply.text.split("|")]
    return tuple(part for part in parts[1:-1] if part)[:64]


class AnonymousLedger:
    """One anonymous login attempt per address per scan (a process-wide window)."""

    def __init__(self, window: float = LEDGER_WINDOW_S) -> None:
        self._window = window
        self._tried: dict[str, float] = {}
        self._lock = threading.Lock()

    def claim(self, address: str) -> bool:
        """True (and remembered) when no attempt on `address` was made within the window."""
        now = time.monotonic()
        with self._lock:
            last = self._tried.get(address)
            if last is not None and now - last < self._window:
                return False
            self._tried[address] = now
            return True

    def forget(self) -> None:
        with self._lock:
            self._tried.clear()


LEDGER = AnonymousLedger()


def probe(connector: Connector) -> ProbeOutcome:
    try:
        with connector.open(cap=CONNECTION_CAP) as stream:
            greeting = _read_reply(stream)
            if greeting is None:
                return NOT_IDENTIFIED
            if greeting.first_digit != 2:  # 421 too many users, 5xx refused: still FTP
                return _refused(greeting)
            extensions = features(_command(stream, b"FEAT"))
            if not LEDGER.claim(connector.endpoint.address):
                return _outcome(greeting, extensions, Auth.UNKNOWN,
                                "anonymous login not tried again (one attempt per scan)")
            auth, evidence = _anonymous_login(stream)
            stream.send_quietly(b"QUIT\r\n")
            return _outcome(greeting, extensions, auth, evidence)
    except NetError:
        return NOT_IDENTIFIED


def _anonymous_login(stream: Stream) -> tuple[Auth, str]:
    user = _command(stream, b"USER " + ANONYMOUS_USER)
    if user is None:
        return Auth.UNKNOWN, "no answer to USER anonymous"
    if user.code == 230:
        return Auth.NONE, f"USER anonymous: {user.code} {user.text} (no password asked)"
    if user.code != 331:
        return Auth.REQUIRED, f"USER anonymous refused: {user.code} {user.text}"
    # servers pause before refusing a login (vsftpd + PAM: seconds): wait to the deadline
    password = _command(stream, b"PASS " + ANONYMOUS_PASSWORD, patient=True)
    if password is None:
        return Auth.UNKNOWN, "no answer to PASS for the anonymous account"
    if password.code == 230:
        return Auth.NONE, f"anonymous login accepted: {password.code} {password.text}"
    return Auth.REQUIRED, f"anonymous login refused: {password.code} {password.text}"


def _outcome(greeting: Reply, extensions: tuple[str, ...], auth: Auth,
             evidence: str) -> ProbeOutcome:
    match = match_product(GREETING_RULES["ftp"], greeting.text)
    tls = any(re.match(r"AUTH\b.*\bTLS", item, re.IGNORECASE) for item in extensions)
    notes = () if auth is not Auth.UNKNOWN else (evidence,)
    return ProbeOutcome(
        identified=True, auth=auth,
        evidence=f"greeting {greeting.code} {greeting.text}; {evidence}",
        version=match.version if match else None,
        product=match.product if match else "FTP server",
        facts={"greeting": greeting.text, "auth_tls_offered": tls,
               "features": list(extensions)},
        transport="tcp (AUTH TLS offered)" if tls else "tcp", notes=notes,
    )


def _refused(greeting: Reply) -> ProbeOutcome:
    return ProbeOutcome(
        identified=True, auth=Auth.UNKNOWN,
        evidence=f"greeting {greeting.code} {greeting.text}", product="FTP server",
        notes=(f"the FTP server turned us away before any login ({greeting.code})",),
    )


def _read_reply(stream: Stream, patient: bool = False) -> Reply | None:
    if not patient:
        return parse_reply(stream.recv_until(reply_complete, REPLY_CAP))
    buffer = b""
    while not reply_complete(buffer) and len(buffer) < REPLY_CAP:
        chunk = stream.recv(REPLY_CAP - len(buffer), until=stream.deadline)
        if not chunk:
            break
        buffer += chunk
    return parse_reply(buffer)


def _command(stream: Stream, command: bytes, patient: bool = False) -> Reply | None:
    stream.send(command + b"\r\n")
    try:
        return _read_reply(stream, patient)
    except NetError:
        return None
