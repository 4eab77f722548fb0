"""Lab servers for the catalogue's breadth (issue 18): real daemons, each open or locked down.

Debian packages: vsftpd, rsync, xvfb, postgresql, mariadb-server, cups,
prometheus-node-exporter, transmission-daemon, qbittorrent-nox, deluge-web, docker-registry,
docker.io, etcd-server, syncthing, cockpit-ws, rpcbind. PyPI: jupyter-server and OctoPrint
(each in its own venv under .lab-cache, `make lab-deps`).

Every daemon runs in the lab's home namespace with its files in a private directory; nothing
under /etc is written. The torrent clients and Syncthing are configured with every kind of
discovery and port mapping off (DHT, LPD, PEX, UPnP/NAT-PMP, global discovery, relays,
usage reports): the lab has no route out anyway, and they must not even try.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import bcrypt

from .daemons import Daemon, Place, _launch, _private_dir
from .nsutil import LabError, run_checked, wait_for_tcp
from .services import Service
from .support_services import ROOT, v4

if TYPE_CHECKING:
    from .netns import Lab

VSFTPD = "/usr/sbin/vsftpd"
RSYNC = "/usr/bin/rsync"
XVFB = "/usr/bin/Xvfb"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
MARIADBD = "/usr/sbin/mariadbd"
MARIADB_INSTALL_DB = "/usr/bin/mariadb-install-db"
MARIADB = "/usr/bin/mariadb"
CUPSD = "/usr/sbin/cupsd"
NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
TRANSMISSION = "/usr/bin/transmission-daemon"
QBITTORRENT = "/usr/bin/qbittorrent-nox"
DELUGE_WEB = "/usr/bin/deluge-web"
REGISTRY = "/usr/bin/docker-registry"
ETCD = "/usr/bin/etcd"
DOCKERD = "/usr/sbin/dockerd"
CONTAINERD = "/usr/bin/containerd"
SYNCTHING = "/usr/bin/syncthing"
COCKPIT_WS = "/usr/lib/cockpit/cockpit-ws"
RPCBIND = "/usr/sbin/rpcbind"
JUPYTER_VENV = Path(os.environ.get("EXPOSURE_LAB_JUPYTER", ROOT / ".lab-cache" / "jupyter-venv"))
JUPYTER = JUPYTER_VENV / "bin" / "jupyter-server"
OCTOPRINT_VENV = Path(os.environ.get("EXPOSURE_LAB_OCTOPRINT",
                                     ROOT / ".lab-cache" / "octoprint-venv"))
OCTOPRINT = OCTOPRINT_VENV / "bin" / "octoprint"


def _password() -> str:
    return secrets.token_hex(10)


def _bcrypt(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=6)).decode()


def jupyter_installed() -> bool:
    return JUPYTER.is_file()


# --- FTP (vsftpd) ----------------------------------------------------------------------------

VSFTPD_CONF = """listen=YES
listen_address={host}
listen_port={port}
background=NO
run_as_launching_user=YES
seccomp_sandbox=NO
anonymous_enable={anonymous}
no_anon_password=NO
anon_root={root}
local_enable={local}
pam_service_name=vsftpd
write_enable=NO
secure_chroot_dir={empty}
xferlog_enable=YES
dual_log_enable=YES
log_ftp_protocol=YES
vsftpd_log_file={log}
xferlog_file={xferlog}
"""


def vsftpd(port: int, *, anonymous: bool, name: str | None = None) -> Service:
    """vsftpd: anonymous read-only login (open), or local users only (anonymous refused)."""
    name = name or f"vsftpd-{port}"

    def start(lab: Lab) -> list[Daemon]:
        place = v4(lab)
        directory = _private_dir(place, name)
        root, empty = directory / "pub", directory / "empty"
        root.mkdir()
        empty.mkdir()
        (root / "README").write_text("public files\n")
        root.chmod(0o555)
        log = directory / "vsftpd-protocol.log"
        config = directory / "vsftpd.conf"
        config.write_text(VSFTPD_CONF.format(
            host=lab.HOME_V4, port=port, anonymous="YES" if anonymous else "NO",
            local="NO" if anonymous else "YES", root=root, empty=empty, log=log,
            xferlog=directory / "xfer.log",
        ))
        return [_launch(place, name, [VSFTPD, config], [port], directory,
                        files={"protocol_log": log})]

    what = "anonymous read-only" if anonymous else "anonymous refused"
    return Service(name, {port: f"vsftpd ({what})"}, start)


# --- rsync daemon ----------------------------------------------------------------------------

RSYNCD_CONF = """pid file = {dir}/rsyncd.pid
log file = {dir}/rsyncd.log
use chroot = no
reverse lookup = no
[backup]
  path = {dir}/backup
  comment = nightly backups
  read only = yes
  list = {listed}
