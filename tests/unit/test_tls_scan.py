"""scan.py: conversions from sslyze's results, and one real scan on loopback
against Python's own TLS server (the lab tests do the nginx configurations)."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from scanner.checks.tls.rating import rate
from scanner.checks.tls.scan import (
    install_connection_bounds,
    protocol_from_result,
    scan_endpoint,
    standalone_endpoint,
    vulnerabilities_from_results,
)
from scanner.net import Limits
from tests.lab.pki import LabCA


def test_sslyze_patch_point_exists_and_is_wrapped() -> None:
    # scan.py relies on this private sslyze function; an upgrade that renames it must fail here.
    from sslyze.connection_helpers import tls_connection

    install_connection_bounds()
    install_connection_bounds()  # idempotent
    assert tls_connection._open_socket_for_direct_connection.__name__ == "from_the_network_layer"


# --- conversions --------------------------------------------------------------------------------


def _accepted(name: str, key_size: int, anonymous: bool = False,
              key: object | None = None) -> SimpleNamespace:
    return SimpleNamespace(cipher_suite=SimpleNamespace(name=name, key_size=key_size,
                                                        is_anonymous=anonymous),
                           ephemeral_key=key)


def test_protocol_from_result() -> None:
    x25519 = SimpleNamespace(type_name="ECDH", size=253, curve_name="X25519")
    result = SimpleNamespace(accepted_cipher_suites=[
        _accepted("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", 128, key=x25519),
        _accepted("TLS_RSA_WITH_AES_256_CBC_SHA", 256),
    ])
    support = protocol_from_result("TLSv1.2", result)
    assert support.status == "supported" and len(support.suites) == 2
    ecdhe = support.suites[0]
    assert (ecdhe.ephemeral_type, ecdhe.ephemeral_bits, ecdhe.curve) == ("ECDH", 253, "X25519")
    assert ecdhe.forward_secret and ecdhe.aead and ecdhe.ephemeral_rsa_equivalent == 3072
    assert support.suites[1].ephemeral_bits is None and not support.suites[1].forward_secret
    empty = protocol_from_result("TLSv1.0", SimpleNamespace(accepted_cipher_suites=[]))
    assert empty.status == "not_supported"


def test_vulnerabilities_from_results() -> None:
    results = {
        "heartbleed": SimpleNamespace(is_vulnerable_to_heartbleed=False),
        "robot": SimpleNamespace(robot_result=SimpleNamespace(value="VULNERABLE_WEAK_ORACLE")),
        "session_renegotiation": SimpleNamespace(supports_secure_renegotiation=True,
                                                 client_renegotiations_success_count=0),
    }
    vulnerabilities = vulnerabilities_from_results(results)
    assert vulnerabilities.heartbleed is False and vulnerabilities.robot == "vulnerable_weak_oracle"
    assert vulnerabilities.client_renegotiation is False
    assert vulnerabilities.ccs_injection is None  # not tested is not "safe"


# --- real scans on loopback ---------------------------------------------------------------------


class _TlsHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        context: ssl.SSLContext = self.server.tls_context  # type: ignore[attr-defined]
        with contextlib.suppress(OSError):
            self.request.settimeout(2)
            with context.wrap_socket(self.request, server_side=True) as tls:
                tls.recv(1024)


class _TlsServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    directory = tmp_path_factory.mktemp("pki")
    ca = LabCA(directory)
    leaf = ca.issue("localhost")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(leaf.chain_path, leaf.key_path)
    server = _TlsServer(("127.0.0.1", 0), _TlsHandler)
    server.tls_context = context  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], ca.cert_path
    finally:
        server.shutdown()
        server.server_close()


def test_scan_of_python_tls_server_on_loopback(tls_server: tuple[int, Path]) -> None:
    port, ca_file = tls_server
    outcome = scan_endpoint(standalone_endpoint(ipaddress.ip_address("127.0.0.1"), port,
                                                "localhost", timeout=2.0, ca_file=ca_file))
    assert outcome.error is None and outcome.facts is not None
    facts = outcome.facts
    assert facts.supported_versions == ("TLSv1.2", "TLSv1.3")
    assert facts.protocol("TLSv1.0").status == "not_supported"
    assert facts.certificate is not None and facts.certificate.chain_trusted
    assert facts.vulnerabilities.heartbleed is False
    rating = rate(facts)
    assert rating.grade == "A"  # not HTTP here (no HSTS facts): A is the best there is
    assert outcome.connections <= 20  # walks: one handshake per accepted suite + refusals


def test_scan_of_a_closed_port_is_an_error_not_an_exception() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    outcome = scan_endpoint(standalone_endpoint(ipaddress.ip_address("127.0.0.1"), closed, None,
                                                1.0))
    assert outcome.facts is None and outcome.error
    assert outcome.seconds < 5


def test_a_silent_server_is_bounded() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    with listener:
        started = time.monotonic()
        outcome = scan_endpoint(standalone_endpoint(ipaddress.ip_address("127.0.0.1"),
                                                    listener.getsockname()[1], None, 0.3))
        assert outcome.facts is None
        # the grading deadline (at least 10 s at this timeout), plus the jobs already running
        assert time.monotonic() - started < Limits(timeout=0.3).tls_endpoint_s + 3


@contextlib.contextmanager
def _ordered_server(tmp: Path, server_order: bool) -> Iterator[int]:
    ca = LabCA(tmp)
    leaf = ca.issue("localhost")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(leaf.chain_path, leaf.key_path)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256:"
                        "ECDHE-RSA-CHACHA20-POLY1305")
    if server_order:  # Python's default for a server context
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    server = _TlsServer(("127.0.0.1", 0), _TlsHandler)
    server.tls_context = context  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("server_order", [True, False])
def test_order_and_suites_come_from_the_walk(tmp_path: Path, server_order: bool) -> None:
    """One handshake per accepted suite plus refusals; the server's order (or the client's)
    read from the same walk, the way rating.py needs it."""
    with _ordered_server(tmp_path, server_order) as port:
        outcome = scan_endpoint(standalone_endpoint(ipaddress.ip_address("127.0.0.1"), port,
                                                    "localhost", timeout=2.0))
    assert outcome.facts is not None
    tls12 = outcome.facts.protocol("TLSv1.2")
    assert {s.name for s in tls12.suites} == {
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"}
    assert all(s.ephemeral_type == "ECDH" for s in tls12.suites)
    preference = outcome.facts.preference
    if server_order:
        assert preference.server_enforces_order is True
        assert preference.server_order == (
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256")
    else:
        assert preference.server_enforces_order is False
    # 3 accepted + 7 walk refusals + legacy handshake + Heartbleed + CCS (+1 order check when
    # the picks followed our offer); no RSA key exchange: no ROBOT; one version: no fallback.
    assert outcome.connections == 3 + 7 + 3 + (0 if server_order else 1)
