"""PostgreSQL: is the server reachable, and does it offer TLS?

The one message we send is the SSLRequest every libpq client may open with (8 bytes: length 8,
code 80877103). A PostgreSQL server answers a single byte, S (TLS available) or N, and waits
for the startup message; we close instead. PostgreSQL logs nothing for a client that leaves
after its SSL answer (postmaster's "no data at all" case), and no authentication is started.
"""

from __future__ import annotations

import struct
import time

from scanner.checks.services.model import NOT_IDENTIFIED, Auth, ProbeOutcome
from scanner.net import Connector, NetError, NetTimeout

SSL_REQUEST = struct.pack("!II", 8, 80877103)
ANSWERS = {b"S": True, b"N": False}


def classify(answer: bytes, more: bytes) -> ProbeOutcome:
    """A lone S or N (nothing after it) is PostgreSQL's answer to the SSLRequest."""
    if answer not in ANSWERS or more:
        return NOT_IDENTIFIED
    tls = ANSWERS[answer]
    return ProbeOutcome(
        True, Auth.UNKNOWN,
        f"SSLRequest answered {answer.decode()}: a PostgreSQL server "
        + ("offering TLS" if tls else "without TLS (passwords would travel in clear)"),
        product="PostgreSQL", facts={"ssl_offered": tls},
        notes=("PostgreSQL answers here; whether it asks every client for a password cannot be "
               "told without starting a login, which we never do",),
    )


def probe(connector: Connector) -> ProbeOutcome:
    if connector.tls:
        return NOT_IDENTIFIED
    try:
        with connector.open(cap=64) as stream:
            stream.send(SSL_REQUEST)
            answer = stream.recv(1)
            more = b""
            # a real server now waits for us; anything else sending more is not PostgreSQL
            try:
                more = stream.recv(16, until=_soon(stream.rtt))
            except NetTimeout:
                more = b""
    except NetError:
        return NOT_IDENTIFIED
    return classify(answer, more)


def _soon(rtt: float) -> float:
    return time.monotonic() + max(0.05, 2 * rtt)