"""


def rsyncd(port: int, *, listed: bool, name: str | None = None) -> Service:
    """rsync --daemon with one read-only module, listed (open) or `list = no` (locked)."""
    name = name or f"rsyncd-{port}"

    def start(lab: Lab) -> list[Daemon]:
        place = v4(lab)
        directory = _private_dir(place, name)
        (directory / "backup").mkdir()
        config = directory / "rsyncd.conf"
        config.write_text(RSYNCD_CONF.format(dir=directory, listed="yes" if listed else "no"))
        argv = [RSYNC, "--daemon", "--no-detach", f"--config={config}",
                f"--address={lab.HOME_V4}", f"--port={port}"]
        return [_launch(place, name, argv, [port], directory,
                        files={"log": directory / "rsyncd.log"})]

    return Service(name, {port: f"rsync daemon ({'listed' if listed else 'list = no'})"}, start)


# --- X11 (Xvfb) ------------------------------------------------------------------------------


def xvfb(display: int, *, access_control: bool, name: str | None = None) -> Service:
    """Xvfb listening on TCP 6000+display: -ac (anyone may connect) or host access control
    (only local clients). -nolock and -nolisten unix keep it out of /tmp's X11 files."""
    port = 6000 + display
    name = name or f"xvfb-{port}"

    def start(lab: Lab) -> list[Daemon]:
        place = v4(lab)
        directory = _private_dir(place, name)
        argv = [XVFB, f":{display}", "-listen", "tcp", "-nolisten", "unix", "-nolock",
                "-screen", "0", "320x200x16"]
        if not access_control:
            argv.append("-ac")
        return [_launch(place, name, argv, [port], directory)]

    what = "host access control" if access_control else "-ac: access control off"
    return Service(name, {port: f"Xvfb ({what})"}, start)


# --- PostgreSQL ------------------------------------------------------------------------------


def postgresql(port: int = 5432, *, name: str | None = None) -> Service:
    """PostgreSQL 15 listening on home with scram-sha-256 for everyone (a password asked)."""
    name = name or f"postgresql-{port}"

    def start(lab: Lab) -> list[Daemon]:
        # postgres refuses to run as root: its own directory, readable by the postgres user
        workdir = Path(tempfile.mkdtemp(prefix=f"exp-lab-{lab.id}-pg-"))
        workdir.chmod(0o755)
        data = workdir / "data"
        password = workdir / "pw"
        password.write_text(_password())
        shutil.chown(workdir, "postgres")
        shutil.chown(password, "postgres")
        run_checked(["runuser", "-u", "postgres", "--", str(PG_BIN / "initdb"), "-D", str(data),
                     "-A", "scram-sha-256", f"--pwfile={password}"])
        with open(data / "pg_hba.conf", "a") as hba:
            hba.write("host all all 0.0.0.0/0 scram-sha-256\n")
        argv = ["runuser", "-u", "postgres", "--", str(PG_BIN / "postgres"), "-D", str(data),
                "-c", f"listen_addresses={lab.HOME_V4}", "-c", f"port={port}",
                "-c", f"unix_socket_directories={workdir}", "-c", "logging_collector=off",
                "-c", "log_connections=on"]
        place = Place(lab.home_ns, (lab.HOME_V4,), workdir)
        return [_launch(place, name, argv, [port], workdir, owned_workdir=workdir,
                        ready_timeout=20.0)]

    return Service(name, {port: "PostgreSQL 15 (scram-sha-256)"}, start)


# --- MariaDB ---------------------------------------------------------------------------------


