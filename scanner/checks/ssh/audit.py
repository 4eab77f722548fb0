"""The network half of the SSH audit: one connection per port unless asked for more, nothing an
anonymous client would not do, and nothing fail2ban counts where that can be known (servers.py
says what each server software logs, and why the audit does what it does).

The connection: send our identification, read the server's identification and KEXINIT. Then
either
- start a key exchange just far enough to receive one host key, and hang up; or, where the login
  methods are asked (by default on Dropbear, with `AuditOptions.auth_probe` elsewhere):
- let paramiko continue the same connection: a full key exchange (the host key's signature is
  checked), ONE `none` userauth request for the server's probe user (the failure reply lists the
  methods that can continue; a success means that user gets in with nothing) and, on servers
  that re-key before login, one re-key per further host key. No password is ever sent, no
  retry, no channel opened.
With `AuditOptions.all_host_keys`, one more connection per host key still missing. Every
connection ends with a plain TCP close, never SSH_MSG_DISCONNECT (servers.py says why).

Every connection comes from the network layer with a deadline and a byte cap, paramiko's
included (`open_bounded`).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import paramiko
from cryptography.hazmat.primitives import hashes
from paramiko.kex_curve25519 import KexCurve25519
from paramiko.kex_group14 import KexGroup14SHA256

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
from scanner.checks.ssh.servers import ServerProfile, profile_for
from scanner.checks.ssh.versions import parse_software
from scanner.core.text import safe_text
from scanner.net import Connector, SocketAdapter
from scanner.net.codecs.ssh import CLIENT_IDENTIFICATION, IDENTIFICATION_LINE

CONNECTION_BYTE_CAP = 256 * 1024  # per connection; a whole audit reads ~10 KB
RECV_CHUNK = 16 * 1024
MAX_SKIPPED_MESSAGES = 8  # SSH_MSG_IGNORE / DEBUG tolerated while waiting for a reply
MAX_KEY_CONNECTIONS = 4  # extra connections for host keys (all_host_keys), after the first
MAX_REKEYS = 4  # further host keys asked by re-keying the first connection
BUDGET_CONNECTIONS = 3  # a whole audit may take this many connection timeouts, not more
CONNECTION_TIMEOUTS = 3  # one connection (key exchange included) may take 3 read timeouts
MIN_CONNECTION_SECONDS = 0.05
MAX_AUTH_METHODS = 16
AUTH_METHOD_CHARS = 64
ERROR_CHARS = 200
# RSA and DSA keys are the ones whose size a finding reads: shown first when only one key is.
SIZED_KEY_FAMILIES = ("ssh-rsa", "ssh-dss")
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


# --- bounded sockets -------------------------------------------------------------------------


def open_bounded(connector: Connector, timeout: float) -> SocketAdapter:
    """The one place the SSH audit opens a connection: from the network layer, lent as a
    socket (to paramiko too). Reads stop at its deadline (`timeout` from now, never past the
    port's) and after CONNECTION_BYTE_CAP bytes, with EOFError, which paramiko treats as the
    end of the connection; closing it shuts it down first (a plain TCP close, which wakes a
    paramiko thread blocked in recv at once)."""
    return connector.dialer.open_socket(
        connector.endpoint.with_tls(False), expired=EOFError, cap=CONNECTION_BYTE_CAP,
        lifetime=timeout,
    )


class ResumedSocket:
    """A connection we began, as paramiko must see it to continue it: what we already read is
    read again, and our identification line, already sent, is not sent a second time. Both
    sides then hash the same identification and KEXINIT bytes into the key exchange."""

    def __init__(self, sock: SocketAdapter, received: bytes, sent: bytes) -> None:
        self._sock = sock
        self._replay = bytearray(received)
        self._already_sent = sent

    def recv(self, size: int) -> bytes:
        if self._replay:
            data = bytes(self._replay[:size])
            del self._replay[:size]
            return data
        return self._sock.recv(size)

    def send(self, data: bytes) -> int:
        skipped = len(self._already_sent)
        if not skipped:
            return self._sock.send(data)
        if not data.startswith(self._already_sent):  # paramiko writes its identification first
            raise SshProtocolError("the SSH client did not start with our identification")
        self._already_sent = b""
        rest = data[skipped:]
        return skipped + (self._sock.send(rest) if rest else 0)

    def settimeout(self, value: float | None) -> None:
        self._sock.settimeout(value)

    def close(self) -> None:
        self._sock.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class PacketStream:
    """Lines and cleartext packets from a bounded connection."""

    def __init__(self, sock: SocketAdapter) -> None:
        self.sock = sock
        self.buffer = bytearray()
        self.received = bytearray()  # every byte read, for paramiko to read again

    def _fill(self) -> None:
        try:
            data = self.sock.recv(RECV_CHUNK)
        except TimeoutError as error:
            raise EOFError("deadline reached") from error
        if not data:
            raise EOFError("the server closed the connection")
        self.buffer += data
        self.received += data

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


# --- what may be asked, and the results --------------------------------------------------------


@dataclass(frozen=True)
class AuditOptions:
    """What the audit may cost a server beyond one connection (see servers.py)."""

    auth_probe: bool = False  # ask the login methods where fail2ban might count it
    all_host_keys: bool = False  # one more connection per host key not seen otherwise


@dataclass(frozen=True)
class AuthPlan:
    """Whether the login methods are asked, as whom, and if not, why."""

    profile: ServerProfile
    user: str | None  # the one `none` request's user name; None: not asked
    blocker: str | None = None  # why our client cannot ask (probe_blocker)
    opt_in: bool = False  # a request fail2ban might count: asked only with auth_probe

    @property
    def left_to_the_user(self) -> bool:
        """Not asked only because the request is opt-in."""
        return self.user is None and self.blocker is None


@dataclass(frozen=True)
class ServerHello:
    identification: Identification
    kexinit: KexInit


@dataclass(frozen=True)
class FetchedKey:
    family: KeyFamily
    key: HostKey | None
    via: str  # "kex" (our own key-exchange start), "auth-probe" or "rekey" (paramiko, signed)
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
    error: str | None = None


@dataclass(frozen=True)
class SshAudit:
    hello: ServerHello | None
    host_keys: tuple[FetchedKey, ...] = ()
    auth: AuthProbe | None = None
    plan: AuthPlan | None = None  # None when the server's algorithms could not be read
    connections: int = 0
    seconds: float = 0.0
    errors: tuple[str, ...] = field(default_factory=tuple)


# --- our own key-exchange start --------------------------------------------------------------


def read_hello(stream: PacketStream) -> ServerHello:
    stream.sock.sendall(IDENTIFICATION_LINE)
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


# --- paramiko: the key exchange, the `none` request, re-keys ----------------------------------


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
_PROBE_COMPRESSION = frozenset(ProbeTransport._preferred_compression)


def probe_blocker(server: KexInit) -> str | None:
    """Why our SSH client cannot complete a key exchange with this server; None if it can.
    Checked before paramiko sends its KEXINIT: a failed negotiation is logged by OpenSSH as
    `Unable to negotiate ...`, which fail2ban counts in extra mode."""
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
    compression = _PROBE_COMPRESSION.intersection(server.compression_c2s)
    if not compression.intersection(server.compression_s2c):
        return "no compression method in common with our SSH client"
    return None


def plan_auth(hello: ServerHello, options: AuditOptions) -> AuthPlan:
    """Ask the login methods only where fail2ban cannot count the request, unless told to."""
    profile = profile_for(parse_software(hello.identification.software).product)
    opt_in = not profile.asked_by_default
    if opt_in and not options.auth_probe:
        return AuthPlan(profile, None, None, opt_in)
    blocker = probe_blocker(hello.kexinit)
    if blocker is not None:
        return AuthPlan(profile, None, blocker, opt_in)
    return AuthPlan(profile, profile.probe_user, None, opt_in)


def _text(value: bytes | str | None, limit: int) -> str | None:
    if value is None or value == b"" or value == "":
        return None
    return safe_text(value, limit)


def _usable(family: KeyFamily) -> tuple[str, ...]:
    return tuple(algorithm for algorithm in family.algorithms if algorithm in PROBE_KEY_TYPES)


def _offer(transport: paramiko.Transport, family: KeyFamily) -> None:
    transport.get_security_options().key_types = _usable(family)


def _negotiated(transport: paramiko.Transport, family: KeyFamily, via: str) -> FetchedKey:
    key = describe_host_key(transport.get_remote_server_key().asbytes())
    if key is None:
        return FetchedKey(family, None, via, "the key exchange gave no readable host key")
    return FetchedKey(family, key, via)


def _ask_none(transport: paramiko.Transport, user: str) -> AuthProbe:
    """ONE `none` userauth request; never a password, never a retry."""
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
    return AuthProbe(user, methods, accepted, _text(transport.get_banner(), 512))


def continue_with_paramiko(
    stream: PacketStream,
    families: Sequence[KeyFamily],
    plan: AuthPlan,
    progress: _Progress,
) -> AuthProbe:
    """paramiko takes over the connection `stream` began (read_hello): the key exchange with the
    first of `families`, the `none` request, then re-keys for the others where the server
    allows it. Host keys go into `progress.keys`."""
    sock = stream.sock
    user = plan.user or ""
    if not families:
        return AuthProbe(user, None, error="no host key our SSH client can verify")
    first, *others = families
    transport = ProbeTransport(ResumedSocket(sock, bytes(stream.received), IDENTIFICATION_LINE))
    try:
        transport.local_version = CLIENT_IDENTIFICATION
        transport.set_log_channel(PARAMIKO_LOG_CHANNEL)
        waiting = max(0.01, sock.remaining())
        transport.banner_timeout = transport.handshake_timeout = transport.auth_timeout = waiting
        _offer(transport, first)
        transport.start_client(timeout=waiting)
        progress.add_key(_negotiated(transport, first, "auth-probe"))
        probe = _ask_none(transport, user)
        if plan.profile.rekeys_before_login and not probe.none_accepted:
            for family in others[:MAX_REKEYS]:
                if not _rekey(transport, family, progress):
                    break
        return probe
    except Exception as error:  # paramiko re-raises whatever its thread hit on hostile input
        return AuthProbe(user, None, error=describe_error(error))
    finally:
        transport.close()


def _rekey(transport: paramiko.Transport, family: KeyFamily, progress: _Progress) -> bool:
    """One more key exchange, asking for `family`'s key; False if it failed (the connection
    is then over)."""
    try:
        _offer(transport, family)
        transport.renegotiate_keys()
        progress.add_key(_negotiated(transport, family, "rekey"))
        return True
    except Exception as error:  # paramiko re-raises whatever its thread hit
        progress.add_key(FetchedKey(family, None, "rekey", describe_error(error)))
        return False


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

    def add_key(self, fetched: FetchedKey) -> None:
        known = self.keys.get(fetched.family.name)
        if known is None or known.key is None:
            self.keys[fetched.family.name] = fetched


def _fetch_key(
    stream: PacketStream, hello: ServerHello, family: KeyFamily, progress: _Progress
) -> None:
    try:
        key = request_host_key(stream, hello.kexinit, family.request)
        progress.add_key(FetchedKey(family, key, "kex"))
    except NETWORK_ERRORS as error:
        progress.add_key(FetchedKey(family, None, "kex", describe_error(error)))


def _key_order(families: Sequence[KeyFamily], one_key_only: bool) -> list[KeyFamily]:
    """The server's order; when only one key will be seen, one whose size a finding reads."""
    ordered = list(families)
    if one_key_only:
        ordered.sort(key=lambda family: family.name not in SIZED_KEY_FAMILIES)
    return ordered


