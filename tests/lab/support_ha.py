"""Home Assistant in the lab: a replay server for recorded HA responses, and a real HA.

Three things live here, all for tests of scanner/checks/ha:

* **The replay server** (`python -m tests.lab.support_ha serve FIXTURE ...`): serves the
  responses recorded in fixtures/ha/*.json over plain HTTP or TLS, answers the websocket
  `/api/websocket` with the recorded greeting frame, and logs every request it gets (method,
  path, selected headers, body, and every websocket frame the client sends) as JSON lines, so a
  test can prove the scanner never wrote, created or authenticated anything.
  `ha_replay()` / `ha_behind_nginx()` are lab `Service`s built on it; the second puts the lab's
  real nginx in front as a TLS reverse proxy, the way users expose HA on 443.
* **A real Home Assistant** (`start_real_ha`): the `hass` of a venv the caller names (never
  the project's), run inside the lab's home namespace with a minimal configuration.
* **The recorder** (`python -m tests.lab.support_ha record ...`, or `record_fixtures()`): how
  fixtures/ha/*.json were made: a real HA in a lab, every state set up by the test author
  (onboarding the owner through HA's own onboarding API, editing configuration.yaml, restarting),
  and the responses captured from the scan namespace, i.e. as an internet client sees them.

Nothing here talks to anything but the lab's namespaces and loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime as dt
import hashlib
import http.client
import json
import os
import secrets
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .daemons import Daemon, NginxSite, Where, resolve_place, start_nginx
from .nsutil import LabError, netns_argv, wait_for_tcp
from .services import Service

if TYPE_CHECKING:
    from .netns import Lab

REPO = Path(__file__).resolve().parents[2]
FIXTURE_DIR = REPO / "fixtures" / "ha"
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
WEBSOCKET_PATH = "/api/websocket"
READY_TIMEOUT = 10.0
MAX_REQUEST_HEAD = 16 * 1024
MAX_REQUEST_BODY = 64 * 1024
LOGGED_HEADERS = ("host", "user-agent", "authorization", "content-type", "upgrade", "cookie")


# --- fixtures ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Exchange:
    """One recorded answer: what HA sent back for `method path`."""

    method: str
    path: str
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclass(frozen=True)
class HaFixture:
    name: str
    meta: Mapping[str, Any]
    exchanges: tuple[Exchange, ...]
    websocket_frames: tuple[str, ...]  # text frames HA sends first on /api/websocket

    def find(self, method: str, path: str) -> Exchange | None:
        for exchange in self.exchanges:
            if exchange.method == method and exchange.path == path:
                return exchange
        return None


def fixture_path(name: str) -> Path:
    path = Path(name)
    return path if path.suffix == ".json" and path.exists() else FIXTURE_DIR / f"{name}.json"


def load_fixture(name: str) -> HaFixture:
    path = fixture_path(name)
    data = json.loads(path.read_text())
    exchanges = tuple(_exchange_from_json(item) for item in data["exchanges"])
    frames = tuple(data.get("websocket", {}).get("frames", ()))
    return HaFixture(path.stem, data, exchanges, frames)


def _exchange_from_json(item: Mapping[str, Any]) -> Exchange:
    method, _, path = item["request"].partition(" ")
    if item.get("body_encoding") == "base64":
        body = base64.b64decode(item["body"])
    else:
        body = item.get("body", "").encode()
    headers = tuple((name, value) for name, value in item.get("headers", ()))
    return Exchange(method, path, item["status"], item.get("reason", ""), headers, body)


# --- replay server (runs as its own process in the home namespace) ------------------------------

# Hop-by-hop and framing headers are the replay server's own business, never the recording's.
_SKIPPED_HEADERS = {"content-length", "transfer-encoding", "connection", "date", "keep-alive"}


class ReplayServer:
    """Serves one fixture; appends one JSON line per request (and per websocket frame) to log."""

    def __init__(self, fixture: HaFixture, log_path: Path) -> None:
        self.fixture = fixture
        self.log_path = log_path

    def log(self, entry: Mapping[str, Any]) -> None:
        with self.log_path.open("a") as log:
            log.write(json.dumps({"time": time.time(), **entry}) + "\n")

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        remote = str(peer[0]) if peer else "?"
        try:
            await asyncio.wait_for(self._serve_one(reader, writer, remote), 15)
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()
                await writer.wait_closed()

    async def _serve_one(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, remote: str
    ) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > MAX_REQUEST_HEAD:
            return
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = [*lines[0].split(" ", 2), "", ""][:3]
        headers = _request_headers(lines[1:])
        length = int(headers.get("content-length", "0") or 0)
        body = await reader.readexactly(min(length, MAX_REQUEST_BODY)) if length else b""
        path = target.split("?", 1)[0]
        upgrade = path == WEBSOCKET_PATH and headers.get("upgrade", "").lower() == "websocket"
        exchange = self.fixture.find(method, path) or self._not_found(method)
        status = 101 if upgrade and self.fixture.websocket_frames else exchange.status
        # The status is logged too: what a real HA answers 401 counts as a failed login there.
        self.log(
            {
                "remote": remote,
                "method": method,
                "path": target,
                "status": status,
                "headers": {k: v for k, v in headers.items() if k in LOGGED_HEADERS},
                "body": body.decode("utf-8", "replace"),
            }
        )
        if upgrade:
            await self._websocket(reader, writer, headers, remote)
            return
        writer.write(_response_bytes(exchange, method))
        await writer.drain()

    def _not_found(self, method: str) -> Exchange:
        recorded = self.fixture.find("GET", "/this-path-does-not-exist")
        if recorded and method == "GET":
            return recorded
        headers = (("Content-Type", "text/plain; charset=utf-8"),)
        if method == "GET":
            return Exchange(method, "", 404, "Not Found", headers, b"404: Not Found")
        return Exchange(method, "", 405, "Method Not Allowed", headers, b"405: Method Not Allowed")

    async def _websocket(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        headers: Mapping[str, str],
        remote: str,
    ) -> None:
        if not self.fixture.websocket_frames:
            writer.write(_response_bytes(self._not_found("GET"), "GET"))
            await writer.drain()
            return
        key = headers.get("sec-websocket-key", "")
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        writer.write(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            ).encode()
        )
        for frame in self.fixture.websocket_frames:
            writer.write(_server_frame(1, frame.encode()))
        await writer.drain()
        # HA waits 10 s for the auth message; we log whatever the client sends until it closes.
        while True:
            try:
                opcode, payload = await asyncio.wait_for(_read_client_frame(reader), 10)
            except (TimeoutError, asyncio.IncompleteReadError):
                self.log({"remote": remote, "method": "WS-END", "path": WEBSOCKET_PATH})
                return
            self.log(
                {
                    "remote": remote,
                    "method": "WS",
                    "path": WEBSOCKET_PATH,
                    "opcode": opcode,
                    "body": payload.decode("utf-8", "replace"),
                }
            )
            if opcode == 8:  # close: answer it, as HA (aiohttp) does
                writer.write(_server_frame(8, payload[:2]))
                await writer.drain()
                return


def _request_headers(lines: Sequence[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers


def _response_bytes(exchange: Exchange, method: str) -> bytes:
    lines = [f"HTTP/1.1 {exchange.status} {exchange.reason}".rstrip()]
    lines += [
        f"{name}: {value}"
        for name, value in exchange.headers
        if name.lower() not in _SKIPPED_HEADERS
    ]
    lines += [f"Content-Length: {len(exchange.body)}", "Connection: close"]
    body = b"" if method == "HEAD" else exchange.body
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _server_frame(opcode: int, payload: bytes) -> bytes:
    """An unmasked frame (servers never mask, RFC 6455 5.1)."""
    head = bytes([0x80 | opcode])
    if len(payload) < 126:
        head += bytes([len(payload)])
    elif len(payload) < 65536:
        head += bytes([126]) + len(payload).to_bytes(2, "big")
    else:
        head += bytes([127]) + len(payload).to_bytes(8, "big")
    return head + payload


async def _read_client_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    first, second = await reader.readexactly(2)
    length = second & 0x7F
    if length == 126:
        length = int.from_bytes(await reader.readexactly(2), "big")
    elif length == 127:
        length = int.from_bytes(await reader.readexactly(8), "big")
    if length > MAX_REQUEST_BODY:
        raise ValueError("frame too large for the replay server")
    mask = await reader.readexactly(4) if second & 0x80 else b"\0\0\0\0"
    data = await reader.readexactly(length)
    return first & 0x0F, bytes(byte ^ mask[i % 4] for i, byte in enumerate(data))


async def _serve_forever(
    fixture: HaFixture,
    hosts: Sequence[str],
    port: int,
    log_path: Path,
    tls: tuple[Path, Path] | None,
) -> None:
    context = None
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(tls[0]), str(tls[1]))
    replay = ReplayServer(fixture, log_path)
    server = await asyncio.start_server(replay.handle, list(hosts), port, ssl=context)
    async with server:
        await server.serve_forever()


def read_request_log(daemon: Daemon) -> list[dict[str, Any]]:
    """Every request (and websocket frame) the replay server has logged, oldest first."""
    path = daemon.files["request_log"]
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def start_ha_replay(
    where: Where,
    fixture: str,
    port: int = 8123,
    *,
    addresses: Sequence[str] | None = None,
    tls: tuple[Path, Path] | None = None,
    name: str = "ha-replay",
) -> Daemon:
    """The replay server for `fixture` in the place's namespace; logs to its own directory."""
    place, owned = resolve_place(where, addresses)
    directory = place.workdir / f"{name}-{port}-{secrets.token_hex(2)}"
    directory.mkdir(parents=True)
    log_path = directory / "requests.jsonl"
    argv = [sys.executable, "-m", "tests.lab.support_ha", "serve", str(fixture_path(fixture)),
            "--port", str(port), "--log", str(log_path)]
    for address in place.addresses:
        argv += ["--host", address]
    if tls:
        argv += ["--cert", str(tls[0]), "--key", str(tls[1])]
    out = directory / "replay.out"
    with out.open("ab") as output:
        proc = subprocess.Popen(
            netns_argv(place.netns, argv),
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    endpoints = tuple((address, port) for address in place.addresses)
    daemon = Daemon(name, proc, place.netns, endpoints, out, directory,
                    {"request_log": log_path}, place.workdir if owned else None)
    missing = wait_for_tcp(place.netns, endpoints, READY_TIMEOUT, alive=lambda: daemon.alive)
    if missing is not None:
        daemon.stop()
        raise LabError(f"{name} did not start on {missing}: {daemon.log_tail()}")
    return daemon


def ha_replay(
    fixture: str, port: int = 8123, *, tls: bool = False, name: str | None = None
) -> Service:
    """HA (replayed) on `port` of the home host, plain HTTP or TLS with a self-signed cert."""
    name = name or f"ha-replay-{port}"

    def start(lab: Lab) -> list[Daemon]:
        pair = None
        if tls:
            from .pki import self_signed

            issued = self_signed(lab.tmpdir / "pki", "homeassistant.local", filename=name)
            pair = (issued.chain_path, issued.key_path)
        return [start_ha_replay(lab, fixture, port, tls=pair, name=name)]

    scheme = "HTTPS (self-signed)" if tls else "HTTP"
    return Service(name, {port: f"Home Assistant replay of {fixture}, {scheme}"}, start)


NGINX_PROXY_TO = """
location / {{
    proxy_pass http://127.0.0.1:{port};
    proxy_http_version 1.1;
    proxy_set_header Host $host;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header Upgrade $http_upgrade;
    proxy_set_header Connection "upgrade";
}}
"""


def ha_behind_nginx(fixture: str, port: int = 443, upstream_port: int = 18123) -> Service:
    """The lab's real nginx on `port` (TLS, lab CA) as a reverse proxy in front of the replay.

    The replay listens on the home namespace's loopback only: the internet reaches HA through
    nginx alone, as in the setup HA's docs describe.
    """

    def start(lab: Lab) -> list[Daemon]:
        replay = start_ha_replay(
            lab.home_ns, fixture, upstream_port, addresses=["127.0.0.1"], name="ha-upstream"
        )
        # resolve_place gave the replay its own temp dir; the lab removes it when it stops.
        replay.owned_workdir = replay.directory.parent
        site = NginxSite(port, tls=lab.home_cert, extra=NGINX_PROXY_TO.format(port=upstream_port))
        return [replay, start_nginx(lab, [site], name="nginx-ha-proxy")]

    return Service("ha-behind-nginx", {port: f"nginx TLS proxy -> HA replay of {fixture}"}, start)


DECOY_PAGE = """<!DOCTYPE html>
<html><head><title>Home Assistant</title></head>
<body><h1>Home Assistant</h1><p>My smart home notes. Nothing running here.</p></body></html>
"""


def decoy_nginx(port: int = 8080) -> Service:
    """Real nginx serving a static page titled "Home Assistant": not HA, no HA endpoints."""

    def start(lab: Lab) -> list[Daemon]:
        site = NginxSite(port, pages={"index.html": DECOY_PAGE})
        return [start_nginx(lab, [site], name="nginx-decoy")]

    return Service("ha-decoy", {port: 'nginx, static page titled "Home Assistant"'}, start)


# --- a real Home Assistant -----------------------------------------------------------------------

HA_CONFIG = """\
# Minimal Home Assistant for the exposure lab: what serves the UI and the login, nothing else.
homeassistant:
  name: Lab Home
  latitude: 52.37
  longitude: 4.89
  elevation: 0
  unit_system: metric
  time_zone: UTC
  currency: EUR
  country: NL
{auth_providers}
http:
  server_port: {port}
  server_host:
{server_hosts}
frontend:
onboarding:
api:
websocket_api:
auth:
"""

TRUSTED_PROVIDERS = """\
  auth_providers:
    - type: homeassistant
    - type: trusted_networks
      trusted_networks:
        - 0.0.0.0/0
        - ::/0
      allow_bypass_login: {bypass}
"""


HA_VENV = REPO / ".lab-cache" / "ha-venv"


def lab_hass() -> Path:
    """The `hass` of the lab's own HA venv (built by `make lab-deps`, never the project's)."""
    if not (HA_VENV / ".installed").exists():
        raise LabError(f"no Home Assistant venv in {HA_VENV}: run `make lab-deps` (as `make lab` "
                       "does) to build it from tests/lab/ha-requirements.txt")
    return HA_VENV / "bin" / "hass"


def write_ha_config(
    config_dir: Path,
    *,
    hosts: Sequence[str],
    port: int = 8123,
    trusted_everywhere: bool = False,
    allow_bypass_login: bool = False,
    extra: str = "",
    tls: tuple[Path, Path] | None = None,
) -> Path:
    """configuration.yaml for a minimal HA; trusted_networks open to the world when asked;
    `extra` YAML appended (more integrations); `tls` (certificate, key) serves HTTPS."""
    config_dir.mkdir(parents=True, exist_ok=True)
    providers = ""
    if trusted_everywhere:
        providers = TRUSTED_PROVIDERS.format(bypass=str(allow_bypass_login).lower())
    text = HA_CONFIG.format(
        auth_providers=providers,
        port=port,
        server_hosts="\n".join(f"    - {host}" for host in hosts),
    )
    if tls is not None:
        text = text.replace("http:\n", f"http:\n  ssl_certificate: {tls[0]}\n"
                                       f"  ssl_key: {tls[1]}\n", 1)
    path = config_dir / "configuration.yaml"
    path.write_text(text + extra)
    return path


def start_real_ha(
    where: Where,
    hass: Path,
    config_dir: Path,
    port: int = 8123,
    *,
    name: str = "home-assistant",
    ready_timeout: float = 120.0,
    https: bool = False,
) -> Daemon:
    """A real `hass` (from the venv the caller names) in the place's namespace.

    `--skip-pip`: HA must never install anything at run time; the venv has what the minimal
    configuration needs. Ready when the port accepts and /manifest.json answers (the frontend,
    and with it onboarding and auth, is set up by then).
    """
    place, owned = resolve_place(where)
    log = config_dir / "hass.out"
    with log.open("ab") as output:
        proc = subprocess.Popen(
            netns_argv(place.netns, [str(hass), "-c", str(config_dir), "--skip-pip"]),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    endpoints = tuple((address, port) for address in place.addresses)
    daemon = Daemon(name, proc, place.netns, endpoints, log, config_dir,
                    {"ha_log": config_dir / "home-assistant.log"},
                    place.workdir if owned else None)
    started = time.monotonic()
    missing = wait_for_tcp(place.netns, endpoints, ready_timeout, alive=lambda: daemon.alive)
    if missing is None:
        left = ready_timeout - (time.monotonic() - started)
        ready = _wait_for_frontend(place.netns, endpoints[0], left, daemon, https=https)
        missing = None if ready else missing
    if missing is not None or not daemon.alive:
        daemon.stop(timeout=10)
        raise LabError(f"Home Assistant did not come up on {endpoints}: {daemon.log_tail(40)}")
    return daemon


def _wait_for_frontend(
    netns: str | None, endpoint: tuple[str, int], timeout: float, daemon: Daemon,
    *, https: bool = False,
) -> bool:
    connection = ("http.client.HTTPSConnection(sys.argv[1],int(sys.argv[2]),timeout=2,"
                  "context=ssl._create_unverified_context())" if https else
                  "http.client.HTTPConnection(sys.argv[1],int(sys.argv[2]),timeout=2)")
    argv = [sys.executable, "-c",
            f"import http.client,ssl,sys;c={connection};"
            "c.request('GET','/manifest.json');sys.exit(c.getresponse().status!=200)",
            endpoint[0], str(endpoint[1])]
    deadline = time.monotonic() + max(timeout, 0)
    while time.monotonic() < deadline and daemon.alive:
        if subprocess.run(netns_argv(netns, argv), capture_output=True).returncode == 0:
            return True
        time.sleep(0.5)
    return False


# --- the recorder (runs in the scan namespace, against a real HA the test author set up) --------

RECORDED_PATHS = (
    "/",
    "/onboarding.html",
    "/manifest.json",
    "/api/onboarding",
    "/api/onboarding/installation_type",
    "/auth/providers",
    "/.well-known/oauth-authorization-server",
    "/static/icons/favicon.ico",
    "/api/",  # recorded to show HA logs it as a failed login: the scanner never asks for it
    "/this-path-does-not-exist",
)
OWNER = {"name": "Lab Owner", "username": "labowner", "language": "en"}


def _request(
    base: str, method: str, path: str, body: Mapping[str, Any] | None = None,
    token: str | None = None, form: Mapping[str, str] | None = None,
) -> tuple[int, str, list[tuple[str, str]], bytes]:
    host, port = base.rsplit(":", 1)
    connection = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=15)
    headers = {"User-Agent": "exposure-lab-recorder"}
    data: bytes | None = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if form is not None:
        from urllib.parse import urlencode

        data = urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    connection.request(method, path, body=data, headers=headers)
    response = connection.getresponse()
    payload = response.read()
    connection.close()
    return response.status, response.reason, response.getheaders(), payload


def _recorded(method: str, path: str, status: int, reason: str,
              headers: list[tuple[str, str]], body: bytes) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "request": f"{method} {path}",
        "status": status,
        "reason": reason,
        "headers": [[k, v] for k, v in headers if k.lower() not in ("date",)],
    }
    try:
        entry["body"] = body.decode("utf-8")
    except UnicodeDecodeError:
        entry["body"] = base64.b64encode(body).decode()
        entry["body_encoding"] = "base64"
    return entry


