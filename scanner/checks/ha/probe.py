"""The requests the HA check sends: GETs of public endpoints, one websocket greeting, and
(only under --active) the start of one login flow. Bounded in bytes and time, always.

What is never sent, and why (HA core's source, confirmed on real 2024.1.6 and 2025.4.4):
- GET /api/ or any endpoint that needs a token: HA answers 401, and its ban middleware
  (components/http/ban.py) counts every 401 as a failed login, notifies the owner "Login
  attempt failed", and bans the address after `login_attempts_threshold`.
- GET /api/onboarding/installation_type once any onboarding step is done: it then raises 401
  too (components/onboarding/views.py), so it is asked only while no step is done.
- A websocket auth message: a wrong one is a failed login. We read the greeting and close.
- POST /auth/login_flow with a handler HA does not list: answered 404/400, which
  `log_invalid_auth` counts as a failed login. We only start a trusted_networks flow that
  /auth/providers listed for us, with a client_id/redirect_uri pair on one host so HA does not
  fetch anything (components/auth/indieauth.py).

A plain blocking socket per request: connect, optional TLS (no certificate checks: grading
certificates is the TLS check's job), send, read under one deadline and one byte cap.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from scanner import __version__
from scanner.checks.ha import parse
from scanner.checks.ha.detect import HttpAnswer, Observations, WebsocketAnswer, title_says_ha
from scanner.net.http_parse import (
    ChunkedDecoder,
    body_expected,
    content_length,
    decode_content,
    find_head_end,
    is_chunked,
    parse_head,
)

USER_AGENT = f"exposure/{__version__} (external exposure scanner)"
HEAD_CAP = 16 * 1024
BODY_CAP = parse.JSON_CAP
RECV = 8192
WEBSOCKET_PATH = "/api/websocket"
# client_id and redirect_uri on one host: HA then accepts them without fetching the client_id
# URL (indieauth.verify_redirect_uri). ".invalid" (RFC 6761) never resolves anywhere.
FLOW_CLIENT_ID = "http://exposure.invalid/"
FLOW_REDIRECT_URI = "http://exposure.invalid/auth_callback"

T = TypeVar("T")


class OutOfTime(TimeoutError):
    """The exchange's deadline passed."""


@dataclass(frozen=True)
class Endpoint:
    """Where the HA check talks to: one port, plain or TLS, with the Host the user typed."""

    address: str
    port: int
    tls: bool
    host_header: str
    sni: str | None
    timeout: float  # seconds for one whole exchange (connect, TLS, send, read)

    @property
    def family(self) -> socket.AddressFamily:
        return socket.AF_INET6 if ":" in self.address else socket.AF_INET


class BoundedReader:
    """recv() that never waits past the deadline and never returns more than `cap` in total."""

    def __init__(self, sock: socket.socket, deadline: float, cap: int) -> None:
        self._sock = sock
        self._deadline = deadline
        self.left = cap

    def recv(self, size: int = RECV) -> bytes:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise OutOfTime
        if self.left <= 0:
            return b""
        self._sock.settimeout(remaining)
        data = self._sock.recv(min(size, self.left))
        self.left -= len(data)
        return data


def _tls_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _exchange(
    endpoint: Endpoint, request: bytes, read: Callable[[BoundedReader, socket.socket], T],
    cap: int,
) -> T | None:
    """Connect, send `request`, let `read` consume the answer; None on any network failure."""
    deadline = time.monotonic() + endpoint.timeout
    sock: socket.socket | None = None
    try:
        sock = socket.socket(endpoint.family, socket.SOCK_STREAM)
        sock.settimeout(endpoint.timeout)
        sock.connect((endpoint.address, endpoint.port))
        if endpoint.tls:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            sock = _tls_context().wrap_socket(sock, server_hostname=endpoint.sni)
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        sock.sendall(request)
        return read(BoundedReader(sock, deadline, cap), sock)
    except (OSError, ValueError, OutOfTime):  # OSError covers ssl.SSLError and timeouts
        return None
    finally:
        if sock is not None:
            sock.close()


