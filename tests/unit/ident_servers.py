"""Servers for the identification tests, all on loopback and all stopped by the tests.

Real daemons (sshd, dropbear, nginx, mosquitto) run from a config in a temporary directory
and are stopped by their own pid. Adversarial servers are Python threads in this process:
a listening socket and one handler per accepted connection, counting the bytes they send.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.lab.daemons import pick_free_port

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    return pick_free_port(LOOPBACK)


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {LOOPBACK}:{port} after {timeout}s")


@contextlib.contextmanager
def daemon(argv: list[str], ports: list[int], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run a foreground daemon until the block ends; stop it by its pid."""
    with log.open("wb") as log_file:
        process = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            for port in ports:
                try:
                    wait_for_port(port)
                except TimeoutError as error:
                    raise RuntimeError(f"{argv[0]} did not start: {log.read_text()}") from error
            yield process
        finally:
            _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


# --- certificates ----------------------------------------------------------------------


@dataclass(frozen=True)
class SelfSigned:
    cert_path: Path
    key_path: Path
    der: bytes


def self_signed(directory: Path, common_name: str, sans: list[str]) -> SelfSigned:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    alt_names: list[x509.GeneralName] = []
    for entry in sans:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(entry)))
        except ValueError:
            alt_names.append(x509.DNSName(entry))
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / f"{common_name}.crt"
    key_path = directory / f"{common_name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return SelfSigned(cert_path, key_path, cert.public_bytes(serialization.Encoding.DER))


# --- real daemons ----------------------------------------------------------------------


@contextlib.contextmanager
def sshd(directory: Path, port: int) -> Iterator[None]:
    os.makedirs("/run/sshd", exist_ok=True)  # privilege separation directory sshd insists on
    key = directory / "ssh_host_ed25519_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    config = directory / "sshd_config"
    config.write_text(
        f"HostKey {key}\nPidFile {directory / 'sshd.pid'}\nUsePAM no\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
    )
    listen = f"ListenAddress={LOOPBACK}:{port}"
    argv = ["/usr/sbin/sshd", "-D", "-e", "-f", str(config), "-o", listen]
    with daemon(argv, [port], directory / "sshd.log"):
        yield


@contextlib.contextmanager
def dropbear(directory: Path, port: int) -> Iterator[None]:
    key = directory / "dropbear_ed25519"
    subprocess.run(
        ["dropbearkey", "-t", "ed25519", "-f", str(key)], check=True, capture_output=True
    )
    argv = [
        "dropbear", "-F", "-E", "-s", "-p", f"{LOOPBACK}:{port}", "-r", str(key),
        "-P", str(directory / "dropbear.pid"),
    ]  # fmt: skip
    with daemon(argv, [port], directory / "dropbear.log"):
        yield


@dataclass(frozen=True)
class WebSite:
    title: str
    icon: bytes
    icon_path: str  # where <link rel=icon> points; "" to only serve /favicon.ico
    default_icon: bytes  # what /favicon.ico serves


