"""memcached: does `stats` (read-only) answer without authentication?

"STAT pid ..." lines = open. memcached 1.6 with an ASCII auth file (-Y) answers
"CLIENT_ERROR unauthenticated"; with SASL (-S) the text protocol is refused.
"""

from __future__ import annotations

import re

from scanner.checks.services.model import NOT_IDENTIFIED, Auth, ProbeOutcome
from scanner.core.text import safe_text
from scanner.net import Connector

COMMAND = b"stats\r\n"
REPLY_CAP = 16 * 1024
_STAT = re.compile(r"^STAT (\w{1,40}) (\S{1,80})\r?$", re.MULTILINE)
KEPT_STATS = ("version", "uptime", "curr_items", "curr_connections")


def reply_complete(data: bytes) -> bool:
    return data.endswith(b"END\r\n") or (
        data.startswith((b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR")) and b"\r\n" in data
    )


def classify(reply: bytes) -> ProbeOutcome:
    text = reply[:REPLY_CAP].decode("utf-8", "replace")
    stats = dict(_STAT.findall(text))
    if "pid" in stats and ("version" in stats or "uptime" in stats):
        facts = {key: safe_text(stats[key], 40) for key in KEPT_STATS if key in stats}
        version = facts.get("version")
        return ProbeOutcome(
            True, Auth.NONE,
            "stats without authentication returned the server statistics"
            + (f" (version {version})" if version else ""),
            version=version, product="memcached", facts=facts,
        )
    if text.startswith("CLIENT_ERROR unauthenticated"):
        return ProbeOutcome(True, Auth.REQUIRED,
                            "stats without authentication: CLIENT_ERROR unauthenticated",
                            product="memcached")
    return NOT_IDENTIFIED


def probe(connector: Connector) -> ProbeOutcome:
    reply = connector.ask(COMMAND, reply_complete, REPLY_CAP)
    return NOT_IDENTIFIED if reply is None else classify(reply)
