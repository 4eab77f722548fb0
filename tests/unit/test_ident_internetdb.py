"""InternetDB: fetched from a local server replaying answers; never the real service."""

from __future__ import annotations

import ipaddress
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from scanner.identification.internetdb import (
    RESPONSE_CAP,
    InternetDbRecord,
    InternetDbResult,
    compare_with_scan,
    eligible,
    fetch_internetdb,
    parse_internetdb,
)

# An answer in the format InternetDB documents (GET /{ip}); the address is from the
# documentation range, so this is a synthetic record, not a capture of a real host.
RECORDED = {
    "cpes": ["cpe:/a:openbsd:openssh:9.2p1", "cpe:/a:igor_sysoev:nginx:1.22.1"],
    "hostnames": ["home.example.org"],
    "ip": "198.51.100.7",
    "ports": [22, 443, 8123],
    "tags": ["self-signed"],
    "vulns": ["CVE-2023-48795"],
}
NOT_FOUND = {"detail": "No information available"}

# path -> (status, body, seconds between 1-byte writes (0: all at once))
ANSWERS: dict[str, tuple[int, bytes, float]] = {
    "/198.51.100.7": (200, json.dumps(RECORDED).encode(), 0.0),
    "/198.51.100.8": (404, json.dumps(NOT_FOUND).encode(), 0.0),
    "/198.51.100.9": (500, b"oops", 0.0),
    "/198.51.100.10": (200, b"\x1b[2J not json", 0.0),
    "/198.51.100.11": (200, b"[" * 200_000, 0.0),
    "/198.51.100.12": (200, b" " * (RESPONSE_CAP + 10), 0.0),
    "/198.51.100.13": (200, json.dumps(RECORDED).encode(), 0.05),
    "/198.51.100.14": (200, json.dumps({"ports": "22", "tags": []}).encode(), 0.0),
}


class _Replay(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status, body, drip = ANSWERS.get(self.path, (404, b"{}", 0.0))
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            if drip:
                for byte in body:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(drip)
            else:
                self.wfile.write(body)
        except OSError:
            pass  # the client gave up, as it should

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def base_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Replay)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def session() -> Iterator[requests.Session]:
    local = requests.Session()
    local.trust_env = False  # never through a proxy from the environment: loopback only
    yield local
    local.close()


def _fetch(
    base_url: str, session: requests.Session, ip: str, timeout: float = 2.0
) -> InternetDbResult:
    return fetch_internetdb(ipaddress.ip_address(ip), base_url, timeout=timeout, session=session)


def test_recorded_answer(base_url: str, session: requests.Session) -> None:
    result = _fetch(base_url, session, "198.51.100.7")
    assert result.warning is None and result.record is not None
    record = result.record
    assert record.ports == (22, 443, 8123)
    assert record.vulns == ("CVE-2023-48795",)
    assert record.hostnames == ("home.example.org",)
    comparison = compare_with_scan(record, open_ports=[22, 443, 1883])
    assert comparison.indexed_but_closed_now == (8123,)
    assert comparison.open_but_not_indexed == (1883,)
    assert comparison.open_and_indexed == (22, 443)
    assert comparison.details["tags"] == ["self-signed"]


def test_unknown_address(base_url: str, session: requests.Session) -> None:
    result = _fetch(base_url, session, "198.51.100.8")
    assert result.warning is None
    assert result.record == InternetDbRecord(ip="198.51.100.8", known=False)


@pytest.mark.parametrize(
    ("ip", "warning"),
    [
        ("198.51.100.9", "HTTP 500"),
        ("198.51.100.10", "not understood"),
        ("198.51.100.11", "not understood"),
        ("198.51.100.12", "unreachable"),  # over the size cap
        ("198.51.100.14", "not understood"),
    ],
)
def test_bad_answers_are_warnings(
    base_url: str, session: requests.Session, ip: str, warning: str
) -> None:
    result = _fetch(base_url, session, ip)
    assert result.record is None
    assert result.warning is not None and warning in result.warning
    assert "\x1b" not in result.warning


def test_slow_drip_is_cut_at_the_total_timeout(base_url: str, session: requests.Session) -> None:
    started = time.monotonic()
    result = _fetch(base_url, session, "198.51.100.13", timeout=0.5)
    assert time.monotonic() - started < 1.5
    assert result.record is None and result.warning


def test_silent_server_is_a_warning(session: requests.Session) -> None:
    import socket

    with socket.socket() as tarpit:
        tarpit.bind(("127.0.0.1", 0))
        tarpit.listen(1)  # the kernel accepts; nobody ever answers
        started = time.monotonic()
        result = _fetch(f"http://127.0.0.1:{tarpit.getsockname()[1]}", session, "198.51.100.7",
                        timeout=0.5)
        assert time.monotonic() - started < 1.5
    assert result.record is None and "unreachable" in (result.warning or "")


def test_nothing_listening_is_a_warning(session: requests.Session) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = _fetch(f"http://127.0.0.1:{port}", session, "198.51.100.7")
    assert result.record is None and "unreachable" in (result.warning or "")


def test_only_public_ipv4_is_eligible() -> None:
    assert eligible(ipaddress.ip_address("8.8.8.8"))  # a predicate: no traffic is sent
    for private in ("192.168.1.20", "10.0.0.1", "203.0.113.7", "127.0.0.1", "2001:db8::1"):
        assert not eligible(ipaddress.ip_address(private))


@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.sampled_from(["ports", "tags", "cpes", "vulns", "hostnames", "detail",
                                       "x"]), children, max_size=6),
    max_leaves=30,
))
def test_parse_internetdb_accepts_or_rejects_cleanly(payload: object) -> None:
    try:
        record = parse_internetdb(payload, "198.51.100.7")
    except ValueError:
        return
    assert all(0 < port < 65536 for port in record.ports)
    assert all(isinstance(tag, str) and len(tag) < 220 for tag in record.tags)