def record_websocket_greeting(base: str) -> list[str]:
    """The first frame HA sends on /api/websocket; then a close frame. No auth message."""
    host, port = base.rsplit(":", 1)
    key = base64.b64encode(os.urandom(16)).decode()
    with socket.create_connection((host.strip("[]"), int(port)), timeout=10) as sock:
        sock.sendall(
            (f"GET {WEBSOCKET_PATH} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
             f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
             "User-Agent: exposure-lab-recorder\r\n\r\n").encode()
        )
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            buffer += sock.recv(4096)
        head, _, rest = buffer.partition(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise LabError(f"websocket upgrade refused: {head[:200]!r}")
        while len(rest) < 2 or len(rest) < 2 + (rest[1] & 0x7F):
            rest += sock.recv(4096)
        length = rest[1] & 0x7F
        frame = rest[2 : 2 + length].decode()
        mask = os.urandom(4)
        status = (1000).to_bytes(2, "big")
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(status))
        sock.sendall(bytes([0x88, 0x82]) + mask + masked)
    return [frame]


def record_state(base: str, login_flow: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """GET every path of RECORDED_PATHS, the websocket greeting, and optionally one login flow."""
    exchanges = []
    for path in RECORDED_PATHS:
        exchanges.append(_recorded("GET", path, *_request(base, "GET", path)))
    if login_flow is not None:
        status, reason, headers, body = _request(base, "POST", "/auth/login_flow", login_flow)
        entry = _recorded("POST", "/auth/login_flow", status, reason, headers, _redact(body))
        entry["request_body"] = login_flow
        exchanges.append(entry)
    return {"exchanges": exchanges, "websocket": {"path": WEBSOCKET_PATH,
                                                  "frames": record_websocket_greeting(base)}}


def _redact(body: bytes) -> bytes:
    """An authorization code in a recorded answer is replaced: fixtures hold no credentials."""
    try:
        data = json.loads(body)
    except ValueError:
        return body
    if isinstance(data, dict) and "result" in data:
        data["result"] = "REDACTED-authorization-code"
        return json.dumps(data).encode()
    return body


def create_owner(base: str) -> tuple[str, str]:
    """The test author creates the owner of HIS lab instance: (client_id, authorization code).

    Lab setup through HA's own onboarding API (what the browser wizard does), never something
    the scanner does.
    """
    client_id = f"http://{base}/"
    owner = {**OWNER, "password": secrets.token_urlsafe(16), "client_id": client_id}
    status, _, _, body = _request(base, "POST", "/api/onboarding/users", owner)
    if status != 200:
        raise LabError(f"onboarding the owner failed: {status} {body[:200]!r}")
    return client_id, json.loads(body)["auth_code"]


def finish_onboarding(base: str, client_id: str, code: str) -> None:
    """The remaining onboarding steps of the lab instance, as the wizard's owner session."""
    status, _, _, body = _request(base, "POST", "/auth/token", form={
        "grant_type": "authorization_code", "code": code, "client_id": client_id})
    token = json.loads(body)["access_token"]
    for step, data in (("core_config", {}), ("analytics", {}),
                       ("integration", {"client_id": client_id, "redirect_uri": client_id})):
        status, _, _, body = _request(base, "POST", f"/api/onboarding/{step}", data, token=token)
        # core_config marks itself done, then starts config flows for met, google_translate,
        # radio_browser, shopping_list; their libraries are not in a minimal venv, so HA may
        # answer 500 after the step is already stored as done (checked below).
        if status != 200 and step != "core_config":
            raise LabError(f"onboarding step {step} failed: {status} {body[:200]!r}")
    status, _, _, body = _request(base, "GET", "/api/onboarding")
    if status == 200 and not all(step["done"] for step in json.loads(body)):
        raise LabError(f"onboarding did not finish: {body[:300]!r}")


def _recorder_main(args: argparse.Namespace) -> None:
    """Inside the scan namespace: record one state; with --onboard, record the state right
    after the owner was created, then finish onboarding."""
    if args.onboard:
        client_id, code = create_owner(args.base)
        if not args.no_record:
            print(json.dumps(record_state(args.base)))
        finish_onboarding(args.base, client_id, code)
        return
    flow = json.loads(args.login_flow) if args.login_flow else None
    print(json.dumps(record_state(args.base, flow)))


@dataclass(frozen=True)
class RecordedState:
    """One state recorded from each real version (fixtures/ha/VERSION-NAME.json)."""

    name: str
    description: str
    trusted_everywhere: bool = False
    allow_bypass_login: bool = False
    start_login_flow: bool = False


FRESH = RecordedState("fresh", "never onboarded: no owner account exists yet")
OWNER_CREATED = RecordedState(
    "owner-created",
    "onboarding under way: the owner account exists (user step done), the other steps not yet",
)
ONBOARDED = RecordedState("onboarded", "onboarding finished (all steps done), HA restarted")
TRUSTED = RecordedState(
    "trusted-networks",
    "onboarded; auth_providers homeassistant + trusted_networks [0.0.0.0/0, ::/0]; the "
    "recording client's address is inside, so /auth/providers lists trusted_networks and "
    "POST /auth/login_flow (handler trusted_networks) answers a user picker form",
    trusted_everywhere=True, start_login_flow=True,
)
TRUSTED_BYPASS = RecordedState(
    "trusted-networks-bypass",
    "as trusted-networks, plus allow_bypass_login: true with one user: starting the flow "
    "completes it at once (the authorization code in the answer is redacted here)",
    trusted_everywhere=True, allow_bypass_login=True, start_login_flow=True,
)

LOGIN_FLOW_REQUEST = {
    "client_id": "http://exposure.invalid/",
    "handler": ["trusted_networks", None],
    "redirect_uri": "http://exposure.invalid/auth_callback",
}


def record_fixtures(hass: Path, version_label: str, out_dir: Path = FIXTURE_DIR) -> list[Path]:
    """Record every state from the real HA at `hass` in a fresh lab; write one fixture each."""
    from .netns import Lab

    written: list[Path] = []
    with Lab(profile="bare") as lab:
        lab.open_port(8123, "real Home Assistant")
        config_dir = lab.tmpdir / "ha-config"
        base = f"{lab.HOME_V4}:8123"
        seen: set[str] = set()

        def save(state: RecordedState, recorded: dict[str, Any]) -> None:
            path = out_dir / f"{version_label}-{state.name}.json"
            meta = _fixture_meta(lab, hass, version_label, state, recorded, config_dir, seen)
            path.write_text(json.dumps({**meta, **recorded}, indent=1) + "\n")
            written.append(path)

        for state in (FRESH, ONBOARDED, TRUSTED, TRUSTED_BYPASS):
            write_ha_config(config_dir, hosts=[lab.HOME_V4, lab.HOME_V6],
                            trusted_everywhere=state.trusted_everywhere,
                            allow_bypass_login=state.allow_bypass_login)
            daemon = start_real_ha(lab, hass, config_dir)
            try:
                flow = json.dumps(LOGIN_FLOW_REQUEST) if state.start_login_flow else ""
                save(state, json.loads(in_scan(lab, ["--base", base, "--login-flow", flow])))
                if state is FRESH:  # onboard; finished onboarding needs a restart to show
                    save(OWNER_CREATED, json.loads(in_scan(lab, ["--onboard", "--base", base])))
            finally:
                daemon.stop(timeout=30)
    return written


def _fixture_meta(
    lab: Lab, hass: Path, label: str, state: RecordedState, recorded: Mapping[str, Any],
    config_dir: Path, seen_log_lines: set[str],
) -> dict[str, Any]:
    version = _first_frame_version(recorded)
    return {
        "fixture": f"ha/{label}-{state.name}",
        "recorded_from": f"Home Assistant Core {version} (PyPI package homeassistant=={version}, "
                         f"{_frontend_version(hass)}, Python {_python_version(hass)}), run by "
                         "tests/lab/support_ha.py in a lab home namespace",
        "how": "tests.lab.support_ha.record_fixtures: real hass with the minimal configuration "
               "of write_ha_config(); responses captured with Python's http.client and a raw "
               f"websocket from the lab's scan namespace ({lab.SCAN_V4}), i.e. as an internet "
               "client sees them. Date headers dropped; authorization codes redacted.",
        "recorded_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "state": state.name,
        "state_description": state.description,
        "ha_log": _ha_log_lines(config_dir, seen_log_lines),
    }


def _python_version(hass: Path) -> str:
    python = hass.parent / "python3"
    done = subprocess.run([str(python), "-c", "import platform;print(platform.python_version())"],
                          capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def in_scan(lab: Lab, args: Sequence[str]) -> str:
    """Run one recorder step (record-client ARGS) inside the lab's scan namespace."""
    argv = [sys.executable, "-m", "tests.lab.support_ha", "record-client", *args]
    done = lab.run_in_scan(argv, capture_output=True, text=True, timeout=120, cwd=REPO)
    if done.returncode != 0:
        raise LabError(f"recorder failed: {done.stderr[-2000:]}")
    return done.stdout


def _first_frame_version(recorded: Mapping[str, Any]) -> str:
    frame = json.loads(recorded["websocket"]["frames"][0])
    return str(frame.get("ha_version"))


def _frontend_version(hass: Path) -> str:
    pip = hass.parent / "pip"
    shown = subprocess.run([str(pip), "show", "home-assistant-frontend"],
                           capture_output=True, text=True).stdout
    for line in shown.splitlines():
        if line.startswith("Version:"):
            return f"home-assistant-frontend {line.split(':', 1)[1].strip()}"
    return "home-assistant-frontend (version unknown)"


def _ha_log_lines(config_dir: Path, seen: set[str]) -> list[str]:
    """HA's log lines about failed logins and bans since the last call (lines carry times)."""
    path = config_dir / "home-assistant.log"
    if not path.exists():
        return []
    wanted = ("Login attempt", "invalid authentication", "Banned IP")
    new = [line[:400] for line in path.read_text(errors="replace").splitlines()
           if any(word in line for word in wanted) and line not in seen]
    seen.update(new)
    return new


# --- command line --------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.lab.support_ha")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="replay a fixture (inside the home namespace)")
    serve.add_argument("fixture")
    serve.add_argument("--host", action="append", default=[])
    serve.add_argument("--port", type=int, default=8123)
    serve.add_argument("--log", type=Path, required=True)
    serve.add_argument("--cert", type=Path)
    serve.add_argument("--key", type=Path)
    client = sub.add_parser("record-client", help="(internal) one recording step, in scan ns")
    client.add_argument("--base", required=True)
    client.add_argument("--onboard", action="store_true")
    client.add_argument("--no-record", action="store_true", help="with --onboard: only onboard")
    client.add_argument("--login-flow", default="")
    record = sub.add_parser("record", help="record fixtures from a real HA (needs root)")
    record.add_argument("hass", type=Path, help="the hass executable of a separate venv")
    record.add_argument("--label", help="file name prefix (default: the HA version)")
    args = parser.parse_args(argv)
    if args.command == "serve":
        tls = (args.cert, args.key) if args.cert and args.key else None
        hosts = args.host or ["127.0.0.1"]
        asyncio.run(_serve_forever(load_fixture(args.fixture), hosts, args.port, args.log, tls))
    elif args.command == "record-client":
        _recorder_main(args)
    else:
        label = args.label or _hass_version(args.hass)
        for path in record_fixtures(args.hass, label):
            print(path)


def _hass_version(hass: Path) -> str:
    done = subprocess.run([str(hass), "--version"], capture_output=True, text=True, check=True)
    return done.stdout.strip()


if __name__ == "__main__":
    main()
