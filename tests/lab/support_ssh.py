"""SSH servers for the SSH check's lab tests: OpenSSH in several configurations, Dropbear, and a
paramiko server (paramiko is a real SSH server implementation from PyPI) for the two behaviours
Debian's patched OpenSSH and Dropbear cannot show: accepting `none` authentication for any user,
and a server without the strict-kex (Terrapin) countermeasure.

For fail2ban, OpenSSH and Dropbear also run logging through syslog to a real rsyslogd, which
writes auth.log the way Debian's does; Debian's fail2ban-regex then reads it (`fail2ban_failures`).

Run as a module it is that paramiko server:

    python -m tests.lab.support_ssh --address 203.0.113.10 --port 2300 --host-key KEY --accept-none
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tests.lab.daemons import (
    DROPBEAR,
    READY_TIMEOUT,
    SSHD,
    Daemon,
    Place,
    dropbear_host_keys,
    endpoint_str,
    resolve_place,
    ssh_host_keys,
    sshd_config,
    start_dropbear,
    start_sshd,
)
from tests.lab.nsutil import LabError, netns_argv, wait_for_tcp
from tests.lab.services import Service

if TYPE_CHECKING:
    from tests.lab.netns import Lab

# --- sshd configurations -----------------------------------------------------------------------
# The lab's sshd defaults (daemons._sshd_defaults): PasswordAuthentication yes,
# KbdInteractiveAuthentication no, PermitRootLogin no, UsePAM no.

KEYS_ONLY = """
PasswordAuthentication no
KbdInteractiveAuthentication no
"""
KEYBOARD_INTERACTIVE = """
PasswordAuthentication no
KbdInteractiveAuthentication yes
"""
# What hardening guides (ssh-audit's, Mozilla's) end up with on OpenSSH 9.2.
HARDENED = (
    KEYS_ONLY
    + """
