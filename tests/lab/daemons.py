"""Real daemons (OpenSSH, nginx, mosquitto, Dropbear, a tarpit) for the lab.

Each start_* function runs its daemon in the foreground inside a network namespace (or on loopback
when there is none), with every file it needs (config, keys, pid file, logs) in a private
directory, waits until it accepts TCP connections and returns a `Daemon`. Nothing under /etc is read
for configuration or written. `where` is a `Place`, anything with a `.place` (a `Lab`: its home
namespace and addresses), a namespace name, or None for loopback.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .nsutil import LabError, netns_argv, wait_for_tcp
from .pki import Issued

SSHD = "/usr/sbin/sshd"
SSH_KEYGEN = "/usr/bin/ssh-keygen"
NGINX = "/usr/sbin/nginx"
MOSQUITTO = "/usr/sbin/mosquitto"
DROPBEAR = "/usr/sbin/dropbear"
DROPBEARKEY = "/usr/bin/dropbearkey"
TARPIT_SCRIPT = Path(__file__).with_name("tarpit.py")

READY_TIMEOUT = 10.0
STOP_TIMEOUT = 3.0
LOOPBACK = ("127.0.0.1",)


@dataclass(frozen=True)
class Place:
    """Where daemons run: a namespace (None: this one), the addresses they bind, a work dir."""

    netns: str | None
    addresses: tuple[str, ...]
    workdir: Path


class HasPlace(Protocol):
    @property
    def place(self) -> Place: ...


Where = Place | HasPlace | str | None


def resolve_place(
    where: Where, addresses: Sequence[str] | None = None, workdir: Path | None = None
) -> tuple[Place, bool]:
    """The Place for `where`, and whether its work dir was made here (then the daemon owns it).

    A namespace name or None (this namespace) binds 127.0.0.1 of that namespace unless
    `addresses` says otherwise; a Lab binds its home addresses.
    """
    if isinstance(where, str | None):
        owned = workdir is None
        place = Place(
            netns=where,
            addresses=tuple(addresses or LOOPBACK),
            workdir=Path(workdir or tempfile.mkdtemp(prefix="exp-daemon-")),
        )
        return place, owned
    base = where if isinstance(where, Place) else where.place
    return Place(
        netns=base.netns,
        addresses=tuple(addresses or base.addresses),
        workdir=Path(workdir or base.workdir),
    ), False


def endpoint_str(address: str, port: int) -> str:
    """address:port, with IPv6 addresses in brackets (the form sshd, nginx and dropbear take)."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


@dataclass
class Daemon:
    """A daemon started by the lab. `pid` is the daemon's own pid (`ip netns exec` execs it)."""

    name: str
    proc: subprocess.Popen[bytes]
    netns: str | None
    endpoints: tuple[tuple[str, int], ...]
    log_path: Path
    directory: Path
    files: dict[str, Path] = field(default_factory=dict)  # config, access_log, host keys...
    owned_workdir: Path | None = None  # a temp dir made just for this daemon: removed on stop

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def ports(self) -> tuple[int, ...]:
        return tuple(dict.fromkeys(port for _, port in self.endpoints))

    @property
    def port(self) -> int:
        return self.ports[0]

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def signal_stop(self) -> None:
        """Send SIGTERM (no wait): lets several daemons shut down in parallel."""
        if self.alive:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM, wait up to `timeout`, then SIGKILL. Idempotent."""
        self.signal_stop()
        self.reap(time.monotonic() + timeout)

    def reap(self, deadline: float) -> None:
        """Wait for the process until `deadline`, SIGKILL it if still running, drop owned files."""
        try:
            self.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.owned_workdir is not None:
            shutil.rmtree(self.owned_workdir, ignore_errors=True)

    def __repr__(self) -> str:
        where = self.netns or "host"
        return f"<Daemon {self.name} pid={self.pid} {where} ports={list(self.ports)}>"


def stop_daemons(daemons: Iterable[Daemon], timeout: float = STOP_TIMEOUT) -> None:
    """Stop several daemons at once: SIGTERM to all, then one shared deadline, then SIGKILL."""
    daemons = list(daemons)
    for daemon in daemons:
        daemon.signal_stop()
    deadline = time.monotonic() + timeout
    for daemon in daemons:
        daemon.reap(deadline)


def pick_free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free right now on `host` (in this namespace): for loopback daemons."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _generate_missing(commands: dict[Path, list[str]], tool: str) -> None:
    """Run the key generator for every path not there yet, in parallel; raise on failure."""
    jobs = [
        subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
        for path, argv in commands.items()
        if not path.exists()
    ]
    for job in jobs:
        _, err = job.communicate()
        if job.returncode != 0:
            raise LabError(f"{tool} failed: {err.decode(errors='replace').strip()}")


def _private_dir(place: Place, name: str) -> Path:
    """A new directory for one daemon under the place's work dir (name, name-2, ...)."""
    for i in range(1, 1000):
        path = place.workdir / (name if i == 1 else f"{name}-{i}")
        try:
            path.mkdir(parents=True)
        except FileExistsError:
            continue
        return path
    raise LabError(f"no free directory name for {name} in {place.workdir}")


