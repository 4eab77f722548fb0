"""Hostile SSH servers on 127.0.0.1: each audit ends within its time bound, reads a bounded
number of bytes, never raises, and keeps nothing unsanitised."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from scanner.checks.ssh.audit import CONNECTION_TIMEOUTS, SshAudit, audit_ssh
from scanner.checks.ssh.check import assess
from scanner.checks.ssh.hostkeys import frame
from scanner.net import Connector, Dialer, Endpoint, Limits, ScanBudget, SocketAdapter, Stream
from tests.unit.test_ssh_kexinit import kexinit_payload

TIMEOUT = 1.0
SLACK = 0.5  # thread start-up and scheduling on a loaded machine
Behaviour = Callable[[socket.socket], None]
IDENT = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"
KEXINIT = frame(
    kexinit_payload(
        kex=("curve25519-sha256",),
        host_keys=("ssh-ed25519",),
        ciphers=("aes128-ctr",),
        macs=("hmac-sha2-256",),
        compression=("none",),
    )
)


def audit_at(port: int, connection_timeout: float) -> SshAudit:
    """The audit of 127.0.0.1:port with each connection bounded by `connection_timeout`."""
    budget = ScanBudget(Limits(timeout=connection_timeout / CONNECTION_TIMEOUTS))
    return audit_ssh(Connector(Dialer.for_port(budget), Endpoint("127.0.0.1", port)))


@contextlib.contextmanager
def hostile_server(behaviour: Behaviour) -> Iterator[int]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:
            behaviour(conn)

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(1)
        listener.close()


def silent(conn: socket.socket) -> None:
    time.sleep(3 * TIMEOUT)


def endless_lines(conn: socket.socket) -> None:
    while True:
        conn.sendall(b"Welcome! " * 10 + b"\r\n")


def one_long_line(conn: socket.socket) -> None:
    while True:
        conn.sendall(b"A" * 65536)


def drip(conn: socket.socket) -> None:
    for byte in IDENT * 100:
        conn.sendall(bytes([byte]))
        time.sleep(0.05)


def huge_packet(conn: socket.socket) -> None:
    conn.sendall(IDENT + b"\x7f\xff\xff\xff" + b"\x00" * 64)
    time.sleep(3 * TIMEOUT)


def kexinit_then_flood(conn: socket.socket) -> None:
    """A plausible server until our key exchange starts, then a packet that never ends."""
    conn.sendall(IDENT + KEXINIT)
    conn.recv(4096)
    conn.sendall(b"\x00\x10\x00\x00")  # a 1 MiB packet...
    junk = os.urandom(65536)
    while True:  # ... and more
        conn.sendall(junk)


def escape_sequences(conn: socket.socket) -> None:
    conn.sendall(b"SSH-2.0-OpenSSH_9.9\x1b[2J\x1b]0;owned\x07 \x1b[31mDebian-1\r\n" + KEXINIT)
    time.sleep(3 * TIMEOUT)


@pytest.mark.parametrize(
    "behaviour",
    [silent, endless_lines, one_long_line, drip, huge_packet, kexinit_then_flood, escape_sequences],
)
def test_hostile_server_costs_bounded_time(behaviour: Behaviour) -> None:
    with hostile_server(behaviour) as port:
        started = time.monotonic()
        audit = audit_at(port, TIMEOUT)
        elapsed = time.monotonic() - started
    # at most the first connection, the auth probe and one key connection, each bounded
    assert elapsed < 3 * TIMEOUT + SLACK, elapsed
    assert audit.connections <= 3
    result = assess(audit, port)
    text = repr(result.details) + repr(result.notes) + repr([f.evidence for f in result.findings])
    assert "\x1b" not in text and "\x07" not in text


def test_silent_server_is_reported_not_raised() -> None:
    with hostile_server(silent) as port:
        audit = audit_at(port, 0.3)
    assert audit.hello is None and audit.connections == 1
    assert audit.errors and "deadline" in audit.errors[0]


def test_flooding_server_gives_the_algorithms_but_no_key() -> None:
    with hostile_server(kexinit_then_flood) as port:
        audit = audit_at(port, TIMEOUT)
    assert audit.hello is not None and audit.hello.kexinit.kex == ("curve25519-sha256",)
    assert audit.host_keys and audit.host_keys[0].key is None and audit.host_keys[0].error
    assert audit.auth is not None and audit.auth.methods is None and audit.auth.error


def test_the_socket_lent_to_paramiko_enforces_cap_and_deadline() -> None:
    left, right = socket.socketpair()
    with left, right:
        right.sendall(b"x" * 5000)
        bounded = SocketAdapter(Stream(left, time.monotonic() + 5, 1.0, 3000), EOFError)
        received = b""
        with pytest.raises(EOFError):
            while True:
                received += bounded.recv(1024)
        assert len(received) == 3000
        late = SocketAdapter(Stream(right, time.monotonic() - 1, 1.0, 3000), EOFError)
        with pytest.raises(EOFError):
            late.recv(10)
