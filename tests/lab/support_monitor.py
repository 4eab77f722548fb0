"""Real alert receivers for the monitoring tests, and lab changes for the diff acceptance test.

Receivers (each records what it got, as a list and optionally as JSON lines in a file):
  HttpReceiver  http.server in a thread: webhook, ntfy, Home Assistant webhook all POST here
  SmtpReceiver  aiosmtpd (PyPI), optionally with STARTTLS and AUTH
  MqttRecorder  a paho-mqtt subscriber to '#' on a real mosquitto
`python -m tests.lab.support_monitor receivers DIR HTTP_PORT SMTP_PORT MQTT_PORT` runs all three
in one process: the lab test starts it inside the scan namespace (next to the scanner) on
127.0.0.1 there, with mosquitto from tests.lab.daemons beside it. Nothing listens anywhere else.

Lab changes (for `exposure diff`): tls_site() services that can be replaced in a running lab,
so a test opens a port, drops a TLS protocol and swaps a certificate between two scans.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as paho
from aiosmtpd.controller import Controller

from .daemons import Daemon, NginxSite, start_nginx
from .services import Service

if TYPE_CHECKING:
    import ssl

    from .netns import Lab
    from .pki import Issued

MAX_BODY = 1024 * 1024


# --- HTTP ------------------------------------------------------------------------------------


@dataclass
class HttpReceiver:
    """Records every POST: path, headers, JSON body. `status` is what it answers."""

    host: str = "127.0.0.1"
    port: int = 0
    log_file: Path | None = None
    status: int = 200
    requests: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = min(int(self.headers.get("Content-Length", "0")), MAX_BODY)
                body = self.rfile.read(length)
                try:
                    parsed: Any = json.loads(body)
                except ValueError:
                    parsed = body.decode(errors="replace")
                receiver._record({"path": self.path, "headers": dict(self.headers.items()),
                                  "json": parsed})
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer((self.host, self.port), Handler)
        self.port = self.server.server_address[1]
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _record(self, item: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(item)
            if self.log_file:
                with self.log_file.open("a") as handle:
                    handle.write(json.dumps(item) + "\n")

    def start(self) -> HttpReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def on(self, path: str) -> list[dict[str, Any]]:
        with self._lock:
            return [item for item in self.requests if item["path"] == path]


# --- SMTP ------------------------------------------------------------------------------------


class _SmtpHandler:
    def __init__(self, sink: Callable[[dict[str, Any]], None]) -> None:
        self.sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content)
        self.sink({
            "from": envelope.mail_from,
            "to": list(envelope.rcpt_tos),
            "subject": str(message["Subject"]),
            "severity": str(message["X-Exposure-Severity"]),
            "change": str(message["X-Exposure-Change"]),
            "tls": bool(getattr(session, "ssl", None)),
            "auth": getattr(session, "login_data", None) is not None
            or bool(getattr(session, "authenticated", False)),
        })
        return "250 OK"


@dataclass
class SmtpReceiver:
    host: str = "127.0.0.1"
    port: int = 0
    log_file: Path | None = None
    tls_context: ssl.SSLContext | None = None  # STARTTLS offered (and required) when set
    credentials: tuple[str, str] | None = None  # AUTH required when set
    messages: list[dict[str, Any]] = field(default_factory=list)

    def start(self) -> SmtpReceiver:
        if self.port == 0:
            from .daemons import pick_free_port

            self.port = pick_free_port(self.host)
        kwargs: dict[str, Any] = {}
        if self.tls_context is not None:
            kwargs.update(tls_context=self.tls_context, require_starttls=True)
        if self.credentials is not None:
            expected = (self.credentials[0].encode(), self.credentials[1].encode())
            kwargs.update(auth_required=True,
                          auth_callback=lambda mech, user, password: (user, password) == expected)
        self.controller = Controller(_SmtpHandler(self._record), hostname=self.host,
                                     port=self.port, **kwargs)
        self.controller.start()
        return self

    def _record(self, item: dict[str, Any]) -> None:
        self.messages.append(item)
        if self.log_file:
            with self.log_file.open("a") as handle:
                handle.write(json.dumps(item) + "\n")

    def stop(self) -> None:
        self.controller.stop()


# --- MQTT ------------------------------------------------------------------------------------


@dataclass
class MqttRecorder:
    """Subscribes to '#' and records (topic, payload, retain) of every message."""

    host: str = "127.0.0.1"
    port: int = 1883
    log_file: Path | None = None
    credentials: tuple[str, str] | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)

    def start(self, timeout: float = 10.0) -> MqttRecorder:
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2)
        if self.credentials:
            self.client.username_pw_set(*self.credentials)
        subscribed = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe("#", qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: subscribed.set()
        self.client.on_message = lambda c, u, message: self._record(message)
        self.client.connect(self.host, self.port)
        self.client.loop_start()
        if not subscribed.wait(timeout):
            raise RuntimeError("MQTT recorder could not subscribe")
        return self

    def _record(self, message: paho.MQTTMessage) -> None:
        try:
            payload: Any = json.loads(message.payload)
        except ValueError:
            payload = message.payload.decode(errors="replace")
        item = {"topic": message.topic, "payload": payload, "retain": bool(message.retain)}
        self.messages.append(item)
        if self.log_file:
            with self.log_file.open("a") as handle:
                handle.write(json.dumps(item) + "\n")

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def on(self, suffix: str) -> list[dict[str, Any]]:
        return [m for m in list(self.messages) if m["topic"].endswith(suffix)]


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@contextmanager
def receivers(directory: Path, http_port: int, smtp_port: int,
              mqtt_port: int) -> Iterator[tuple[HttpReceiver, SmtpReceiver, MqttRecorder]]:
    http = HttpReceiver(port=http_port, log_file=directory / "http.jsonl").start()
    smtp = SmtpReceiver(port=smtp_port, log_file=directory / "smtp.jsonl").start()
    mqtt = MqttRecorder(port=mqtt_port, log_file=directory / "mqtt.jsonl").start()
    try:
        yield http, smtp, mqtt
    finally:
        mqtt.stop()
        smtp.stop()
        http.stop()


def _receivers_main(args: argparse.Namespace) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    directory = Path(args.directory)
    with receivers(directory, args.http_port, args.smtp_port, args.mqtt_port):
        (directory / "ready").write_text("ok")
        stop.wait()


# --- lab changes -----------------------------------------------------------------------------


def tls_site(port: int, certificate: Callable[[Lab], Issued], *, protocols: str = "TLSv1.2 TLSv1.3",
             name: str | None = None) -> Service:
    """An nginx of its own serving TLS on `port`, so a test can replace it (new protocols,
    new certificate) without touching the lab's other servers."""
    name = name or f"nginx-tls-{port}"

    def start(lab: Lab) -> list[Daemon]:
        site = NginxSite(port, tls=certificate(lab), protocols=protocols)
        return [start_nginx(lab, [site], name=name)]

    return Service(name, {port: f"nginx TLS ({protocols})"}, start)


def replace_service(lab: Lab, old: list[Daemon], new: Service) -> list[Daemon]:
    """Stop `old` daemons and start `new` on the same ports (the port stays forwarded)."""
    for daemon in old:
        daemon.stop()
    for port in new.ports:
        lab.close_port(port)
    return lab.add_service(new)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.lab.support_monitor")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("receivers", help="HTTP + SMTP receivers and an MQTT recorder")
    run.add_argument("directory")
    run.add_argument("http_port", type=int)
    run.add_argument("smtp_port", type=int)
    run.add_argument("mqtt_port", type=int)
    args = parser.parse_args(argv)
    _receivers_main(args)


if __name__ == "__main__":
    main()
