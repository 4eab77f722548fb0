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

from scanner.checks.ssh.audit import (
    CONNECTION_BYTE_CAP,
    CONNECTION_TIMEOUTS,
    IDENTIFICATION_LINE,
    AuditOptions,
    ResumedSocket,
    SshAudit,
    SshProtocolError,
    audit_ssh,
)
from scanner.checks.ssh.check import assess
from scanner.checks.ssh.hostkeys import frame
from scanner.net import Connector, Dialer, Endpoint, Limits, ScanBudget, SocketAdapter, Stream
from tests.unit.test_ssh_kexinit import kexinit_payload

TIMEOUT = 1.0
SLACK = 0.5  # thread start-up and scheduling on a loaded machine
Behaviour = Callable[[socket.socket], None]
IDENT = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"
DROPBEAR_IDENT = b"SSH-2.0-dropbear_2022.83\r\n"  # asked about logins by default (paramiko)
EVERYTHING = AuditOptions(auth_probe=True, all_host_keys=True)
KEXINIT = frame(
    kexinit_payload(
        kex=("curve25519-sha256",),
        host_keys=("ssh-ed25519",),
        ciphers=("aes128-ctr",),
        macs=("hmac-sha2-256",),
        compression=("none",),
    )
)


def audit_at(
    port: int, connection_timeout: float, options: AuditOptions | None = None
) -> SshAudit:
    """The audit of 127.0.0.1:port with each connection bounded by `connection_timeout`."""
    budget = ScanBudget(Limits(timeout=connection_timeout / CONNECTION_TIMEOUTS))
    return audit_ssh(Connector(Dialer.for_port(budget), Endpoint("127.0.0.1", port)), options)


def lent(sock: socket.socket, deadline: float, cap: int) -> SocketAdapter:
    """A socket as the audit lends it to paramiko (EOFError at the deadline or the cap)."""
    return SocketAdapter(Stream(sock, deadline, 1.0, cap), EOFError)


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


def dropbear_then_flood(conn: socket.socket) -> None:
    """The same, under a Dropbear banner: paramiko's key exchange meets the flood."""
    conn.sendall(DROPBEAR_IDENT + KEXINIT)
    conn.recv(4096)
    junk = os.urandom(65536)
    while True:
        conn.sendall(junk)


def escape_sequences(conn: socket.socket) -> None:
    conn.sendall(b"SSH-2.0-OpenSSH_9.9\x1b[2J\x1b]0;owned\x07 \x1b[31mDebian-1\r\n" + KEXINIT)
    time.sleep(3 * TIMEOUT)


BEHAVIOURS = [
    silent,
    endless_lines,
    one_long_line,
    drip,
    huge_packet,
    kexinit_then_flood,
    dropbear_then_flood,
    escape_sequences,
]


@pytest.mark.parametrize("options", [AuditOptions(), EVERYTHING], ids=["default", "everything"])
@pytest.mark.parametrize("behaviour", BEHAVIOURS)
def test_hostile_server_costs_bounded_time(behaviour: Behaviour, options: AuditOptions) -> None:
    with hostile_server(behaviour) as port:
        started = time.monotonic()
        audit = audit_at(port, TIMEOUT, options)
        elapsed = time.monotonic() - started
    # the whole audit, whatever it asks, within its budget of three connection timeouts
    assert elapsed < 3 * TIMEOUT + SLACK, elapsed
    assert audit.connections <= (1 if options == AuditOptions() else 3)
    result = assess(audit, port)
    text = repr(result.details) + repr(result.notes) + repr([f.evidence for f in result.findings])
    assert "\x1b" not in text and "\x07" not in text


def test_silent_server_is_reported_not_raised() -> None:
    with hostile_server(silent) as port:
        audit = audit_at(port, 0.3)
    assert audit.hello is None and audit.connections == 1
    assert audit.errors and "deadline" in audit.errors[0]


@pytest.mark.parametrize(
    ("behaviour", "options"),
    [
        (kexinit_then_flood, EVERYTHING),  # paramiko asks the login methods (opt-in)
        (dropbear_then_flood, AuditOptions()),  # paramiko asks by default
    ],
)
def test_flooding_server_gives_the_algorithms_but_no_key(
    behaviour: Behaviour, options: AuditOptions
) -> None:
    with hostile_server(behaviour) as port:
        audit = audit_at(port, TIMEOUT, options)
    assert audit.hello is not None and audit.hello.kexinit.kex == ("curve25519-sha256",)
    assert audit.host_keys and audit.host_keys[0].key is None and audit.host_keys[0].error
    assert audit.auth is not None and audit.auth.methods is None and audit.auth.error


def test_flooding_openssh_by_default_costs_one_connection_and_asks_nothing() -> None:
    with hostile_server(kexinit_then_flood) as port:
        audit = audit_at(port, TIMEOUT)
    assert audit.connections == 1 and audit.auth is None
    assert audit.plan is not None and audit.plan.left_to_the_user
    assert audit.host_keys[0].key is None and audit.host_keys[0].error


def test_resumed_socket_reads_again_and_does_not_send_twice() -> None:
    left, right = socket.socketpair()
    with left, right:
        bounded = lent(left, time.monotonic() + 5, CONNECTION_BYTE_CAP)
        resumed = ResumedSocket(bounded, b"SSH-2.0-x\r\nKEX", IDENTIFICATION_LINE)
        assert resumed.recv(11) + resumed.recv(100) == b"SSH-2.0-x\r\nKEX"
        right.sendall(b"more")
        assert resumed.recv(100) == b"more"  # then the connection itself
        sent = IDENTIFICATION_LINE + b"kexinit"
        assert resumed.send(sent) == len(sent)
        assert right.recv(100) == b"kexinit"  # the identification went out once, before
        assert resumed.send(IDENTIFICATION_LINE) == len(IDENTIFICATION_LINE)  # later: as is
        assert right.recv(100) == IDENTIFICATION_LINE
        other = ResumedSocket(bounded, b"", IDENTIFICATION_LINE)
        with pytest.raises(SshProtocolError):
            other.send(b"SSH-2.0-somebody_else\r\n")


def test_bounded_socket_enforces_cap_and_deadline() -> None:
    left, right = socket.socketpair()
    with left, right:
        right.sendall(b"x" * 5000)
        bounded = lent(left, time.monotonic() + 5, 3000)
        received = b""
        with pytest.raises(EOFError):
            while True:
                received += bounded.recv(1024)
        assert len(received) == 3000
        late = lent(right, time.monotonic() - 1, CONNECTION_BYTE_CAP)
        with pytest.raises(EOFError):
            late.recv(10)