def _request_bytes(endpoint: Endpoint, method: str, path: str,
                   extra: Mapping[str, str] | None = None, body: bytes = b"") -> bytes:
    headers = {
        "Host": endpoint.host_header,
        "User-Agent": USER_AGENT,
        "Accept": "application/json, text/html;q=0.9, */*;q=0.5",
        "Accept-Encoding": "identity",
        "Connection": "close",
        **(extra or {}),
    }
    if body:
        headers["Content-Length"] = str(len(body))
    lines = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii", "replace") + body


def _read_head(reader: BoundedReader) -> tuple[bytes, bytes] | None:
    """(head, bytes after it) once the blank line arrived; None if it never does."""
    buffer = b""
    while len(buffer) <= HEAD_CAP:
        try:
            chunk = reader.recv()
        except (OSError, OutOfTime):
            return None
        if not chunk:
            return None
        buffer += chunk
        end = find_head_end(buffer, max(0, len(buffer) - len(chunk) - 3))
        if end is not None:
            return buffer[:end], buffer[end:]
    return None


def _read_http(reader: BoundedReader, _sock: socket.socket) -> HttpAnswer | None:
    got = _read_head(reader)
    if got is None:
        return None
    raw_head, rest = got
    head = parse_head(raw_head)
    if head is None:
        return None
    body, complete = _read_body(reader, head, rest)
    decoded, decoded_complete = decode_content(body, head.get("content-encoding"), BODY_CAP)
    return HttpAnswer(head.status, head.headers, decoded, complete and decoded_complete)


def _read_body(reader: BoundedReader, head: Any, initial: bytes) -> tuple[bytes, bool]:
    if not body_expected(head, "GET"):
        return b"", True
    length = content_length(head)
    chunks = ChunkedDecoder(BODY_CAP) if is_chunked(head) else None
    buffer = b""
    piece = initial
    while True:
        buffer += piece
        if chunks is not None:
            chunks.feed(piece)
            if chunks.done:
                return bytes(chunks.body), True
        elif length is not None and len(buffer) >= length:
            return buffer[:length], True
        if len(buffer) >= BODY_CAP:
            return buffer[:BODY_CAP], False
        try:
            piece = reader.recv()
        except (OSError, OutOfTime):
            return (bytes(chunks.body) if chunks else buffer), False
        if not piece:
            ended = length is None and chunks is None  # unframed: the end of stream ends it
            return (bytes(chunks.body) if chunks else buffer), ended


def http_get(endpoint: Endpoint, path: str) -> HttpAnswer | None:
    return _exchange(endpoint, _request_bytes(endpoint, "GET", path), _read_http,
                     HEAD_CAP + BODY_CAP)


def websocket_greeting(endpoint: Endpoint) -> WebsocketAnswer | None:
    """Upgrade /api/websocket, read HA's first frame, send a close frame. Never anything else."""
    key = base64.b64encode(os.urandom(16)).decode()
    request = _request_bytes(endpoint, "GET", WEBSOCKET_PATH, {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Key": key,
        "Sec-WebSocket-Version": "13",
    })

    def read(reader: BoundedReader, sock: socket.socket) -> WebsocketAnswer | None:
        got = _read_head(reader)
        if got is None:
            return None
        raw_head, rest = got
        head = parse_head(raw_head)
        if head is None:
            return None
        upgraded = head.status == 101 and head.get("sec-websocket-accept") == \
            parse.websocket_accept(key)
        if not upgraded:
            return WebsocketAnswer(False, head.status, None, b"")
        header, payload = _read_first_frame(reader, rest)
        # Say goodbye properly: HA then ends the connection without logging anything.
        _send_quietly(sock, parse.close_frame(os.urandom(4)))
        return WebsocketAnswer(True, head.status, header, payload)

    return _exchange(endpoint, request, read, HEAD_CAP + parse.GREETING_CAP + 16)


