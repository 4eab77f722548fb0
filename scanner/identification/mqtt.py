"""MQTT without logging in: a CONNECT the broker must refuse before it looks at auth.

MQTT clients speak first, and a broker answers nothing but a CONNECT. We send one with
protocol level 0, which no MQTT version uses (scanner.net.codecs.mqtt): the broker answers
CONNACK "unacceptable protocol version" and closes, before any authentication: no credentials,
no session, nothing counted as a failed login (mosquitto logs "Invalid protocol version 0").
Whether the broker lets anonymous clients in is the later `mqtt.anonymous` check's question.
"""

from __future__ import annotations

import contextlib

from scanner.identification.connection import PROBE_ERRORS
from scanner.net import ByteCapReached, Channel, NetTimeout
from scanner.net.codecs.mqtt import (
    CONNACK_CAP,
    DISCONNECT,
    IDENTIFY_PROBE,
    Connack,
    connack_complete,
    parse_connack,
)

PROBE = IDENTIFY_PROBE

__all__ = ["PROBE", "Connack", "parse_connack", "probe_mqtt"]


async def probe_mqtt(channel: Channel, first_byte_deadline: float | None = None) -> Connack | None:
    """Send the refused-by-design CONNECT; the CONNACK if the service is an MQTT broker."""
    await channel.send(PROBE)
    reply = bytearray()
    deadline = first_byte_deadline
    while not connack_complete(bytes(reply)):
        try:
            data = await channel.recv(CONNACK_CAP - len(reply), deadline)
        except (NetTimeout, ByteCapReached):
            break
        if not data:
            break
        reply += data
        deadline = None  # it answers: the rest may take one read timeout per read
    answer = parse_connack(bytes(reply))
    if answer is not None and answer.accepted:
        # A broker that accepted anyway now holds a session for us: leave at once.
        with contextlib.suppress(*PROBE_ERRORS):
            await channel.send(DISCONNECT)
    return answer
