"""Lab servers for the service catalogue (issue 7): real daemons, each open or locked down.

Every factory returns a `Service` for `Lab(services=[...])` / `lab.add_service(...)`, started in
the lab's home namespace with all its files in the lab's tmpdir (nothing under /etc is used or
written). Debian packages: mosquitto, redis-server, memcached, tigervnc-standalone-server,
tigervnc-tools, inetutils-telnetd, unbound, ntpsec, snmpd, miniupnpd, avahi-daemon, openvpn,
influxdb, samba, gir1.2-gst-rtsp-server-1.0, python3-gi, gstreamer1.0-plugins-base,
gstreamer1.0-plugins-good. PyPI: zeroconf (an mDNS responder as HA runs it). npm: node-red
(tests/lab/npm, installed into .lab-cache/npm: see tests/lab/npm/README.md).

UDP: the lab's home firewall drops UDP; `open_udp()` adds an ACCEPT for one UDP port (a UDP
service's factory does it itself).

Products that cannot run here are served by `replay_server()` from fixtures/services/*.json
(each fixture says where its answers come from).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .daemons import Daemon, NginxSite, Place, _launch, _private_dir, start_mosquitto, start_nginx
from .nsutil import LabError, run_checked, wait_for_tcp
from .services import Service

if TYPE_CHECKING:
    from .netns import Lab

ROOT = Path(__file__).resolve().parents[2]
NODE_RED_DIR = Path(os.environ.get("EXPOSURE_LAB_NPM", ROOT / ".lab-cache" / "npm"))
NODE_RED_JS = NODE_RED_DIR / "node_modules" / "node-red" / "red.js"
FIXTURES = ROOT / "fixtures" / "services"

REDIS = "/usr/bin/redis-server"
MEMCACHED = "/usr/bin/memcached"
XVNC = "/usr/bin/Xvnc"
VNCPASSWD = "/usr/bin/vncpasswd"
TELNETD = "/usr/sbin/telnetd"
UNBOUND = "/usr/sbin/unbound"
NTPD = "/usr/sbin/ntpd"
SNMPD = "/usr/sbin/snmpd"
MINIUPNPD = "/usr/sbin/miniupnpd"
AVAHI = "/usr/sbin/avahi-daemon"
OPENVPN = "/usr/sbin/openvpn"
INFLUXD = "/usr/bin/influxd"
SMBD = "/usr/sbin/smbd"
MOSQUITTO_PASSWD = "/usr/bin/mosquitto_passwd"
NODE = shutil.which("node") or "/usr/bin/node"


def v4(lab: Lab) -> Place:
    """The lab's home place, IPv4 only (for daemons that bind one address)."""
    return Place(lab.home_ns, (lab.HOME_V4,), lab.tmpdir)


# --- firewall: UDP ---------------------------------------------------------------------------


def open_udp(lab: Lab, port: int) -> None:
    """Accept UDP `port` on HOME_V4/HOME_V6 (the lab's router drops UDP otherwise)."""
    for binaries in (("iptables", "ip6tables"), ("iptables-legacy", "ip6tables-legacy")):
        try:
            for binary, home in zip(binaries, (lab.HOME_V4, lab.HOME_V6), strict=True):
                run_checked([binary, "-A", "EXP-OPEN", "-d", home, "-p", "udp", "--dport",
                             str(port), "-j", "ACCEPT"], netns=lab.home_ns)
            return
        except (LabError, FileNotFoundError):
            continue
    raise LabError(f"could not open UDP port {port} in the lab firewall")


# --- MQTT ------------------------------------------------------------------------------------


def mosquitto_locked(port: int = 1883, *, name: str = "mosquitto-locked") -> Service:
    """mosquitto with allow_anonymous false and a password file (one user, never used)."""

    def start(lab: Lab) -> list[Daemon]:
        directory = lab.tmpdir / f"{name}-auth"
        directory.mkdir(exist_ok=True)
        passwords = directory / "passwd"
        passwords.write_text("")
        run_checked([MOSQUITTO_PASSWD, "-b", str(passwords), "lab-user", secrets.token_hex(8)])
        return [start_mosquitto(lab, port, allow_anonymous=False, password_file=passwords,
                                name=name)]

    return Service(name, {port: "mosquitto (password_file, no anonymous)"}, start)


def mosquitto_websockets(port: int = 9001, *, anonymous: bool = True,
                         name: str = "mosquitto-ws") -> Service:
    """mosquitto with one websockets listener (and its TCP listener on loopback only)."""

    def start(lab: Lab) -> list[Daemon]:
        listeners = "".join(
            f"listener {port} {address}\nprotocol websockets\n" for address in (lab.HOME_V4,)
        )
        return [start_mosquitto(lab, 18830, name=name, addresses=["127.0.0.1"],
                                allow_anonymous=anonymous, extra_config=listeners)]

    return Service(name, {port: "mosquitto MQTT over websockets"}, start)