def mariadb(port: int, *, remote_account: bool, name: str | None = None) -> Service:
    """MariaDB: an account allowed from any host (the greeting offers a login to anyone), or
    the Debian default (local accounts only: remote clients are refused before any login)."""
    name = name or f"mariadb-{port}"

    def start(lab: Lab) -> list[Daemon]:
        place = v4(lab)
        directory = _private_dir(place, name)
        data, socket_path = directory / "data", directory / "mysqld.sock"
        run_checked([MARIADB_INSTALL_DB, "--no-defaults", f"--datadir={data}", "--user=root",
                     "--auth-root-authentication-method=socket", "--skip-test-db"])
        error_log = directory / "error.log"
        argv = [MARIADBD, "--no-defaults", f"--datadir={data}", "--user=root",
                f"--bind-address={lab.HOME_V4}", f"--port={port}", f"--socket={socket_path}",
                f"--pid-file={directory / 'mysqld.pid'}", f"--log-error={error_log}",
                "--skip-log-bin", "--skip-name-resolve", "--log-warnings=4"]
        daemon = _launch(place, name, argv, [port], directory, ready_timeout=30.0,
                         files={"error_log": error_log})
        if remote_account:
            sql = f"CREATE USER 'app'@'%' IDENTIFIED BY '{_password()}';"
            lab.run_in_home([MARIADB, f"--socket={socket_path}", "-uroot", "-e", sql],
                            check=True, capture_output=True, timeout=20)
        return [daemon]

    what = "an account for any host" if remote_account else "local accounts only"
    return Service(name, {port: f"MariaDB ({what})"}, start)


# --- CUPS ------------------------------------------------------------------------------------
# cupsd refuses to start without a localhost listener (the namespace's own loopback here).

CUPSD_CONF = """Listen {host}:{port}
Listen 127.0.0.1:{port}
LogLevel info
WebInterface Yes
Browsing No
<Location />
  Order allow,deny
  {allow}
</Location>
"""
CUPS_FILES = """ServerRoot {dir}
CacheDir {dir}/cache
StateDir {dir}/state
RequestRoot {dir}/spool
TempDir {dir}/tmp
AccessLog {dir}/log/access_log
ErrorLog {dir}/log/error_log
PageLog {dir}/log/page_log
Printcap {dir}/printcap
"""


def cups(port: int, *, remote: bool, name: str | None = None) -> Service:
    """cupsd with its web interface: every client allowed (open) or only localhost."""
    name = name or f"cups-{port}"

    def start(lab: Lab) -> list[Daemon]:
        place = v4(lab)
        directory = _private_dir(place, name)
        for sub in ("cache", "state", "spool", "tmp", "log", "ppd"):
            (directory / sub).mkdir()
        config = directory / "cupsd.conf"
        config.write_text(CUPSD_CONF.format(
            host=lab.HOME_V4, port=port, allow="Allow all" if remote else "Allow 127.0.0.1",
        ))
        files = directory / "cups-files.conf"
        files.write_text(CUPS_FILES.format(dir=directory))
        return [_launch(place, name, [CUPSD, "-f", "-c", config, "-s", files], [port], directory,
                        files={"error_log": directory / "log" / "error_log",
                               "access_log": directory / "log" / "access_log"})]

    return Service(name, {port: f"CUPS ({'any client' if remote else 'localhost only'})"}, start)


# --- Prometheus node exporter ----------------------------------------------------------------


def node_exporter(port: int, *, basic_auth: bool, name: str | None = None) -> Service:
    """prometheus-node-exporter (a few collectors): open, or basic auth via --web.config.file."""
    name = name or f"node-exporter-{port}"

    def start(lab: Lab) -> list[Daemon]:
        place = v4(lab)
        directory = _private_dir(place, name)
        argv = [NODE_EXPORTER, f"--web.listen-address={lab.HOME_V4}:{port}",
                "--collector.disable-defaults", "--collector.cpu", "--collector.meminfo",
                "--collector.uname"]
        if basic_auth:
            web = directory / "web.yml"
            web.write_text(f"basic_auth_users:\n  prometheus: '{_bcrypt(_password())}'\n")
            argv.append(f"--web.config.file={web}")
        return [_launch(place, name, argv, [port], directory)]

    return Service(name, {port: f"node exporter ({'basic auth' if basic_auth else 'open'})"},
                   start)


