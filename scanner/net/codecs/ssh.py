"""The SSH identification string (RFC 4253 section 4.2), as identification and the SSH audit
read it: `SSH-protoversion-softwareversion SP comments`, possibly after other lines."""

from __future__ import annotations

import re
from dataclasses import dataclass

from scanner import __version__

# What we say when an SSH server greets us: identification, so a connection that ends there
# is logged by sshd as a plain "Connection closed ... [preauth]", not as a client that never
# identified itself ("kex_exchange_identification: Connection closed by remote host").
CLIENT_IDENTIFICATION = f"SSH-2.0-exposure_{__version__}"
IDENTIFICATION_LINE = CLIENT_IDENTIFICATION.encode("ascii") + b"\r\n"

MAX_LINE_CHARS = 255  # RFC 4253: the identification line is at most 255 characters
MAX_PRE_LINES = 20  # lines a server may send before it (RFC 4253 allows some)

_SSH_LINE = re.compile(
    r"^SSH-(?P<protocol>[0-9.]{1,10})-(?P<software>[^\s-][^\s]{0,200})(?: (?P<comment>.{0,200}))?"
)


@dataclass(frozen=True)
class SshIdentification:
    line: str
    protocol: str
    software: str
    comment: str | None


def parse_identification_line(line: str) -> SshIdentification | None:
    """One line (without its CR LF) as an SSH identification, or None."""
    found = _SSH_LINE.match(line)
    if not found:
        return None
    return SshIdentification(
        line=line,
        protocol=found.group("protocol"),
        software=found.group("software"),
        comment=found.group("comment") or None,
    )


def find_identification(text: str) -> SshIdentification | None:
    """The SSH- line of a greeting, which RFC 4253 lets other lines precede."""
    for line in text.split("\n")[:MAX_PRE_LINES]:
        found = parse_identification_line(line.rstrip("\r"))
        if found is not None:
            return found
    return None