@contextlib.contextmanager
def nginx(
    directory: Path, site: WebSite, http_port: int, tls_port: int | None = None,
    certificate: SelfSigned | None = None,
) -> Iterator[None]:  # fmt: skip
    root = directory / "www"
    root.mkdir()
    link = f'<link rel="icon" href="{site.icon_path}">' if site.icon_path else ""
    (root / "index.html").write_text(
        f"<!doctype html><html><head>{link}<title>{site.title}</title></head>"
        "<body>hello</body></html>"
    )
    if site.icon_path:
        (root / site.icon_path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (root / site.icon_path.lstrip("/")).write_bytes(site.icon)
    (root / "favicon.ico").write_bytes(site.default_icon)
    servers = f"server {{ listen {LOOPBACK}:{http_port}; root {root}; }}\n"
    ports = [http_port]
    if tls_port is not None and certificate is not None:
        servers += (
            f"server {{ listen {LOOPBACK}:{tls_port} ssl; root {root};"
            f" ssl_certificate {certificate.cert_path}; ssl_certificate_key {certificate.key_path};"
            " add_header Strict-Transport-Security max-age=63072000; }\n"
        )
        ports.append(tls_port)
    temp = "".join(
        f"{kind}_temp_path {directory / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    config = directory / "nginx.conf"
    config.write_text(
        f"user root;\ndaemon off;\nworker_processes 1;\npid {directory / 'nginx.pid'};\n"
        "events { worker_connections 64; }\n"
        "http {\naccess_log off;\n"
        "types { text/html html; image/x-icon ico; image/png png; }\n"
        f"{temp}{servers}}}\n"
    )
    argv = ["nginx", "-p", str(directory), "-c", str(config), "-e", str(directory / "error.log")]
    with daemon(argv, ports, directory / "nginx.log"):
        yield


@contextlib.contextmanager
def mosquitto(
    directory: Path, port: int, tls_port: int | None = None,
    certificate: SelfSigned | None = None,
) -> Iterator[None]:  # fmt: skip
    # user root: else mosquitto drops to its own user, who cannot read our 0700 temp dir.
    text = "user root\npersistence false\nlog_dest stderr\nper_listener_settings false\n"
    text += f"allow_anonymous false\nlistener {port} {LOOPBACK}\n"
    ports = [port]
    if tls_port is not None and certificate is not None:
        text += f"listener {tls_port} {LOOPBACK}\n"
        text += f"certfile {certificate.cert_path}\nkeyfile {certificate.key_path}\n"
        ports.append(tls_port)
    config = directory / "mosquitto.conf"
    config.write_text(text)
    with daemon(["mosquitto", "-c", str(config)], ports, directory / "mosquitto.log"):
        yield


# --- adversarial servers (threads in this process) -------------------------------------

Handler = Callable[[socket.socket, "ThreadServer"], None]


@dataclass
class ThreadServer:
    """A TCP server on loopback running `handler` for each connection in its own thread."""

    handler: Handler
    port: int = 0
    bytes_sent: int = 0
    connections: int = 0
    stopping: threading.Event = field(default_factory=threading.Event)
    _listener: socket.socket | None = None
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> ThreadServer:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((LOOPBACK, 0))
        listener.listen(32)
        listener.settimeout(0.1)
        self._listener = listener
        self.port = listener.getsockname()[1]
        acceptor = threading.Thread(target=self._accept_loop, daemon=True)
        acceptor.start()
        self._threads.append(acceptor)
        return self

    def send(self, conn: socket.socket, data: bytes) -> bool:
        """Send all of it, counting bytes; False once the client is gone or the server stops.

        A client that stops reading blocks us here, as it would block a real flooder.
        """
        view = memoryview(data)
        while view:
            if self.stopping.is_set():
                return False
            try:
                sent = conn.send(view)
            except TimeoutError:
                continue
            except OSError:
                return False
            with self._lock:
                self.bytes_sent += sent
            view = view[sent:]
        return True

    def stop(self) -> None:
        self.stopping.set()
        for thread in self._threads:
            thread.join(timeout=5)
        if self._listener is not None:
            self._listener.close()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self.stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
            worker = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            worker.start()
            self._threads.append(worker)

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(0.2)
        try:
            self.handler(conn, self)
        except OSError:
            pass
        finally:
            conn.close()


@contextlib.contextmanager
def thread_server(handler: Handler) -> Iterator[ThreadServer]:
    server = ThreadServer(handler).start()
    try:
        yield server
    finally:
        server.stop()


def read_request(conn: socket.socket, server: ThreadServer, cap: int = 65536) -> bytes:
    """Read until a blank line (an HTTP request head) or the server stops."""
    data = b""
    while b"\r\n\r\n" not in data and len(data) < cap and not server.stopping.is_set():
        try:
            chunk = conn.recv(4096)
        except TimeoutError:
            continue
        if not chunk:
            break
        data += chunk
    return data


def wait_for_input(conn: socket.socket, server: ThreadServer) -> bytes:
    """The first bytes the client sends (b"" if it leaves or the server stops first)."""
    while not server.stopping.is_set():
        try:
            return conn.recv(4096)
        except TimeoutError:
            continue
    return b""


def wait_until_stopped(conn: socket.socket, server: ThreadServer) -> None:
    """Hold the connection open (a tarpit) until the client leaves or the server stops."""
    while not server.stopping.is_set():
        try:
            if not conn.recv(4096):
                return
        except TimeoutError:
            continue