def mosquitto_tls(port: int = 8883, *, anonymous: bool = True,
                  name: str = "mosquitto-tls") -> Service:
    """mosquitto with one TLS listener (the lab CA's certificate for home.lab)."""

    def start(lab: Lab) -> list[Daemon]:
        cert = lab.home_cert
        assert cert is not None
        listeners = "".join(
            f"listener {port} {address}\ncertfile {cert.chain_path}\nkeyfile {cert.key_path}\n"
            for address in lab.place.addresses
        )
        return [start_mosquitto(lab, 18831, name=name, addresses=["127.0.0.1"],
                                allow_anonymous=anonymous, extra_config=listeners)]

    return Service(name, {port: "mosquitto MQTT over TLS"}, start)


# --- Redis -----------------------------------------------------------------------------------


def redis(port: int = 6379, *, password: str | None = None, protected_mode: bool = False,
          name: str | None = None) -> Service:
    """redis-server: no password and protected mode off (open), or requirepass (locked)."""
    name = name or f"redis-{port}"

    def start(lab: Lab) -> list[Daemon]:
        directory = _private_dir(lab.place, name)
        lines = [
            f"port {port}",
            f"bind {' '.join(lab.place.addresses)}",
            f"protected-mode {'yes' if protected_mode else 'no'}",
            "daemonize no",
            f"dir {directory}",
            'save ""',
            "appendonly no",
            'logfile ""',
            "loglevel verbose",
        ]
        if password:
            lines.append(f"requirepass {password}")
        config = directory / "redis.conf"
        config.write_text("\n".join(lines) + "\n")
        return [_launch(lab.place, name, [REDIS, config], [port], directory,
                        files={"config": config})]

    what = "requirepass" if password else "no password, protected-mode off"
    return Service(name, {port: f"redis ({what})"}, start)


def redis_cli(lab: Lab, port: int, *args: str, password: str | None = None) -> str:
    """A redis-cli command from inside home (the lab admin's view, not the scanner's)."""
    argv = ["redis-cli", "-h", lab.HOME_V4, "-p", str(port)]
    if password:
        argv += ["--no-auth-warning", "-a", password]
    done = lab.run_in_home([*argv, *args], capture_output=True, text=True, timeout=10,
                           check=True)
    return done.stdout


# --- memcached -------------------------------------------------------------------------------


def memcached(port: int = 11211, *, auth: bool = False, udp_port: int = 0,
              name: str | None = None) -> Service:
    """memcached: open (stats for anyone), or with an ASCII auth file (-Y)."""
    name = name or f"memcached-{port}"

    def start(lab: Lab) -> list[Daemon]:
        directory = _private_dir(lab.place, name)
        argv = [MEMCACHED, "-u", "root", "-p", str(port), "-U", str(udp_port),
                "-l", ",".join(lab.place.addresses), "-vv"]
        if auth:
            authfile = directory / "auth"
            authfile.write_text(f"lab-user:{secrets.token_hex(8)}\n")
            argv += ["-Y", str(authfile)]
        if udp_port:
            open_udp(lab, udp_port)
        return [_launch(lab.place, name, argv, [port], directory)]

    what = "ASCII auth file" if auth else "no authentication"
    return Service(name, {port: f"memcached ({what})"}, start)


# --- VNC -------------------------------------------------------------------------------------


def xvnc(port: int = 5900, *, password: bool = False, security: str | None = None,
         name: str | None = None) -> Service:
    """TigerVNC's Xvnc (a headless X server): SecurityTypes None, or VncAuth with a password,
    or `security` given as is (e.g. "TLSNone": VeNCrypt with no authentication inside)."""
    name = name or f"xvnc-{port}"

    def start(lab: Lab) -> list[Daemon]:
        place = v4(lab)
        directory = _private_dir(place, name)
        display = f":{secrets.randbelow(400) + 100}"
        argv = [XVNC, display, "-rfbport", str(port), "-interface", lab.HOME_V4,
                "-nolisten", "tcp", "-nolisten", "unix", "-geometry", "320x200", "-depth", "16"]
        if password:
            passfile = directory / "passwd"
            done = subprocess.run([VNCPASSWD, "-f"], input=secrets.token_hex(4).encode(),
                                  capture_output=True, check=True)
            passfile.write_bytes(done.stdout)
            passfile.chmod(0o600)
            argv += ["-SecurityTypes", "VncAuth", "-PasswordFile", str(passfile)]
        else:
            argv += ["-SecurityTypes", security or "None"]
        return [_launch(place, name, argv, [port], directory)]

    what = "VncAuth password" if password else f"SecurityTypes {security or 'None'}"
    return Service(name, {port: f"Xvnc ({what})"}, start)


# --- Telnet ----------------------------------------------------------------------------------

# inetd in miniature: accept, and run telnetd on each connection with the socket as its
# stdin/stdout (how inetd starts it). One file, started with the system python.
INETD = r"""
import os, socket, subprocess, sys
address, port, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind((address, port))
listener.listen(16)
while True:
    conn, peer = listener.accept()
    print("connection from", peer, flush=True)
    subprocess.Popen(argv, stdin=conn.fileno(), stdout=conn.fileno(), stderr=subprocess.DEVNULL,
                     close_fds=True, start_new_session=True)
    conn.close()
"""