def _read_first_frame(
    reader: BoundedReader, buffer: bytes
) -> tuple[parse.FrameHeader | None, bytes]:
    header = parse.parse_frame_header(buffer)
    while header is None and len(buffer) < 14:
        chunk = _recv_quietly(reader)
        if not chunk:
            return None, b""
        buffer += chunk
        header = parse.parse_frame_header(buffer)
    if header is None or header.length > parse.GREETING_CAP:
        return header, b""
    wanted = header.header_size + header.length
    while len(buffer) < wanted:
        chunk = _recv_quietly(reader)
        if not chunk:
            return header, b""
        buffer += chunk
    return header, buffer[header.header_size : wanted]


def _recv_quietly(reader: BoundedReader) -> bytes:
    try:
        return reader.recv()
    except (OSError, OutOfTime):
        return b""


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    try:
        sock.settimeout(0.5)
        sock.sendall(data)
    except OSError:
        pass


def start_login_flow(endpoint: Endpoint, handler: tuple[str, str | None]) -> HttpAnswer | None:
    """--active only: POST /auth/login_flow to start (never continue) the given provider's flow.

    The caller must pass a handler /auth/providers listed; the answer may hold an
    authorization code (trusted_networks with allow_bypass_login), which parse.parse_flow_start
    drops unread into anything kept.
    """
    body = json.dumps({
        "client_id": FLOW_CLIENT_ID,
        "handler": [handler[0], handler[1]],
        "redirect_uri": FLOW_REDIRECT_URI,
    }).encode()
    request = _request_bytes(endpoint, "POST", "/auth/login_flow",
                             {"Content-Type": "application/json"}, body)
    return _exchange(endpoint, request, _read_http, HEAD_CAP + BODY_CAP)


# --- the sequence ----------------------------------------------------------------------------


OBSERVE_BUDGET = 3.0  # the whole sequence may take this many exchange timeouts, no more


class Budgeted:
    """The endpoint with each exchange's timeout cut to what is left of one shared budget,
    so a server that answers slowly everywhere costs OBSERVE_BUDGET timeouts, not six."""

    def __init__(self, endpoint: Endpoint) -> None:
        self._endpoint = endpoint
        self._deadline = time.monotonic() + endpoint.timeout * OBSERVE_BUDGET

    def now(self) -> Endpoint | None:
        left = self._deadline - time.monotonic()
        if left <= 0.05:
            return None
        return dataclasses.replace(self._endpoint, timeout=min(self._endpoint.timeout, left))

    def get(self, path: str) -> HttpAnswer | None:
        endpoint = self.now()
        return http_get(endpoint, path) if endpoint else None

    def websocket(self) -> WebsocketAnswer | None:
        endpoint = self.now()
        return websocket_greeting(endpoint) if endpoint else None


def observe(endpoint: Endpoint, title: str | None, root_redirect: str | None) -> Observations:
    """GETs in an order that stops early on ports that are plainly not HA.

    Every HTTP port gets two cheap GETs (/auth/providers, /manifest.json); only a port that
    looks like HA by then (or whose title says so) gets /api/onboarding and the websocket.
    """
    budget = Budgeted(endpoint)
    providers = budget.get("/auth/providers")
    manifest = budget.get("/manifest.json")
    hinted = title_says_ha(title) or (root_redirect or "").startswith("/onboarding.html")
    looks_ha = (
        hinted
        or (providers is not None and parse.parse_providers(providers.status, providers.body))
        or (manifest is not None and _manifest_says_ha(manifest))
    )
    if not looks_ha:
        return Observations(title=title, root_redirect=root_redirect, manifest=manifest,
                            providers=providers)
    onboarding = budget.get("/api/onboarding")
    steps = parse.parse_onboarding(onboarding.status, onboarding.body) if onboarding else None
    # Only while no step is done: afterwards HA answers 401, which counts as a failed login.
    installation_type = (
        budget.get("/api/onboarding/installation_type")
        if steps is not None and steps.nothing_done else None
    )
    return Observations(
        title=title,
        root_redirect=root_redirect,
        manifest=manifest,
        providers=providers,
        onboarding=onboarding,
        installation_type=installation_type,
        websocket=budget.websocket(),
    )


def _manifest_says_ha(answer: HttpAnswer) -> bool:
    manifest = parse.parse_manifest(answer.status, answer.body)
    return manifest is not None and manifest.names_home_assistant
