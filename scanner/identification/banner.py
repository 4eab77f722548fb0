"""Server-speaks-first protocols: read the greeting, then tell what it is from its text.

Reading (`read_greeting`) is the only I/O here; everything else is pure parsing of bytes a
hostile server chose, so every parser takes capped input and never raises.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from scanner.core.text import safe_text
from scanner.identification.products import (
    GREETING_RULES,
    MAX_FIELD_CHARS,
    SSH_DISTRO_PATTERN,
    SSH_SOFTWARE_RULES,
    greeting_service,
    match_product,
)
from scanner.net import Channel
from scanner.net.codecs.ssh import SshIdentification, find_identification
from scanner.net.stream import read_until_idle

GREETING_CAP = 4096  # an SSH line is at most 255 bytes; multi-line FTP welcomes are longer
GREETING_IDLE = 0.05  # after the first bytes, a pause this long ends the greeting
BANNER_CHARS = 512


@dataclass(frozen=True)
class Greeting:
    data: bytes
    closed: bool  # the server hung up (before or after speaking)


@dataclass(frozen=True)
class GreetingIdentity:
    """What a greeting (or any unprompted server text) says about the service."""

    service: str | None
    banner: str
    product: str | None = None
    version: str | None = None
    shodan_product: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


async def read_greeting(channel: Channel, wait_until: float) -> Greeting:
    """What the server says on its own before `wait_until` (plus short follow-up lines)."""
    idle = GREETING_IDLE + channel.rtt
    data, closed = await read_until_idle(
        channel, first_byte_deadline=wait_until, idle=idle, cap=GREETING_CAP
    )
    return Greeting(data, closed)


def greeting_wait(rtt: float, remaining: float) -> float:
    """How long a silent server gets to speak first, in seconds.

    Long enough for a busy sshd to fork and greet over a slow link, short enough that
    client-speaks-first services (HTTP, TLS, MQTT) are not kept waiting; at most a quarter
    of the port's budget so the later probes still have time.
    """
    return min(max(0.5, 4 * rtt), remaining / 4)


def deadline_after(seconds: float) -> float:
    return time.monotonic() + seconds


# --- parsing (pure) ---------------------------------------------------------------------

_STATUS_LINE = re.compile(r"^(?P<code>220|421|554)[ -]")
_SMTP_WORDS = re.compile(r"\bE?SMTP\b|\bmail\b|Postfix|Exim|Sendmail", re.IGNORECASE)
_FTP_WORDS = re.compile(r"FTP|FileZilla", re.IGNORECASE)
_VNC = re.compile(r"^RFB (?P<major>\d{3})\.(?P<minor>\d{3})(?:\n|$)")
_IRC = re.compile(r"^:\S{1,100} NOTICE ")
_TELNET_COMMANDS = frozenset({0xFB, 0xFC, 0xFD, 0xFE})  # WILL, WONT, DO, DONT
_REDIS_ERRORS = ("-ERR", "-DENIED", "-NOAUTH", "-WRONGPASS")


def classify_greeting(data: bytes) -> GreetingIdentity:
    """Identify a service from what it sent first. Unknown text gives service None."""
    data = data[:GREETING_CAP]
    binary = _classify_binary(data)
    if binary is not None:
        return binary
    text = normalise_text(data)
    ssh = parse_ssh_identification(text)
    if ssh is not None:
        return _ssh_identity(ssh)
    return _classify_text(text)


def classify_reply_to_http(data: bytes) -> GreetingIdentity | None:
    """A non-HTTP answer to our HTTP request can still name the service (Redis, ...)."""
    text = normalise_text(data[:GREETING_CAP])
    if text.startswith(_REDIS_ERRORS):
        return GreetingIdentity(service="redis", banner=printable(text), product="Redis")
    known = classify_greeting(data)
    return known if known.service else None


def parse_ssh_identification(text: str) -> SshIdentification | None:
    """The SSH- line, which RFC 4253 lets other lines precede; None if there is none."""
    return find_identification(text)


def normalise_text(data: bytes) -> str:
    """Bytes as text with line ends unified; undecodable bytes become \\xNN, not errors."""
    text = data.decode("utf-8", "backslashreplace")
    return text.replace("\r\n", "\n").replace("\r", "\n").strip("\n")


def printable(text: str | bytes, limit: int = BANNER_CHARS) -> str:
    """A banner safe to keep: no control characters, capped."""
    if isinstance(text, bytes):
        text = normalise_text(text)
    return safe_text(text, limit)


def _ssh_identity(ssh: SshIdentification) -> GreetingIdentity:
    match = match_product(SSH_SOFTWARE_RULES, ssh.software)
    details: dict[str, Any] = {
        "protocol": safe_text(ssh.protocol, MAX_FIELD_CHARS),
        "software": safe_text(ssh.software, MAX_FIELD_CHARS * 2),
    }
    if ssh.comment:
        details["comment"] = safe_text(ssh.comment, MAX_FIELD_CHARS * 2)
        distro = SSH_DISTRO_PATTERN.match(ssh.comment)
        if distro:
            details["distro"] = safe_text(distro.group("distro"), MAX_FIELD_CHARS)
            details["distro_revision"] = safe_text(distro.group("revision"), MAX_FIELD_CHARS)
    return GreetingIdentity(
        service="ssh",
        banner=printable(ssh.line),
        product=match.product if match else None,
        version=match.version if match else None,
        shodan_product=match.shodan_product if match else None,
        details={"ssh": details},
    )


def _classify_text(text: str) -> GreetingIdentity:
    banner = printable(text)
    service = _text_service(text)
    if service is None:
        return GreetingIdentity(service=None, banner=banner)
    match = match_product(GREETING_RULES.get(service, ()), text)
    details: dict[str, Any] = {}
    vnc = _VNC.match(text)
    if service == "vnc" and vnc:
        version = f"{int(vnc.group('major'))}.{int(vnc.group('minor'))}"
        details = {"vnc": {"protocol_version": version}}
    return GreetingIdentity(
        service=service,
        banner=banner,
        product=match.product if match else None,
        version=match.version if match else None,
        shodan_product=match.shodan_product if match else None,
        details=details,
    )


def _text_service(text: str) -> str | None:
    first_line = text.split("\n", 1)[0]
    if _STATUS_LINE.match(first_line):
        if _SMTP_WORDS.search(text[:GREETING_CAP]):
            return "smtp"
        if _FTP_WORDS.search(text[:GREETING_CAP]):
            return "ftp"
        return None  # a bare "220 welcome" could be either: let nmap decide
    if first_line.startswith("+OK"):
        return "pop3"
    if first_line.startswith(("* OK", "* PREAUTH", "* BYE")):
        return "imap"
    if _VNC.match(text):
        return "vnc"
    if _IRC.match(first_line):
        return "irc"
    if first_line.startswith("INFO {") and '"server_id"' in first_line:
        return "nats"
    return greeting_service(first_line)  # the data table in products.py (rsync, ...)


def _classify_binary(data: bytes) -> GreetingIdentity | None:
    if len(data) >= 2 and data[0] == 0xFF and data[1] in _TELNET_COMMANDS:
        return GreetingIdentity(service="telnet", banner=printable(data))
    return _classify_mysql(data)


def _classify_mysql(data: bytes) -> GreetingIdentity | None:
    """MySQL/MariaDB: a length-prefixed handshake (protocol 10) or an error packet."""
    if len(data) < 6 or data[3] != 0:
        return None
    length = data[0] | data[1] << 8 | data[2] << 16
    if length + 4 < len(data) or length > 0xFFFF:
        return None
    if data[4] == 0x0A:
        return _mysql_handshake(data)
    if data[4] == 0xFF and len(data) > 7:
        return _mysql_error(data)
    return None


def _mysql_handshake(data: bytes) -> GreetingIdentity | None:
    end = data.find(b"\x00", 5, 5 + 64)
    if end == -1:
        return None
    server_version = data[5:end].decode("ascii", "replace")
    match = match_product(GREETING_RULES["mysql"], server_version)
    return GreetingIdentity(
        service="mysql",
        banner=printable(f"MySQL protocol 10 handshake, server version {server_version}"),
        product=match.product if match else "MySQL",
        version=match.version if match else None,
        shodan_product=match.shodan_product if match else "MySQL",
        details={"mysql": {"server_version": printable(server_version, MAX_FIELD_CHARS)}},
    )


def _mysql_error(data: bytes) -> GreetingIdentity | None:
    """E.g. "Host 'x' is not allowed to connect to this MariaDB server": still MySQL."""
    message = data[7:].decode("utf-8", "replace")
    lowered = message.lower()
    if "mysql" not in lowered and "mariadb" not in lowered:
        return None
    product = "MariaDB" if "mariadb" in lowered else "MySQL"
    return GreetingIdentity(
        service="mysql",
        banner=printable(f"MySQL error packet: {message}"),
        product=product,
        shodan_product=product,
    )
