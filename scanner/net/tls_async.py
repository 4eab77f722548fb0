"""TLS over an AsyncStream, driven by hand (ssl.SSLObject on memory BIOs).

Identification detects TLS on any port: it sends a ClientHello on a connection that stayed
silent and looks at the first raw bytes back. Driving the handshake ourselves keeps every byte
under the stream's bounds and shows those bytes: a TLS alert proves the port speaks TLS even
when the handshake fails (no shared suite, a client certificate required...).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from scanner.core.text import safe_text
from scanner.net.errors import ByteCapReached, NetTimeout
from scanner.net.stream import RECV_CHUNK, AsyncStream
from scanner.net.tls import TlsPurpose, looks_like_tls, sni_for, tls_context

TLS_HANDSHAKE_CAP = 128 * 1024  # a long certificate chain is ~20 KiB


@dataclass(frozen=True)
class TlsOutcome:
    """What sending a ClientHello taught us."""

    spoke_tls: bool  # the server answered with TLS records (even if only an alert)
    channel: TlsChannel | None = None  # set when the handshake completed
    error: str | None = None  # why the handshake failed, for a TLS server
    reply: bytes = b""  # what a non-TLS server answered instead (it may name itself)


class TlsChannel:
    """A completed TLS session over an AsyncStream; the same interface as the stream."""

    def __init__(
        self, raw: AsyncStream, tls: ssl.SSLObject, incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
    ) -> None:
        self._raw = raw
        self._tls = tls
        self._incoming = incoming
        self._outgoing = outgoing
        self.deadline = raw.deadline
        self.rtt = raw.rtt
        self.read_timeout = raw.read_timeout

    @property
    def version(self) -> str | None:
        return self._tls.version()

    @property
    def cipher(self) -> str | None:
        cipher = self._tls.cipher()
        return cipher[0] if cipher else None

    def peer_certificate(self) -> bytes | None:
        return self._tls.getpeercert(binary_form=True)

    async def send(self, data: bytes) -> None:
        self._tls.write(data)
        await self._flush()

    async def recv(self, limit: int = RECV_CHUNK, until: float | None = None) -> bytes:
        while True:
            try:
                return self._tls.read(limit)
            except ssl.SSLWantReadError:
                await self._flush()  # TLS 1.3 may want to answer (key update) first
                data = await self._raw.recv(RECV_CHUNK, until)
                if not data:
                    self._incoming.write_eof()
                else:
                    self._incoming.write(data)
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""
            except ssl.SSLError:
                return b""  # a broken record ends the stream; nothing more to learn from it

    async def _flush(self) -> None:
        pending = self._outgoing.read()
        if pending:
            await self._raw.send(pending)


async def start_tls(
    raw: AsyncStream, sni: str | None, first_reply_deadline: float,
    purpose: TlsPurpose = TlsPurpose.IDENTIFY,
) -> TlsOutcome:
    """Send a ClientHello and complete the handshake if the server speaks TLS.

    The server must start answering by `first_reply_deadline`; once it has answered with TLS,
    the handshake may take until the stream's deadline.
    """
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = tls_context(purpose).wrap_bio(incoming, outgoing, server_hostname=sni_for(sni))
    seen = bytearray()  # raw bytes received during the handshake
    while True:
        try:
            tls.do_handshake()
            return TlsOutcome(spoke_tls=True, channel=TlsChannel(raw, tls, incoming, outgoing))
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLError as error:
            return _failed(seen, safe_text(error.reason or str(error), 120))
        pending = outgoing.read()
        if pending:
            await raw.send(pending)
        deadline = raw.deadline if looks_like_tls(bytes(seen[:3])) else first_reply_deadline
        try:
            data = await raw.recv(RECV_CHUNK, deadline)
        except (NetTimeout, ByteCapReached):
            return _failed(seen, "no complete answer in time")
        if not data:
            return _failed(seen, "connection closed during the handshake")
        seen += data
        if len(seen) >= 3 and not looks_like_tls(bytes(seen[:3])):
            return TlsOutcome(spoke_tls=False, reply=bytes(seen[:RECV_CHUNK]))
        if len(seen) > TLS_HANDSHAKE_CAP:
            return _failed(seen, "handshake larger than the cap")
        incoming.write(data)


def _failed(seen: bytearray, reason: str) -> TlsOutcome:
    if looks_like_tls(bytes(seen[:3])):
        return TlsOutcome(spoke_tls=True, error=reason)
    return TlsOutcome(spoke_tls=False, reply=bytes(seen[:RECV_CHUNK]))
