"""A real Home Assistant that watches itself: HA in the lab's home, its MQTT integration on a
lab mosquitto, the blueprint and template sensors of contrib/homeassistant, and its owner.

The test is the owner of this HA (as the user is of theirs): it onboards it through HA's own
onboarding API, logs in with the account it created, configures the MQTT integration through
the config flow, and reads HA's REST and websocket APIs with its own token. None of that is what
the scanner does; the scanner only scans and publishes.

    home namespace   HA 2024.1.6 (.lab-cache/ha-venv) on 203.0.113.10:8123, the services watched
    scan namespace   mosquitto on 203.0.113.1 (the broker HA and the watcher share), the
                     watcher, and this owner's API client (sockets made inside the namespace)

`HaHome.start()` sets it all up; `HaHome.stop()` stops HA and mosquitto by pid.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from .daemons import Daemon, start_mosquitto
from .nsutil import LabError, call_in_netns, connect_in_netns
from .support_ha import lab_hass, start_real_ha, write_ha_config

if TYPE_CHECKING:
    from .netns import Lab
    from .services import Service

REPO = Path(__file__).resolve().parents[2]
CONTRIB = REPO / "contrib" / "homeassistant"
BLUEPRINT = CONTRIB / "blueprints" / "automation" / "exposure" / "exposure_notify.yaml"
TEMPLATE_SENSORS = CONTRIB / "template-sensors.yaml"
HA_PORT = 8123
MQTT_PORT = 18830  # in the scan namespace, on its lab address
MAX_ANSWER = 4 * 1024 * 1024
OWNER_NAME, OWNER_LOGIN = "Lab Owner", "labowner"
FAILED_LOGIN_MARKS = ("Login attempt", "invalid authentication", "Banned IP",
                      "Did not receive auth message", "Auth message incorrectly formatted")

# What this HA runs on top of the minimal configuration: the integrations the entities, the
# blueprint and the template sensors need (all part of HA core, nothing installed at run time).
EXTRA_CONFIG = """\
config:
automation: !include automations.yaml
template: !include template-sensors.yaml
persistent_notification:
notify:
webhook:
logger:
  default: info
