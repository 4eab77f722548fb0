"""MQTT: does the broker let a client in without credentials?

One CONNECT (MQTT 3.1.1, clean session, no username, no password, a client id that names us),
one CONNACK read, and a DISCONNECT at once if the broker said yes. Never SUBSCRIBE, never
PUBLISH. CONNACK 0 = accepted (anonymous access), 4 = bad user name or password, 5 = not
authorized (MQTT 3.1.1 section 3.2.2.3). The same exchange runs over TLS (8883) and, where a
websocket endpoint accepts the "mqtt" subprotocol, inside websocket frames.
"""

from __future__ import annotations

import os
import struct

from scanner.checks.services.http_client import websocket_open
from scanner.checks.services.model import NOT_IDENTIFIED, Auth, ProbeOutcome
from scanner.checks.services.transport import Endpoint, ProbeError, open_stream

PROTOCOL_LEVEL_311 = 4
CLEAN_SESSION = 0x02
KEEP_ALIVE = 30
DISCONNECT = bytes([0xE0, 0x00])
CONNACK_CAP = 64
WS_PATHS = ("/mqtt", "/")

RETURN_CODES = {
    0: "accepted",
    1: "unacceptable protocol version",
    2: "identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized",
}
# MQTT 5 reason codes a broker may send to our 3.1.1 CONNECT anyway
V5_REFUSALS = {0x86: "bad user name or password", 0x87: "not authorized"}


def client_id() -> str:
    return "exposure-" + os.urandom(4).hex()


def connect_packet(identifier: str) -> bytes:
    """CONNECT v3.1.1 with clean session and no credentials (flags byte 0x02)."""
    encoded = identifier.encode()
    variable = (
        struct.pack("!H", 4) + b"MQTT" + bytes([PROTOCOL_LEVEL_311, CLEAN_SESSION])
        + struct.pack("!H", KEEP_ALIVE)
    )
    payload = struct.pack("!H", len(encoded)) + encoded
    body = variable + payload
    return bytes([0x10]) + encode_length(len(body)) + body


def encode_length(length: int) -> bytes:
    out = bytearray()
    while True:
        byte = length % 128
        length //= 128
        out.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(out)


def parse_connack(data: bytes) -> tuple[int, str] | None:
    """(return code, meaning) of a CONNACK at the start of `data`; None if it is not one."""
    if len(data) < 4 or data[0] != 0x20:
        return None
    remaining = data[1]
    if remaining == 2:
        code = data[3]
        return code, RETURN_CODES.get(code, "unknown return code")
    if 3 <= remaining < 0x80 and data[2] in (0, 1):
        code = data[3]
        meaning = "accepted" if code == 0 else V5_REFUSALS.get(code, "refused (MQTT 5 reason)")
        return code, meaning
    return None


def verdict(code: int, transport: str, identifier: str) -> ProbeOutcome:
    meaning = RETURN_CODES.get(code) or V5_REFUSALS.get(code, "refused")
    evidence = (
        f"CONNECT (MQTT 3.1.1, no username/password, client id {identifier}) over {transport}: "
        f"CONNACK return code {code} ({meaning})"
    )
    if code == 0:
        auth = Auth.NONE
        evidence += "; we sent DISCONNECT at once (no SUBSCRIBE)"
    elif code in (4, 5, 0x86, 0x87):
        auth = Auth.REQUIRED
    else:
        auth = Auth.UNKNOWN
    facts = {"connack_code_311": code, "connack_meaning_311": meaning, "anonymous": code == 0}
    return ProbeOutcome(True, auth, evidence, facts=facts, transport=transport)


def probe(endpoint: Endpoint) -> ProbeOutcome:
    """CONNECT over TCP (or TLS when the endpoint is TLS); one CONNACK; DISCONNECT if accepted."""
    identifier = client_id()
    transport = "tls" if endpoint.tls else "tcp"
    try:
        with open_stream(endpoint, cap=CONNACK_CAP) as stream:
            stream.send(connect_packet(identifier))
            reply = stream.recv_until(lambda buffer: len(buffer) >= 4, CONNACK_CAP)
            answer = parse_connack(reply)
            if answer is not None and answer[0] == 0:
                stream.send(DISCONNECT)
    except ProbeError:
        return NOT_IDENTIFIED
    if answer is None:
        return NOT_IDENTIFIED
    return verdict(answer[0], transport, identifier)


def probe_websocket(endpoint: Endpoint) -> ProbeOutcome:
    """MQTT inside a websocket ("mqtt" subprotocol) at the usual paths; NOT_IDENTIFIED if none."""
    for path in WS_PATHS:
        identifier = client_id()
        opening = websocket_open(
            endpoint, path, "mqtt", connect_packet(identifier), farewell=DISCONNECT
        )
        if opening is None or not opening.accepted or opening.first_frame is None:
            continue
        answer = parse_connack(opening.first_frame.payload)
        if answer is None:
            continue
        transport = ("wss" if endpoint.tls else "ws") + f" {path}"
        return verdict(answer[0], transport, identifier)
    return NOT_IDENTIFIED
