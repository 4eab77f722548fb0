"""rawhello.py: our own ClientHello and the parser of the server's first flight.

The parser reads hostile bytes: hypothesis feeds it anything and truncations of real flights.
A real OpenSSL server (Python's ssl on loopback) answers the ClientHello we build.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import ssl
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.checks.tls import rawhello
from scanner.checks.tls.rawhello import (
    Flight,
    client_hello,
    key_bits,
    key_exchange,
    offer_for,
    parse_flight,
    raw_walk,
    registry,
)
from tests.lab.pki import LabCA


def _record(kind: int, body: bytes) -> bytes:
    return struct.pack("!BHH", kind, 0x0303, len(body)) + body


def _message(kind: int, body: bytes) -> bytes:
    return struct.pack("!B", kind) + len(body).to_bytes(3, "big") + body


def server_flight(suite: int, certificates: list[bytes], ske: bytes | None) -> bytes:
    hello = struct.pack("!H", 0x0303) + b"\x01" * 32 + b"\x00" + struct.pack("!H", suite) + b"\x00"
    chain = b"".join(len(c).to_bytes(3, "big") + c for c in certificates)
    messages = _message(2, hello) + _message(11, len(chain).to_bytes(3, "big") + chain)
    if ske is not None:
        messages += _message(12, ske)
    messages += _message(14, b"")
    return _record(22, messages[:40]) + _record(22, messages[40:])  # split across records


def test_a_full_flight_is_read() -> None:
    ske = b"\x03\x00\x1d" + b"\x20" + b"k" * 32
    flight = parse_flight(server_flight(0xC02F, [b"cert-one", b"cert-two"], ske))
    assert flight.done and flight.suite == 0xC02F and flight.version == 0x0303
    assert flight.certificates == (b"cert-one", b"cert-two")
    kx = key_exchange("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", flight.key_exchange)
    assert kx is not None and (kx.type, kx.bits, kx.curve) == ("ECDH", 253, "X25519")


def test_dhe_modulus_size_and_alerts() -> None:
    modulus = b"\x80" + b"\x00" * 127  # 1024 bits
    kx = key_exchange("TLS_DHE_RSA_WITH_AES_128_CBC_SHA", struct.pack("!H", 128) + modulus)
    assert kx is not None and (kx.type, kx.bits) == ("DH", 1024)
    assert key_exchange("TLS_RSA_WITH_AES_128_CBC_SHA", b"anything") is None
    alert = parse_flight(_record(21, b"\x02\x28"))
    assert alert.done and alert.alert == 40 and alert.suite is None


def test_a_truncated_flight_asks_for_more() -> None:
    whole = server_flight(0x0005, [b"c" * 100], None)
    assert not parse_flight(whole[:30]).done
    assert parse_flight(whole).done


def test_not_tls_is_done_with_an_error() -> None:
    assert parse_flight(b"HTTP/1.1 400 Bad Request\r\n\r\n").error == "not a TLS answer"


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=2048))
def test_parser_takes_any_bytes(data: bytes) -> None:
    flight = parse_flight(data)
    assert isinstance(flight, Flight)
    assert len(flight.certificates) <= rawhello.MAX_CERTIFICATES
    for name in ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_DHE_RSA_WITH_AES_128_CBC_SHA"):
        key_exchange(name, flight.key_exchange or data[:64])


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=0xFFFF),
       st.lists(st.binary(max_size=64), max_size=4),
       st.integers(min_value=0, max_value=400), st.binary(max_size=32))
def test_truncated_or_corrupted_real_flights(suite: int, certs: list[bytes], cut: int,
                                             noise: bytes) -> None:
    whole = server_flight(suite, certs, b"\x03\x00\x17\x41" + b"x" * 65)
    for data in (whole[:cut], whole[:cut] + noise, noise + whole):
        flight = parse_flight(data)
        if flight.suite is not None and data.startswith(whole[:60]):
            assert flight.suite == suite


def test_client_hello_offers_what_it_is_given() -> None:
    codes = offer_for("TLSv1.2")
    hello = client_hello("TLSv1.2", codes, "home.example")
    assert hello[0] == 22 and struct.unpack_from("!H", hello, 3)[0] == len(hello) - 5
    body = hello[9:]
    assert struct.unpack_from("!H", body, 0)[0] == 0x0303
    suites_length = struct.unpack_from("!H", body, 35)[0]
    offered = struct.unpack_from(f"!{suites_length // 2}H", body, 37)
    assert list(offered) == codes and b"home.example" in hello
    assert b"203.0.113.7" not in client_hello("TLSv1.2", codes, "203.0.113.7")  # no SNI
    assert len(client_hello("SSLv3", offer_for("SSLv3"), None)) < len(hello)


def test_registry_and_key_sizes() -> None:
    names = registry()
    assert names[0xC08A] == "TLS_ECDHE_RSA_WITH_CAMELLIA_128_GCM_SHA256"
    assert 0x1301 not in names and 0x00FF not in names
    assert not any("_GCM_" in names[code] for code in offer_for("TLSv1.0"))
    assert [key_bits(n) for n in ("TLS_RSA_WITH_3DES_EDE_CBC_SHA", "TLS_RSA_WITH_NULL_SHA",
                                  "TLS_RSA_EXPORT_WITH_RC4_40_MD5", "TLS_RSA_WITH_RC4_128_SHA",
                                  "TLS_DHE_RSA_WITH_DES_CBC_SHA",
                                  "TLS_ECDHE_RSA_WITH_CAMELLIA_256_GCM_SHA384",
                                  "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256")] == [
        168, 0, 40, 128, 56, 256, 256]


# --- against a real OpenSSL server on loopback --------------------------------------------------


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        context: ssl.SSLContext = self.server.tls_context  # type: ignore[attr-defined]
        with contextlib.suppress(OSError):
            self.request.settimeout(2)
            with context.wrap_socket(self.request, server_side=True) as tls:
                tls.recv(1)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture(scope="module")
def openssl_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    ca = LabCA(Path(tmp_path_factory.mktemp("pki")))
    leaf = ca.issue("localhost")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(leaf.chain_path, leaf.key_path)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("ECDHE-RSA-AES128-GCM-SHA256:AES256-SHA")
    server = _Server(("127.0.0.1", 0), _Handler)
    server.tls_context = context  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_raw_walk_against_openssl(openssl_server: int) -> None:
    opened: list[int] = []

    def open_socket(timeout: float) -> socket.socket:
        opened.append(1)
        return socket.create_connection(("127.0.0.1", openssl_server), timeout=timeout)

    found = raw_walk(open_socket, "TLSv1.2", "localhost", 2.0, time.monotonic() + 10)
    names = sorted(suite.name for suite in found.suites)
    assert names == ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_RSA_WITH_AES_256_CBC_SHA"]
    ecdhe = next(s for s in found.suites if s.name.startswith("TLS_ECDHE"))
    assert ecdhe.ephemeral_type == "ECDH" and ecdhe.ephemeral_bits
    assert len(found.certificates) == 1  # the leaf (LabCA's root issues it directly)
    assert len(opened) == 3  # one per accepted suite, one refusal
    refused = raw_walk(open_socket, "TLSv1.0", "localhost", 2.0, time.monotonic() + 10)
    assert refused.suites == [] and refused.refusal is not None
