"""The network half of the SSH audit: a few short, bounded connections, nothing an anonymous
client would not do.

1. Algorithms: send our identification, read the server's identification and KEXINIT, and
   (in the same connection) start a key exchange just far enough to receive one host key.
2. Authentication methods, the way nmap's ssh-auth-methods does: a full key exchange (paramiko)
   and ONE `none` userauth request for a random user name. The failure reply lists the methods
   that can continue; a success means the server lets anyone in. No password is ever sent, no
   retry. This connection also records the host key it negotiated.
3. One more connection per host key the first two did not show (ed25519, ECDSA, RSA ...).

Every connection comes from the network layer, with a deadline and a byte cap, paramiko's
included (`open_bounded`).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import paramiko
from cryptography.hazmat.primitives import hashes
from paramiko.kex_curve25519 import KexCurve25519
from paramiko.kex_group14 import KexGroup14SHA256

from scanner import __version__
from scanner.checks.ssh.hostkeys import (
    SSH_MSG_KEX_REPLY,
    HostKey,
    KeyFamily,
    choose_kex,
    client_kexinit,
    describe_host_key,
    frame,
    kex_init_message,
    key_families,
    key_family_name,
    parse_kex_reply,
)
from scanner.checks.ssh.kexinit import (
    MAX_LINE_BYTES,
    MAX_PRE_BANNER_BYTES,
    MAX_PRE_BANNER_LINES,
    SSH_MSG_DEBUG,
    SSH_MSG_DISCONNECT,
    SSH_MSG_IGNORE,
    SSH_MSG_KEXINIT,
    Identification,
    KexInit,
    message_type,
    packet_length,
    packet_payload,
    parse_disconnect,
    parse_identification_line,
    parse_kexinit,
)
from scanner.net import Connector, SocketAdapter
from scanner.report.sanitize import safe_text

CLIENT_IDENTIFICATION = f"SSH-2.0-exposure_{__version__}"
CONNECTION_BYTE_CAP = 256 * 1024  # per connection; a whole audit reads ~10 KB
RECV_CHUNK = 16 * 1024
MAX_SKIPPED_MESSAGES = 8  # SSH_MSG_IGNORE / DEBUG tolerated while waiting for a reply
MAX_KEY_CONNECTIONS = 4  # extra connections for host keys, after the first two
BUDGET_CONNECTIONS = 3  # a whole audit may take this many connection timeouts, not more
CONNECTION_TIMEOUTS = 3  # one connection (key exchange included) may take 3 read timeouts
MIN_CONNECTION_SECONDS = 0.05
MAX_AUTH_METHODS = 16
AUTH_METHOD_CHARS = 64
ERROR_CHARS = 200
PROBE_USER_PREFIX = "exposure-"
# paramiko logs transport errors (with tracebacks) at ERROR; keep them under our name and out
# of a terminal that configured no logging.
PARAMIKO_LOG_CHANNEL = f"{__name__}.paramiko"
logging.getLogger(PARAMIKO_LOG_CHANNEL).addHandler(logging.NullHandler())


class SshProtocolError(Exception):
    """The server did not follow the protocol far enough for us to go on."""


NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    EOFError,
    SshProtocolError,
    paramiko.SSHException,
)


def describe_error(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return safe_text(f"{type(error).__name__}: {text}", ERROR_CHARS)


# --- bounded sockets ------------------------------------------------------------------------


def open_bounded(connector: Connector, timeout: float) -> SocketAdapter:
    """A connection from the network layer, lent as a socket (to paramiko too): reads stop at
    its deadline (`timeout` from now, never past the port's) and after CONNECTION_BYTE_CAP
    bytes, with EOFError, which paramiko treats as the end of the connection."""
    return connector.dialer.open_socket(
        connector.endpoint.with_tls(False), expired=EOFError, cap=CONNECTION_BYTE_CAP,
        lifetime=timeout,
    )


class PacketStream:
    """Lines and cleartext packets from a bounded connection."""

    def __init__(self, sock: SocketAdapter) -> None:
        self.sock = sock
        self.buffer = bytearray()

    def _fill(self) -> None:
        try:
            data = self.sock.recv(RECV_CHUNK)
        except TimeoutError as error:
            raise EOFError("deadline reached") from error
        if not data:
            raise EOFError("the server closed the connection")
        self.buffer += data

    def read_line(self) -> bytes:
        while (end := self.buffer.find(b"\n")) < 0:
            if len(self.buffer) > MAX_LINE_BYTES:
                raise SshProtocolError("a line longer than 1 KiB before the identification")
            self._fill()
        line = bytes(self.buffer[: end + 1])
        del self.buffer[: end + 1]
        return line

    def read_exact(self, count: int) -> bytes:
        while len(self.buffer) < count:
            self._fill()
        data = bytes(self.buffer[:count])
        del self.buffer[:count]
        return data

    def read_identification(self) -> Identification:
        consumed = 0
        for _ in range(MAX_PRE_BANNER_LINES):
            line = self.read_line()
            consumed += len(line)
            found = parse_identification_line(line.rstrip(b"\r\n"))
            if found is not None:
                return found
            if consumed > MAX_PRE_BANNER_BYTES:
                break
        raise SshProtocolError("no SSH identification line")

    def read_payload(self) -> bytes:
        header = self.read_exact(4)
        length = packet_length(header)
        if length is None:
            raise SshProtocolError("implausible packet length")
        payload = packet_payload(header + self.read_exact(length))
        if payload is None:
            raise SshProtocolError("malformed packet")
        return payload

    def read_message(self, wanted: int) -> bytes:
        """The next message of type `wanted`, skipping IGNORE and DEBUG."""
        for _ in range(MAX_SKIPPED_MESSAGES + 1):
            payload = self.read_payload()
            kind = message_type(payload)
            if kind == wanted:
                return payload
            if kind == SSH_MSG_DISCONNECT:
                raise SshProtocolError(f"server disconnected: {parse_disconnect(payload)}")
            if kind not in (SSH_MSG_IGNORE, SSH_MSG_DEBUG):
                raise SshProtocolError(f"unexpected message type {kind} (wanted {wanted})")
        raise SshProtocolError("too many IGNORE/DEBUG messages")


# --- results -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerHello:
    identification: Identification
    kexinit: KexInit


@dataclass(frozen=True)
class FetchedKey:
    family: KeyFamily
    key: HostKey | None
    via: str  # "kex" (our own key-exchange start) or "auth-probe" (paramiko, signature checked)
    error: str | None = None

    def to_dict(self) -> dict[str, object]:
        entry: dict[str, object] = {"algorithms": list(self.family.algorithms)}
        if self.key is not None:
            entry.update(self.key.to_dict())
        else:
            entry.update({"type": self.family.name, "sha256": None, "error": self.error})
        return entry


@dataclass(frozen=True)
class AuthProbe:
    user: str
    methods: tuple[str, ...] | None  # what the server lists after `none`; None: not learnt
    none_accepted: bool = False
    banner: str | None = None  # a pre-authentication banner (SSH_MSG_USERAUTH_BANNER)
    host_key: HostKey | None = None
    host_key_algorithm: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class SshAudit:
    hello: ServerHello | None
    host_keys: tuple[FetchedKey, ...] = ()
    auth: AuthProbe | None = None
    auth_skipped: str | None = None  # why no auth probe was attempted
    connections: int = 0
    seconds: float = 0.0
    errors: tuple[str, ...] = field(default_factory=tuple)


# --- connection 1 and 3+: our own key-exchange start ---------------------------------------


def read_hello(stream: PacketStream) -> ServerHello:
    stream.sock.sendall(CLIENT_IDENTIFICATION.encode("ascii") + b"\r\n")
    identification = stream.read_identification()
    kexinit = parse_kexinit(stream.read_message(SSH_MSG_KEXINIT))
    if kexinit is None:
        raise SshProtocolError("malformed KEXINIT")
    return ServerHello(identification, kexinit)


def request_host_key(stream: PacketStream, server: KexInit, algorithm: str) -> HostKey:
    """Start a key exchange asking for `algorithm`; the server's reply carries its host key."""
    method = choose_kex(server.kex)
    if method is None:
        raise SshProtocolError("the server offers no key exchange method we can start")
    messages = frame(client_kexinit(method, algorithm, server)) + frame(kex_init_message(method))
    stream.sock.sendall(messages)
    blob = parse_kex_reply(stream.read_message(SSH_MSG_KEX_REPLY))
    key = describe_host_key(blob or b"")
    if key is None:
        raise SshProtocolError("no host key in the key exchange reply")
    return key


# --- connection 2: authentication methods (paramiko) ------------------------------------------


class _SshRsaKey(paramiko.RSAKey):
    """Verifies ssh-rsa (SHA-1) signatures, which paramiko no longer accepts by default.

    Only for reading a legacy server's answers; no trust is placed in the key."""

    HASHES: ClassVar[dict[str, Any]] = {**paramiko.RSAKey.HASHES, "ssh-rsa": hashes.SHA1}


class _KexGroup14Sha1(KexGroup14SHA256):
    name = "diffie-hellman-group14-sha1"
    hash_algo = hashlib.sha1


class ProbeTransport(paramiko.Transport):
    """paramiko's client plus what it lacks for reading any server's methods: the RFC 8731
    name of curve25519 (paramiko only knows the @libssh.org alias of the same method), and, tried
    last, the two legacy algorithms old routers still need (ssh-rsa host keys,
    diffie-hellman-group14-sha1)."""

    _preferred_keys = (*paramiko.Transport._preferred_keys, "ssh-rsa")
    _key_info: ClassVar[dict[str, Any]] = {**paramiko.Transport._key_info, "ssh-rsa": _SshRsaKey}
    _preferred_kex = (
        *paramiko.Transport._preferred_kex,
        "curve25519-sha256",
        "diffie-hellman-group14-sha1",
    )
    _kex_info: ClassVar[dict[str, Any]] = {
        **paramiko.Transport._kex_info,
        "curve25519-sha256": KexCurve25519,
        "diffie-hellman-group14-sha1": _KexGroup14Sha1,
    }


PROBE_KEY_TYPES: tuple[str, ...] = tuple(ProbeTransport._preferred_keys)
_PROBE_KEX = frozenset(ProbeTransport._preferred_kex)
_PROBE_CIPHERS = frozenset(ProbeTransport._preferred_ciphers)
_PROBE_MACS = frozenset(ProbeTransport._preferred_macs)


def probe_blocker(server: KexInit) -> str | None:
    """Why our SSH client cannot complete a key exchange with this server; None if it can.
    Checked first so that a probe that cannot work costs no connection."""
    if not _PROBE_KEX.intersection(server.kex):
        return "no key exchange method in common with our SSH client"
    if not set(PROBE_KEY_TYPES).intersection(server.host_key):
        return "no host key algorithm our SSH client can verify"
    ciphers = _PROBE_CIPHERS.intersection(server.ciphers_c2s).intersection(server.ciphers_s2c)
    if not ciphers:
        return "no cipher in common with our SSH client (e.g. only chacha20-poly1305)"
    # paramiko wants a MAC in common even when the cipher is an AEAD one
    if not _PROBE_MACS.intersection(server.macs_c2s).intersection(server.macs_s2c):
        return "no MAC in common with our SSH client"
    return None


def _text(value: bytes | str | None, limit: int) -> str | None:
    if value is None or value == b"" or value == "":
        return None
    return safe_text(value, limit)


def probe_auth(connector: Connector, timeout: float, key_types: Sequence[str]) -> AuthProbe:
    """ONE `none` userauth request for a random user; never a password, never a retry."""
    user = PROBE_USER_PREFIX + secrets.token_hex(4)
    sock = open_bounded(connector, timeout)
    transport = ProbeTransport(sock)
    try:
        transport.local_version = CLIENT_IDENTIFICATION
        transport.set_log_channel(PARAMIKO_LOG_CHANNEL)
        transport.banner_timeout = transport.handshake_timeout = transport.auth_timeout = timeout
        transport.get_security_options().key_types = tuple(key_types)
        transport.start_client(timeout=max(0.01, sock.remaining()))
        server_key = transport.get_remote_server_key()
        host_key = describe_host_key(server_key.asbytes())
        algorithm = transport.host_key_type
        try:
            transport.auth_none(user)
            methods: tuple[str, ...] = ("none",)
            accepted = True
        except paramiko.BadAuthenticationType as refused:
            methods = tuple(
                safe_text(str(name), AUTH_METHOD_CHARS)
                for name in list(refused.allowed_types)[:MAX_AUTH_METHODS]
            )
            accepted = False
        return AuthProbe(
            user=user,
            methods=methods,
            none_accepted=accepted,
            banner=_text(transport.get_banner(), 512),
            host_key=host_key,
            host_key_algorithm=safe_text(algorithm or "", 64) or None,
        )
    except Exception as error:  # paramiko re-raises whatever its thread hit on hostile input
        return AuthProbe(user=user, methods=None, error=describe_error(error))
    finally:
        transport.close()
        sock.close()


# --- the whole audit ---------------------------------------------------------------------------


@dataclass
class _Progress:
    timeout: float  # per connection
    budget_end: float  # for the whole audit: a slow server cannot make it cost more
    connections: int = 0
    errors: list[str] = field(default_factory=list)
    keys: dict[str, FetchedKey] = field(default_factory=dict)

    def allowance(self) -> float:
        """Seconds the next connection may take; raises TimeoutError once the budget is spent."""
        seconds = min(self.timeout, self.budget_end - time.monotonic())
        if seconds < MIN_CONNECTION_SECONDS:
            raise TimeoutError("the audit's time budget is spent")
        return seconds


def _fetch_key(
    stream: PacketStream, hello: ServerHello, family: KeyFamily, progress: _Progress
) -> None:
    try:
        key = request_host_key(stream, hello.kexinit, family.request)
        progress.keys[family.name] = FetchedKey(family, key, "kex")
    except NETWORK_ERRORS as error:
        progress.keys[family.name] = FetchedKey(family, None, "kex", describe_error(error))


def _with_stream(
    connector: Connector, progress: _Progress, work: Callable[[PacketStream], Any]
) -> Any:
    sock = open_bounded(connector, progress.allowance())
    progress.connections += 1
    try:
        return work(PacketStream(sock))
    finally:
        sock.close()


def _first_connection(connector: Connector, progress: _Progress) -> ServerHello | None:
    def work(stream: PacketStream) -> ServerHello:
        hello = read_hello(stream)
        families = key_families(hello.kexinit.host_key)
        if families:
            _fetch_key(stream, hello, families[0], progress)
        return hello

    try:
        return _with_stream(connector, progress, work)
    except NETWORK_ERRORS as error:
        progress.errors.append(f"algorithms: {describe_error(error)}")
        return None


def _probe_key_types(families: Sequence[KeyFamily], progress: _Progress) -> list[str]:
    """Host key algorithms for the auth probe: preferably a key not seen yet."""
    for family in families:
        usable = [a for a in family.algorithms if a in PROBE_KEY_TYPES]
        if family.name not in progress.keys and usable:
            return usable
    return [a for family in families for a in family.algorithms if a in PROBE_KEY_TYPES]


def _auth_connection(connector: Connector, hello: ServerHello, progress: _Progress) -> AuthProbe:
    families = key_families(hello.kexinit.host_key)
    try:
        key_types = _probe_key_types(families, progress)
        probe = probe_auth(connector, progress.allowance(), key_types)
        progress.connections += 1
    except OSError as error:  # no connection: refused, unreachable, or no time left
        probe = AuthProbe(user="", methods=None, error=describe_error(error))
    family_name = key_family_name(probe.host_key_algorithm or "")
    family = next((f for f in families if f.name == family_name), None)
    if probe.host_key is not None and family is not None and family.name not in progress.keys:
        progress.keys[family.name] = FetchedKey(family, probe.host_key, "auth-probe")
    if probe.error:
        progress.errors.append(f"auth methods: {probe.error}")
    return probe


def _remaining_keys(connector: Connector, hello: ServerHello, progress: _Progress) -> None:
    missing = [f for f in key_families(hello.kexinit.host_key) if f.name not in progress.keys]
    for family in missing[:MAX_KEY_CONNECTIONS]:

        def work(stream: PacketStream, family: KeyFamily = family) -> None:
            _fetch_key(stream, read_hello(stream), family, progress)

        try:
            _with_stream(connector, progress, work)
        except NETWORK_ERRORS as error:
            progress.keys[family.name] = FetchedKey(family, None, "kex", describe_error(error))


def audit_ssh(connector: Connector) -> SshAudit:
    """Audit the SSH server the connector reaches: each connection within a few read timeouts,
    the whole audit within BUDGET_CONNECTIONS times that (and the port's deadline)."""
    started = time.monotonic()
    timeout = CONNECTION_TIMEOUTS * connector.dialer.read_timeout
    progress = _Progress(timeout, started + BUDGET_CONNECTIONS * timeout)
    hello = _first_connection(connector, progress)
    auth: AuthProbe | None = None
    skipped: str | None = None
    if hello is not None:
        skipped = probe_blocker(hello.kexinit)
        if skipped is None:
            auth = _auth_connection(connector, hello, progress)
        _remaining_keys(connector, hello, progress)
    order = [f.name for f in key_families(hello.kexinit.host_key)] if hello else []
    keys = tuple(progress.keys[name] for name in order if name in progress.keys)
    return SshAudit(
        hello=hello,
        host_keys=keys,
        auth=auth,
        auth_skipped=skipped,
        connections=progress.connections,
        seconds=time.monotonic() - started,
        errors=tuple(progress.errors),
    )