SHELL_SCRIPT = """#!/bin/sh
# The "open" telnet: an interactive shell as nobody, no login (what a misconfigured device does)
exec setpriv --reuid=nobody --regid=nogroup --clear-groups env PS1='lab$ ' HOME=/ /bin/sh -i
"""


def telnetd(port: int = 2323, *, shell: bool = False, name: str | None = None) -> Service:
    """inetutils telnetd: /bin/login (a login prompt), or -E a shell without login."""
    name = name or f"telnetd-{port}"

    def start(lab: Lab) -> list[Daemon]:
        place = v4(lab)
        directory = _private_dir(place, name)
        script = directory / "inetd.py"
        script.write_text(INETD)
        argv = [sys.executable, str(script), lab.HOME_V4, str(port), TELNETD, "-h"]
        if shell:
            login = directory / "shell.sh"
            login.write_text(SHELL_SCRIPT)
            login.chmod(0o755)
            argv += ["-E", str(login)]
        return [_launch(place, name, argv, [port], directory)]

    what = "shell without login" if shell else "/bin/login prompt"
    return Service(name, {port: f"telnetd ({what})"}, start)


# --- RTSP (GStreamer's RTSP server library) -------------------------------------------------

# A camera in miniature: GstRtspServer serving a live test tone at the server's root URL,
# open or with Basic auth (a user whose password nobody uses). Runs on the system python3,
# which has the GObject bindings (Debian: python3-gi, gir1.2-gst-rtsp-server-1.0).
RTSP_SERVER = r"""
import sys
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer
Gst.init(None)
address, port, mode = sys.argv[1], sys.argv[2], sys.argv[3]
server = GstRtspServer.RTSPServer()
server.set_address(address)
server.set_service(port)
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch("( audiotestsrc is-live=true ! audioconvert ! rtpL16pay name=pay0 pt=96 )")
factory.set_shared(True)
if mode == "auth":
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string("media.factory.role", "user")
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic("user", sys.argv[4]), token)
    server.set_auth(auth)
    permissions = GstRtspServer.RTSPPermissions()
    permissions.add_role("user")
    permissions.add_permission_for_role("user", "media.factory.access", True)
    permissions.add_permission_for_role("user", "media.factory.construct", True)
    factory.set_permissions(permissions)
server.get_mount_points().add_factory("/", factory)
server.attach(None)
print("listening", flush=True)
GLib.MainLoop().run()
"""
SYSTEM_PYTHON = "/usr/bin/python3"


def rtsp_server(port: int = 8554, *, auth: bool = False, name: str | None = None) -> Service:
    """GStreamer's RTSP server with a stream at "/": open, or Basic auth required."""
    name = name or f"rtsp-{port}"

    def start(lab: Lab) -> list[Daemon]:
        place = v4(lab)
        directory = _private_dir(place, name)
        script = directory / "rtsp_server.py"
        script.write_text(RTSP_SERVER)
        argv = [SYSTEM_PYTHON, str(script), lab.HOME_V4, str(port),
                "auth" if auth else "open", secrets.token_hex(8)]
        return [_launch(place, name, argv, [port], directory)]

    what = "Basic auth" if auth else "no auth"
    return Service(name, {port: f"GStreamer RTSP server ({what})"}, start)


# --- Node-RED --------------------------------------------------------------------------------

NODE_RED_SETTINGS = """module.exports = {{
    uiHost: "{host}",
    uiPort: {port},
    flowFile: "flows.json",
    userDir: "{user_dir}",
    credentialSecret: "{secret}",
    logging: {{ console: {{ level: "info", metrics: false, audit: true }} }},
    editorTheme: {{ projects: {{ enabled: false }}, tours: false }},
    telemetry: {{ enabled: false }},
    diagnostics: {{ enabled: false }},
    externalModules: {{ autoInstall: false, palette: {{ allowInstall: false }} }},
{admin_auth}}};
"""
# bcrypt of a random password that was thrown away (nobody can log in): adminAuth only has to exist.
NODE_RED_ADMIN = """    adminAuth: {
        type: "credentials",
        users: [{ username: "admin",
                  password: "$2b$08$BAtcbc4jtfiTii/GrNIcLu1eAA/Nd/Q6GZsrZumklLAL66/rCDK/q",
                  permissions: "*" }]
    },
"""


def node_red_installed() -> bool:
    return NODE_RED_JS.is_file()


def node_red(port: int = 1880, *, admin_auth: bool = False, name: str | None = None) -> Service:
    """Node-RED 4 from npm: no adminAuth (open), or adminAuth credentials (locked)."""
    name = name or f"node-red-{port}"

    def start(lab: Lab) -> list[Daemon]:
        if not node_red_installed():
            raise LabError(f"Node-RED is not installed at {NODE_RED_JS}: "
                           "see tests/lab/npm/README.md")
        place = v4(lab)
        directory = _private_dir(place, name)
        user_dir = directory / "user"
        user_dir.mkdir()
        settings = directory / "settings.js"
        settings.write_text(NODE_RED_SETTINGS.format(
            host=lab.HOME_V4, port=port, user_dir=user_dir, secret=secrets.token_hex(8),
            admin_auth=NODE_RED_ADMIN if admin_auth else "",
        ))
        (user_dir / "flows.json").write_text("[]")
        argv = [NODE, str(NODE_RED_JS), "--settings", str(settings), "--userDir", str(user_dir)]
        return [_launch(place, name, argv, [port], directory, ready_timeout=30.0)]

    what = "adminAuth" if admin_auth else "no adminAuth"
    return Service(name, {port: f"Node-RED ({what})"}, start)


