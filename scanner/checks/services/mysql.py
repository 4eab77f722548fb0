"""MySQL / MariaDB: the server greeting, read and left.

A MySQL-protocol server speaks first: a handshake packet (protocol 10, server version, the
authentication plugin it wants) or, when no account may log in from our address at all, an
error packet ("Host ... is not allowed to connect"). We read it and close before answering:
no login is started, so nothing counts as a failed one (the server may note an aborted,
unauthenticated connection).
"""

from __future__ import annotations

from scanner.checks.services.model import (
    NOT_IDENTIFIED,
    REFUSED_BEFORE_LOGIN,
    Auth,
    ProbeOutcome,
)
from scanner.identification.banner import classify_greeting
from scanner.net import Connector, NetError

GREETING_CAP = 1024
PLUGIN_CHARS = 40


def packet_complete(data: bytes) -> bool:
    return len(data) >= 4 and len(data) >= 4 + (data[0] | data[1] << 8 | data[2] << 16)


def auth_plugin(packet: bytes) -> str | None:
    """The handshake's auth plugin name (after the version, thread id, salts and flags)."""
    end = packet.find(b"\x00", 5, 5 + 64)
    if end == -1:
        return None
    tail = packet[end + 1 + 4 + 8 + 1 + 2 + 1 + 2 + 2 + 1 + 10:]  # to the salt's second part
    second_salt_end = tail.find(b"\x00")
    if second_salt_end == -1:
        return None
    name = tail[second_salt_end + 1 :].split(b"\x00", 1)[0][:PLUGIN_CHARS]
    text = name.decode("ascii", "replace")
    return text if text.replace("_", "").isalnum() else None


def classify(packet: bytes) -> ProbeOutcome:
    found = classify_greeting(packet)
    if found.service != "mysql":
        return NOT_IDENTIFIED
    product = found.product or "MySQL"
    if len(packet) > 4 and packet[4] == 0xFF:
        return ProbeOutcome(
            True, Auth.REQUIRED, found.banner, product=product,
            facts={REFUSED_BEFORE_LOGIN: True},
            notes=(f"{product} refuses this address before any login (a host rule)",),
        )
    plugin = auth_plugin(packet)
    facts: dict[str, object] = {"auth_plugin": plugin} if plugin else {}
    evidence = found.banner + (f", authentication plugin {plugin}" if plugin else "")
    return ProbeOutcome(True, Auth.REQUIRED, f"{evidence}: a login is offered to anyone",
                        version=found.version, product=product, facts=facts)


def probe(connector: Connector) -> ProbeOutcome:
    if connector.tls:
        return NOT_IDENTIFIED
    try:
        with connector.open(cap=GREETING_CAP) as stream:
            packet = stream.recv_until(packet_complete, GREETING_CAP)
    except NetError:
        return NOT_IDENTIFIED
    return classify(packet)