"""


class HaApi:
    """HTTP and websocket to HA from inside the scan namespace, as the owner."""

    def __init__(self, netns: str, host: str, port: int = HA_PORT) -> None:
        self.netns, self.host, self.port = netns, host, port
        self.token: str | None = None
        self.refresh_token: str | None = None
        self.client_id = f"http://{host}:{port}/"

    # --- HTTP --------------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None, *,
                form: Mapping[str, str] | None = None, auth: bool = True,
                timeout: float = 20) -> tuple[int, Any]:
        connection = _NetnsHTTPConnection(self.netns, self.host, self.port, timeout=timeout)
        headers = {"User-Agent": "exposure-lab-owner"}
        data: bytes | None = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if form is not None:
            data = urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if auth and self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            connection.request(method, path, body=data, headers=headers)
            response = connection.getresponse()
            raw = response.read(MAX_ANSWER)
        finally:
            connection.close()
        try:
            return response.status, json.loads(raw) if raw else None
        except ValueError:
            return response.status, raw.decode(errors="replace")

    def ok(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        status, answer = self.request(method, path, body, **kwargs)
        if not 200 <= status < 300:
            raise LabError(f"HA {method} {path}: HTTP {status}: {str(answer)[:400]}")
        return answer

    # --- the owner: onboarding and login ---------------------------------------------------------

    def onboard(self, password: str) -> None:
        """Create the owner (HA's onboarding API, as the wizard does) and finish onboarding."""
        answer = self.ok("POST", "/api/onboarding/users", {
            "name": OWNER_NAME, "username": OWNER_LOGIN, "password": password,
            "language": "en", "client_id": self.client_id}, auth=False)
        self._tokens(answer["auth_code"])
        for step, data in (("core_config", {}), ("analytics", {}),
                           ("integration", {"client_id": self.client_id,
                                            "redirect_uri": self.client_id})):
            # core_config starts config flows for integrations a minimal venv lacks; HA may
            # answer 500 after storing the step as done (see support_ha.finish_onboarding).
            status, answer = self.request("POST", f"/api/onboarding/{step}", data)
            if status != 200 and step != "core_config":
                raise LabError(f"onboarding step {step}: HTTP {status}: {answer}")

    def login_code(self, password: str, client_id: str | None = None,
                   redirect_uri: str | None = None) -> str:
        """An authorization code from HA's login flow with the owner's password."""
        client = client_id or self.client_id
        flow = self.ok("POST", "/auth/login_flow", {
            "client_id": client, "handler": ["homeassistant", None],
            "redirect_uri": redirect_uri or client}, auth=False)
        done = self.ok("POST", f"/auth/login_flow/{flow['flow_id']}", {
            "username": OWNER_LOGIN, "password": password, "client_id": client}, auth=False)
        if done.get("type") != "create_entry":
            raise LabError(f"login flow did not finish: {done}")
        return str(done["result"])

    def _tokens(self, code: str) -> None:
        answer = self.ok("POST", "/auth/token", form={
            "grant_type": "authorization_code", "code": code, "client_id": self.client_id},
            auth=False)
        self.token, self.refresh_token = answer["access_token"], answer["refresh_token"]

    # --- what the owner reads --------------------------------------------------------------

    def states(self) -> list[dict[str, Any]]:
        return list(self.ok("GET", "/api/states"))

    def state(self, entity_id: str) -> dict[str, Any] | None:
        status, answer = self.request("GET", f"/api/states/{entity_id}")
        return answer if status == 200 else None

    def template(self, text: str) -> str:
        return str(self.ok("POST", "/api/template", {"template": text}))

    def websocket(self, message: dict[str, Any], timeout: float = 20) -> Any:
        """One websocket command, authenticated with the owner's token: its result."""
        sock = connect_in_netns(self.netns, self.host, self.port, timeout)
        try:
            ws = _WebSocket(sock, f"{self.host}:{self.port}")
            ws.receive()  # auth_required
            ws.send({"type": "auth", "access_token": self.token})
            greeting = ws.receive()
            if greeting.get("type") != "auth_ok":
                raise LabError(f"HA websocket auth: {greeting}")
            ws.send({"id": 1, **message})
            while True:
                answer = ws.receive()
                if answer.get("id") == 1 and answer.get("type") == "result":
                    if not answer.get("success"):
                        raise LabError(f"HA websocket {message['type']}: {answer}")
                    return answer.get("result")
        finally:
            sock.close()


class _NetnsHTTPConnection(http.client.HTTPConnection):
    def __init__(self, netns: str, host: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.netns = netns

    def connect(self) -> None:
        self.sock = connect_in_netns(self.netns, self.host, self.port, self.timeout or 20)


class _WebSocket:
    """The few websocket frames an owner's API client needs (RFC 6455: masked text frames)."""

    def __init__(self, sock: socket.socket, host: str) -> None:
        self.sock = sock
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall((f"GET /api/websocket HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise LabError(f"websocket upgrade refused: {head[:200]!r}")

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise LabError("HA closed the websocket")
        self.buffer += chunk
        if len(self.buffer) > MAX_ANSWER:
            raise LabError("websocket answer too large")

    def _take(self, count: int) -> bytes:
        while len(self.buffer) < count:
            self._fill()
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def send(self, message: dict[str, Any]) -> None:
        payload = json.dumps(message).encode()
        mask = os.urandom(4)
        head = bytes([0x81])
        if len(payload) < 126:
            head += bytes([0x80 | len(payload)])
        else:
            head += bytes([0x80 | 126]) + len(payload).to_bytes(2, "big")
        masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def receive(self) -> dict[str, Any]:
        text = b""
        while True:
            first, second = self._take(2)
            length = second & 0x7F
            if length == 126:
                length = int.from_bytes(self._take(2), "big")
            elif length == 127:
                length = int.from_bytes(self._take(8), "big")
            if length > MAX_ANSWER:
                raise LabError("websocket frame too large")
            text += self._take(length)
            if first & 0x80:  # FIN
                return dict(json.loads(text))


def wait_for(condition: Callable[[], Any], timeout: float, what: str,
             interval: float = 0.5) -> Any:
    """condition() until it is truthy (returned), or LabError naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise LabError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@dataclass
class HaHome:
    """The lab's home with a real HA whose owner is the test; see the module docstring."""

    lab: Lab
    webhook_id: str = field(default_factory=lambda: f"exposure-lab-{secrets.token_hex(12)}")
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    daemons: list[Daemon] = field(default_factory=list)
    api: HaApi | None = None
    startup_s: float | None = None

    @property
    def config_dir(self) -> Path:
        return self.lab.tmpdir / "ha-monitor-config"

    @property
    def owner(self) -> HaApi:
        assert self.api is not None, "HaHome.start() first"
        return self.api

    @property
    def broker(self) -> tuple[str, int]:
        return (self.lab.SCAN_V4, MQTT_PORT)

    @property
    def webhook_url(self) -> str:
        return f"http://{self.lab.HOSTNAME}:{HA_PORT}/api/webhook/{self.webhook_id}"

    def start(self) -> HaHome:
        started = time.monotonic()
        self.daemons.append(start_mosquitto(
            self.lab.scan_ns, MQTT_PORT, addresses=[self.lab.SCAN_V4],
            workdir=self.lab.tmpdir / "scan-broker", name="mosquitto-ha"))
        self.lab.open_port(HA_PORT, "real Home Assistant")
        self._write_config()
        self.daemons.append(start_real_ha(self.lab, lab_hass(), self.config_dir, HA_PORT))
        self.api = HaApi(self.lab.scan_ns, self.lab.HOME_V4, HA_PORT)
        self.owner.onboard(self.password)
        self._configure_mqtt()
        self.startup_s = time.monotonic() - started
        return self

    def stop(self) -> None:
        for daemon in reversed(self.daemons):
            daemon.stop(timeout=30)
        self.daemons.clear()

    def _write_config(self) -> None:
        directory = self.config_dir
        directory.mkdir(parents=True, exist_ok=True)
        write_ha_config(directory, hosts=[self.lab.HOME_V4, self.lab.HOME_V6], port=HA_PORT,
                        extra=EXTRA_CONFIG)
        # www/ is served as /local/ (only if it exists when HA starts): the HTML report goes
        # there, and the device page links to it.
        (directory / "www").mkdir(exist_ok=True)
        blueprints = directory / "blueprints" / "automation" / "exposure"
        blueprints.mkdir(parents=True, exist_ok=True)
        shutil.copy(BLUEPRINT, blueprints / BLUEPRINT.name)
        # The owner's automation from the blueprint; the "phone" is HA's own notify service
        # for persistent notifications (the lab has no phone), which exercises that branch.
        (directory / "automations.yaml").write_text(json.dumps([{
            "id": "exposure_notifications",
            "alias": "exposure: scan notifications",
            "use_blueprint": {
                "path": f"exposure/{BLUEPRINT.name}",
                "input": {"webhook_id": self.webhook_id,
                          "notify_service": "notify.persistent_notification",
                          "minimum_severity": "low"},
            },
        }], indent=1) + "\n")
        # The template sensors example, for this lab's target.
        text = TEMPLATE_SENSORS.read_text()
        body = text.split("\ntemplate:\n", 1)[1].replace("home.example.org", self.lab.HOSTNAME)
        body = body.replace("home_example_org", "home_lab")
        (directory / "template-sensors.yaml").write_text(_dedent_list(body))

    def _configure_mqtt(self) -> None:
        """The owner adds the MQTT integration (HA 2024.1 takes no broker in YAML)."""
        flow = self.owner.ok("POST", "/api/config/config_entries/flow",
                             {"handler": "mqtt", "show_advanced_options": False})
        host, port = self.broker
        while flow.get("type") == "form":
            data = {"broker": host, "port": port} if flow.get("step_id") == "broker" else {}
            flow = self.owner.ok("POST", f"/api/config/config_entries/flow/{flow['flow_id']}",
                                 data)
        if flow.get("type") != "create_entry":
            raise LabError(f"MQTT config flow did not finish: {flow}")
        entry = flow["result"]["entry_id"]
        wait_for(lambda: self._entry_state(entry) == "loaded", 60, "the MQTT integration")

    def _entry_state(self, entry_id: str) -> str | None:
        entries = self.owner.ok("GET", "/api/config/config_entries/entry")
        for entry in entries:
            if entry.get("entry_id") == entry_id:
                return str(entry.get("state"))
        return None

    # --- what the test reads ---------------------------------------------------------------

    def log_text(self) -> str:
        path = self.config_dir / "home-assistant.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def failed_logins(self) -> list[str]:
        return [line for line in self.log_text().splitlines()
                if any(mark in line for mark in FAILED_LOGIN_MARKS)]

    def notifications(self) -> list[dict[str, Any]]:
        return list(self.owner.websocket({"type": "persistent_notification/get"}))

    def registry_entry(self, entity_id: str) -> dict[str, Any]:
        """The entity registry entry (capabilities such as an enum sensor's options)."""
        return dict(self.owner.websocket({"type": "config/entity_registry/get",
                                          "entity_id": entity_id}))

    def device(self, entity_id: str) -> dict[str, Any]:
        """The device registry entry behind an entity (HA's own websocket API)."""
        entities = self.owner.websocket({"type": "config/entity_registry/list"})
        device_id = next(e["device_id"] for e in entities if e["entity_id"] == entity_id)
        devices = self.owner.websocket({"type": "config/device_registry/list"})
        return dict(next(d for d in devices if d["id"] == device_id))


def _dedent_list(body: str) -> str:
    """The YAML list under `template:` in the example, as a file of its own (!include)."""
    lines = body.splitlines()
    indent = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
    return "\n".join(line[indent:] for line in lines) + "\n"


VNC_PORT = 5900  # the problem of the watched home: a VNC desktop without a password
WATCHED_PORTS = f"443,{VNC_PORT},{HA_PORT}"


def monitored_services() -> list[Service]:
    """The home the HA tests watch: a VNC desktop with security type None
    (service.unauthenticated, critical), nginx TLS on 443; HA itself is on 8123."""
    from .support_monitor import tls_site
    from .support_services import xvnc

    return [xvnc(VNC_PORT), tls_site(443, lambda lab: lab.home_cert)]  # type: ignore[arg-type,return-value]


def fixed_vnc() -> Service:
    """The owner's fix: the same desktop, now asking for a password."""
    from .support_services import xvnc

    return xvnc(VNC_PORT, password=True, name="xvnc-locked")


class NetnsForwarder:
    """TCP from 127.0.0.1:PORT in one network namespace (a path like /proc/PID/ns/net) to
    host:port in a lab namespace: lets a browser in its own `unshare -n` namespace reach the
    lab's HA, and nothing else. The listening socket is made inside the first namespace, each
    upstream connection inside the second (sockets keep the namespace they were made in)."""

    def __init__(self, listen_ns: str, listen_port: int, target_ns: str, host: str,
                 port: int) -> None:
        self.listener = call_in_netns(
            listen_ns, lambda: socket.create_server(("127.0.0.1", listen_port)))
        self.target = (target_ns, host, port)
        self.sockets: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            try:
                upstream = connect_in_netns(*self.target, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()

    def close(self) -> None:
        self.listener.close()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def ha_home(lab: Lab) -> Iterator[HaHome]:
    home = HaHome(lab)
    try:
        yield home.start()
    finally:
        home.stop()
