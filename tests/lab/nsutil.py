"""Low-level helpers: run commands in a network namespace, and open sockets in one from Python.

Sockets are opened from a short-lived thread that has joined the namespace with setns(2): the
network namespace is a per-thread attribute, and a socket stays in the namespace it was created in
for its whole life. This keeps readiness polls and test probes in-process (no fork/exec per probe).
Only numeric addresses are accepted here, because name resolution from such a thread would still
read the host's /etc/hosts and resolv.conf (setns does not change the mount namespace).
"""

from __future__ import annotations

import ctypes
import enum
import errno
import ipaddress
import os
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

IP = "/usr/sbin/ip" if os.path.exists("/usr/sbin/ip") else "ip"
CLONE_NEWNET = 0x40000000
NETNS_RUN_DIR = "/run/netns"

_libc = ctypes.CDLL(None, use_errno=True)


class LabError(RuntimeError):
    """Something in the lab harness failed (setup, a daemon, teardown)."""


def netns_argv(netns: str | None, argv: Sequence[str | os.PathLike[str]]) -> list[str]:
    """argv prefixed so that it runs inside `netns` (unchanged when netns is None).

    `ip netns exec` execs the command, so a Popen of the result has the command's own pid.
    """
    args = [os.fspath(a) for a in argv]
    return args if netns is None else [IP, "netns", "exec", netns, *args]


def ip(*args: str, netns: str | None = None, check: bool = True) -> str:
    """Run `ip [-n NS] ARGS...`; return stdout, raise LabError with stderr on failure."""
    argv = [IP, *(["-n", netns] if netns else []), *args]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def run_checked(argv: Sequence[str], *, netns: str | None = None, stdin: str | None = None) -> str:
    """Run a setup command (optionally in a namespace); on failure raise LabError with stderr."""
    full = netns_argv(netns, argv)
    proc = subprocess.run(full, input=stdin, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise LabError(f"{' '.join(full)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def list_netns() -> list[str]:
    """Names of all named network namespaces (first word of each `ip netns list` line)."""
    return [line.split()[0] for line in ip("netns", "list").splitlines() if line.strip()]


def netns_pids(netns: str) -> list[int]:
    """Pids of the processes that live in `netns` (empty if it no longer exists)."""
    out = ip("netns", "pids", netns, check=False)
    return [int(tok) for tok in out.split() if tok.isdigit()]


def call_in_netns(netns: str | None, fn: Callable[[], T]) -> T:
    """Call fn() in a fresh thread that has joined `netns`; return its result or re-raise."""
    if netns is None:
        return fn()
    box: dict[str, Any] = {}

    def worker() -> None:
        try:
            fd = os.open(os.path.join(NETNS_RUN_DIR, netns), os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns({netns}): {os.strerror(err)}")
            finally:
                os.close(fd)
            box["value"] = fn()
        except BaseException as exc:  # handed to the calling thread below
            box["error"] = exc

    # The thread dies right after, so nothing else ever runs in the switched namespace.
    thread = threading.Thread(target=worker, name=f"netns-{netns}", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def _family(host: str) -> socket.AddressFamily:
    addr = ipaddress.ip_address(host)  # ValueError for names: see module docstring
    return socket.AF_INET6 if addr.version == 6 else socket.AF_INET


def socket_in_netns(
    netns: str | None, host: str, kind: socket.SocketKind = socket.SOCK_STREAM, proto: int = 0
) -> socket.socket:
    """A new socket living in `netns`, of the family that fits the numeric address `host`."""
    family = _family(host)
    return call_in_netns(netns, lambda: socket.socket(family, kind, proto))


def connect_in_netns(netns: str | None, host: str, port: int, timeout: float) -> socket.socket:
    """A TCP socket connected from inside `netns` to host:port (raises OSError/TimeoutError)."""
    sock = socket_in_netns(netns, host)
    try:
        sock.settimeout(timeout)
        sock.connect((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


class Probe(enum.Enum):
    """What a single TCP connect attempt saw."""

    OPEN = "open"  # handshake completed
    CLOSED = "closed"  # RST (ECONNREFUSED)
    FILTERED = "filtered"  # no answer before the timeout
    UNREACHABLE = "unreachable"  # ICMP error or no route


def tcp_probe(netns: str | None, host: str, port: int, timeout: float = 1.0) -> Probe:
    """Classify host:port as seen from inside `netns` with one connect()."""
    try:
        connect_in_netns(netns, host, port, timeout).close()
    except ConnectionRefusedError:
        return Probe.CLOSED
    except TimeoutError:
        return Probe.FILTERED
    except OSError as exc:
        if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EACCES):
            return Probe.UNREACHABLE
        raise
    return Probe.OPEN


def wait_for_tcp(
    netns: str | None,
    endpoints: Sequence[tuple[str, int]],
    timeout: float,
    alive: Callable[[], bool] = lambda: True,
) -> tuple[str, int] | None:
    """Poll until every endpoint accepts a connection; return the first one that never did.

    Stops early (returning the pending endpoint) as soon as alive() turns false, so a daemon that
    died at startup is reported at once instead of after the whole timeout.
    """
    deadline = time.monotonic() + timeout
    pending = list(endpoints)
    delay = 0.005
    while pending:
        host, port = pending[0]
        try:
            ready = tcp_probe(netns, host, port, timeout=0.5) is Probe.OPEN
        except OSError:  # e.g. the address is not configured yet: just not ready
            ready = False
        if ready:
            pending.pop(0)
            continue
        if not alive() or time.monotonic() >= deadline:
            return pending[0]
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
    return None


def _icmp_checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def icmp_echo(netns: str | None, host: str, timeout: float = 1.0) -> bool:
    """True if an ICMP/ICMPv6 echo request to `host`, sent from `netns`, gets a reply in time.

    The ping binary is not installed everywhere, so this builds the packet itself (needs root).
    """
    v6 = _family(host) == socket.AF_INET6
    proto = socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP
    request_type, reply_type = (128, 129) if v6 else (8, 0)
    ident = os.getpid() & 0xFFFF
    header = struct.pack("!BBHHH", request_type, 0, 0, ident, 1)
    payload = b"exposure-lab"
    # The kernel computes the ICMPv6 checksum (it needs the pseudo-header); v4 is ours to do.
    checksum = 0 if v6 else _icmp_checksum(header + payload)
    packet = struct.pack("!BBHHH", request_type, 0, checksum, ident, 1) + payload
    with socket_in_netns(netns, host, socket.SOCK_RAW, proto) as sock:
        sock.settimeout(timeout)
        sock.sendto(packet, (host, 0))
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data, _ = sock.recvfrom(2048)
            except TimeoutError:
                return False
            # v4 raw sockets hand over the IP header too; skip it
            icmp = data if v6 else data[(data[0] & 0x0F) * 4 :]
            if len(icmp) >= 8 and icmp[0] == reply_type and icmp[4:6] == struct.pack("!H", ident):
                return True
    return False


def write_sysctl(netns: str | None, key: str, value: str) -> None:
    """Set a net.* sysctl inside `netns` (key like "net.ipv6.conf.default.accept_dad").

    /proc/sys/net shows the namespace of the thread that opens it, so no process is needed.
    """
    path = "/proc/sys/" + key.replace(".", "/")

    def write() -> None:
        with open(path, "w") as handle:
            handle.write(value)

    call_in_netns(netns, write)