# --- Transmission ----------------------------------------------------------------------------


def transmission(port: int, *, password: bool, name: str | None = None) -> Service:
    """transmission-daemon: RPC without auth for the lab's internet (open), or a password."""
    name = name or f"transmission-{port}"

    def start(lab: Lab) -> list[Daemon]:
        place = v4(lab)
        directory = _private_dir(place, name)
        argv = [TRANSMISSION, "-f", "-g", directory / "config", "-w", directory / "downloads",
                "-r", lab.HOME_V4, "-p", str(port), "-P", str(port + 1000), "-a",
                "127.0.0.1,203.0.113.*", "-M", "-O", "-Y", "--no-utp", "-e",
                directory / "transmission.log"]
        argv += ["-t", "-u", "lab", "-v", _password()] if password else ["-T"]
        return [_launch(place, name, argv, [port], directory,
                        files={"log": directory / "transmission.log"})]

    return Service(name, {port: f"Transmission ({'password' if password else 'no auth'})"},
                   start)


# --- qBittorrent -----------------------------------------------------------------------------

QBITTORRENT_CONF = """[LegalNotice]
Accepted=true
[BitTorrent]
Session\\DHTEnabled=false
Session\\LSDEnabled=false
Session\\PeXEnabled=false
Session\\Port={peer_port}
[Network]
PortForwardingEnabled=false
[Preferences]
Connection\\UPnP=false
General\\UseRandomPort=false
WebUI\\Address={host}
WebUI\\Port={port}
WebUI\\AuthSubnetWhitelistEnabled={bypass}
WebUI\\AuthSubnetWhitelist=203.0.113.0/24
WebUI\\LocalHostAuth=true
"""


def qbittorrent(port: int, *, bypass_auth: bool, name: str | None = None) -> Service:
    """qbittorrent-nox: auth bypassed for the lab's internet subnet (open), or the default
    Web UI login (locked)."""
    name = name or f"qbittorrent-{port}"

    def start(lab: Lab) -> list[Daemon]:
        place = v4(lab)
        directory = _private_dir(place, name)
        config = directory / "profile" / "qBittorrent" / "config"
        config.mkdir(parents=True)
        (config / "qBittorrent.conf").write_text(QBITTORRENT_CONF.format(
            peer_port=port + 1000, host=lab.HOME_V4, port=port,
            bypass="true" if bypass_auth else "false",
        ))
        argv = [QBITTORRENT, f"--profile={directory / 'profile'}"]
        return [_launch(place, name, argv, [port], directory, ready_timeout=20.0,
                        files={"log": directory / "profile" / "qBittorrent" / "data" / "logs"
                                                  / "qbittorrent.log"})]

    what = "auth bypassed for 203.0.113.0/24" if bypass_auth else "Web UI login"
    return Service(name, {port: f"qBittorrent ({what})"}, start)


# --- Deluge web ------------------------------------------------------------------------------


def deluge_web(port: int = 8112, *, name: str | None = None) -> Service:
    """deluge-web in the foreground (it always asks for its password)."""
    name = name or f"deluge-web-{port}"

    def start(lab: Lab) -> list[Daemon]:
        place = v4(lab)
        directory = _private_dir(place, name)
        log = directory / "deluge-web.log"
        argv = [DELUGE_WEB, "-d", "-c", directory / "config", "-i", lab.HOME_V4, "-p", str(port),
                "-L", "info", "-l", log]
        return [_launch(place, name, argv, [port], directory, ready_timeout=20.0,
                        files={"log": log})]

    return Service(name, {port: "Deluge web UI"}, start)


# --- Docker registry -------------------------------------------------------------------------

REGISTRY_CONF = """version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: {dir}/data
http:
  addr: {host}:{port}
{auth}"""