# --- ESPHome dashboard (PyPI, in its own venv: it is heavy) -------------------------------------

ESPHOME_VENV = Path(os.environ.get("EXPOSURE_LAB_ESPHOME", ROOT / ".lab-cache" / "esphome-venv"))
ESPHOME = ESPHOME_VENV / "bin" / "esphome"


def esphome_installed() -> bool:
    return ESPHOME.is_file()


def esphome_dashboards(open_port: int = 6052, locked_port: int = 6053,
                       name: str = "esphome") -> Service:
    """Two ESPHome dashboards started side by side (each takes seconds to import): one with
    no credentials (open), one with --username/--password (a password nobody uses)."""

    def start(lab: Lab) -> list[Daemon]:
        if not esphome_installed():
            raise LabError(f"ESPHome is not installed at {ESPHOME}: see tests/lab/npm/README.md")
        place = v4(lab)
        pending = []
        for port, locked in ((open_port, False), (locked_port, True)):
            directory = _private_dir(place, f"{name}-{port}")
            (directory / "config").mkdir()
            argv = [str(ESPHOME), "dashboard", str(directory / "config"),
                    "--address", lab.HOME_V4, "--port", str(port)]
            if locked:
                argv += ["--username", "admin", "--password", secrets.token_hex(12)]
            log_path = directory / "esphome.log"
            with open(log_path, "ab") as log:
                proc = subprocess.Popen(
                    ["ip", "netns", "exec", lab.home_ns, *argv], stdin=subprocess.DEVNULL,
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                )
            daemon = Daemon(f"{name}-{port}", proc, lab.home_ns, ((lab.HOME_V4, port),),
                            log_path, directory)
            lab.track(daemon)
            pending.append(daemon)
        for daemon in pending:
            missing = wait_for_tcp(lab.home_ns, daemon.endpoints, 60.0,
                                   alive=lambda daemon=daemon: daemon.alive)
            if missing is not None:
                raise LabError(f"{daemon.name} did not start:\n{daemon.log_tail()}")
        return []

    return Service(name, {open_port: "ESPHome dashboard (no password)",
                          locked_port: "ESPHome dashboard (username/password)"}, start)


# --- nginx that answers the same to everything -----------------------------------------------

CATCH_ALL_PAGE = """<!doctype html><html><head><title>Welcome</title></head>
<body><h1>Welcome</h1><p>Every path shows this page.</p></body></html>
"""


def nginx_catch_all(port: int, *, status: int = 200, name: str | None = None,
                    title: str = "Welcome") -> Service:
    """nginx answering every GET with the same page (200), or 401 + Basic to everything."""
    name = name or f"nginx-catchall-{status}-{port}"

    def start(lab: Lab) -> list[Daemon]:
        page = CATCH_ALL_PAGE.replace("Welcome", title)
        if status == 401:
            htpasswd = lab.tmpdir / f"{name}.htpasswd"
            htpasswd.write_text("nobody:$apr1$invalid$invalidinvalidinvalid0\n")
            extra = (f'location / {{ auth_basic "lab"; auth_basic_user_file {htpasswd}; '
                     "try_files /index.html =404; }")
        else:
            extra = "location / { try_files /index.html =404; }"
        site = NginxSite(port, pages={"index.html": page}, extra=extra)
        return [start_nginx(lab, [site], name=name)]

    return Service(name, {port: f"nginx answering {status} to every path"}, start)


# --- InfluxDB (Debian's influxdb 1.6) ---------------------------------------------------------

INFLUX_CONF = """reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"
[meta]
  dir = "{dir}/meta"
[data]
  dir = "{dir}/data"
  wal-dir = "{dir}/wal"
[http]
  enabled = true
  bind-address = "{host}:{port}"
  auth-enabled = {auth}
  log-enabled = true
"""


def influxdb(port: int = 8086, *, auth: bool = False, name: str | None = None) -> Service:
    """influxd 1.x: auth-enabled false (open) or true with an admin user (locked)."""
    name = name or f"influxdb-{port}"

    def start(lab: Lab) -> list[Daemon]:
        place = v4(lab)
        directory = _private_dir(place, name)
        config = directory / "influxdb.conf"
        config.write_text(INFLUX_CONF.format(
            rpc_port=18088 + secrets.randbelow(1000), dir=directory, host=lab.HOME_V4,
            port=port, auth="true" if auth else "false",
        ))
        daemon = _launch(place, name, [INFLUXD, "-config", str(config)], [port], directory,
                         ready_timeout=30.0)
        if auth:  # the first admin may be created while none exists: the lab admin does it
            query = f"CREATE USER admin WITH PASSWORD '{secrets.token_hex(8)}' WITH ALL PRIVILEGES"
            lab.run_in_home(
                ["curl", "-sS", "-XPOST", f"http://{lab.HOME_V4}:{port}/query",
                 "--data-urlencode", f"q={query}"],
                capture_output=True, check=True, timeout=10,
            )
        return [daemon]

    what = "auth-enabled with an admin" if auth else "auth-enabled false"
    return Service(name, {port: f"InfluxDB ({what})"}, start)


