"""VNC (RFB, RFC 6143): which security types does the server offer before anyone logs in?

The server greets with "RFB 003.00x"; we answer with the version and read the list of
security types. Type 1 (None) = the desktop is open to anyone. We never choose a type that
would ask for a password. Only when the server offers VeNCrypt (19) without None do we select
it, to read VeNCrypt's sub-type list (TLSNone/X509None are also "no authentication"), then close
before any TLS or credential exchange.
"""

from __future__ import annotations

import re
import struct

from scanner.checks.services.model import NOT_IDENTIFIED, Auth, ProbeOutcome
from scanner.core.text import safe_text
from scanner.net import Connector, NetError, Stream

_VERSION = re.compile(rb"^RFB (\d{3})\.(\d{3})\n")
NONE, VNC_AUTH, VENCRYPT = 1, 2, 19
SECURITY_TYPES = {
    0: "Invalid", 1: "None", 2: "VNC Authentication", 5: "RA2", 6: "RA2ne", 16: "Tight",
    17: "Ultra", 18: "TLS", 19: "VeNCrypt", 20: "SASL", 21: "MD5 hash", 22: "xvp",
    30: "Apple Remote Desktop", 35: "Apple (Mac OS X)", 113: "MS-Logon II",
}
# Types that ask for a secret before the desktop is shown.
AUTHENTICATING = frozenset({2, 5, 6, 17, 18, 20, 21, 22, 30, 35, 113})
VENCRYPT_SUBTYPES = {
    1: "None", 2: "VncAuth", 256: "Plain", 257: "TLSNone", 258: "TLSVnc", 259: "TLSPlain",
    260: "X509None", 261: "X509Vnc", 262: "X509Plain", 263: "TLSSASL", 264: "X509SASL",
}
VENCRYPT_WITHOUT_AUTH = frozenset({1, 257, 260})
CAP = 4096


def parse_version(greeting: bytes) -> tuple[int, int] | None:
    found = _VERSION.match(greeting[:12])
    return (int(found.group(1)), int(found.group(2))) if found else None


def client_version(server: tuple[int, int]) -> tuple[int, int]:
    """The version we answer with: the server's, at most 3.8 (3.3 below 3.7, per RFC 6143)."""
    major, minor = server
    if major > 3 or (major == 3 and minor >= 8):
        return (3, 8)
    if major == 3 and minor == 7:
        return (3, 7)
    return (3, 3)


def parse_type_list(data: bytes) -> tuple[list[int], str | None] | None:
    """RFB 3.7+: count, types (or count 0, reason). (types, reason); None if incomplete."""
    if not data:
        return None
    count = data[0]
    if count == 0:
        if len(data) < 5:
            return [], None
        length = min(struct.unpack("!I", data[1:5])[0], 512)
        return [], safe_text(data[5 : 5 + length], 200)
    if len(data) < 1 + count:
        return None
    return list(data[1 : 1 + count]), None


def parse_vencrypt_subtypes(data: bytes) -> list[int] | None:
    """ack (0), count, count x u32; None if incomplete or refused."""
    if len(data) < 2 or data[0] != 0:
        return None
    count = data[1]
    if len(data) < 2 + 4 * count:
        return None
    return [struct.unpack("!I", data[2 + 4 * i : 6 + 4 * i])[0] for i in range(count)]


def type_names(types: list[int]) -> list[str]:
    return [SECURITY_TYPES.get(kind, f"type {kind}") for kind in types]


def judge(types: list[int], subtypes: list[int] | None) -> Auth:
    if NONE in types:
        return Auth.NONE
    if subtypes and VENCRYPT_WITHOUT_AUTH & set(subtypes):
        return Auth.NONE
    if AUTHENTICATING & set(types) or (subtypes and not VENCRYPT_WITHOUT_AUTH & set(subtypes)):
        return Auth.REQUIRED
    return Auth.UNKNOWN


def probe(connector: Connector) -> ProbeOutcome:
    if connector.tls:
        return NOT_IDENTIFIED
    try:
        with connector.open(cap=CAP) as stream:
            greeting = stream.recv_until(lambda buffer: len(buffer) >= 12, 12)
            server = parse_version(greeting)
            if server is None:
                return NOT_IDENTIFIED
            answer = client_version(server)
            stream.send(b"RFB %03d.%03d\n" % answer)
            types, reason = _read_types(stream, answer)
            wants_vencrypt = VENCRYPT in types and NONE not in types
            subtypes = _vencrypt_subtypes(stream) if wants_vencrypt else None
    except NetError:
        return NOT_IDENTIFIED
    return outcome(server, types, subtypes, reason)


def outcome(
    server: tuple[int, int], types: list[int], subtypes: list[int] | None, reason: str | None
) -> ProbeOutcome:
    auth = judge(types, subtypes)
    names = type_names(types)
    evidence = f"RFB {server[0]}.{server[1]}: security types offered: {', '.join(names) or 'none'}"
    if subtypes is not None:
        sub_names = [VENCRYPT_SUBTYPES.get(kind, f"sub-type {kind}") for kind in subtypes]
        evidence += f"; VeNCrypt sub-types: {', '.join(sub_names)}"
    if reason:
        evidence += f"; server refused: {reason}"
    facts = {
        "protocol_version": f"{server[0]}.{server[1]}",
        "security_types": names,
        **({"vencrypt_subtypes": subtypes} if subtypes is not None else {}),
    }
    return ProbeOutcome(True, auth, evidence, facts=facts)


def _read_types(stream: Stream, version: tuple[int, int]) -> tuple[list[int], str | None]:
    if version == (3, 3):  # the server decides: one u32 type
        chosen = struct.unpack("!I", stream.recv_exactly(4))[0]
        return ([chosen] if chosen else []), None
    data = stream.recv_until(lambda buffer: parse_type_list(buffer) is not None, 1 + 255)
    parsed = parse_type_list(data)
    if parsed is None:
        raise NetError("incomplete security type list")
    types, reason = parsed
    if not types and reason is None:  # count 0: the reason follows
        more = stream.recv_until(lambda buffer: len(buffer) >= 4, 4 + 512)
        parsed = parse_type_list(data[:1] + more)
        reason = parsed[1] if parsed else None
    return types, reason


def _vencrypt_subtypes(stream: Stream) -> list[int] | None:
    """Select VeNCrypt, agree on 0.2, read its sub-types; never pick one (no TLS, no creds)."""
    stream.send(bytes([VENCRYPT]))
    server_version = stream.recv_exactly(2)
    if server_version[0] != 0 or server_version[1] < 2:
        return None
    stream.send(bytes([0, 2]))
    data = stream.recv_until(
        lambda buffer: parse_vencrypt_subtypes(buffer) is not None, 2 + 4 * 255
    )
    return parse_vencrypt_subtypes(data)