def docker_registry(port: int, *, htpasswd: bool, name: str | None = None) -> Service:
    """docker-registry (distribution 2.8): open, or htpasswd basic auth."""
    name = name or f"registry-{port}"

    def start(lab: Lab) -> list[Daemon]:
        place = v4(lab)
        directory = _private_dir(place, name)
        auth = ""
        if htpasswd:
            users = directory / "htpasswd"
            users.write_text(f"lab:{_bcrypt(_password())}\n")
            auth = f"auth:\n  htpasswd:\n    realm: lab-registry\n    path: {users}\n"
        config = directory / "config.yml"
        config.write_text(REGISTRY_CONF.format(dir=directory, host=lab.HOME_V4, port=port,
                                               auth=auth))
        return [_launch(place, name, [REGISTRY, "serve", config], [port], directory)]

    return Service(name, {port: f"Docker registry ({'htpasswd' if htpasswd else 'open'})"},
                   start)


# --- Docker Engine (dockerd) -----------------------------------------------------------------
# Debian's docker.io (20.10) with a containerd of its own per daemon (started by the lab, so
# every process has a pid the lab stops, and dockerd never attaches to a system containerd at
# /run/containerd): no containers, no images, no bridge, no iptables, and the home namespace's
# IP forwarding left as the lab set it. `ip netns exec` gives each process a private mount
# namespace with a fresh /sys, which has no cgroup hierarchies: dockerd refuses to start
# without the devices one, so the wrapper mounts the host's hierarchies again there, and a
# tmpfs on /run (dockerd makes /run/docker/plugins whatever --exec-root says).

CONTAINERD_CONF = """version = 2
root = "{dir}/root"
state = "{dir}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{socket}"
[debug]
  level = "info"
[plugins."io.containerd.internal.v1.opt"]  # else it makes /opt/containerd
  path = "{dir}/opt"
"""


def _cgroup_mounts() -> list[tuple[str, str, str]]:
    """(type, options, mount point) of this host's cgroup file systems, parents first."""
    mounts = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        _, target, kind, options, *_ = line.split()
        if target == "/sys/fs/cgroup" or target.startswith("/sys/fs/cgroup/"):
            mounts.append((kind, options, target))
    return mounts


def _with_private_mounts(argv: list[str]) -> list[str]:
    """argv run by a shell that first mounts a tmpfs on /run and the cgroup hierarchies again
    (in the mount namespace `ip netns exec` made for it: nothing shows outside)."""
    steps = ["set -e", "mount -t tmpfs -o mode=755 tmpfs /run"]
    for kind, options, target in _cgroup_mounts():
        steps.append(f"mkdir -p {target} && mount -t {kind} -o {shlex.quote(options)} "
                     f"{kind} {target}")
    steps.append("exec " + shlex.join(argv))
    return ["sh", "-c", "\n".join(steps)]


def _containerd(place: Place, name: str, directory: Path) -> tuple[Daemon, Path]:
    """containerd for one dockerd, its files in `directory`; returns it and its socket."""
    socket_path = directory / "containerd.sock"
    config = directory / "containerd.toml"
    config.write_text(CONTAINERD_CONF.format(dir=directory, socket=socket_path))
    daemon = _launch(place, name, _with_private_mounts([CONTAINERD, "--config", str(config)]),
                     [], directory)
    deadline = time.monotonic() + 10.0
    while not socket_path.exists():
        if not daemon.alive or time.monotonic() > deadline:
            daemon.stop()
            raise LabError(f"{name}: no socket at {socket_path}:\n{daemon.log_tail()}")
        time.sleep(0.05)
    return daemon, socket_path