def _main_connection(
    connector: Connector, progress: _Progress, options: AuditOptions
) -> tuple[ServerHello | None, AuthPlan | None, AuthProbe | None]:
    try:
        sock = open_bounded(connector, progress.allowance())
    except OSError as error:
        progress.errors.append(f"algorithms: {describe_error(error)}")
        return None, None, None
    progress.connections += 1
    try:
        stream = PacketStream(sock)
        try:
            hello = read_hello(stream)
        except NETWORK_ERRORS as error:
            progress.errors.append(f"algorithms: {describe_error(error)}")
            return None, None, None
        plan = plan_auth(hello, options)
        families = key_families(hello.kexinit.host_key)
        if plan.user is None:
            one_key_only = not options.all_host_keys
            ordered = _key_order(families, one_key_only)
            if ordered:
                _fetch_key(stream, hello, ordered[0], progress)
            return hello, plan, None
        rekeys = plan.profile.rekeys_before_login
        usable = [family for family in families if _usable(family)]
        ordered = _key_order(usable, one_key_only=not (rekeys or options.all_host_keys))
        sock.deadline = max(sock.deadline, progress.budget_end)  # kex, auth, re-keys: one budget
        auth = continue_with_paramiko(stream, ordered, plan, progress)
        if auth.error:
            progress.errors.append(f"auth methods: {auth.error}")
        return hello, plan, auth
    finally:
        sock.close()


