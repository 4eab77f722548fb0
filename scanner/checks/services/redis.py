"""Redis: does INFO answer without AUTH?

We send one inline command, `INFO server` (read-only, no key touched), and read the reply:
a bulk string starting "# Server" = no password; "-NOAUTH" = requirepass/ACL asks for one;
"-DENIED" = protected mode refuses clients from other hosts (no password, but not reachable).
"""

from __future__ import annotations

import re

from scanner.checks.services.model import NOT_IDENTIFIED, Auth, ProbeOutcome
from scanner.core.text import safe_text
from scanner.net import Connector

COMMAND = b"INFO server\r\n"
REPLY_CAP = 16 * 1024
_VERSION = re.compile(r"^redis_version:([0-9A-Za-z.\-]{1,32})\r?$", re.MULTILINE)
_MODE = re.compile(r"^redis_mode:([a-z]{1,16})\r?$", re.MULTILINE)
_BULK = re.compile(rb"^\$(\d{1,7})\r\n")


def reply_complete(data: bytes) -> bool:
    if data.startswith((b"-", b"+")):
        return b"\r\n" in data
    found = _BULK.match(data)
    return found is not None and len(data) >= found.end() + int(found.group(1))


def classify(reply: bytes) -> ProbeOutcome:
    """What a reply to INFO says (pure; never raises)."""
    text = reply[:REPLY_CAP].decode("utf-8", "replace")
    first = safe_text(text.split("\n", 1)[0].strip(), 160)
    if text.startswith("$") and "# Server" in text[:64]:
        version = _VERSION.search(text)
        mode = _MODE.search(text)
        facts = {"mode": mode.group(1)} if mode else {}
        return ProbeOutcome(
            True, Auth.NONE,
            "INFO server without AUTH returned the server section"
            + (f" (redis_version {version.group(1)})" if version else ""),
            version=version.group(1) if version else None, product="Redis", facts=facts,
        )
    if text.startswith(("-NOAUTH", "-WRONGPASS", "-ERR operation not permitted")):
        return ProbeOutcome(True, Auth.REQUIRED, f"INFO without AUTH: {first}", product="Redis")
    if text.startswith("-DENIED"):
        return ProbeOutcome(
            True, Auth.REQUIRED, f"INFO refused by protected mode: {first}", product="Redis",
            facts={"protected_mode": True},
            notes=("Redis runs without a password but protected mode refuses remote clients; "
                   "turning protected mode off would open it to anyone",),
        )
    if text.startswith("-ERR"):
        return ProbeOutcome(True, Auth.UNKNOWN, f"INFO answered with an error: {first}",
                            product="Redis")
    return NOT_IDENTIFIED


def probe(connector: Connector) -> ProbeOutcome:
    reply = connector.ask(COMMAND, reply_complete, REPLY_CAP)
    return NOT_IDENTIFIED if reply is None else classify(reply)