# --- SMB (Samba) -------------------------------------------------------------------------------

SMB_CONF = """[global]
  server role = standalone server
  interfaces = {host}
  bind interfaces only = yes
  smb ports = {port}
  disable netbios = yes
  server min protocol = SMB2_02
  pid directory = {dir}
  lock directory = {dir}/lock
  state directory = {dir}/state
  cache directory = {dir}/cache
  private dir = {dir}/private
  ncalrpc dir = {dir}/ncalrpc
  log file = {dir}/smbd.log
  log level = 2
  map to guest = never
  load printers = no
  printing = bsd
  printcap name = /dev/null
[share]
  path = {dir}/share
  read only = yes
"""


def samba(port: int = 445, *, name: str | None = None) -> Service:
    """smbd in the foreground with a private config (one read-only share, no guest)."""
    name = name or f"smbd-{port}"

    def start(lab: Lab) -> list[Daemon]:
        place = v4(lab)
        directory = _private_dir(place, name)
        for sub in ("lock", "state", "cache", "private", "ncalrpc", "share"):
            (directory / sub).mkdir()
        config = directory / "smb.conf"
        config.write_text(SMB_CONF.format(host=lab.HOME_V4, port=port, dir=directory))
        argv = [SMBD, "--foreground", "--no-process-group", "--debug-stdout", "-s", str(config)]
        return [_launch(place, name, argv, [port], directory, ready_timeout=20.0)]

    return Service(name, {port: "Samba smbd"}, start)


# --- replayed products (fixtures) ---------------------------------------------------------------

REPLAY = r"""
import json, socket, sys, threading, base64, hashlib, struct
fixture = json.load(open(sys.argv[3]))
responses = fixture.get("responses", {})
default = fixture.get("default", {"status": 404, "headers": {"Content-Type": "text/plain"},
                                   "body": "404 page not found\n"})
log = open(sys.argv[4], "a", buffering=1)
MAGIC = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

def answer(conn, entry):
    body = entry.get("body", "")
    data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    if "body_hex" in entry:
        data = bytes.fromhex(entry["body_hex"])
    head = ["HTTP/1.1 %d %s" % (entry["status"], entry.get("reason", "X"))]
    for name, value in entry.get("headers", {}).items():
        head.append("%s: %s" % (name, value))
    if entry["status"] not in (101, 204, 304):
        head.append("Content-Length: %d" % len(data))
    head.append("Connection: close")
    conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + data)

def websocket(conn, request, entry):
    keys = [line.split(":", 1)[1].strip() for line in request.split("\r\n")
            if line.lower().startswith("sec-websocket-key:")]
    digest = hashlib.sha1((keys[0] if keys else "").encode() + MAGIC).digest()
    accept = base64.b64encode(digest).decode()
    conn.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n" % accept).encode())
    if "close" in entry:
        payload = struct.pack("!H", entry["close"]) + entry.get("reason", "").encode()
        conn.sendall(bytes([0x88, len(payload)]) + payload)
    else:
        payload = entry["text"].encode()
        if len(payload) < 126:
            header = bytes([0x81, len(payload)])
        else:
            header = bytes([0x81, 126]) + struct.pack("!H", len(payload))
        conn.sendall(header + payload)

def binary(conn, data):
    for rule in fixture.get("binary", []):
        if bytes.fromhex(rule["contains_hex"]) in data:
            conn.sendall(bytes.fromhex(rule["reply_hex"]))
            return True
    return False

def serve(conn):
    try:
        conn.settimeout(5)
        while True:
            data = conn.recv(65536)
            if not data:
                return
            text = data.decode("latin-1")
            line = text.split("\r\n", 1)[0]
            parts = line.split(" ")
            if len(parts) == 3 and parts[2].startswith("HTTP/"):
                log.write(json.dumps({"method": parts[0], "uri": parts[1]}) + "\n")
                key = parts[0] + " " + parts[1]
                if "upgrade: websocket" in text.lower() and key in fixture.get("websocket", {}):
                    websocket(conn, text, fixture["websocket"][key])
                    conn.recv(4096)
                else:
                    answer(conn, responses.get(key, default))
                return
            log.write(json.dumps({"binary": data[:64].hex()}) + "\n")
            if not binary(conn, data):
                return
    except OSError:
        pass
    finally:
        conn.close()

listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind((sys.argv[1], int(sys.argv[2])))
listener.listen(32)
while True:
    conn, _ = listener.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""


def fixture_path(name: str) -> Path:
    return FIXTURES / f"{name}.json"


def load_fixture(name: str) -> dict[str, object]:
    return json.loads(fixture_path(name).read_text())


def replay_server(fixture: str, port: int, *, name: str | None = None) -> Service:
    """A tiny server answering with a fixture's recorded (or reconstructed) responses."""
    name = name or f"replay-{fixture}-{port}"

    def start(lab: Lab) -> list[Daemon]:
        place = v4(lab)
        directory = _private_dir(place, name)
        script = directory / "replay.py"
        script.write_text(REPLAY)
        requests_log = directory / "requests.jsonl"
        argv = [sys.executable, str(script), lab.HOME_V4, str(port), str(fixture_path(fixture)),
                str(requests_log)]
        return [_launch(place, name, argv, [port], directory,
                        files={"requests": requests_log})]

    return Service(name, {port: f"replay of fixtures/services/{fixture}.json"}, start)


