"""The audit's one connection against a real SSH server implementation (paramiko's server, on
127.0.0.1) that names itself Dropbear, so the audit asks the login methods by default: paramiko
continues the connection our own reader began, asks `none` once, and re-keys for the second
host key. The lab does the same against the real OpenSSH and Dropbear (tests/lab/test_ssh.py).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import paramiko
import pytest

from scanner.checks.ssh.audit import AuditOptions
from tests.unit.test_ssh_hostile import audit_at

TIMEOUT = 3.0
DROPBEAR_BANNER = "SSH-2.0-dropbear_2022.83"


@pytest.fixture(scope="module")
def host_keys() -> list[paramiko.PKey]:
    return [paramiko.ECDSAKey.generate(), paramiko.RSAKey.generate(2048)]


class _NoRekeyTransport(paramiko.Transport):
    """A server that hangs up when the client starts a second key exchange."""

    def _negotiate_keys(self, m: Any) -> None:
        if self.initial_kex_done:
            self.sock.close()
            raise EOFError("no re-keying here")
        super()._negotiate_keys(m)


class _Server(paramiko.ServerInterface):
    def __init__(self, seen: list[tuple[str, str]]) -> None:
        self.seen = seen

    def get_allowed_auths(self, username: str) -> str:
        return "publickey,password"

    def check_auth_none(self, username: str) -> int:
        self.seen.append(("none", username))
        return paramiko.AUTH_FAILED


@contextlib.contextmanager
def server(
    keys: list[paramiko.PKey], transport_class: type[paramiko.Transport] = paramiko.Transport
) -> Iterator[tuple[int, list[tuple[str, str]], list[int]]]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.settimeout(0.1)
    seen: list[tuple[str, str]] = []
    connections: list[int] = []
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        transport = transport_class(conn)
        transport.local_version = DROPBEAR_BANNER
        for key in keys:
            transport.add_server_key(key)
        with contextlib.suppress(paramiko.SSHException, EOFError, OSError):
            transport.start_server(server=_Server(seen))
            while transport.is_active() and not stop.is_set():
                stop.wait(0.05)
        transport.close()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            connections.append(1)
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], seen, connections
    finally:
        stop.set()
        thread.join(1)
        listener.close()


def test_one_connection_asks_once_as_root_and_rekeys_for_every_key(
    host_keys: list[paramiko.PKey],
) -> None:
    with server(host_keys) as (port, seen, connections):
        audit = audit_at(port, TIMEOUT)
    assert audit.errors == () and audit.connections == len(connections) == 1
    assert seen == [("none", "root")]  # one request, no password, no retry
    assert audit.auth is not None and audit.auth.methods == ("publickey", "password")
    assert [(k.family.name, k.via) for k in audit.host_keys] == [
        ("ecdsa-sha2-nistp256", "auth-probe"),
        ("ssh-rsa", "rekey"),
    ]
    fingerprints = {k.family.name: k.key.sha256 for k in audit.host_keys if k.key}
    assert fingerprints == {key.get_name(): key.fingerprint for key in host_keys}


def test_a_refused_rekey_keeps_what_was_learnt(host_keys: list[paramiko.PKey]) -> None:
    with server(host_keys, _NoRekeyTransport) as (port, seen, connections):
        audit = audit_at(port, TIMEOUT)
    assert audit.connections == len(connections) == 1 and seen == [("none", "root")]
    assert audit.auth is not None and audit.auth.methods == ("publickey", "password")
    first, second = audit.host_keys
    assert first.key is not None and second.key is None and second.error


def test_more_host_keys_are_not_a_reason_for_more_connections(
    host_keys: list[paramiko.PKey],
) -> None:
    """--ssh-host-keys adds connections only for keys the first did not show."""
    with server(host_keys) as (port, _, connections):
        audit = audit_at(port, TIMEOUT, AuditOptions(all_host_keys=True))
    assert audit.connections == len(connections) == 1
    assert all(k.key for k in audit.host_keys)
