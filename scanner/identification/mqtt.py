"""MQTT without logging in: a CONNECT the broker must refuse before it looks at auth.

MQTT clients speak first, and a broker answers nothing but a CONNECT. We send one whose
protocol level (0) no MQTT version uses. The specification (3.1.1 section 3.1.2.2, 5.0
section 3.1.2.2) requires the broker to answer CONNACK "unacceptable protocol version"
and close, which it does before any authentication: no credentials, no session, nothing
counted as a failed login (mosquitto logs "Invalid protocol version 0"). Whether the
broker lets anonymous clients in is the later `mqtt.anonymous` check's question.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from scanner.identification.connection import (
    PROBE_ERRORS,
    ByteCapReached,
    Channel,
    ProbeTimeout,
)

UNUSED_PROTOCOL_LEVEL = 0
# CONNECT: type 1, remaining length 12; "MQTT", level 0, clean session, keep-alive 60 s,
# and an empty client id.
PROBE = bytes([0x10, 12, 0x00, 0x04]) + b"MQTT" + bytes([UNUSED_PROTOCOL_LEVEL, 0x02, 0, 60, 0, 0])
DISCONNECT = bytes([0xE0, 0x00])
REPLY_CAP = 256

_V3_CODES = {
    0: "accepted",
    1: "unacceptable protocol version",
    2: "identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized",
}


@dataclass(frozen=True)
class Connack:
    return_code: int
    meaning: str


async def probe_mqtt(channel: Channel, first_byte_deadline: float) -> Connack | None:
    """Send the refused-by-design CONNECT; the CONNACK if the service is an MQTT broker."""
    await channel.send(PROBE)
    reply = bytearray()
    while len(reply) < 4:
        try:
            data = await channel.recv(REPLY_CAP - len(reply), first_byte_deadline)
        except (ProbeTimeout, ByteCapReached):
            break
        if not data:
            break
        reply += data
        first_byte_deadline = channel.deadline
    answer = parse_connack(bytes(reply))
    if answer is not None and answer.return_code == 0:
        # A broker that accepted anyway now holds a session for us: leave at once.
        with contextlib.suppress(*PROBE_ERRORS):
            await channel.send(DISCONNECT)
    return answer


def parse_connack(data: bytes) -> Connack | None:
    """A CONNACK packet (MQTT 3.1, 3.1.1 or 5.0) at the start of `data`, or None."""
    if len(data) < 4 or data[0] != 0x20:
        return None
    remaining = data[1]
    if remaining == 2:  # 3.x: acknowledge flags, return code
        code = data[3]
        return Connack(code, _V3_CODES.get(code, "unknown return code"))
    if 3 <= remaining < 0x80 and data[2] in (0, 1):  # 5.0: flags, reason code, properties
        code = data[3]
        return Connack(code, "success" if code == 0 else "refused (MQTT 5 reason code)")
    return None
