"""X11: does the X server accept a client that brings no authorisation?

We send the connection setup any X client sends first (byte order, protocol 11.0) with an empty
authorisation, as nmap's x11-access does, and read the first reply: Success means anyone may
read the screen and type into it (keystrokes, screenshots); Failed or Authenticate means the
server wants a cookie. We close right after: no request is ever made on an accepted
connection. The server's audit log may note the rejected client (no credential was sent).
"""

from __future__ import annotations

import struct

from scanner.checks.services.model import NOT_IDENTIFIED, Auth, ProbeOutcome
from scanner.core.text import safe_text
from scanner.net import Connector, NetError

SETUP = b"l\x00" + struct.pack("<HHHH", 11, 0, 0, 0) + b"\x00\x00"  # little-endian, no auth
FAILED, SUCCESS, AUTHENTICATE = 0, 1, 2
EXTRA_CAP = 4096  # of the reply's additional data we read at most this much


def parse_reply(head: bytes, extra: bytes) -> ProbeOutcome:
    """The outcome from the 8-byte reply head and (up to EXTRA_CAP of) its additional data."""
    if len(head) < 8 or head[0] not in (FAILED, SUCCESS, AUTHENTICATE):
        return NOT_IDENTIFIED
    major, minor, units = struct.unpack("<HHH", head[2:8])
    if major != 11:
        return NOT_IDENTIFIED
    version = f"{major}.{minor}"
    if head[0] == SUCCESS:
        return _accepted(version, extra)
    reason_length = head[1] if head[0] == FAILED else units * 4
    reason = safe_text(extra[:reason_length].rstrip(b"\x00"), 200)
    what = "refused" if head[0] == FAILED else "asked for authentication"
    return ProbeOutcome(
        True, Auth.REQUIRED,
        f"X11 connection setup without authorisation {what}: {reason or '(no reason)'}",
        product="X11 server", facts={"protocol_version": version, "reason": reason},
    )


def _accepted(version: str, extra: bytes) -> ProbeOutcome:
    facts: dict[str, object] = {"protocol_version": version}
    vendor = None
    if len(extra) >= 32:
        release = struct.unpack("<I", extra[0:4])[0]
        vendor_length = struct.unpack("<H", extra[16:18])[0]
        vendor = safe_text(extra[32 : 32 + min(vendor_length, 256)], 100) or None
        facts.update({"release": release, "screens": extra[20]})
        if vendor:
            facts["vendor"] = vendor
    return ProbeOutcome(
        True, Auth.NONE,
        "X11 connection setup without authorisation succeeded"
        + (f" (vendor {vendor})" if vendor else "") + ": anyone can see the screen and type",
        product=f"X11 server ({vendor})" if vendor else "X11 server", facts=facts,
    )


def probe(connector: Connector) -> ProbeOutcome:
    if connector.tls:
        return NOT_IDENTIFIED
    try:
        with connector.open(cap=8 + EXTRA_CAP) as stream:
            stream.send(SETUP)
            head = stream.recv_exactly(8)
            if head[0] not in (FAILED, SUCCESS, AUTHENTICATE) or head[2:4] != b"\x0b\x00":
                return NOT_IDENTIFIED
            wanted = min(struct.unpack("<H", head[6:8])[0] * 4, EXTRA_CAP)
            extra = stream.recv_until(lambda data: len(data) >= wanted, wanted) if wanted else b""
    except NetError:
        return NOT_IDENTIFIED
    return parse_reply(head, extra)
