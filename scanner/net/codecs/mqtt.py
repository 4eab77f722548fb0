"""MQTT packets both identification and the MQTT check send or read (MQTT 3.1.1 and 5.0).

Identification sends a CONNECT with protocol level 0, which no MQTT version uses: the broker
must answer CONNACK "unacceptable protocol version" before it looks at authentication (3.1.1
and 5.0, section 3.1.2.2), so naming a broker never counts as a login. The MQTT check sends a
3.1.1 CONNECT without credentials to learn whether anonymous clients are let in, and leaves
with DISCONNECT at once when they are.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

PROTOCOL_LEVEL_311 = 4
UNUSED_PROTOCOL_LEVEL = 0
CLEAN_SESSION = 0x02
KEEP_ALIVE = 30
DISCONNECT = bytes([0xE0, 0x00])
CONNACK_CAP = 64

RETURN_CODES = {  # MQTT 3.1.1 section 3.2.2.3
    0: "accepted",
    1: "unacceptable protocol version",
    2: "identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized",
}
# MQTT 5 reason codes a broker may send to a 3.1.1 CONNECT anyway
V5_REASONS = {0x84: "unsupported protocol version", 0x86: "bad user name or password",
              0x87: "not authorized"}
REFUSED_FOR_CREDENTIALS = frozenset({4, 5, 0x86, 0x87})


@dataclass(frozen=True)
class Connack:
    return_code: int
    meaning: str
    version5: bool = False

    @property
    def accepted(self) -> bool:
        return self.return_code == 0


def encode_length(length: int) -> bytes:
    """MQTT's variable-length "remaining length" field."""
    out = bytearray()
    while True:
        byte = length % 128
        length //= 128
        out.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(out)


def connect_packet(
    client_id: str, protocol_level: int = PROTOCOL_LEVEL_311, keep_alive: int = KEEP_ALIVE
) -> bytes:
    """CONNECT with clean session and no username or password (connect flags 0x02)."""
    encoded = client_id.encode()
    variable = (
        struct.pack("!H", 4) + b"MQTT" + bytes([protocol_level, CLEAN_SESSION])
        + struct.pack("!H", keep_alive)
    )
    body = variable + struct.pack("!H", len(encoded)) + encoded
    return bytes([0x10]) + encode_length(len(body)) + body


# Identification's probe: protocol level 0 and an empty client id, refused before auth.
IDENTIFY_PROBE = connect_packet("", UNUSED_PROTOCOL_LEVEL, keep_alive=60)


def parse_connack(data: bytes) -> Connack | None:
    """The CONNACK at the start of `data` (3.1, 3.1.1 or 5.0), or None if it is not one."""
    if len(data) < 4 or data[0] != 0x20:
        return None
    remaining = data[1]
    code = data[3]
    if remaining == 2:  # 3.x: acknowledge flags, return code
        return Connack(code, RETURN_CODES.get(code, "unknown return code"))
    if 3 <= remaining < 0x80 and data[2] in (0, 1):  # 5.0: flags, reason code, properties
        meaning = "accepted" if code == 0 else V5_REASONS.get(code, "refused (MQTT 5 reason)")
        return Connack(code, meaning, version5=True)
    return None


def connack_complete(buffer: bytes) -> bool:
    return len(buffer) >= 4
