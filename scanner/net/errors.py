"""What can go wrong on a connection. Every error is an OSError, so one `except OSError`
ends a probe whatever happened (ssl.SSLError and socket timeouts are OSErrors too)."""

from __future__ import annotations


class NetError(OSError):
    """A probe cannot go on: no verdict from it, keep what was learnt."""


class ConnectFailed(NetError):
    """The connection (or its TLS handshake) could not be made."""


class NetTimeout(NetError, TimeoutError):
    """A read timeout or the connection's deadline passed while waiting on the server."""


class ByteCapReached(NetError):
    """The server sent all the bytes this connection (or port) may read."""


class ProbeFailed(NetError):
    """A precondition of the next step failed (e.g. the TLS handshake a request needs)."""
