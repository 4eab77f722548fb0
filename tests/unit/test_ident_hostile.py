"""Hostile servers: each costs at most the probe timeout and a bounded number of bytes.

Every server here is a thread in this process listening on 127.0.0.1. For each we assert
the wall time of identifying its port, the bytes identification accepted from it, and that
nothing it sent reaches the result unsanitised.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scanner.identification import IdentifyOptions, PortResult, identify_ports
from scanner.identification.banner import GREETING_CAP
from scanner.identification.engine import identify_all
from scanner.net.http_parse import HEAD_CAP
from tests.unit import ident_servers as servers

ADDRESS = ipaddress.ip_address(servers.LOOPBACK)
TIMEOUT = 1.0
SLACK = 0.35  # scheduling and thread start-up on a loaded 2-core machine
OPTIONS = IdentifyOptions(timeout=TIMEOUT, nmap_fallback=False)
NAME = "home.example"


def _identify(port: int, options: IdentifyOptions = OPTIONS) -> tuple[PortResult, float]:
    started = time.monotonic()
    result = identify_ports(ADDRESS, [port], options)[port]
    return result, time.monotonic() - started


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def _assert_clean(result: PortResult) -> None:
    """No control character (ESC, CR, NUL...) anywhere in what we kept; no crash recorded."""
    identity = result.identity
    assert "identification_error" not in identity.details
    texts = [identity.banner or "", identity.product or "", identity.version or ""]
    texts += list(_strings(identity.details))
    for text in texts:
        assert not any(ord(char) < 0x20 and char not in "\n\t" for char in text), repr(text)
        assert "\x1b" not in text and "\x9b" not in text


def _assert_bounded(result: PortResult, elapsed: float, max_bytes: int) -> None:
    assert elapsed <= TIMEOUT + SLACK, f"took {elapsed:.2f}s"
    assert result.seconds <= TIMEOUT + 0.05
    assert result.traffic.bytes_received <= max_bytes, result.traffic
    _assert_clean(result)


# --- handlers ---------------------------------------------------------------------------


def tarpit(conn: socket.socket, server: servers.ThreadServer) -> None:
    servers.wait_until_stopped(conn, server)


def greeting_flood(conn: socket.socket, server: servers.ThreadServer) -> None:
    chunk = os.urandom(8192)
    while server.send(conn, chunk):
        pass


def garbage_after_any_input(conn: socket.socket, server: servers.ThreadServer) -> None:
    """Silent until spoken to, then an endless stream of junk."""
    if not servers.wait_for_input(conn, server):
        return
    chunk = b"\x00\xff garbage \x1b[2J" * 500
    while server.send(conn, chunk):
        pass


def endless_headers(conn: socket.socket, server: servers.ThreadServer) -> None:
    servers.read_request(conn, server)
    if server.send(conn, b"HTTP/1.1 200 OK\r\nServer: endless\r\n"):
        while server.send(conn, b"X-Padding: " + b"a" * 64 + b"\r\n"):
            pass


def slow_drip_http(conn: socket.socket, server: servers.ThreadServer) -> None:
    servers.read_request(conn, server)
    for byte in b"HTTP/1.1 200 OK\r\nServer: drip\r\n" + b"X: y\r\n" * 10_000:
        if not server.send(conn, bytes([byte])):
            return
        time.sleep(0.02)


def slow_drip_greeting(conn: socket.socket, server: servers.ThreadServer) -> None:
    for byte in b"SSH-2.0-OpenSSH_9.2p1\r\n" * 100:
        if not server.send(conn, bytes([byte])):
            return
        time.sleep(0.2)


def garbage_tls(conn: socket.socket, server: servers.ThreadServer) -> None:
    """Answers the ClientHello with a TLS record header, then noise."""
    if servers.wait_for_input(conn, server):
        server.send(conn, b"\x16\x03\x03\x3f\xff")
        while server.send(conn, os.urandom(4096)):
            pass


def tls_alert(conn: socket.socket, server: servers.ThreadServer) -> None:
    if servers.wait_for_input(conn, server):
        server.send(conn, b"\x15\x03\x03\x00\x02\x02\x28")  # fatal handshake_failure


def closes_at_once(conn: socket.socket, server: servers.ThreadServer) -> None:
    return


def redirect_loop(conn: socket.socket, server: servers.ThreadServer) -> None:
    request = servers.read_request(conn, server)
    path = request.split(b" ", 2)[1].decode("latin-1") if request.count(b" ") >= 2 else "/"
    # A never-ending chain of new targets, plus a trip to another host.
    target = "http://elsewhere.example/" if path.startswith("/far") else f"{path.rstrip('/')}/x"
    server.send(
        conn,
        f"HTTP/1.1 302 Found\r\nLocation: {target}\r\nContent-Length: 0\r\n\r\n".encode(),
    )


def gzip_bomb_factory(title: bytes) -> servers.Handler:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip container
    parts = [compressor.compress(b"<html><head><title>" + title + b"</title></head>")]
    zeros = bytes(1 << 20)
    parts += [compressor.compress(zeros) for _ in range(64)]  # 64 MiB of zeros, inflated
    parts.append(compressor.flush())
    body = b"".join(parts)

    def handler(conn: socket.socket, server: servers.ThreadServer) -> None:
        servers.read_request(conn, server)
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: gzip\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        server.send(conn, head.encode() + body)

    return handler


def http_answer(head: bytes, body: bytes) -> servers.Handler:
    def handler(conn: socket.socket, server: servers.ThreadServer) -> None:
        servers.read_request(conn, server)
        server.send(conn, head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)

    return handler


def greeter(greeting: bytes) -> servers.Handler:
    def handler(conn: socket.socket, server: servers.ThreadServer) -> None:
        server.send(conn, greeting)
        servers.wait_until_stopped(conn, server)

    return handler


# --- tests ------------------------------------------------------------------------------


def test_tarpit_costs_the_timeout_and_no_bytes() -> None:
    with servers.thread_server(tarpit) as server:
        result, elapsed = _identify(server.port)
    _assert_bounded(result, elapsed, max_bytes=0)
    assert result.identity.service is None
    assert elapsed >= TIMEOUT * 0.8  # it did keep trying, within the budget


def test_greeting_flood_reads_at_most_the_greeting_cap() -> None:
    with servers.thread_server(greeting_flood) as server:
        result, elapsed = _identify(server.port)
    _assert_bounded(result, elapsed, max_bytes=GREETING_CAP)
    assert result.identity.service is None
    assert result.identity.banner and len(result.identity.banner) < 600


def test_garbage_forever_after_we_speak() -> None:
    with servers.thread_server(garbage_after_any_input) as server:
        result, elapsed = _identify(server.port)
        sent = server.bytes_sent
    _assert_bounded(result, elapsed, max_bytes=64 * 1024)
    assert sent > result.traffic.bytes_received  # it offered more than we took
    assert result.identity.service is None


def test_endless_headers_stop_at_the_head_cap() -> None:
    with servers.thread_server(endless_headers) as server:
        result, elapsed = _identify(server.port)
    # GET / and GET /favicon.ico, each cut at the head cap (plus one read past it).
    _assert_bounded(result, elapsed, max_bytes=2 * (HEAD_CAP + 16 * 1024) + 4096)
    assert result.identity.service == "http"
    assert result.identity.details["http"]["server"] == "endless"


def test_slow_drip_http_is_cut_at_the_deadline() -> None:
    with servers.thread_server(slow_drip_http) as server:
        result, elapsed = _identify(server.port)
    _assert_bounded(result, elapsed, max_bytes=1024)


def test_slow_drip_greeting() -> None:
    with servers.thread_server(slow_drip_greeting) as server:
        result, elapsed = _identify(server.port)
    _assert_bounded(result, elapsed, max_bytes=64)


def test_garbage_tls_is_tls_that_failed() -> None:
    with servers.thread_server(garbage_tls) as server:
        result, elapsed = _identify(server.port)
    _assert_bounded(result, elapsed, max_bytes=128 * 1024 + 16 * 1024)
    assert result.identity.tls is True
    assert result.identity.service is None
    assert result.identity.details["tls"]["handshake_error"]


def test_tls_alert_still_proves_tls() -> None:
    with servers.thread_server(tls_alert) as server:
        result, elapsed = _identify(server.port)
    _assert_bounded(result, elapsed, max_bytes=64)
    assert result.identity.tls is True
    assert "handshake_error" in result.identity.details["tls"]


def test_server_that_hangs_up_at_once() -> None:
    with servers.thread_server(closes_at_once) as server:
        result, elapsed = _identify(server.port)
    _assert_bounded(result, elapsed, max_bytes=0)
    assert result.identity.service is None
    assert "closes them" in result.identity.details["probe"]["note"]
    assert elapsed < 0.5


def test_redirect_loop_is_bounded_and_never_leaves_the_origin() -> None:
    with servers.thread_server(redirect_loop) as server:
        result, elapsed = _identify(server.port)
        connections = server.connections
    _assert_bounded(result, elapsed, max_bytes=16 * 1024)
    http = result.identity.details["http"]
    assert http["status"] == 302
    assert [hop["followed"] for hop in http["redirects"]] == [True, True, True]
    # ClientHello + GET / + 3 redirects + favicon + its 2 redirects: nothing more.
    assert connections <= 8
    assert result.traffic.connections == connections


def test_cross_host_redirect_is_recorded_not_followed() -> None:
    handler = http_answer(b"HTTP/1.1 301 Moved\r\nLocation: https://other.example/login\r\n", b"")
    with servers.thread_server(handler) as server:
        result, elapsed = _identify(server.port)
    _assert_bounded(result, elapsed, max_bytes=4096)
    hops = result.identity.details["http"]["redirects"]
    assert hops == [{"status": 301, "location": "https://other.example/login", "followed": False}]


def test_gzip_bomb_is_inflated_only_to_the_cap() -> None:
    with servers.thread_server(gzip_bomb_factory(b"Bomb")) as server:
        result, elapsed = _identify(server.port)
    _assert_bounded(result, elapsed, max_bytes=3 * 256 * 1024)
    assert result.identity.service == "http"
    assert result.identity.details["http"]["title"] == "Bomb"


def test_non_utf8_greeting_and_page() -> None:
    with (
        servers.thread_server(greeter(b"220 \xff\xfe\xc3( FTP server ready\r\n")) as ftp,
        servers.thread_server(
            http_answer(
                b"HTTP/1.1 200 OK\r\nServer: caf\xe9/1.0\r\n"
                b"Content-Type: text/html; charset=zlib\r\n",
                b"<title>\xff\xfe caf\xe9 \x00</title>",
            )
        ) as web,
    ):
        ftp_result, ftp_elapsed = _identify(ftp.port)
        web_result, web_elapsed = _identify(web.port)
    _assert_bounded(ftp_result, ftp_elapsed, max_bytes=GREETING_CAP)
    _assert_bounded(web_result, web_elapsed, max_bytes=4096)
    assert ftp_result.identity.service == "ftp"
    assert "\\xff" in (ftp_result.identity.banner or "")
    assert web_result.identity.details["http"]["server"] == "café/1.0"
    assert "caf" in web_result.identity.details["http"]["title"]


def test_ansi_escapes_are_stripped_everywhere() -> None:
    escapes = b"\x1b[31mRED\x1b]0;pwned\x07\x1b[2J\x9b"
    with (
        servers.thread_server(greeter(b"SSH-2.0-OpenSSH_9.9 " + escapes + b"\r\n")) as ssh,
        servers.thread_server(
            http_answer(
                b"HTTP/1.1 200 OK\r\nServer: nginx/1.2" + escapes + b"\r\n",
                b"<title>Home " + escapes + b"</title>",
            )
        ) as web,
    ):
        ssh_result, ssh_elapsed = _identify(ssh.port)
        web_result, web_elapsed = _identify(web.port)
    _assert_bounded(ssh_result, ssh_elapsed, max_bytes=1024)
    _assert_bounded(web_result, web_elapsed, max_bytes=4096)
    assert ssh_result.identity.service == "ssh"
    assert "\\e[31mRED" in (ssh_result.identity.banner or "")
    assert "\\e[31mRED" in web_result.identity.details["http"]["title"]


def test_connections_per_host_cap_is_obeyed() -> None:
    """Five tarpits, cap 2: never more than two connections at once, so it takes longer."""
    intervals: list[tuple[float, float]] = []
    lock = threading.Lock()

    def timed_tarpit(conn: socket.socket, server: servers.ThreadServer) -> None:
        accepted = time.monotonic()
        try:
            servers.wait_until_stopped(conn, server)
        finally:
            with lock:
                intervals.append((accepted, time.monotonic()))

    options = IdentifyOptions(timeout=1.0, max_connections_per_host=2, nmap_fallback=False)
    with contextlib.ExitStack() as stack:
        ports = [stack.enter_context(servers.thread_server(timed_tarpit)).port for _ in range(5)]
        started = time.monotonic()
        identify_ports(ADDRESS, ports, options)
        elapsed = time.monotonic() - started
    assert elapsed >= 5 * 1.0 / 2 * 0.9  # five budgets of 1 s, two at a time
    # The server notices a close a moment after the client has already opened the next
    # connection; forgive it that reaction time (20 ms) when counting overlaps.
    events = sorted(
        [(start, 1) for start, _ in intervals] + [(end - 0.02, -1) for _, end in intervals]
    )
    active = peak = 0
    for _, change in events:
        active += change
        peak = max(peak, active)
    assert 1 <= peak <= 2


def test_works_when_called_from_inside_an_event_loop() -> None:
    async def caller() -> Any:
        with servers.thread_server(greeter(b"SSH-2.0-dropbear_2022.83\r\n")) as server:
            return identify_ports(ADDRESS, [server.port], OPTIONS)[server.port]

    assert asyncio.run(caller()).identity.product == "Dropbear"


def test_requests_carry_host_and_user_agent() -> None:
    seen: list[bytes] = []

    def recorder(conn: socket.socket, server: servers.ThreadServer) -> None:
        request = servers.read_request(conn, server)
        seen.append(request)
        server.send(conn, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")

    with servers.thread_server(recorder) as server:
        _identify(server.port, IdentifyOptions(timeout=TIMEOUT, nmap_fallback=False, sni=NAME))
    requests = [request for request in seen if request.startswith(b"GET ")]
    assert requests
    for request in requests:
        assert f"\r\nHost: {NAME}:{server.port}\r\n".encode() in request
        assert b"\r\nUser-Agent: exposure/" in request


def test_imap_greeting_inside_tls(tmp_path: Path) -> None:
    certificate = servers.self_signed(tmp_path, "mail.example", ["mail.example"])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate.cert_path, certificate.key_path)

    def imaps(conn: socket.socket, server: servers.ThreadServer) -> None:
        conn.settimeout(2)
        try:
            with context.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(b"* OK [CAPABILITY IMAP4rev1] Dovecot ready.\r\n")
                tls.recv(4096)
        except (OSError, ssl.SSLError):
            pass

    with servers.thread_server(imaps) as server:
        result, elapsed = _identify(server.port)
    _assert_bounded(result, elapsed, max_bytes=16 * 1024)
    identity = result.identity
    assert (identity.service, identity.product, identity.tls) == ("imap", "Dovecot", True)
    assert identity.details["tls"]["certificate"]["subject_cn"] == "mail.example"


def test_redis_named_from_its_answer_to_http() -> None:
    def redis(conn: socket.socket, server: servers.ThreadServer) -> None:
        data = conn.recv(4096)
        while data and not data.startswith(b"GET"):
            data = conn.recv(4096)  # ignore the ClientHello, like Redis would (as junk)
        server.send(conn, b"-ERR wrong number of arguments for 'get' command\r\n")

    with servers.thread_server(redis) as server:
        result, elapsed = _identify(server.port, IdentifyOptions(timeout=2.0, nmap_fallback=False))
    assert elapsed <= 2.0 + SLACK
    assert result.identity.service == "redis"


def test_identify_all_never_raises_for_a_closed_port() -> None:
    port = servers.free_port()
    result = asyncio.run(identify_all(ADDRESS, [port], OPTIONS))[port]
    assert result.identity.service is None
    assert result.traffic.connections == 0


@pytest.fixture(autouse=True)
def _no_thread_leak() -> Iterator[None]:
    before = threading.active_count()
    yield
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.05)


def test_broker_that_accepts_the_probe_is_left_at_once() -> None:
    """Should a broker accept even protocol level 0, we DISCONNECT before anything else."""
    received: list[bytes] = []

    def lax_broker(conn: socket.socket, server: servers.ThreadServer) -> None:
        first = servers.wait_for_input(conn, server)
        if not first.startswith(b"\x10"):
            return  # ClientHello, HTTP: a broker drops what is not MQTT
        server.send(conn, b"\x20\x02\x00\x00")  # CONNACK: accepted
        received.append(servers.wait_for_input(conn, server))

    with servers.thread_server(lax_broker) as server:
        result, elapsed = _identify(server.port)
        # The server thread reads our DISCONNECT on its own time: let it, before stopping it.
        deadline = time.monotonic() + 2
        while not received and time.monotonic() < deadline:
            time.sleep(0.01)
    _assert_bounded(result, elapsed, max_bytes=16)
    assert result.identity.service == "mqtt"
    assert result.identity.details["mqtt"]["connack_return_code"] == 0
    assert received == [b"\xe0\x00"]  # DISCONNECT, and nothing else


def test_server_that_hangs_up_on_the_client_hello_still_gets_http() -> None:
    def picky(conn: socket.socket, server: servers.ThreadServer) -> None:
        if servers.wait_for_input(conn, server).startswith(b"GET "):
            server.send(conn, b"HTTP/1.0 200 OK\r\nServer: picky\r\n\r\n<title>ok</title>")
        # anything else (our ClientHello): hang up at once

    with servers.thread_server(picky) as server:
        result, elapsed = _identify(server.port)
    _assert_bounded(result, elapsed, max_bytes=4096)
    assert elapsed < 0.9  # no waiting on the TLS attempt: the hang-up answered it
    assert (result.identity.service, result.identity.details["http"]["title"]) == ("http", "ok")


def test_silent_ports_say_why_they_have_no_name() -> None:
    with servers.thread_server(tarpit) as server:
        result, _ = _identify(server.port, IdentifyOptions(timeout=0.4, nmap_fallback=False))
    assert "answered none of our probes" in result.identity.details["probe"]["note"]