def dockerd(port: int, *, tls_verify: bool, name: str | None = None) -> Service:
    """dockerd on tcp://home:port: plain TCP (open: `--tls=false`, what Docker 27 demands and
    what silences 20.10's 15 s deprecation delay), or --tlsverify with a lab CA certificate
    (locked: only clients holding a certificate of that CA get an answer)."""
    name = name or f"dockerd-{port}"

    def start(lab: Lab) -> list[Daemon]:
        place = v4(lab)
        directory = _private_dir(place, name)
        containerd, socket_path = _containerd(place, f"containerd-{port}",
                                              _private_dir(place, f"containerd-{port}"))
        config = directory / "daemon.json"
        # the engine's identity key would go to /etc/docker/key.json
        config.write_text(json.dumps({"deprecated-key-path": str(directory / "key.json")}))
        argv = [DOCKERD, "-H", f"tcp://{lab.HOME_V4}:{port}", f"--config-file={config}",
                f"--containerd={socket_path}", f"--data-root={directory / 'data'}",
                f"--exec-root={directory / 'exec'}", f"--pidfile={directory / 'dockerd.pid'}",
                "--iptables=false", "--ip6tables=false", "--ip-forward=false",
                "--ip-masq=false", "--bridge=none",
                "--log-level=debug"]  # debug: one "Calling METHOD /path" line per API call
        if tls_verify:
            assert lab.ca is not None
            issued = lab.ca.issue(lab.HOSTNAME, sans=[lab.HOSTNAME, lab.HOME_V4],
                                  filename=name)
            argv += ["--tlsverify", f"--tlscacert={lab.ca.cert_path}",
                     f"--tlscert={issued.chain_path}", f"--tlskey={issued.key_path}"]
        else:
            argv.append("--tls=false")
        try:
            engine = _launch(place, name, _with_private_mounts(argv), [port], directory,
                             ready_timeout=30.0)
        except BaseException:
            containerd.stop()
            raise
        return [containerd, engine]

    what = "--tlsverify, lab CA" if tls_verify else "plain TCP, no TLS"
    return Service(name, {port: f"Docker Engine API ({what})"}, start)


# --- etcd ------------------------------------------------------------------------------------


def etcd(port: int, *, auth: bool, name: str | None = None) -> Service:
    """etcd 3.4 with one key: no auth (open), or auth enabled with a root user (locked)."""
    name = name or f"etcd-{port}"

    def start(lab: Lab) -> list[Daemon]:
        place = v4(lab)
        directory = _private_dir(place, name)
        client = f"http://{lab.HOME_V4}:{port}"
        argv = [ETCD, "--name", name, "--data-dir", directory / "data",
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", f"http://127.0.0.1:{port + 1}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{port + 1}",
                "--initial-cluster", f"{name}=http://127.0.0.1:{port + 1}"]
        daemon = _launch(place, name, argv, [port], directory, ready_timeout=20.0)
        calls = [("/v3/kv/put", {"key": "Y29uZmln", "value": "c2VjcmV0"})]
        if auth:  # the lab admin enables auth from inside home
            calls += [
                ("/v3/auth/user/add", {"name": "root", "password": _password()}),
                ("/v3/auth/role/add", {"name": "root"}),
                ("/v3/auth/user/grant", {"user": "root", "role": "root"}),
                ("/v3/auth/enable", {}),
            ]
        for path, body in calls:
            lab.run_in_home(["curl", "-sS", "-f", "-X", "POST", client + path, "-d",
                             json.dumps(body)], check=True, capture_output=True, timeout=10)
        return [daemon]

    return Service(name, {port: f"etcd ({'auth enabled' if auth else 'no auth'})"}, start)


# --- Syncthing -------------------------------------------------------------------------------

SYNCTHING_OPTIONS = {
    "globalAnnounceEnabled": "false", "localAnnounceEnabled": "false",
    "relaysEnabled": "false", "natEnabled": "false", "urAccepted": "-1",
    "autoUpgradeIntervalH": "0", "crashReportingEnabled": "false", "startBrowser": "false",
}


def _syncthing_config(text: str, password: str | None, sync_port: int) -> str:
    text = re.sub(r"<listenAddress>[^<]*</listenAddress>",
                  f"<listenAddress>tcp://127.0.0.1:{sync_port}</listenAddress>", text)
    if password:
        text = re.sub(r"(<gui\b[^>]*>)",
                      rf"\1<user>lab</user><password>{_bcrypt(password)}</password>", text, count=1)
    for option, value in SYNCTHING_OPTIONS.items():
        text = re.sub(rf"<{option}>[^<]*</{option}>", f"<{option}>{value}</{option}>", text)
    return text