def _as_ports(port: int | Sequence[int]) -> tuple[int, ...]:
    return (port,) if isinstance(port, int) else tuple(port)


def _launch(
    place: Place,
    name: str,
    argv: Sequence[str | os.PathLike[str]],
    ports: Sequence[int],
    directory: Path,
    *,
    owned_workdir: Path | None = None,
    log_path: Path | None = None,
    files: Mapping[str, Path] | None = None,
    ready_timeout: float = READY_TIMEOUT,
) -> Daemon:
    """Start argv in the place's namespace and wait until every address:port accepts."""
    log_path = log_path or directory / f"{name}.log"
    endpoints = tuple((addr, port) for port in ports for addr in place.addresses)
    with open(log_path, "ab") as log:
        # A new session keeps a Ctrl-C meant for the foreground command away from the daemons;
        # the lab stops them itself, in order.
        proc = subprocess.Popen(
            netns_argv(place.netns, argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    daemon = Daemon(
        name, proc, place.netns, endpoints, log_path, directory, dict(files or {}), owned_workdir
    )
    missing = wait_for_tcp(place.netns, endpoints, ready_timeout, alive=lambda: daemon.alive)
    if missing is not None:
        code = proc.poll()
        daemon.stop()
        state = f"exited with {code}" if code is not None else f"not ready after {ready_timeout}s"
        raise LabError(
            f"{name} ({' '.join(map(str, argv))}) {state}: nothing accepts on "
            f"{endpoint_str(*missing)}\n--- log tail ({log_path}) ---\n{daemon.log_tail()}"
        )
    return daemon


# --- OpenSSH ---------------------------------------------------------------------------------


def ssh_host_keys(
    directory: Path, types: Sequence[str] = ("ed25519", "ecdsa", "rsa")
) -> list[Path]:
    """Host keys in `directory`, generated by ssh-keygen (in parallel) unless already there.

    Several sshd instances of one lab share them, like several ports of one real host would.
    """
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / f"ssh_host_{kind}_key" for kind in types]
    _generate_missing(
        {path: [SSH_KEYGEN, "-q", "-t", kind, "-N", "", "-C", "exposure-lab", "-f", str(path)]
         for kind, path in zip(types, paths, strict=True)},
        "ssh-keygen",
    )
    return paths


def _sshd_defaults(directory: Path, listen: Sequence[str], host_keys: Sequence[Path]) -> list[str]:
    return [
        *(f"ListenAddress {item}" for item in listen),
        *(f"HostKey {key}" for key in host_keys),
        f"PidFile {directory / 'sshd.pid'}",
        "UsePAM no",  # PAM would pull in /etc/pam.d and the host's login stack
        "StrictModes no",  # the files live in a temp dir we do not chown to each user
        "LogLevel VERBOSE",
        "PermitRootLogin no",
        "PasswordAuthentication yes",
        "KbdInteractiveAuthentication no",
        "AuthorizedKeysFile none",
        "UseDNS no",
        "Subsystem sftp internal-sftp",
    ]


def _configured_keys(config: str) -> set[str]:
    """Lower-case keywords set in `config` before its first Match block."""
    keys: set[str] = set()
    for raw in config.splitlines():
        words = raw.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0].lower() == "match":
            break
        keys.add(words[0].lower())
    return keys


