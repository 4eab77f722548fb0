"""TLS on any port: detect it, complete a handshake, and read the certificate (lightly).

We drive the handshake ourselves over the bounded channel (ssl.SSLObject on memory BIOs)
rather than letting asyncio own the socket. That way every byte still passes through the
budget, and we see the server's first raw bytes: a TLS alert proves the port speaks TLS
even when the handshake itself fails (no shared cipher, client certificate required...).
The full TLS grade is a later stage; here the context accepts anything, verifies nothing.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import ipaddress
import ssl
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from scanner.identification.connection import (
    RECV_CHUNK,
    ByteCapReached,
    PlainChannel,
    ProbeTimeout,
)
from scanner.report.sanitize import safe_text

TLS_HANDSHAKE_CAP = 128 * 1024  # a long certificate chain is ~20 KiB
MAX_SANS = 50
NAME_CHARS = 256


@dataclass(frozen=True)
class TlsOutcome:
    """What sending a ClientHello on a silent connection taught us."""

    spoke_tls: bool  # the server answered with TLS records (even if only an alert)
    channel: TlsChannel | None = None  # set when the handshake completed
    error: str | None = None  # why the handshake failed, for a TLS server
    reply: bytes = b""  # what a non-TLS server answered instead (it may name itself)


class TlsChannel:
    """A completed TLS session over a PlainChannel; same interface as the plain one."""

    def __init__(
        self,
        raw: PlainChannel,
        tls: ssl.SSLObject,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
    ) -> None:
        self._raw = raw
        self._tls = tls
        self._incoming = incoming
        self._outgoing = outgoing
        self.deadline = raw.deadline
        self.rtt = raw.rtt

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

    async def recv(self, limit: int, deadline: float) -> bytes:
        while True:
            try:
                return self._tls.read(limit)
            except ssl.SSLWantReadError:
                await self._flush()  # TLS 1.3 may want to answer (key update) first
                data = await self._raw.recv(RECV_CHUNK, deadline)
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


@functools.cache
def permissive_context() -> ssl.SSLContext:
    """Talks to anything, old or misconfigured: identification is not the TLS audit."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    context.set_ciphers("ALL:@SECLEVEL=0")
    context.options |= getattr(ssl, "OP_LEGACY_SERVER_CONNECT", 0x4)
    context.options |= getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
    return context


async def start_tls(raw: PlainChannel, sni: str | None, first_reply_deadline: float) -> TlsOutcome:
    """Send a ClientHello and complete the handshake if the server speaks TLS.

    The server must start answering by `first_reply_deadline`; once it has answered with
    TLS the handshake may use the rest of the connection's time.
    """
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = permissive_context().wrap_bio(incoming, outgoing, server_hostname=_sni_for(sni))
    seen = bytearray()  # raw bytes received during the handshake
    while True:
        try:
            tls.do_handshake()
            return TlsOutcome(spoke_tls=True, channel=TlsChannel(raw, tls, incoming, outgoing))
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLError as error:
            return _failed(seen, _ssl_reason(error))
        pending = outgoing.read()
        if pending:
            await raw.send(pending)
        deadline = raw.deadline if looks_like_tls(bytes(seen[:3])) else first_reply_deadline
        try:
            data = await raw.recv(RECV_CHUNK, deadline)
        except (ProbeTimeout, ByteCapReached):
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


def _sni_for(name: str | None) -> str | None:
    """SNI carries host names only; an address literal is never sent (RFC 6066)."""
    if not name:
        return None
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return name
    return None


def _ssl_reason(error: ssl.SSLError) -> str:
    return safe_text(error.reason or str(error), 120)


# --- parsing (pure) ---------------------------------------------------------------------


def looks_like_tls(first: bytes) -> bool:
    """A TLS record header: handshake (22) or alert (21), major version 3, minor 0..4."""
    return (
        len(first) >= 3 and first[0] in (0x15, 0x16) and first[1] == 0x03 and first[2] <= 0x04
    )


def session_summary(channel: TlsChannel) -> dict[str, Any]:
    summary: dict[str, Any] = {"version": channel.version, "cipher": channel.cipher}
    der = channel.peer_certificate()
    summary["certificate"] = parse_certificate(der) if der else None
    return summary


def parse_certificate(der: bytes) -> dict[str, Any] | None:
    """Subject, issuer, SANs and validity of a DER certificate; None if it will not parse."""
    try:
        cert = x509.load_der_x509_certificate(der)
        return {
            "subject": _name_text(cert.subject),
            "subject_cn": _common_name(cert.subject),
            "issuer": _name_text(cert.issuer),
            "issuer_cn": _common_name(cert.issuer),
            "sans": _sans(cert),
            "not_before": _iso(cert.not_valid_before_utc),
            "not_after": _iso(cert.not_valid_after_utc),
            "self_signed": _same_name(cert),
            "serial": safe_text(format(cert.serial_number, "x"), 64),
            "sha256": hashlib.sha256(der).hexdigest(),
        }
    except Exception:  # cryptography raises several types on malformed DER; all mean "bad"
        return None


def _same_name(cert: x509.Certificate) -> bool | None:
    """Issuer == subject; None when a hostile name cannot be decoded for the comparison."""
    try:
        return cert.subject == cert.issuer
    except Exception:
        return _raw_names_equal(cert)


def _raw_names_equal(cert: x509.Certificate) -> bool | None:
    try:
        return cert.subject.public_bytes() == cert.issuer.public_bytes()
    except Exception:
        return None


def _name_text(name: x509.Name) -> str:
    try:
        return safe_text(name.rfc4514_string(), NAME_CHARS)
    except Exception:  # undecodable attribute values in a hostile certificate
        return ""


def _common_name(name: x509.Name) -> str | None:
    try:
        values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    except Exception:
        return None
    if not values:
        return None
    value = values[0].value
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return safe_text(text, NAME_CHARS)


def _sans(cert: x509.Certificate) -> list[str]:
    try:
        extension = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except Exception:  # absent, or unparsable in a hostile certificate
        return []
    names = extension.value
    entries = [*names.get_values_for_type(x509.DNSName)]
    entries += [str(address) for address in names.get_values_for_type(x509.IPAddress)]
    return [safe_text(entry, NAME_CHARS) for entry in entries[:MAX_SANS]]


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds")