def replayed_requests(daemon: Daemon) -> list[dict[str, str]]:
    path = daemon.files["requests"]
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_for_log(daemon: Daemon, needle: str, timeout: float = 5.0) -> str:
    """The daemon's log once it contains `needle` (or as it is when the time is up)."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = daemon.log_path.read_text(errors="replace") if daemon.log_path.exists() else ""
        if needle in text:
            break
        time.sleep(0.05)
    return text


def started(services: Sequence[Service]) -> dict[int, str]:
    return {port: what for service in services for port, what in service.ports.items()}


# --- running the services check itself inside the scan namespace -----------------------------

CHECK_ONE = r"""
import ipaddress, json, sys, time
from scanner.checks.base import CheckContext, standalone_context, CheckOptions
from scanner.checks.services.check import CHECK
from scanner.identification.model import ServiceIdentity
from scanner.targets import Target
args = json.loads(sys.argv[1])
address = ipaddress.ip_address(args["address"])
target = Target(input=args["address"], address=address, hostname=args.get("hostname"))
identity = ServiceIdentity(service=args.get("service"), tls=args.get("tls", False),
                           banner=args.get("banner"), details=args.get("details", {}))
context = standalone_context(target, args["port"], identity, CheckOptions(),
                             timeout=args.get("timeout", 3.0))
started = time.monotonic()
applies = CHECK.applies(context)
result = CHECK.run(context) if applies else None
print(json.dumps({
    "applies": applies,
    "seconds": time.monotonic() - started,
    "findings": [f.to_dict() for f in result.findings] if result else [],
    "details": result.details if result else {},
    "notes": list(result.notes) if result else [],
}, default=str))
"""


def check_port(lab: Lab, port: int, *, service: str | None = None, tls: bool = False,
               banner: str | None = None, details: dict[str, object] | None = None,
               address: str | None = None, timeout: float = 3.0) -> dict[str, object]:
    """Run the services check on one port from the scan namespace, with the identity given
    (what identification would have said); returns findings, details, notes and seconds."""
    args = {"address": address or lab.HOME_V4, "port": port, "service": service, "tls": tls,
            "banner": banner, "details": details or {}, "timeout": timeout}
    done = lab.run_in_scan([sys.executable, "-c", CHECK_ONE, json.dumps(args)],
                           capture_output=True, text=True, timeout=60, cwd=ROOT)
    if done.returncode != 0:
        raise LabError(f"services check failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


# --- UDP daemons ------------------------------------------------------------------------------


def _udp_listening(lab: Lab, port: int) -> bool:
    done = lab.run_in_home(["ss", "-Hlun", f"sport = :{port}"], capture_output=True, text=True,
                           check=False)
    return bool(done.stdout.strip())


def launch_udp(lab: Lab, name: str, argv: Sequence[str | os.PathLike[str]], udp_port: int,
               directory: Path, *, ready_timeout: float = 15.0) -> Daemon:
    """Start a UDP-only daemon in home and wait until something listens on `udp_port`."""
    log_path = directory / f"{name}.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [*("ip", "netns", "exec", lab.home_ns), *map(str, argv)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    daemon = Daemon(name, proc, lab.home_ns, (), log_path, directory)
    lab.track(daemon)
    deadline = time.monotonic() + ready_timeout
    while not _udp_listening(lab, udp_port):
        if not daemon.alive or time.monotonic() > deadline:
            daemon.stop()
            raise LabError(f"{name} is not listening on UDP {udp_port}:\n{daemon.log_tail()}")
        time.sleep(0.05)
    return daemon


def udp_service(name: str, udp_port: int, description: str, start_daemon, *,
                firewall_open: bool = True) -> Service:
    """A Service with no TCP port: it opens its UDP port in the firewall and starts the daemon.

    firewall_open=False leaves the router dropping the port: the service runs, unreachable."""

    def start(lab: Lab) -> list[Daemon]:
        if firewall_open:
            open_udp(lab, udp_port)
        start_daemon(lab)  # tracked by the lab itself (launch_udp)
        return []

    return Service(name, {}, start)


UNBOUND_CONF = """server:
  interface: {host}
  port: 53
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "{dir}"
  pidfile: "{dir}/unbound.pid"
  use-syslog: no
  logfile: ""
  verbosity: 1
  log-queries: yes
  do-ip6: no
  access-control: 0.0.0.0/0 {access}
  access-control: 127.0.0.0/8 allow
  # Nothing may ever be asked of the internet from the lab: every name outside the local zone
  # gets NXDOMAIN from here, and the lab has no route out anyway.
  local-zone: "." static
  local-zone: "{zone}." static
  local-data: "{zone}. 300 IN A 192.0.2.80"