def sshd_config(
    directory: Path, listen: Sequence[str], host_keys: Sequence[Path], extra_config: str = ""
) -> str:
    """sshd_config text. sshd keeps the first value it reads for a keyword, so our default for a
    keyword that extra_config sets is left out; extra_config goes last so it may end in Match
    blocks."""
    overridden = _configured_keys(extra_config)
    lines = [
        line
        for line in _sshd_defaults(directory, listen, host_keys)
        if line.split()[0].lower() not in overridden
    ]
    return "\n".join([*lines, extra_config.strip()]).strip() + "\n"


def start_sshd(
    where: Where,
    port: int | Sequence[int] = 22,
    *,
    addresses: Sequence[str] | None = None,
    extra_config: str = "",
    host_keys: Sequence[Path] | None = None,
    name: str = "sshd",
    workdir: Path | None = None,
    ready_timeout: float = READY_TIMEOUT,
) -> Daemon:
    """OpenSSH sshd in the foreground (-D), logging to its own file (-E), never using /etc/ssh."""
    place, owned = resolve_place(where, addresses, workdir)
    directory = _private_dir(place, name)
    ports = _as_ports(port)
    keys = list(host_keys or ssh_host_keys(place.workdir / "ssh-hostkeys"))
    listen = [endpoint_str(a, p) for p in ports for a in place.addresses]
    config = directory / "sshd_config"
    config.write_text(sshd_config(directory, listen, keys, extra_config))
    # sshd refuses to start without its privilege separation directory; Debian creates it only
    # from the systemd unit, which is not running here.
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    log = directory / "sshd.log"
    return _launch(
        place,
        name,
        [SSHD, "-D", "-f", config, "-E", log],
        ports,
        directory,
        owned_workdir=place.workdir if owned else None,
        log_path=log,
        files={"config": config},
        ready_timeout=ready_timeout,
    )


# --- nginx -----------------------------------------------------------------------------------

DEFAULT_PAGE = """<!DOCTYPE html>
<html><head><title>Exposure Lab Home</title></head>
<body><h1>It works</h1><p>The exposure test lab's home web server.</p></body></html>
"""

# One JSON object per request, so tests can check exactly what the scanner sent.
ACCESS_LOG_FORMAT = (
    '{"time":"$time_iso8601","remote_addr":"$remote_addr","server_port":"$server_port",'
    '"method":"$request_method","uri":"$request_uri","protocol":"$server_protocol",'
    '"status":"$status","user_agent":"$http_user_agent","host":"$host",'
    '"tls_protocol":"$ssl_protocol","sni":"$ssl_server_name"}'
)


@dataclass(frozen=True)
class NginxSite:
    """One nginx server block: plain HTTP, or TLS when `tls` holds a certificate."""

    port: int
    tls: Issued | None = None
    server_name: str = "_"
    pages: Mapping[str, str | bytes] = field(default_factory=lambda: {"index.html": DEFAULT_PAGE})
    protocols: str = "TLSv1.2 TLSv1.3"
    ciphers: str | None = None  # OpenSSL cipher string; add @SECLEVEL=0 for legacy protocols
    http2: bool = False
    send_chain: bool = True  # False serves the leaf alone (an incomplete chain)
    extra: str = ""  # raw directives inside server { }, e.g. location blocks or add_header