def _with_stream(
    connector: Connector, progress: _Progress, work: Callable[[PacketStream], Any]
) -> Any:
    sock = open_bounded(connector, progress.allowance())
    progress.connections += 1
    try:
        return work(PacketStream(sock))
    finally:
        sock.close()


def _remaining_keys(connector: Connector, hello: ServerHello, progress: _Progress) -> None:
    """One more connection per host key the first did not show (OpenSSH shows one each)."""
    missing = [f for f in key_families(hello.kexinit.host_key) if f.name not in progress.keys]
    for family in missing[:MAX_KEY_CONNECTIONS]:

        def work(stream: PacketStream, family: KeyFamily = family) -> None:
            _fetch_key(stream, read_hello(stream), family, progress)

        try:
            _with_stream(connector, progress, work)
        except NETWORK_ERRORS as error:
            progress.add_key(FetchedKey(family, None, "kex", describe_error(error)))


def _not_fetched(family: KeyFamily, options: AuditOptions) -> FetchedKey:
    reason = (
        "not fetched: the audit's connection or time budget was spent"
        if options.all_host_keys
        else "not fetched: that takes one more connection per key, which fail2ban's sshd "
        "filter counts in ddos mode (--ssh-host-keys fetches them)"
    )
    return FetchedKey(family, None, "none", reason)


def audit_ssh(connector: Connector, options: AuditOptions | None = None) -> SshAudit:
    """Audit the SSH server the connector reaches: each connection within a few read timeouts
    (CONNECTION_TIMEOUTS), the whole audit within BUDGET_CONNECTIONS times that, and never
    past the port's deadline."""
    options = options or AuditOptions()
    started = time.monotonic()
    timeout = CONNECTION_TIMEOUTS * connector.dialer.read_timeout
    progress = _Progress(timeout, started + BUDGET_CONNECTIONS * timeout)
    hello, plan, auth = _main_connection(connector, progress, options)
    families = key_families(hello.kexinit.host_key) if hello else ()
    if hello is not None and options.all_host_keys and (auth is None or not auth.none_accepted):
        _remaining_keys(connector, hello, progress)
    keys = tuple(progress.keys.get(f.name) or _not_fetched(f, options) for f in families)
    return SshAudit(
        hello=hello,
        host_keys=keys,
        auth=auth,
        plan=plan,
        connections=progress.connections,
        seconds=time.monotonic() - started,
        errors=tuple(progress.errors),
    )