remote-control:
  control-enable: no
"""
LAB_DNS_NAME = "resolver-test.example"


def unbound(*, open_resolver: bool = True, name: str = "unbound") -> Service:
    """unbound answering LAB_DNS_NAME from a local zone: allowed for everyone (an open resolver)
    or access-control refuse for everyone but localhost (a closed one)."""

    def start_daemon(lab: Lab) -> Daemon:
        directory = _private_dir(lab.place, name)
        config = directory / "unbound.conf"
        config.write_text(UNBOUND_CONF.format(
            host=lab.HOME_V4, dir=directory, access="allow" if open_resolver else "refuse",
            zone=LAB_DNS_NAME,
        ))
        return launch_udp(lab, name, [UNBOUND, "-d", "-c", config], 53, directory)

    what = "open resolver" if open_resolver else "refuses outside clients"
    return udp_service(name, 53, f"unbound ({what})", start_daemon)


NTP_CONF = """# exposure lab: no upstream servers; answers clients as an unsynchronised server.
# ntpsec 1.2.2 answered mode 6 from other hosts only with an explicit network line, so the
# lab's "internet" (203.0.113.0/24) gets its own line.
restrict default kod limited nomodify nopeer noquery
restrict 203.0.113.0 mask 255.255.255.0 nomodify nopeer {noquery}
restrict 127.0.0.1
restrict ::1
"""


def ntpsec(*, noquery: bool = False, name: str = "ntpsec") -> Service:
    """ntpsec's ntpd: mode 6 control queries allowed (open) or `noquery` (the safe default)."""

    def start_daemon(lab: Lab) -> Daemon:
        directory = _private_dir(lab.place, name)
        config = directory / "ntp.conf"
        config.write_text(NTP_CONF.format(noquery="noquery" if noquery else ""))
        argv = [NTPD, "-n", "-c", config, "-l", directory / "ntpd.log", "-p", directory / "pid"]
        return launch_udp(lab, name, argv, 123, directory)

    return udp_service(name, 123, "ntpsec ntpd", start_daemon)


def snmpd(*, public: bool = True, name: str = "snmpd") -> Service:
    """Net-SNMP snmpd: rocommunity public for everyone (open), or a secret community for
    localhost only (requests for "public" are dropped silently)."""

    def start_daemon(lab: Lab) -> Daemon:
        directory = _private_dir(lab.place, name)
        config = directory / "snmpd.conf"
        community = "rocommunity public default" if public else (
            f"rocommunity lab-{secrets.token_hex(6)} 127.0.0.1")
        config.write_text(f"{community}\nsysDescr exposure lab home (Net-SNMP)\n"
                          "sysLocation lab\ndontLogTCPWrappersConnects yes\n")
        argv = ["env", f"SNMP_PERSISTENT_DIR={directory}", SNMPD, "-f", "-Lo", "-C",
                "-c", config, "-p", directory / "pid", f"udp:{lab.HOME_V4}:161"]
        return launch_udp(lab, name, argv, 161, directory)

    return udp_service(name, 161, "snmpd", start_daemon)


MINIUPNPD_CONF = """ext_ifname=lo
listening_ip={interface}
port=0
enable_natpmp=no
enable_upnp=yes
secure_mode=yes
notify_interval=900
uuid=3d3cec3a-8cf0-11e0-98ee-001a6bd2d07b
friendly_name=lab-router
# no client may map any port: the lab only needs the SSDP answers
deny 0-65535 0.0.0.0/0 0-65535
"""


def miniupnpd(*, forwarded: bool = True, name: str = "miniupnpd") -> Service:
    """MiniUPnPd (a router's UPnP IGD) answering SSDP M-SEARCH on UDP 1900 of home's link,
    which plays the internet side here: a router that answers SSDP on its WAN interface.

    forwarded=False: the same daemon, but the router drops UDP 1900 from outside (safe)."""

    def start_daemon(lab: Lab) -> Daemon:
        directory = _private_dir(lab.place, name)
        config = directory / "miniupnpd.conf"
        config.write_text(MINIUPNPD_CONF.format(interface=lab.HOME_IF))
        argv = [MINIUPNPD, "-d", "-4", "-f", config, "-P", directory / "pid"]
        return launch_udp(lab, name, argv, 1900, directory)

    return udp_service(name, 1900, "miniupnpd SSDP", start_daemon, firewall_open=forwarded)


