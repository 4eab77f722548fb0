"""SMB presence: one SMB2 NEGOTIATE, no session setup (no login, not even anonymous).

The negotiate response names the dialect and whether signing is required; that an SMB server
answers from the internet is the finding. Anonymous share listing would need a session setup
(an authentication), which we never send.
"""

from __future__ import annotations

import os
import struct

from scanner.checks.services.model import NOT_IDENTIFIED, Auth, ProbeOutcome
from scanner.net import Connector, NetError

DIALECTS = (0x0202, 0x0210, 0x0300, 0x0302)  # 3.1.1 needs negotiate contexts: not offered
DIALECT_NAMES = {0x0202: "2.0.2", 0x0210: "2.1", 0x0300: "3.0", 0x0302: "3.0.2", 0x0311: "3.1.1",
                 0x02FF: "2.???"}
CAP = 4096


def negotiate_request() -> bytes:
    header = (
        b"\xfeSMB" + struct.pack("<HHIHHII", 64, 0, 0, 0, 0, 0, 0)
        + struct.pack("<QIIQ", 0, 0xFEFF, 0, 0) + b"\x00" * 16
    )
    body = struct.pack("<HHHHI", 36, len(DIALECTS), 1, 0, 0) + os.urandom(16) + struct.pack(
        "<Q", 0
    )
    body += b"".join(struct.pack("<H", dialect) for dialect in DIALECTS)
    message = header + body
    return struct.pack(">I", len(message)) + message  # direct TCP transport framing


def parse_negotiate(data: bytes) -> ProbeOutcome:
    """The server's answer (with its 4-byte framing). Pure; never raises."""
    if len(data) < 8:
        return NOT_IDENTIFIED
    message = data[4:]
    if message.startswith(b"\xffSMB"):
        return ProbeOutcome(True, Auth.UNKNOWN, "SMB1 answered the negotiate request",
                            product="SMB", facts={"dialect": "1"})
    if not message.startswith(b"\xfeSMB") or len(message) < 64 + 8:
        return NOT_IDENTIFIED
    status = struct.unpack("<I", message[8:12])[0]
    if status != 0:
        return ProbeOutcome(True, Auth.UNKNOWN,
                            f"SMB2 answered the negotiate request with status 0x{status:08x}",
                            product="SMB")
    security_mode, dialect = struct.unpack("<HH", message[66:70])
    name = DIALECT_NAMES.get(dialect, f"0x{dialect:04x}")
    signing_required = bool(security_mode & 0x02)
    facts = {"dialect": name, "signing_required": signing_required}
    return ProbeOutcome(
        True, Auth.UNKNOWN,
        f"SMB2 NEGOTIATE answered: dialect {name}, signing "
        f"{'required' if signing_required else 'not required'}",
        product="SMB", facts=facts,
        notes=("whether shares allow guest access needs a session setup (a login), which the "
               "scanner never sends",),
    )


def probe(connector: Connector) -> ProbeOutcome:
    if connector.tls:
        return NOT_IDENTIFIED
    try:
        with connector.open(cap=CAP) as stream:
            stream.send(negotiate_request())
            data = stream.recv_until(_framed_complete, CAP)
    except NetError:
        return NOT_IDENTIFIED
    return parse_negotiate(data)


def _framed_complete(data: bytes) -> bool:
    return len(data) >= 4 and len(data) >= 4 + struct.unpack(">I", data[:4])[0]