def syncthing(port: int, *, password: bool, name: str | None = None) -> Service:
    """Syncthing 1.19 with discovery, relays, NAT and reporting off: GUI without a password
    (open), or a GUI user and password (locked)."""
    name = name or f"syncthing-{port}"

    def start(lab: Lab) -> list[Daemon]:
        place = v4(lab)
        directory = _private_dir(place, name)
        home = directory / "home"
        lab.run_in_home([SYNCTHING, f"-generate={home}"], check=True, capture_output=True,
                        timeout=60)
        config = home / "config.xml"
        config.write_text(_syncthing_config(config.read_text(), _password() if password else None,
                                            port + 13000))
        argv = ["env", f"HOME={directory}", "STNODEFAULTFOLDER=1", "STNOUPGRADE=1", SYNCTHING,
                f"-home={home}", f"-gui-address=http://{lab.HOME_V4}:{port}", "-no-browser",
                "-no-restart",
                f"-logfile={directory / 'syncthing.log'}"]
        return [_launch(place, name, argv, [port], directory, ready_timeout=30.0,
                        files={"log": directory / "syncthing.log"})]

    return Service(name, {port: f"Syncthing ({'GUI password' if password else 'no password'})"},
                   start)


# --- Jupyter ---------------------------------------------------------------------------------


def jupyter(port: int, *, token: bool, name: str | None = None) -> Service:
    """jupyter-server from PyPI: an empty token (open) or a random token (locked)."""
    name = name or f"jupyter-{port}"

    def start(lab: Lab) -> list[Daemon]:
        if not jupyter_installed():
            raise LabError(f"jupyter-server is not installed at {JUPYTER}: run make lab-deps")
        place = v4(lab)
        directory = _private_dir(place, name)
        (directory / "notebooks").mkdir()
        argv = ["env", f"HOME={directory}", f"JUPYTER_CONFIG_DIR={directory / 'config'}",
                f"JUPYTER_DATA_DIR={directory / 'data'}",
                f"JUPYTER_RUNTIME_DIR={directory / 'runtime'}", JUPYTER, "--allow-root",
                "--no-browser", f"--ip={lab.HOME_V4}", f"--port={port}",
                f"--ServerApp.root_dir={directory / 'notebooks'}",
                f"--IdentityProvider.token={secrets.token_hex(16) if token else ''}"]
        return [_launch(place, name, argv, [port], directory, ready_timeout=30.0)]

    return Service(name, {port: f"Jupyter Server ({'token' if token else 'no token'})"}, start)


# --- Cockpit ---------------------------------------------------------------------------------


def cockpit(port: int = 9090, *, name: str | None = None) -> Service:
    """cockpit-ws without TLS, its config (cockpit.conf) in a private XDG config dir."""
    name = name or f"cockpit-{port}"

    def start(lab: Lab) -> list[Daemon]:
        place = v4(lab)
        directory = _private_dir(place, name)
        config = directory / "xdg" / "cockpit"
        config.mkdir(parents=True)
        (config / "cockpit.conf").write_text("[WebService]\nLoginTitle=lab\n")
        argv = ["env", f"XDG_CONFIG_DIRS={directory / 'xdg'}", COCKPIT_WS, "--no-tls",
                "-a", lab.HOME_V4, "-p", str(port)]
        return [_launch(place, name, argv, [port], directory)]

    return Service(name, {port: "Cockpit (cockpit-ws, no TLS)"}, start)


# --- rpcbind ---------------------------------------------------------------------------------


def rpcbind(*, name: str = "rpcbind") -> Service:
    """rpcbind on 111, in a private mount namespace whose /run is its own tmpfs (rpcbind keeps
    its socket and lock under /run: labs running side by side must not share them)."""

    def start(lab: Lab) -> list[Daemon]:
        place = v4(lab)
        directory = _private_dir(place, name)
        script = f"mount -t tmpfs tmpfs /run && mkdir -p /run/rpcbind && exec {RPCBIND} -f -w"
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]
        return [_launch(place, name, argv, [111], directory)]

    return Service(name, {111: "rpcbind (portmapper)"}, start)


# --- OctoPrint (PyPI, in its own venv) ------------------------------------------------------