KexAlgorithms sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org
HostKeyAlgorithms ssh-ed25519,rsa-sha2-512,rsa-sha2-256
Ciphers chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com,aes256-ctr
MACs hmac-sha2-512-etm@openssh.com,hmac-sha2-256-etm@openssh.com,umac-128-etm@openssh.com
"""
)
# Old algorithms switched back on next to the defaults (passwords stay on, as by default).
LEGACY = """
KexAlgorithms +diffie-hellman-group14-sha1,diffie-hellman-group1-sha1
HostKeyAlgorithms +ssh-rsa
Ciphers +aes128-cbc,aes256-cbc,3des-cbc
MACs +hmac-sha1-96,hmac-md5
"""
# Nothing but legacy algorithms, as on an old router: only our legacy-capable client gets in.
LEGACY_ONLY = """
KexAlgorithms diffie-hellman-group14-sha1
HostKeyAlgorithms ssh-rsa
Ciphers aes128-cbc,aes128-ctr
MACs hmac-sha1
"""

# The same patched sshd announcing less, or an older package: Debian's `DebianBanner no` drops
# the package revision from the banner, and VersionAddendum puts any comment there. What the
# check reads is the banner, so these exercise the "cannot tell" and the "affected" paths of
# the CVE table with a real server (its real patch level is the lab's, as the tests say).
PLAIN_BANNER = KEYS_ONLY + "DebianBanner no\n"
UNPATCHED_DEBIAN_BANNER = PLAIN_BANNER + "VersionAddendum Debian-2+deb12u2\n"

LOG_NAME = "sshd.log"
REPO = Path(__file__).resolve().parents[2]


def openssh(
    port: int,
    name: str,
    extra_config: str = "",
    description: str = "OpenSSH",
    banner: bytes | None = None,
) -> Service:
    """OpenSSH with `extra_config`; `banner` is sent before authentication (sshd's Banner)."""

    def start(lab: Lab) -> list[Daemon]:
        config = extra_config
        if banner is not None:
            path = lab.tmpdir / f"{name}-banner.txt"
            path.write_bytes(banner)
            config = f"Banner {path}\n{config}"
        return [start_sshd(lab, port, extra_config=config, name=name)]

    return Service(name, {port: description}, start)


def dropbear(port: int, name: str, extra_args: Sequence[str] = ()) -> Service:
    def start(lab: Lab) -> list[Daemon]:
        return [start_dropbear(lab, port, extra_args=extra_args, name=name)]

    return Service(name, {port: f"Dropbear {' '.join(extra_args)}".strip()}, start)


def paramiko_sshd(
    port: int, name: str, *, accept_none: bool = False, strict_kex: bool = True
) -> Service:
    def start(lab: Lab) -> list[Daemon]:
        return [
            start_paramiko_sshd(
                lab, port, accept_none=accept_none, strict_kex=strict_kex, name=name
            )
        ]

    what = "accepts none" if accept_none else "keys only"
    return Service(name, {port: f"paramiko SSH ({what}, strict kex {strict_kex})"}, start)


def _launch_foreground(
    place: Place,
    name: str,
    argv: Sequence[str | os.PathLike[str]],
    ports: Sequence[int],
    directory: Path,
    log_path: Path,
    output: Path,
    ready_timeout: float = READY_TIMEOUT,
) -> Daemon:
    """argv in the place's namespace, its output in `output`; ready once every port accepts."""
    with open(output, "ab") as out:
        proc = subprocess.Popen(
            netns_argv(place.netns, argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=REPO,  # `-m tests.lab.support_ssh` needs the repository on the path
        )
    endpoints = tuple((address, port) for port in ports for address in place.addresses)
    daemon = Daemon(name, proc, place.netns, endpoints, log_path, directory)
    missing = wait_for_tcp(place.netns, endpoints, ready_timeout, alive=lambda: daemon.alive)
    if missing is not None:
        daemon.stop()
        tail = output.read_text(errors="replace")[-2000:]
        raise LabError(f"{name} never accepted on {endpoint_str(*missing)}:\n{tail}")
    return daemon


def start_paramiko_sshd(
    where: Place | Lab,
    port: int,
    *,
    accept_none: bool = False,
    strict_kex: bool = True,
    name: str = "paramiko-sshd",
    ready_timeout: float = READY_TIMEOUT,
) -> Daemon:
    """This module's paramiko server in the foreground, logging connections to its log file."""
    place, _ = resolve_place(where)
    directory = place.workdir / name
    directory.mkdir(parents=True, exist_ok=False)
    (key,) = ssh_host_keys(directory / "keys", types=("ed25519",))
    argv = [sys.executable, "-m", "tests.lab.support_ssh", "--port", str(port)]
    argv += ["--host-key", str(key)]
    for address in place.addresses:
        argv += ["--address", address]
    if accept_none:
        argv.append("--accept-none")
    if not strict_kex:
        argv.append("--no-strict-kex")
    log_path = directory / LOG_NAME
    return _launch_foreground(
        place, name, argv, [port], directory, log_path, log_path, ready_timeout
    )


def connections_from(daemon: Daemon, address: str) -> list[str]:
    """Log lines recording a connection from `address` (sshd's and our paramiko server's)."""
    text = daemon.log_path.read_text(errors="replace")
    marker = f"Connection from {address} port "
    return [line for line in text.splitlines() if marker in line]


# --- through syslog, as on a real host, for fail2ban --------------------------------------------
# fail2ban reads auth.log as rsyslog writes it: `Mon DD HH:MM:SS host sshd[PID]: message`. The pid
# tells one connection's lines from another's (fail2ban's multi-line rules follow it), and the
# `error: ` prefixes are there; sshd -E and Dropbear -E write neither. So these servers log with
# syslog(3) to a real rsyslogd of their own, which writes auth.log with Debian's rules. sshd and
# Dropbear can only log to /dev/log: each runs in a private mount namespace (unshare --mount, so
# nothing changes for the rest of the machine) whose /dev is a directory holding rsyslog's socket
# and bind mounts of the few device nodes they open.

RSYSLOGD = "/usr/sbin/rsyslogd"
UNSHARE = "/usr/bin/unshare"
FAIL2BAN_REGEX = "/usr/bin/fail2ban-regex"
AUTH_LOG = "auth.log"
DEVICE_NODES = ("null", "zero", "random", "urandom")
# Debian's /etc/rsyslog.conf sends auth,authpriv.* to /var/log/auth.log in this format.
RSYSLOG_CONFIG = """global(workDirectory="{workdir}")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="{socket}" CreatePath="on" RateLimit.Interval="0")
auth,authpriv.* action(type="omfile" file="{log}" template="RSYSLOG_TraditionalFileFormat")
"""
PRIVATE_DEV = """set -eu
dev=$1; shift
for node in {nodes}; do : > "$dev/$node"; mount --bind "/dev/$node" "$dev/$node"; done
mount --rbind "$dev" /dev
exec "$@"
""".format(nodes=" ".join(DEVICE_NODES))


def start_rsyslog(place: Place, directory: Path, ready_timeout: float = READY_TIMEOUT) -> Daemon:
    """rsyslogd listening on `directory`/dev/log, writing `directory`/auth.log."""
    (directory / "dev").mkdir(parents=True)
    (directory / "rsyslog").mkdir()
    socket_path = directory / "dev" / "log"
    config = directory / "rsyslog.conf"
    log_path = directory / AUTH_LOG
    config.write_text(
        RSYSLOG_CONFIG.format(workdir=directory / "rsyslog", socket=socket_path, log=log_path)
    )
    output = directory / "rsyslogd.out"
    argv = [RSYSLOGD, "-n", "-f", config, "-i", directory / "rsyslogd.pid"]
    with open(output, "ab") as out:
        proc = subprocess.Popen(
            netns_argv(place.netns, argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    daemon = Daemon(f"{directory.name}-rsyslogd", proc, place.netns, (), output, directory)
    deadline = time.monotonic() + ready_timeout
    while not socket_path.exists():
        if not daemon.alive or time.monotonic() > deadline:
            daemon.stop()
            raise LabError(f"rsyslogd never made {socket_path}:\n{output.read_text()[-2000:]}")
        time.sleep(0.01)
    return daemon


def start_syslogged(
    place: Place,
    name: str,
    argv: Sequence[str | os.PathLike[str]],
    port: int,
    directory: Path,
) -> list[Daemon]:
    """argv logging through syslog into `directory`/auth.log (the returned daemon's log_path),
    with its own rsyslogd (returned first)."""
    rsyslog = start_rsyslog(place, directory)
    wrapped = [UNSHARE, "--mount", "--propagation", "private", "--", "/bin/sh", "-c"]
    wrapped += [PRIVATE_DEV, "private-dev", directory / "dev", *argv]
    try:
        server = _launch_foreground(
            place, name, wrapped, [port], directory, directory / AUTH_LOG, directory / "stderr"
        )
    except LabError:
        rsyslog.stop()
        raise
    return [rsyslog, server]


def syslogged_openssh(port: int, name: str, extra_config: str = "") -> Service:
    """OpenSSH logging through syslog (LogLevel VERBOSE unless extra_config says otherwise)."""

    def start(lab: Lab) -> list[Daemon]:
        place = lab.place
        directory = place.workdir / name
        directory.mkdir()
        listen = [endpoint_str(address, port) for address in place.addresses]
        keys = ssh_host_keys(place.workdir / "ssh-hostkeys")
        config = directory / "sshd_config"
        config.write_text(sshd_config(directory, listen, keys, extra_config))
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
        return start_syslogged(place, name, [SSHD, "-D", "-f", config], port, directory)

    return Service(name, {port: "OpenSSH (syslog)"}, start)


def syslogged_dropbear(port: int, name: str, extra_args: Sequence[str] = ()) -> Service:
    def start(lab: Lab) -> list[Daemon]:
        place = lab.place
        directory = place.workdir / name
        directory.mkdir()
        argv: list[str | os.PathLike[str]] = [DROPBEAR, "-F", "-P", directory / "dropbear.pid"]
        for key in dropbear_host_keys(directory):
            argv += ["-r", key]
        for address in place.addresses:
            argv += ["-p", endpoint_str(address, port)]
        argv += list(extra_args)
        return start_syslogged(place, name, argv, port, directory)

    return Service(name, {port: f"Dropbear {' '.join(extra_args)} (syslog)".strip()}, start)


@dataclass(frozen=True)
class LogMark:
    """A point in a log file: what a test did is what the file gained after it."""

    path: Path
    offset: int

    @classmethod
    def now(cls, path: Path) -> LogMark:
        return cls(path, path.stat().st_size)

    def since(self) -> str:
        with open(self.path, "rb") as log:
            log.seek(self.offset)
            return log.read().decode(errors="replace")


@dataclass(frozen=True)
class Fail2banResult:
    filter: str  # as given to fail2ban-regex: "sshd[mode=ddos]", "dropbear"
    failures: int  # failures fail2ban counts against the address
    matched: str  # the matched lines, to show when a test fails


def fail2ban_failures(log_text: str, filter_spec: str, address: str) -> Fail2banResult:
    """What Debian's fail2ban-regex, with its installed filter, counts in `log_text` against
    `address`."""
    with tempfile.NamedTemporaryFile("w", suffix=".log", prefix="exposure-f2b-") as log:
        log.write(log_text)
        log.flush()
        ips = _fail2ban_regex(log.name, filter_spec, "ip").split()
        matched = _fail2ban_regex(log.name, filter_spec, "msg") if address in ips else ""
    return Fail2banResult(filter_spec, ips.count(address), matched)


def _fail2ban_regex(log: str, filter_spec: str, out: str) -> str:
    run = subprocess.run(
        [FAIL2BAN_REGEX, "--out", out, log, filter_spec],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if run.returncode != 0:
        raise LabError(f"fail2ban-regex {filter_spec} failed: {run.stderr.strip()}")
    return run.stdout


# --- the paramiko server ---------------------------------------------------------------------


def _serve_connection(conn: socket.socket, peer: tuple[str, int], args: argparse.Namespace) -> None:
    import paramiko

    class Server(paramiko.ServerInterface):
        def get_allowed_auths(self, username: str) -> str:
            return "none" if args.accept_none else "publickey"

        def check_auth_none(self, username: str) -> int:
            print(f"none auth for {username!r}: accepted={args.accept_none}", flush=True)
            return paramiko.AUTH_SUCCESSFUL if args.accept_none else paramiko.AUTH_FAILED

    print(f"Connection from {peer[0]} port {peer[1]}", flush=True)
    transport = paramiko.Transport(conn, strict_kex=args.strict_kex)
    try:
        transport.add_server_key(paramiko.Ed25519Key.from_private_key_file(args.host_key))
        transport.start_server(server=Server())
        transport.join(10)  # the session ends when the client hangs up
    except (paramiko.SSHException, EOFError, OSError) as error:
        print(f"session from {peer[0]} ended: {error!r}", flush=True)
    finally:
        transport.close()


def _accept_forever(listener: socket.socket, args: argparse.Namespace) -> None:
    while True:
        conn, peer = listener.accept()
        threading.Thread(target=_serve_connection, args=(conn, peer, args), daemon=True).start()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", action="append", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host-key", required=True)
    parser.add_argument("--accept-none", action="store_true")
    parser.add_argument("--no-strict-kex", dest="strict_kex", action="store_false")
    args = parser.parse_args(argv)
    threads = []
    for address in args.address:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((address, args.port))
        listener.listen(16)
        thread = threading.Thread(target=_accept_forever, args=(listener, args), daemon=True)
        thread.start()
        threads.append(thread)
    print(f"paramiko sshd listening on {args.address} port {args.port}", flush=True)
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main()