ZEROCONF_RESPONDER = r"""
import socket, sys, time
from zeroconf import IPVersion, ServiceInfo, Zeroconf
address = sys.argv[1]
zc = Zeroconf(interfaces=[address], ip_version=IPVersion.V4Only)
zc.register_service(ServiceInfo(
    "_home-assistant._tcp.local.", "Lab Home._home-assistant._tcp.local.",
    addresses=[socket.inet_aton(address)], port=8123, server="lab-home.local.",
    properties={"version": "2024.1.6", "base_url": "http://lab-home.local:8123"}))
print("registered", flush=True)
while True:
    time.sleep(3600)
"""


def zeroconf_responder(*, forwarded: bool = True, name: str = "zeroconf") -> Service:
    """python-zeroconf (the mDNS library Home Assistant runs) announcing an HA instance; it
    answers legacy unicast queries on UDP 5353 from any source."""

    def start_daemon(lab: Lab) -> Daemon:
        directory = _private_dir(lab.place, name)
        script = directory / "responder.py"
        script.write_text(ZEROCONF_RESPONDER)
        return launch_udp(lab, name, [sys.executable, script, lab.HOME_V4], 5353, directory)

    return udp_service(name, 5353, "python-zeroconf mDNS", start_daemon, firewall_open=forwarded)


AVAHI_CONF = """[server]
host-name=lab-home
use-ipv4=yes
use-ipv6=no
allow-interfaces={interface}
enable-dbus=no
[wide-area]
enable-wide-area=no
[publish]
publish-workstation=yes
publish-addresses=yes
[reflector]
[rlimits]
"""


def avahi(*, forwarded: bool = True, name: str = "avahi") -> Service:
    """avahi-daemon without D-Bus, publishing the host (mDNS on UDP 5353). avahi 0.8 does not
    answer unicast queries sent to its unicast address from another host: the safe responder.

    avahi keeps its pid file at a fixed path (/run/avahi-daemon/pid): one lab at a time."""

    def start_daemon(lab: Lab) -> Daemon:
        directory = _private_dir(lab.place, name)
        config = directory / "avahi-daemon.conf"
        config.write_text(AVAHI_CONF.format(interface=lab.HOME_IF))
        argv = [AVAHI, "-f", config, "--no-drop-root", "--no-chroot", "--no-rlimits",
                "--no-proc-title"]
        return launch_udp(lab, name, argv, 5353, directory)

    return udp_service(name, 5353, "avahi-daemon mDNS", start_daemon, firewall_open=forwarded)


def openvpn(*, tls_crypt: bool = False, name: str = "openvpn") -> Service:
    """OpenVPN in TLS server mode on UDP 1194 (--dev null: no tunnel device needed);
    with tls_crypt every packet without the shared key is dropped silently."""

    def start_daemon(lab: Lab) -> Daemon:
        assert lab.ca is not None
        directory = _private_dir(lab.place, name)
        issued = lab.ca.issue("vpn.home.lab")
        argv: list[str | os.PathLike[str]] = [
            OPENVPN, "--dev", "null", "--proto", "udp", "--local", lab.HOME_V4, "--port", "1194",
            "--tls-server", "--dh", "none", "--ca", lab.ca.cert_path, "--cert", issued.cert_path,
            "--key", issued.key_path, "--verb", "4", "--ping-exit", "0",
        ]
        if tls_crypt:
            key = directory / "tls-crypt.key"
            subprocess.run([OPENVPN, "--genkey", "secret", str(key)], check=True,
                           capture_output=True)
            argv += ["--tls-crypt", key]
        return launch_udp(lab, name, argv, 1194, directory)

    return udp_service(name, 1194, "OpenVPN", start_daemon)


def memcached_udp(*, name: str = "memcached-udp") -> Service:
    """memcached with UDP on (-U 11211): the 2018 amplification setup. TCP on 11299."""

    def start_daemon(lab: Lab) -> Daemon:
        directory = _private_dir(lab.place, name)
        argv = [MEMCACHED, "-u", "root", "-p", "11299", "-U", "11211", "-l", lab.HOME_V4, "-vv"]
        return launch_udp(lab, name, argv, 11211, directory)

    return udp_service(name, 11211, "memcached UDP", start_daemon)


UDP_PROBE = r"""
import ipaddress, json, sys, time
from dataclasses import asdict
from scanner.discovery.udp import UdpOptions, probe_udp, udp_findings
args = json.loads(sys.argv[1])
options = UdpOptions(**args["options"])
started = time.monotonic()
services = probe_udp(ipaddress.ip_address(args["address"]), options)
seconds = time.monotonic() - started
print(json.dumps({"seconds": seconds,
                  "services": {s.service: s.to_port_dict() for s in services},
                  "findings": [f.to_dict() for f in udp_findings(services)]}, default=str))
"""


def udp_scan(lab: Lab, *, address: str | None = None, **options: object) -> dict[str, object]:
    """probe_udp() from the scan namespace against home (or `address`)."""
    args = {"address": address or lab.HOME_V4, "options": {
        key: list(value) if isinstance(value, tuple) else value for key, value in options.items()
    }}
    done = lab.run_in_scan([sys.executable, "-c", UDP_PROBE, json.dumps(args)],
                           capture_output=True, text=True, timeout=60, cwd=ROOT)
    if done.returncode != 0:
        raise LabError(f"udp probe failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)