def _write_pages(root: Path, pages: Mapping[str, str | bytes]) -> None:
    for rel, body in pages.items():
        path = root / rel.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(body, str):
            path.write_text(body)
        else:
            path.write_bytes(body)


def _nginx_server(site: NginxSite, addresses: Sequence[str], root: Path, default: bool) -> str:
    flags = [
        flag
        for flag, on in (("ssl", site.tls), ("http2", site.http2), ("default_server", default))
        if on
    ]
    lines = [" ".join(["listen", endpoint_str(a, site.port), *flags]) + ";" for a in addresses]
    lines += [f"server_name {site.server_name};", f"root {root};", "index index.html;"]
    if site.tls:
        cert = site.tls.chain_path if site.send_chain else site.tls.cert_path
        lines += [
            f"ssl_certificate {cert};",
            f"ssl_certificate_key {site.tls.key_path};",
            f"ssl_protocols {site.protocols};",
        ]
        if site.ciphers:
            lines.append(f"ssl_ciphers {site.ciphers};")
    body = "\n        ".join([*lines, *site.extra.strip().splitlines()])
    return f"    server {{\n        {body}\n    }}"


def nginx_config(directory: Path, sites: Sequence[NginxSite], addresses: Sequence[str]) -> str:
    """nginx.conf whose every path (pid, logs, temp dirs, docroots) is inside `directory`."""
    servers, seen_ports = [], set()
    for i, site in enumerate(sites):
        root = directory / "www" / f"{site.port}-{i}"
        _write_pages(root, site.pages)
        servers.append(_nginx_server(site, addresses, root, default=site.port not in seen_ports))
        seen_ports.add(site.port)
    temp = directory / "temp"
    temp.mkdir(exist_ok=True)  # nginx creates the leaf dirs, not their parent
    temp_dirs = "\n".join(
        f"    {kind}_temp_path {temp / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    server_blocks = "\n".join(servers)
    # user root: workers must read docroots and keys inside the 0700 temp dir.
    return f"""user root;
worker_processes 1;
pid {directory / "nginx.pid"};
error_log {directory / "error.log"} info;
events {{ worker_connections 1024; }}
http {{
    types {{ text/html html; text/plain txt; application/json json; text/css css; }}
    default_type application/octet-stream;
    log_format lab escape=json '{ACCESS_LOG_FORMAT}';
    access_log {directory / "access.log"} lab;
{temp_dirs}
    keepalive_timeout 5;
{server_blocks}
}}
"""


def start_nginx(
    where: Where,
    sites: Sequence[NginxSite],
    *,
    addresses: Sequence[str] | None = None,
    name: str = "nginx",
    workdir: Path | None = None,
    ready_timeout: float = READY_TIMEOUT,
) -> Daemon:
    """One nginx (master + 1 worker, foreground) serving every site; config entirely in its dir."""
    if not sites:
        raise ValueError("start_nginx needs at least one site")
    place, owned = resolve_place(where, addresses, workdir)
    directory = _private_dir(place, name)
    config = directory / "nginx.conf"
    config.write_text(nginx_config(directory, sites, place.addresses))
    error_log = directory / "error.log"
    # -e: without it nginx opens /var/log/nginx/error.log before it has read our config.
    argv = [NGINX, "-p", directory, "-c", config, "-e", error_log, "-g", "daemon off;"]
    files = {"config": config, "access_log": directory / "access.log", "error_log": error_log}
    ports = list(dict.fromkeys(site.port for site in sites))
    return _launch(
        place,
        name,
        argv,
        ports,
        directory,
        owned_workdir=place.workdir if owned else None,
        log_path=directory / "nginx.out",
        files=files,
        ready_timeout=ready_timeout,
    )


def read_access_log(daemon: Daemon) -> list[dict[str, Any]]:
    """The requests an nginx daemon has logged so far, oldest first."""
    path = daemon.files["access_log"]
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# --- mosquitto -------------------------------------------------------------------------------


def start_mosquitto(
    where: Where,
    port: int = 1883,
    *,
    allow_anonymous: bool = True,
    addresses: Sequence[str] | None = None,
    password_file: Path | None = None,
    extra_config: str = "",
    name: str = "mosquitto",
    workdir: Path | None = None,
    ready_timeout: float = READY_TIMEOUT,
) -> Daemon:
    """Mosquitto on `port`; allow_anonymous=False without a password file refuses every client."""
    place, owned = resolve_place(where, addresses, workdir)
    directory = _private_dir(place, name)
    log = directory / "mosquitto.log"
    lines = [
        "per_listener_settings false",
        f"allow_anonymous {'true' if allow_anonymous else 'false'}",
        "persistence false",
        "user root",  # else it drops to the mosquitto user, who cannot write our 0700 temp dir
        f"log_dest file {log}",
        "log_type all",
        "connection_messages true",
        *(f"listener {port} {address}" for address in place.addresses),
    ]
    if password_file:
        lines.append(f"password_file {password_file}")
    config = directory / "mosquitto.conf"
    config.write_text("\n".join([*lines, extra_config.strip()]).strip() + "\n")
    return _launch(
        place,
        name,
        [MOSQUITTO, "-c", config],
        [port],
        directory,
        owned_workdir=place.workdir if owned else None,
        log_path=log,
        files={"config": config},
        ready_timeout=ready_timeout,
    )


# --- Dropbear --------------------------------------------------------------------------------


def dropbear_host_keys(directory: Path, types: Sequence[str] = ("ed25519", "rsa")) -> list[Path]:
    """Dropbear host keys (its own format), generated with dropbearkey unless already there."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / f"dropbear_{kind}_host_key" for kind in types]
    _generate_missing(
        {path: [DROPBEARKEY, "-t", kind, "-f", str(path),
                *(["-s", "2048"] if kind == "rsa" else [])]
         for kind, path in zip(types, paths, strict=True)},
        "dropbearkey",
    )
    return paths


def start_dropbear(
    where: Where,
    port: int = 2022,
    *,
    addresses: Sequence[str] | None = None,
    key_types: Sequence[str] = ("ed25519", "rsa"),
    extra_args: Sequence[str] = (),
    name: str = "dropbear",
    workdir: Path | None = None,
    ready_timeout: float = READY_TIMEOUT,
) -> Daemon:
    """Dropbear in the foreground (-F) logging to stderr (-E), captured in its log file."""
    place, owned = resolve_place(where, addresses, workdir)
    directory = _private_dir(place, name)
    keys = dropbear_host_keys(directory, key_types)
    argv: list[str | os.PathLike[str]] = [DROPBEAR, "-F", "-E", "-P", directory / "dropbear.pid"]
    for key in keys:
        argv += ["-r", key]
    for address in place.addresses:
        argv += ["-p", endpoint_str(address, port)]
    argv += list(extra_args)
    return _launch(
        place,
        name,
        argv,
        [port],
        directory,
        owned_workdir=place.workdir if owned else None,
        ready_timeout=ready_timeout,
    )


# --- tarpit ----------------------------------------------------------------------------------


def start_tarpit(
    where: Where,
    address: str,
    port: int,
    *,
    name: str = "tarpit",
    workdir: Path | None = None,
    ready_timeout: float = READY_TIMEOUT,
) -> Daemon:
    """A listener that accepts and holds connections and never sends a byte (see tarpit.py)."""
    place, owned = resolve_place(where, [address], workdir)
    directory = _private_dir(place, name)
    argv = [sys.executable, TARPIT_SCRIPT, address, str(port)]
    return _launch(
        place,
        name,
        argv,
        [port],
        directory,
        owned_workdir=place.workdir if owned else None,
        ready_timeout=ready_timeout,
    )
