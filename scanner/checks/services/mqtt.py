"""MQTT: does the broker let a client in without credentials?

One CONNECT (MQTT 3.1.1, clean session, no username, no password, a client id that names us),
one CONNACK read, and a DISCONNECT at once if the broker said yes. Never SUBSCRIBE, never
PUBLISH. CONNACK 0 = accepted (anonymous access), 4 = bad user name or password, 5 = not
authorized (MQTT 3.1.1 section 3.2.2.3). The same exchange runs over TLS (8883) and, where a
websocket endpoint accepts the "mqtt" subprotocol, inside websocket frames.
"""

from __future__ import annotations

import os

from scanner.checks.services.model import NOT_IDENTIFIED, Auth, ProbeOutcome
from scanner.net import Connector, NetError
from scanner.net.codecs.mqtt import (
    CONNACK_CAP,
    DISCONNECT,
    REFUSED_FOR_CREDENTIALS,
    RETURN_CODES,
    V5_REASONS,
    connack_complete,
    connect_packet,
    parse_connack,
)

WS_PATHS = ("/mqtt", "/")


def client_id() -> str:
    return "exposure-" + os.urandom(4).hex()


def verdict(code: int, transport: str, identifier: str) -> ProbeOutcome:
    meaning = RETURN_CODES.get(code) or V5_REASONS.get(code, "refused")
    evidence = (
        f"CONNECT (MQTT 3.1.1, no username/password, client id {identifier}) over {transport}: "
        f"CONNACK return code {code} ({meaning})"
    )
    if code == 0:
        auth = Auth.NONE
        evidence += "; we sent DISCONNECT at once (no SUBSCRIBE)"
    elif code in REFUSED_FOR_CREDENTIALS:
        auth = Auth.REQUIRED
    else:
        auth = Auth.UNKNOWN
    facts = {"connack_code_311": code, "connack_meaning_311": meaning, "anonymous": code == 0}
    return ProbeOutcome(True, auth, evidence, facts=facts, transport=transport)


def probe(connector: Connector) -> ProbeOutcome:
    """CONNECT over TCP (or TLS when the endpoint is TLS); one CONNACK; DISCONNECT if accepted."""
    identifier = client_id()
    transport = "tls" if connector.tls else "tcp"
    try:
        with connector.open(cap=CONNACK_CAP) as stream:
            stream.send(connect_packet(identifier))
            answer = parse_connack(stream.recv_until(connack_complete, CONNACK_CAP))
            if answer is not None and answer.accepted:
                stream.send(DISCONNECT)
    except NetError:
        return NOT_IDENTIFIED
    if answer is None:
        return NOT_IDENTIFIED
    return verdict(answer.return_code, transport, identifier)


def probe_websocket(connector: Connector) -> ProbeOutcome:
    """MQTT inside a websocket ("mqtt" subprotocol) at the usual paths; NOT_IDENTIFIED if none."""
    for path in WS_PATHS:
        identifier = client_id()
        opening = connector.websocket(
            path, subprotocol="mqtt", first_message=connect_packet(identifier),
            farewell=DISCONNECT,
        )
        if opening is None or not opening.upgraded or opening.first_frame is None:
            continue
        answer = parse_connack(opening.first_frame.payload)
        if answer is None:
            continue
        transport = ("wss" if connector.tls else "ws") + f" {path}"
        return verdict(answer.return_code, transport, identifier)
    return NOT_IDENTIFIED
