"""probe.py over real loopback sockets: the replay server of recorded HA answers, and hostile
servers (drip-feed, endless body, fake websocket). Every exchange stays within its deadline
and byte cap, and the websocket sees a close frame and nothing else."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from scanner.checks.ha import probe
from scanner.checks.ha.detect import assess
from scanner.net import Connector, Dialer, Endpoint, Limits, ScanBudget
from scanner.net.websocket import accept_value as websocket_accept
from tests.lab.support_ha import HaFixture, ReplayServer, load_fixture

TIMEOUT = 1.0


class ReplayThread:
    """The lab's replay server, in-process on 127.0.0.1 (port chosen by the kernel)."""

    def __init__(self, fixture: str, log: Path) -> None:
        self.replay = ReplayServer(load_fixture(fixture), log)
        self.loop = asyncio.new_event_loop()
        self.port = 0
        ready = threading.Event()

        self.stopped = asyncio.Event()

        async def serve() -> None:
            server = await asyncio.start_server(self.replay.handle, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            async with server:
                await self.stopped.wait()

        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(serve(),),
                                       daemon=True)
        self.thread.start()
        ready.wait(5)

    def log(self) -> list[dict]:
        import json

        path = self.replay.log_path
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() \
            else []

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.stopped.set)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def replay(tmp_path: Path) -> Iterator[Callable[[str], ReplayThread]]:
    started: list[ReplayThread] = []

    def start(fixture: str) -> ReplayThread:
        server = ReplayThread(fixture, tmp_path / f"{fixture}.jsonl")
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def endpoint(port: int, timeout: float = TIMEOUT) -> Connector:
    """The probe's way to the test server: --timeout `timeout`, a port deadline of its own."""
    dialer = Dialer.for_port(ScanBudget(Limits(timeout=timeout)))
    return Connector(dialer, Endpoint("127.0.0.1", port, False, None, f"127.0.0.1:{port}"))


def test_observe_fresh_ha_and_request_log(replay: Callable[[str], ReplayThread]) -> None:
    server = replay("2024.1.6-fresh")
    seen = probe.observe(endpoint(server.port), "Home Assistant", "/onboarding.html")
    detection = assess(seen)
    assert detection.confidence == "high" and detection.facts.version == "2024.1.6"
    assert detection.facts.installation_type == "Unsupported Third Party Container"
    time.sleep(0.2)  # the server logs the close frame after answering it
    log = server.log()
    assert {entry["method"] for entry in log} <= {"GET", "WS", "WS-END"}
    assert all(entry["status"] != 401 for entry in log if "status" in entry)
    frames = [entry for entry in log if entry["method"] == "WS"]
    assert [frame["opcode"] for frame in frames] == [8]  # a close frame, no auth message
    assert "/api/" not in {entry["path"] for entry in log}


def test_installation_type_not_asked_once_a_step_is_done(
    replay: Callable[[str], ReplayThread],
) -> None:
    server = replay("2025.4.4-owner-created")
    probe.observe(endpoint(server.port), "Home Assistant", "/onboarding.html")
    paths = {entry["path"] for entry in server.log()}
    assert "/api/onboarding" in paths
    assert "/api/onboarding/installation_type" not in paths  # would be a 401: a failed login


def test_plain_page_gets_two_gets_only(replay: Callable[[str], ReplayThread]) -> None:
    server = replay("2024.1.6-fresh")
    server.replay.fixture = HaFixture("nothing", {}, (), ())  # 404 everywhere, like a NAS UI
    seen = probe.observe(endpoint(server.port), "My NAS", None)
    assert seen.websocket is None and seen.onboarding is None
    assert [entry["path"] for entry in server.log()] == ["/auth/providers", "/manifest.json"]


def test_login_flow_start_parsed_without_the_code(replay: Callable[[str], ReplayThread]) -> None:
    server = replay("2025.4.4-trusted-networks-bypass")
    answer = probe.start_login_flow(endpoint(server.port), ("trusted_networks", None))
    assert answer is not None and answer.status == 200
    posts = [entry for entry in server.log() if entry["method"] == "POST"]
    assert len(posts) == 1 and posts[0]["path"] == "/auth/login_flow"
    assert '"client_id": "http://exposure.invalid/"' in posts[0]["body"]
    assert "authorization" not in posts[0]["headers"]


class HostileServer:
    """A loopback TCP server whose every connection is handled by `behave(conn)`."""

    def __init__(self, behave: Callable[[socket.socket, bytes], None]) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.behave = behave
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        try:
            self.behave(conn, conn.recv(65536))
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.sock.close()


def test_drip_feed_stops_at_the_deadline() -> None:
    def drip(conn: socket.socket, _request: bytes) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        for _ in range(100):
            conn.sendall(b"x")
            time.sleep(0.05)

    server = HostileServer(drip)
    started = time.monotonic()
    # each byte comes well within the read timeout: only the deadline ends it
    answer = probe.http_get(endpoint(server.port, 0.5).within(1.0), "/manifest.json")
    assert time.monotonic() - started < 1.5
    assert answer is None or not answer.complete
    server.close()


def test_endless_body_is_capped() -> None:
    def flood(conn: socket.socket, _request: bytes) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\n\r\n")
        chunk = b"A" * 65536
        for _ in range(200):
            conn.sendall(chunk)

    server = HostileServer(flood)
    answer = probe.http_get(endpoint(server.port, 2.0), "/manifest.json")
    assert answer is not None and len(answer.body) <= probe.BODY_CAP and not answer.complete
    server.close()


def test_silent_server_returns_none_in_time() -> None:
    server = HostileServer(lambda conn, _request: time.sleep(3))
    started = time.monotonic()
    assert probe.websocket_greeting(endpoint(server.port, 0.4)) is None
    assert time.monotonic() - started < 1.2
    server.close()


def test_fake_websocket_with_wrong_accept_is_not_upgraded() -> None:
    def fake(conn: socket.socket, _request: bytes) -> None:
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Accept: bogus\r\n\r\n"
                     b'\x81\x31{"type":"auth_required","ha_version":"2024.1.6"}')

    server = HostileServer(fake)
    answer = probe.websocket_greeting(endpoint(server.port))
    assert answer is not None and not answer.upgraded
    server.close()


def _key_of(request: bytes) -> str:
    for line in request.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        if name.lower() == "sec-websocket-key":
            return value.strip()
    return ""


def test_huge_websocket_frame_is_not_read() -> None:
    def huge(conn: socket.socket, request: bytes) -> None:
        accept = websocket_accept(_key_of(request)).encode()  # a real upgrade, then a
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: " + accept
                     + b"\r\n\r\n" + bytes([0x81, 127]) + (2**40).to_bytes(8, "big")
                     + b"A" * 1000)  # frame that claims 2**40 bytes
        time.sleep(0.5)

    server = HostileServer(huge)
    answer = probe.websocket_greeting(endpoint(server.port))
    assert answer is not None and answer.upgraded and answer.payload == b""
    server.close()


def test_a_slow_server_costs_the_budget_not_every_timeout() -> None:
    def stall(conn: socket.socket, _request: bytes) -> None:
        time.sleep(3)

    server = HostileServer(stall)
    started = time.monotonic()
    seen = probe.observe(endpoint(server.port, 0.3), "Home Assistant", None)  # title: go on
    elapsed = time.monotonic() - started
    assert seen.providers is None and seen.websocket is None
    assert elapsed < 0.3 * probe.OBSERVE_BUDGET + 0.5
    server.close()
