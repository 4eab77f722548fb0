"""Our own ClientHello, for suites neither of nassl's OpenSSLs can offer.

Some servers accept only suites nassl's OpenSSLs do not have or will not offer (Camellia-GCM,
ARIA, GOST, 56-bit export...). Without a suite, no handshake succeeds and such a server would
go ungraded. For SSL 3.0 to TLS 1.2 everything the grade needs is in the server's first flight,
in clear: the suite in ServerHello, the chain in Certificate, the ephemeral group or DH size in
ServerKeyExchange. So we build a ClientHello offering every suite in IANA's registry (as scapy
lists it) and walk it like walk.py does: one connection per accepted suite, one refusal. We
never finish a handshake: after the server's flight we close the connection.

Remote data is hostile: reads stop at FLIGHT_CAP bytes and at the connection's deadline, and
the parser takes any bytes without raising (tests/unit/test_tls_rawhello.py fuzzes it).
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from scanner.checks.tls.facts import Suite

FLIGHT_CAP = 64 * 1024  # a ServerHello..ServerHelloDone flight with a long chain is ~20 KiB
MAX_CERTIFICATES = 10
MAX_PICKS = 64  # one walk never makes more handshakes than this
RECORD_VERSION = {"SSLv3": 0x0300, "TLSv1.0": 0x0301, "TLSv1.1": 0x0301, "TLSv1.2": 0x0301}
CLIENT_VERSION = {"SSLv3": 0x0300, "TLSv1.0": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303}
HANDSHAKE, ALERT = 22, 21
SERVER_HELLO, CERTIFICATE, SERVER_KEY_EXCHANGE, SERVER_HELLO_DONE = 2, 11, 12, 14
# Named groups: id -> (OpenSSL name, size in bits as nassl reports it).
GROUPS = {
    19: ("prime192v1", 192), 21: ("secp224r1", 224), 22: ("secp256k1", 256),
    23: ("prime256v1", 256), 24: ("secp384r1", 384), 25: ("secp521r1", 521),
    29: ("X25519", 253), 30: ("X448", 448),
}
SIGNATURE_ALGORITHMS = (0x0403, 0x0503, 0x0603, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601,
                        0x0807, 0x0808, 0x0203, 0x0201, 0x0202, 0x0402)
TLS12_ONLY = re.compile(r"_GCM_|_CCM|CHACHA20|_SHA256$|_SHA384$")
NOT_SUITES = {0x00FF, 0x5600}  # signalling values, not suites


# --- the suites ---------------------------------------------------------------------------------


@functools.cache
def registry() -> dict[int, str]:
    """IANA code point -> name, for SSL 3.0 to TLS 1.2 suites (scapy's copy of the registry)."""
    from scapy.layers.tls.crypto.suites import _tls_cipher_suites

    return {code: name for code, name in _tls_cipher_suites.items()
            if code <= 0xFFFF and code not in NOT_SUITES and not 0x1300 <= code <= 0x13FF
            and name.startswith("TLS_")}


def offer_for(version: str) -> list[int]:
    """The code points worth offering with `version` (TLS 1.2-only suites only in TLS 1.2)."""
    return [code for code, name in sorted(registry().items())
            if version == "TLSv1.2" or not TLS12_ONLY.search(name)]


_CIPHER_BITS = (
    ("NULL", 0), ("3DES_EDE", 168), ("DES40", 40), ("DES_CBC_40", 40), ("RC4_40", 40),
    ("RC2_CBC_40", 40), ("DES_CBC", 56), ("RC4_56", 56), ("RC2_CBC_56", 56), ("IDEA", 128),
    ("SEED", 128), ("SM4", 128), ("CHACHA20", 256), ("GOST28147", 256), ("28147", 256),
)


def key_bits(name: str) -> int:
    """Symmetric key size of a suite, from its IANA name (as sslyze reports it: 3DES is 168)."""
    cipher = name.split("_WITH_", 1)[-1]
    for marker, bits in _CIPHER_BITS:
        if cipher.startswith(marker):
            return bits
    sized = re.match(r"[A-Z0-9]+?_(\d+)", cipher)
    return int(sized.group(1)) if sized else 0


def suite_fact(version: str, name: str, kx: KeyExchange | None) -> Suite:
    return Suite(
        name=name,
        protocol=version,
        key_bits=key_bits(name),
        anonymous="_anon_" in name,
        ephemeral_type=kx.type if kx else None,
        ephemeral_bits=kx.bits if kx else None,
        curve=kx.curve if kx else None,
    )


# --- building the ClientHello -------------------------------------------------------------------


def _u8(data: bytes) -> bytes:
    return struct.pack("!B", len(data)) + data


def _u16(data: bytes) -> bytes:
    return struct.pack("!H", len(data)) + data


def _extension(kind: int, body: bytes) -> bytes:
    return struct.pack("!H", kind) + _u16(body)


def client_hello(version: str, codes: Sequence[int], sni: str | None) -> bytes:
    """A ClientHello record offering `codes` (TLS extensions except in SSL 3.0)."""
    suites = b"".join(struct.pack("!H", code) for code in codes)
    body = struct.pack("!H", CLIENT_VERSION[version]) + os.urandom(32) + _u8(b"")
    body += _u16(suites) + _u8(b"\x00")
    if version != "SSLv3":
        extensions = b""
        if sni and not _is_address(sni):
            name = sni.encode("idna")[:255]
            extensions += _extension(0, _u16(b"\x00" + _u16(name)))
        groups = b"".join(struct.pack("!H", group) for group in (29, 23, 24, 25, 30, 21, 22, 19))
        extensions += _extension(10, _u16(groups))
        extensions += _extension(11, _u8(b"\x00"))
        if version == "TLSv1.2":
            algorithms = b"".join(struct.pack("!H", a) for a in SIGNATURE_ALGORITHMS)
            extensions += _extension(13, _u16(algorithms))
        extensions += _extension(0xFF01, _u8(b""))  # renegotiation_info: RFC 5746
        body += _u16(extensions)
    handshake = struct.pack("!B", 1) + struct.pack("!I", len(body))[1:] + body
    return struct.pack("!BH", HANDSHAKE, RECORD_VERSION[version]) + _u16(handshake)


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


# --- parsing the server's first flight (pure, total) --------------------------------------------


@dataclass(frozen=True)
class KeyExchange:
    type: str  # "ECDH" or "DH", as nassl names ephemeral keys
    bits: int
    curve: str | None = None


@dataclass(frozen=True)
class Flight:
    """What the server's answer held, as far as it went."""

    done: bool = False  # nothing more to wait for (ServerHelloDone, an alert, or garbage)
    alert: int | None = None  # alert description, when the server refused
    version: int | None = None  # ServerHello's version
    suite: int | None = None  # the suite the server chose
    certificates: tuple[bytes, ...] = ()
    key_exchange: bytes | None = None  # ServerKeyExchange body, read against the suite later
    error: str | None = None  # not TLS, or malformed


def parse_flight(data: bytes) -> Flight:
    """Parse records as received so far. Never raises; `done` says whether to read on."""
    payload = bytearray()
    offset = 0
    while offset + 5 <= len(data):
        kind, major, length = data[offset], data[offset + 1], struct.unpack_from(
            "!H", data, offset + 3)[0]
        if major != 3 or kind not in (HANDSHAKE, ALERT) or length > 18432:
            return Flight(done=True, error="not a TLS answer")
        if offset + 5 + length > len(data):
            break
        fragment = data[offset + 5: offset + 5 + length]
        offset += 5 + length
        if kind == ALERT:
            description = fragment[1] if len(fragment) >= 2 else None
            return _with_messages(bytes(payload), Flight(done=True, alert=description))
        payload += fragment
    return _with_messages(bytes(payload), Flight())


def _with_messages(payload: bytes, flight: Flight) -> Flight:
    offset = 0
    fields: dict[str, Any] = {}
    done = flight.done
    while offset + 4 <= len(payload):
        kind = payload[offset]
        length = int.from_bytes(payload[offset + 1: offset + 4], "big")
        if offset + 4 + length > len(payload):
            break
        body = payload[offset + 4: offset + 4 + length]
        offset += 4 + length
        if kind == SERVER_HELLO:
            if len(body) < 38 or 2 + 32 + 1 + body[34] + 2 > len(body):
                return Flight(done=True, alert=flight.alert, error="malformed ServerHello")
            fields["version"] = struct.unpack_from("!H", body, 0)[0]
            fields["suite"] = struct.unpack_from("!H", body, 35 + body[34])[0]
        elif kind == CERTIFICATE:
            fields["certificates"] = _certificates(body)
        elif kind == SERVER_KEY_EXCHANGE:
            fields["key_exchange"] = bytes(body)
        elif kind == SERVER_HELLO_DONE:
            done = True
    return Flight(done=done, alert=flight.alert, error=flight.error, **fields)


def _certificates(body: bytes) -> tuple[bytes, ...]:
    if len(body) < 3:
        return ()
    total = int.from_bytes(body[:3], "big")
    offset, end = 3, min(len(body), 3 + total)
    found: list[bytes] = []
    while offset + 3 <= end and len(found) < MAX_CERTIFICATES:
        length = int.from_bytes(body[offset: offset + 3], "big")
        if offset + 3 + length > end:
            break
        found.append(bytes(body[offset + 3: offset + 3 + length]))
        offset += 3 + length
    return tuple(found)


def key_exchange(suite_name: str, body: bytes | None) -> KeyExchange | None:
    """The ephemeral group (ECDHE) or modulus size (DHE) from a ServerKeyExchange body."""
    if not body:
        return None
    if "_ECDHE_" in suite_name or "_ECDH_anon_" in suite_name:
        if len(body) < 3 or body[0] != 3:  # only named curves are in use
            return None
        group = struct.unpack_from("!H", body, 1)[0]
        name, bits = GROUPS.get(group, (f"group {group}", 0))
        return KeyExchange("ECDH", bits, name) if bits else None
    if "_DHE_" in suite_name or "_DH_anon_" in suite_name:
        if len(body) < 2:
            return None
        length = struct.unpack_from("!H", body, 0)[0]
        modulus = body[2: 2 + length]
        if not modulus or len(modulus) < length:
            return None
        return KeyExchange("DH", int.from_bytes(modulus, "big").bit_length())
    return None


# --- the walk -----------------------------------------------------------------------------------


@dataclass
class RawWalk:
    version: str
    suites: list[Suite] = field(default_factory=list)
    certificates: tuple[bytes, ...] = ()  # the chain of the first accepted handshake
    refusal: str | None = None


def raw_walk(
    open_socket: Callable[[float], Any], version: str, sni: str | None, timeout: float,
    deadline: float,
) -> RawWalk:
    """Offer every registry suite with `version`, remove the server's pick, repeat."""
    result = RawWalk(version)
    names = registry()
    remaining = offer_for(version)
    while remaining and len(result.suites) < MAX_PICKS and time.monotonic() < deadline:
        flight = exchange(open_socket, client_hello(version, remaining, sni), timeout)
        chosen = flight.suite
        if chosen is None or chosen not in remaining or flight.version != CLIENT_VERSION[version]:
            if not result.suites:
                result.refusal = _refusal_text(flight)
            return result  # refused, or answered with another version: nothing more here
        name = names[chosen]
        result.suites.append(suite_fact(version, name, key_exchange(name, flight.key_exchange)))
        if flight.certificates and not result.certificates:
            result.certificates = flight.certificates
        remaining.remove(chosen)
    return result


def exchange(open_socket: Callable[[float], Any], hello: bytes, timeout: float) -> Flight:
    """Send one ClientHello and read the server's flight, bounded in bytes and time."""
    sock = open_socket(timeout)
    try:
        sock.settimeout(timeout)
        sock.sendall(hello)
        received = b""
        while len(received) < FLIGHT_CAP:
            try:
                chunk = sock.recv(min(16384, FLIGHT_CAP - len(received)))
            except OSError:  # timeout, reset, or the socket's own deadline or byte cap
                break
            if not chunk:
                break
            received += chunk
            flight = parse_flight(received)
            if flight.done:
                return flight
        return parse_flight(received)
    finally:
        sock.close()


def _refusal_text(flight: Flight) -> str:
    if flight.alert is not None:
        return f"TLS alert {flight.alert}"
    return flight.error or "no ServerHello"