# Everything that would talk to the internet or the LAN is off (the lab has no route anyway).
OCTOPRINT_CONFIG = """server:
  onlineCheck:
    enabled: false
  pluginBlacklist:
    enabled: false
plugins:
  _disabled: [tracking, announcements, softwareupdate, pluginmanager, backup, firmware_check,
              errortracking, discovery]
"""
# One admin whose password hash matches no password (nobody can log in: it only has to exist).
OCTOPRINT_USERS = """_version: 2
lab:
  active: true
  apikey: null
  groups: [admins]
  password: {hash}
  permissions: []
  roles: [user, admin]
  settings: {{}}
"""


def octoprint_installed() -> bool:
    return OCTOPRINT.is_file()


def octoprints(open_port: int, locked_port: int, *, name: str = "octoprint") -> Service:
    """Two OctoPrint 1.11 servers started side by side (each takes seconds to load its
    plugins): a fresh one whose first-run wizard was never done (open), and one with an
    admin account (locked). --iknowwhatimdoing: the lab runs its daemons as root."""

    def start(lab: Lab) -> list[Daemon]:
        if not octoprint_installed():
            raise LabError(f"OctoPrint is not installed at {OCTOPRINT}: run make lab-deps")
        place = v4(lab)
        pending = []
        for port, locked in ((open_port, False), (locked_port, True)):
            directory = _private_dir(place, f"{name}-{port}")
            basedir = directory / "basedir"
            basedir.mkdir()
            (basedir / "config.yaml").write_text(OCTOPRINT_CONFIG)
            if locked:
                users = OCTOPRINT_USERS.format(hash=secrets.token_hex(64))
                (basedir / "users.yaml").write_text(users)
            argv = [str(OCTOPRINT), "serve", "--iknowwhatimdoing", "--basedir", str(basedir),
                    "--host", lab.HOME_V4, "--port", str(port)]
            pending.append(start_in_background(lab, f"{name}-{port}", argv, port, directory))
        for daemon, port in zip(pending, (open_port, locked_port), strict=True):
            wait_until_ready(lab, daemon, 90.0)
            # a placeholder server ("OctoPrint is still starting") holds the port until the
            # real one has loaded its plugins: ready is when the API answers
            wait_for_octoprint_api(lab, daemon, port, 90.0)
            # its first page view is rendered (3-4 s) and cached: an instance on the internet
            # has been opened by its owner, so the lab admin opens it once too
            lab.run_in_home(["curl", "-s", "-o", "/dev/null", "--max-time", "60",
                             "-H", "Accept-Encoding: gzip", f"http://{lab.HOME_V4}:{port}/"],
                            check=False, timeout=70)
        return []

    return Service(name, {open_port: "OctoPrint (first-run wizard not done)",
                          locked_port: "OctoPrint (admin account)"}, start)


def wait_for_octoprint_api(lab: Lab, daemon: Daemon, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and daemon.alive:
        done = lab.run_in_home(["curl", "-s", "--max-time", "5",
                                f"http://{lab.HOME_V4}:{port}/api/currentuser"],
                               capture_output=True, text=True, check=False, timeout=10)
        if '"groups"' in done.stdout:
            return
        time.sleep(0.3)
    raise LabError(f"{daemon.name}: the API never answered:\n{daemon.log_tail()}")


def start_in_background(lab: Lab, name: str, argv: list[str], port: int,
                        directory: Path) -> Daemon:
    """Start a slow daemon without waiting for it (several then start side by side)."""
    log_path = directory / f"{name}.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(["ip", "netns", "exec", lab.home_ns, *argv],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    daemon = Daemon(name, proc, lab.home_ns, ((lab.HOME_V4, port),), log_path, directory)
    lab.track(daemon)
    return daemon


def wait_until_ready(lab: Lab, daemon: Daemon, timeout: float) -> None:
    missing = wait_for_tcp(lab.home_ns, daemon.endpoints, timeout,
                           alive=lambda: daemon.alive)
    if missing is not None:
        raise LabError(f"{daemon.name} did not start:\n{daemon.log_tail()}")


def daemon_named(lab: Lab, name: str) -> Daemon:
    return next(daemon for daemon in lab.daemons if daemon.name == name)


def log_text(daemon: Daemon, key: str | None = None) -> str:
    path = daemon.files[key] if key else daemon.log_path
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


