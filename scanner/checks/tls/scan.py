"""One TLS endpoint, scanned with as few handshakes as the grade needs, into TlsFacts.

sslyze and nassl are the TLS engine (nassl's legacy OpenSSL for SSL 2.0/3.0, export, RC4...);
we drive them ourselves instead of through sslyze.Scanner, which opens one connection per
candidate suite (200-450 per endpoint). Here:

1. Suites: for every version, a walk offers all candidate suites at once and removes the one
   the server picked (walk.py): one handshake per accepted suite, plus one refusal per walk.
   The same handshakes give the certificate chain (with the stapled OCSP response), the
   ephemeral key of each suite and the server's TLS 1.2 order. A server with which nassl's
   OpenSSLs get no suite at all gets one more walk per version it did not refuse as such, with
   our own ClientHello (rawhello.py), which can offer every IANA suite.
2. Then only the tests the grade uses: Heartbleed and CCS injection (servers without TLS 1.3),
   ROBOT (only with RSA key exchange, one round of its five payloads, confirmed by two more
   rounds only when that round shows an oracle), secure renegotiation and compression (one
   legacy handshake, which also tries a client renegotiation when secure renegotiation is
   missing), TLS_FALLBACK_SCSV (servers with two versions or more), and one handshake to tell
   a server-imposed TLS 1.2 order from the client's when the walk could not. HTTP headers come
   from identification (hsts.py); elliptic curves come from the ephemeral keys of the walk.

Connections per endpoint: A + at most 17, where A is the number of (version, suite) pairs the
server accepts: 7 walk refusals (SSL 2.0, 3.0, TLS 1.0, 1.1, 1.3, and TLS 1.2 with each
OpenSSL), the legacy handshake, fallback, Heartbleed, CCS, the order check and 5 ROBOT
payloads (10 more only to confirm an oracle; a glitch in a walk costs one retry). The lab's nginx
and GnuTLS configurations need 12 to 25 (one connection per candidate suite: 190 to 460;
bench/tls.py prints both, counted by a capture at the server). Whatever
a server does, an endpoint never gets more than MAX_CONNECTIONS; what that cuts short is
reported as not tested.

Every connection, sslyze's and our own ClientHello's, is opened by sslyze's
_open_socket_for_direct_connection, which install_connection_bounds() points at the network
layer (scanner.net): the one place where a socket to the server is made, counted against the
endpoint's cap, taking a rate token and a (bulk) host slot from the scan's budget, and bounded
in time and bytes (several sslyze plugins read "until ServerHelloDone" without a limit). The
dialer of the endpoint being graded travels with each job (its _Budget, thread-local). Jobs
not started by the endpoint's deadline (`--timeout` x 20, at least 10 s: Limits.tls_endpoint_s)
are skipped and reported as not tested.
"""

from __future__ import annotations

import concurrent.futures as futures
import datetime as dt
import ipaddress
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from scanner.checks.tls import rawhello
from scanner.checks.tls.certificate import certificate_facts, load_trust_anchors
from scanner.checks.tls.clients import probe_suites
from scanner.checks.tls.facts import (
    PROTOCOLS,
    CertificateFacts,
    Hsts,
    Preference,
    ProtocolSupport,
    Status,
    Suite,
    TlsFacts,
    Vulnerabilities,
)
from scanner.checks.tls.walk import (
    Walk,
    candidates,
    client_cipher_names,
    is_version_refusal,
    sslyze_version,
    walk,
)
from scanner.core.text import safe_text
from scanner.net import Dialer, Limits, ScanBudget, SocketAdapter
from scanner.net import Endpoint as NetEndpoint

if TYPE_CHECKING:
    from sslyze import ServerNetworkLocation
    from sslyze.plugins.openssl_cipher_suites.cipher_suites import CipherSuite
    from sslyze.plugins.scan_commands import ScanCommand
    from sslyze.server_connectivity import ServerConnectivityInfo

# Jobs of one endpoint in flight at once (each holds at most one connection); the scan's budget
# caps connections per host over everything, TLS grading to half of them (bulk slots).
ENDPOINT_JOBS = 8
MAX_CONNECTIONS = 256  # per endpoint, whatever the server does (a sane one needs A + 17)
NETWORK_RETRIES = 2  # connection attempts per handshake (sslyze default 3, with 1-6 s back-off)
CONNECTION_LIFETIME_FACTOR = 3  # one connection may live 3 x the timeout, then it is cut
HANDSHAKE_TIMEOUTS = 2  # sslyze's network timeout, in read timeouts (--timeout)
CONNECTION_BYTE_CAP = 512 * 1024  # a handshake with a long chain is ~20 KiB
ROBOT_CONFIRMATIONS = 2  # further rounds of ROBOT payloads when the first shows an oracle
LEGACY_WALKS = ("SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1")  # nassl's legacy OpenSSL only
RAW_VERSIONS = ("SSLv3", "TLSv1.0", "TLSv1.1", "TLSv1.2")  # where our own ClientHello may help
CHAIN_PREFERENCE = ("TLSv1.3", "TLSv1.2", "TLSv1.1", "TLSv1.0", "SSLv3", "SSLv2")


@dataclass(frozen=True)
class Endpoint:
    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    port: int
    hostname: str | None  # what the user typed, sent as SNI; None when they typed an address
    dialer: Dialer  # the scan's budget; its deadline bounds the whole grading
    ca_file: Path | None = None
    # --active: also the ROBOT test, whose deliberately malformed key exchanges servers log as
    # errors (nginx: one [crit] line for each of its 5 payloads)
    active: bool = False

    @property
    def timeout(self) -> float:
        return self.dialer.read_timeout


def grading_dialer(dialer: Dialer) -> Dialer:
    """The dialer a TLS grade runs on: the scan's budget, and a deadline of its own
    (Limits.tls_endpoint_s from now), not the port's: grading needs tens of handshakes."""
    return replace(dialer, deadline=time.monotonic() + dialer.budget.limits.tls_endpoint_s)


def standalone_endpoint(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int, hostname: str | None,
    timeout: float = 2.0, ca_file: Path | None = None,
) -> Endpoint:
    """An endpoint to grade outside a scan (tests, benchmarks): a budget of its own."""
    budget = ScanBudget(Limits(timeout=timeout))
    return Endpoint(address, port, hostname, grading_dialer(Dialer.for_port(budget)), ca_file)


@dataclass(frozen=True)
class ScanOutcome:
    facts: TlsFacts | None  # None when no TLS handshake succeeded at all
    error: str | None = None
    seconds: float = 0.0
    connections: int = 0  # TCP connections opened to the endpoint (counted where they open)
    notes: tuple[str, ...] = field(default_factory=tuple)


# --- connections: counted, from the network layer ---------------------------------------------


class ConnectionCapReached(OSError):
    """The endpoint has used its MAX_CONNECTIONS: no more sockets to it."""


_install_lock = threading.Lock()
_installed = False
_current = threading.local()  # .budget: the _Budget of the job this thread is running


def install_connection_bounds() -> None:
    """Make every direct connection sslyze opens a counted one from the network layer
    (idempotent)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        from sslyze.connection_helpers import tls_connection

        def from_the_network_layer(
            server_location: ServerNetworkLocation, network_timeout: int
        ) -> SocketAdapter:
            budget: _Budget | None = getattr(_current, "budget", None)
            if budget is None:  # only ever reached from scan_endpoint's jobs
                raise ConnectionError("sslyze connection outside a TLS endpoint scan")
            budget.take_connection()
            endpoint = NetEndpoint(str(server_location.ip_address), server_location.port)
            lifetime = CONNECTION_LIFETIME_FACTOR * float(network_timeout)
            return budget.dialer.open_socket(endpoint, cap=CONNECTION_BYTE_CAP,
                                             lifetime=lifetime, bulk=True)

        # sslyze types the hook as returning a socket.socket; a SocketAdapter offers the socket
        # calls sslyze makes on it, with the network layer's caps.
        hook = from_the_network_layer
        tls_connection._open_socket_for_direct_connection = hook  # type: ignore[assignment]
        _load_sslyze_trust_stores()
        _installed = True


def open_connection(server_location: ServerNetworkLocation, timeout: float) -> Any:
    """A socket to the server through the same (patched) function sslyze uses."""
    install_connection_bounds()
    from sslyze.connection_helpers import tls_connection

    return tls_connection._open_socket_for_direct_connection(server_location, timeout)  # type: ignore[arg-type]


def _load_sslyze_trust_stores() -> None:
    """Load sslyze's trust stores once, quietly: one root in them has a negative serial number,
    and cryptography warns about it on stderr every time a store is parsed."""
    import warnings

    from sslyze.plugins.certificate_info.trust_stores.trust_store_repository import (
        TrustStoresRepository,
    )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        TrustStoresRepository.get_default().get_all_stores()


# --- jobs of one endpoint -----------------------------------------------------------------------


class _Budget:
    """Runs an endpoint's jobs on its pool, each with the endpoint's dialer; a job not started
    by the deadline is skipped. Counts (and caps) the connections its jobs open."""

    def __init__(self, pool: futures.ThreadPoolExecutor, dialer: Dialer,
                 max_connections: int = MAX_CONNECTIONS) -> None:
        self.pool = pool
        self.dialer = dialer
        self.deadline = dialer.deadline
        self.max_connections = max_connections
        self.connections = 0
        self._lock = threading.Lock()

    def take_connection(self) -> None:
        with self._lock:
            if self.connections >= self.max_connections:
                raise ConnectionCapReached(f"connection cap ({self.max_connections}) reached")
            self.connections += 1

    def submit(self, function: Callable[..., Any], *args: Any) -> futures.Future[Any]:
        return self.pool.submit(self._run, function, args)

    def _run(self, function: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        if time.monotonic() > self.deadline:
            raise TimeoutError("endpoint time budget exhausted before this test started")
        _current.budget = self
        try:
            return function(*args)
        finally:
            _current.budget = None

    def wait(self, pending: Sequence[futures.Future[Any]]) -> None:
        futures.wait(pending, timeout=max(0.0, self.deadline - time.monotonic()) + 1)


# --- the scan ----------------------------------------------------------------------------------


def scan_endpoint(endpoint: Endpoint, hsts: Hsts | None = None) -> ScanOutcome:
    """Scan one endpoint and return its facts. Never raises for network problems."""
    install_connection_bounds()
    from sslyze import ServerNetworkConfiguration, ServerNetworkLocation

    started = time.monotonic()
    address = str(endpoint.address)
    name = endpoint.hostname or address
    location = ServerNetworkLocation(name, endpoint.port, ip_address=address)
    # DECISION: with an address typed, sslyze puts the address in SNI (RFC 6066 says not to);
    # servers ignore it, and the certificate is then matched against the address, as we want.
    config = ServerNetworkConfiguration(
        tls_server_name_indication=name,
        # a handshake is a few round trips: two read timeouts for each of sslyze's connections
        network_timeout=HANDSHAKE_TIMEOUTS * endpoint.timeout,  # type: ignore[arg-type]
        network_max_retries=NETWORK_RETRIES,
    )
    pool = futures.ThreadPoolExecutor(ENDPOINT_JOBS, thread_name_prefix=f"tls-{endpoint.port}")
    budget = _Budget(pool, endpoint.dialer)
    gathered = _Gathered()
    try:
        _walk_all(_server_info(location, config, None), budget, gathered)
        _walk_raw(location, endpoint, budget, gathered)
        if not gathered.any_accepted():
            error = (gathered.first_error()
                     or "no TLS handshake succeeded with any version or suite")
            return ScanOutcome(None, error, time.monotonic() - started, budget.connections)
        server = _server_info(location, config, gathered)
        if any(gathered.accepted(version) for version in PROTOCOLS):
            _run_tests(server, budget, gathered, endpoint.active)
        else:  # only our own ClientHello got suites: sslyze's tests cannot handshake either
            gathered.errors["vulnerability tests"] = "no suite nassl's OpenSSLs can negotiate"
    finally:
        # Jobs still running end at their connection's deadline; none is left queued.
        pool.shutdown(wait=False, cancel_futures=True)
    facts = _facts(gathered, endpoint, name, hsts or Hsts())
    return ScanOutcome(facts, None, time.monotonic() - started, budget.connections,
                       gathered.notes())


@dataclass
class _Gathered:
    walks: dict[str, list[Walk]] = field(default_factory=dict)  # version -> its walks
    raw: dict[str, rawhello.RawWalk] = field(default_factory=dict)  # own-ClientHello walks
    errors: dict[str, str] = field(default_factory=dict)  # test or version -> why not
    results: dict[str, Any] = field(default_factory=dict)  # test -> result
    preference: Preference = field(default_factory=Preference)

    def accepted(self, version: str) -> list[Any]:
        return [a for w in self.walks.get(version, []) for a in w.accepted]

    def accepted_names(self, version: str) -> list[str]:
        names = [a.cipher_suite.name for a in self.accepted(version)]
        raw = self.raw.get(version)
        return names + ([s.name for s in raw.suites] if raw else [])

    def any_accepted(self) -> bool:
        return any(self.accepted_names(version) for version in PROTOCOLS)

    def supported(self) -> list[str]:
        return [version for version in PROTOCOLS if self.accepted_names(version)]

    def highest(self) -> str:
        return self.supported()[-1]

    def first_error(self) -> str | None:
        return next(iter(self.errors.values()), None)

    def notes(self) -> tuple[str, ...]:
        fell_back = sorted({w.version for ws in self.walks.values() for w in ws if w.fell_back})
        return tuple(f"{version}: suites tested one per handshake (the walk could not read "
                     "the server's picks)" for version in fell_back)


def _server_info(
    location: ServerNetworkLocation, config: Any, gathered: _Gathered | None
) -> ServerConnectivityInfo:
    """What sslyze's connectivity test would have found, from the walks (no handshake of its
    own). Before the walks, a placeholder: every walk names its version and suites itself."""
    from sslyze.server_connectivity import (
        ClientAuthRequirementEnum,
        ServerConnectivityInfo,
        ServerTlsProbingResult,
        TlsVersionEnum,
    )

    version, suite, ecdh = TlsVersionEnum.TLS_1_2, "", False
    if gathered is not None:
        highest = gathered.highest()
        version = sslyze_version(highest)
        suite = _default_suite(gathered, highest)
        ecdh = any("ECDH" in name for v in PROTOCOLS for name in gathered.accepted_names(v))
    probing = ServerTlsProbingResult(version, suite, ClientAuthRequirementEnum.DISABLED, ecdh)
    return ServerConnectivityInfo(location, config, probing)


def _default_suite(gathered: _Gathered, version: str) -> str:
    """The suite sslyze's default connection at `version` will offer: one the server accepted
    and that the OpenSSL sslyze uses there by default (modern for TLS 1.2 and 1.3) can offer."""
    walks = gathered.walks.get(version, [])
    for walked in walks:
        for accepted in walked.accepted:
            return str(accepted.cipher_suite.openssl_name)
    return ""


# --- phase 1: the walks ------------------------------------------------------------------------


def _walk_all(server: ServerConnectivityInfo, budget: _Budget, gathered: _Gathered) -> None:
    jobs = {version: budget.submit(_walk_legacy, server, version, budget.deadline)
            for version in LEGACY_WALKS}
    jobs["TLSv1.2"] = budget.submit(_walk_tls12, server, budget.deadline)
    jobs["TLSv1.3"] = budget.submit(_walk_tls13, server, budget.deadline)
    budget.wait(list(jobs.values()))
    for version, job in jobs.items():
        try:
            gathered.walks[version] = job.result(timeout=0) if job.done() else _late(job)
        except Exception as error:
            gathered.errors[version] = _error_text(error)


def _late(job: futures.Future[Any]) -> Any:
    job.cancel()
    raise TimeoutError("time budget exhausted")


def _walk_legacy(server: ServerConnectivityInfo, version: str, deadline: float) -> list[Walk]:
    return [walk(server, version, candidates(version), legacy=True, deadline=deadline)]


def _walk_tls13(server: ServerConnectivityInfo, deadline: float) -> list[Walk]:
    return [walk(server, "TLSv1.3", candidates("TLSv1.3"), legacy=False, deadline=deadline)]


def _walk_tls12(server: ServerConnectivityInfo, deadline: float) -> list[Walk]:
    """Modern OpenSSL first (reference suites first, so the order can be read), then the legacy
    OpenSSL for what the modern one did not get."""
    every = candidates("TLSv1.2")
    modern_names, legacy_names = client_cipher_names(legacy=False), client_cipher_names(True)
    modern = walk(server, "TLSv1.2", tls12_offer(every, modern_names), legacy=False,
                  deadline=deadline)
    got = set(modern.names)
    rest = [s for s in every if s.openssl_name in legacy_names and s.name not in got]
    return [modern, walk(server, "TLSv1.2", rest, legacy=True, deadline=deadline)]


def tls12_offer(every: Sequence[CipherSuite], known: frozenset[str]) -> list[CipherSuite]:
    """The modern walk's offer: the reference browsers' suites first, in probe order."""
    reference = {name: index for index, name in enumerate(probe_suites())}
    offered = [suite for suite in every if suite.openssl_name in known]
    return sorted(offered, key=lambda s: (reference.get(s.name, len(reference)), s.name))


def _walk_raw(
    location: ServerNetworkLocation, endpoint: Endpoint, budget: _Budget, gathered: _Gathered
) -> None:
    """Our own ClientHello, when nassl got no suite with any version: for each version the
    server did not refuse as such (a "protocol version" alert).

    DECISION: only then. A server that also has suites nassl negotiates is graded from those,
    as sslyze would; the extra refusals would cost every server one connection per version.
    """
    if gathered.any_accepted():
        return
    versions = [
        version for version in RAW_VERSIONS
        if version in gathered.walks
        and not any(is_version_refusal(w.refusal) for w in gathered.walks[version])
    ]
    sni = endpoint.hostname
    jobs = {version: budget.submit(rawhello.raw_walk, lambda t: open_connection(location, t),
                                   version, sni, endpoint.timeout, budget.deadline)
            for version in versions}
    budget.wait(list(jobs.values()))
    for version, job in jobs.items():
        try:
            found = job.result(timeout=0) if job.done() else _late(job)
        except Exception as error:
            gathered.errors[f"{version} (own ClientHello)"] = _error_text(error)
            continue
        if found.suites:
            gathered.raw[version] = found


# --- phase 2: the tests the grade uses ---------------------------------------------------------


ROBOT_NOT_ASKED = (
    "not tested without --active: its malformed RSA key exchanges make servers log errors "
    "(nginx: 5 [crit] lines)"
)


def _run_tests(
    server: ServerConnectivityInfo, budget: _Budget, gathered: _Gathered, active: bool
) -> None:
    from sslyze.plugins.scan_commands import ScanCommand

    supported = gathered.supported()
    commands: list[ScanCommand] = [ScanCommand.HEARTBLEED, ScanCommand.OPENSSL_CCS_INJECTION]
    if len(supported) > 1:
        # DECISION: with one version there is nothing to fall back to; the rating ignores the
        # test there (warnings_for), so it is not run.
        commands.append(ScanCommand.TLS_FALLBACK_SCSV)
    running: dict[str, Any] = {command.value: _submit_command(server, budget, command)
                               for command in commands}
    session = budget.submit(_legacy_session, server, gathered)
    order = budget.submit(_preference, server, gathered)
    if not active and _robot_plan(gathered) is not None:  # an RSA key exchange to test
        gathered.errors["robot"] = ROBOT_NOT_ASKED
    else:  # --active, or no RSA key exchange (not vulnerable, and nothing is sent)
        try:  # its payloads go to the pool from here: a pool job waiting on pool jobs could
            gathered.results["robot"] = _robot(server, budget, gathered)  # starve
        except Exception as error:
            gathered.errors["robot"] = _error_text(error)
    pending = [job for jobs in running.values() if isinstance(jobs, tuple) for job in jobs[1]]
    budget.wait([*pending, session, order])
    for command in commands:
        _collect(server, command, running[command.value], gathered)
    try:
        gathered.results["legacy_session"] = (session.result(timeout=0) if session.done()
                                              else _late(session))
    except Exception as error:
        gathered.errors["legacy_session"] = _error_text(error)
    try:
        gathered.preference = order.result(timeout=0) if order.done() else Preference()
    except Exception:
        gathered.preference = Preference()


def _submit_command(
    server: ServerConnectivityInfo, budget: _Budget, command: ScanCommand
) -> tuple[Any, list[futures.Future[Any]]] | str:
    """Start a scan command's jobs; returns (implementation, futures) or why it could not."""
    from sslyze.plugins.scan_commands import ScanCommandsRepository

    implementation = ScanCommandsRepository.get_implementation_cls(command)
    try:
        jobs = implementation.scan_jobs_for_scan_command(server, None)
    except Exception as error:  # e.g. a plugin that does not apply to this server
        return _error_text(error)
    submitted = [budget.submit(job.function_to_call, *job.function_arguments) for job in jobs]
    return implementation, submitted


def _collect(
    server: ServerConnectivityInfo,
    command: ScanCommand,
    submitted: tuple[Any, list[futures.Future[Any]]] | str,
    gathered: _Gathered,
) -> None:
    from sslyze.plugins.plugin_base import ScanJobResult

    if isinstance(submitted, str):
        gathered.errors[command.value] = submitted
        return
    implementation, jobs = submitted
    results = []
    for job in jobs:
        if not job.done():
            job.cancel()
            gathered.errors[command.value] = "time budget exhausted"
            return
        error = job.exception()
        results.append(ScanJobResult(_return_value=None if error else job.result(),
                                     _exception=error))  # type: ignore[arg-type]
    try:
        gathered.results[command.value] = implementation.result_for_completed_scan_jobs(
            server, results
        )
    except Exception as error:
        gathered.errors[command.value] = _error_text(error)


def _below_tls13(gathered: _Gathered) -> tuple[str, bool]:
    """The version sslyze's renegotiation, compression and ROBOT tests use, and whether it is
    TLS 1.2 chosen for a TLS 1.3 server (which may have no TLS 1.2 at all)."""
    highest = gathered.highest()
    return ("TLSv1.2", True) if highest == "TLSv1.3" else (highest, False)


def _legacy_session(server: ServerConnectivityInfo, gathered: _Gathered) -> SimpleNamespace:
    """sslyze's secure-renegotiation, compression and client-renegotiation tests, which each
    make the same legacy-OpenSSL handshake, in one handshake.

    DECISION: the client renegotiation is only attempted when secure renegotiation is missing:
    the grade uses it only then (the insecure-renegotiation cap); otherwise it stays untested.
    """
    from nassl import _nassl
    from sslyze.errors import ServerRejectedTlsHandshake

    version, downgraded = _below_tls13(gathered)
    if version == "SSLv2":
        raise ValueError("renegotiation and compression do not apply to SSL 2.0")
    connection = server.get_preconfigured_tls_connection(
        override_tls_version=sslyze_version(version), should_use_legacy_openssl=True
    )
    legacy_names = client_cipher_names(legacy=True)
    offer = [a.cipher_suite.openssl_name for a in gathered.accepted(version)
             if a.cipher_suite.openssl_name in legacy_names]
    if offer:  # suites the server is known to take: the handshake cannot miss for lack of one
        connection.ssl_client.set_cipher_list(":".join(offer))
    client: Any = connection.ssl_client
    try:
        try:
            connection.connect()
        except ServerRejectedTlsHandshake:
            if downgraded:  # TLS 1.3 only: no renegotiation, no compression
                return SimpleNamespace(secure=True, compression=False, client_renegotiation=False)
            raise
        secure = bool(client.get_secure_renegotiation_support())
        compression = bool(client.get_current_compression_method())
        accepted: bool | None = None
        if not secure:
            try:
                client.do_renegotiate()
                accepted = True
            except (OSError, _nassl.OpenSSLError):  # refused, in any of the ways servers do
                accepted = False
        return SimpleNamespace(secure=secure, compression=compression,
                               client_renegotiation=accepted)
    finally:
        connection.close()


@dataclass(frozen=True)
class _RobotPlan:
    version: str
    ciphers: str
    modulus: int
    exponent: int


def _robot_plan(gathered: _Gathered) -> _RobotPlan | None:
    """sslyze's ROBOT test without its handshakes for the RSA key: the walk has the leaf of an
    RSA key exchange handshake. None: the server has no RSA key exchange (not vulnerable)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

    version, _ = _below_tls13(gathered)
    names = set(gathered.accepted_names(version))
    leaf = next((w.rsa_leaf for w in gathered.walks.get(version, []) if w.rsa_leaf), None)
    if version == "SSLv2" or not any(n.startswith("TLS_RSA_WITH_") for n in names) or not leaf:
        return None
    key = x509.load_pem_x509_certificate(leaf.encode("ascii")).public_key()
    if not isinstance(key, RSAPublicKey):
        return None
    gcm = {"TLS_RSA_WITH_AES_128_GCM_SHA256", "TLS_RSA_WITH_AES_256_GCM_SHA384"}
    ciphers = ("AES128-GCM-SHA256:AES256-GCM-SHA384" if version == "TLSv1.2" and names & gcm
               else "RSA")  # the choice sslyze makes
    numbers = key.public_numbers()
    return _RobotPlan(version, ciphers, numbers.n, numbers.e)


def _submit_robot_round(
    server: ServerConnectivityInfo, budget: _Budget, plan: _RobotPlan
) -> dict[Any, futures.Future[Any]]:
    """sslyze's five ROBOT payloads, each on its own connection, in parallel."""
    from sslyze.plugins.robot._robot_tester import RobotPmsPaddingPayloadEnum, _send_robot_payload

    return {payload: budget.submit(_send_robot_payload, server, sslyze_version(plan.version),
                                   plan.ciphers, payload, True, plan.modulus, plan.exponent)
            for payload in RobotPmsPaddingPayloadEnum}


def _robot(server: ServerConnectivityInfo, budget: _Budget, gathered: _Gathered) -> Any:
    """One round of payloads; two more only if it shows an oracle, so that a flaky server is
    not called vulnerable on one round (sslyze always makes three)."""
    from sslyze.plugins.robot._robot_tester import RobotServerResponsesAnalyzer
    from sslyze.plugins.robot.implementation import RobotScanResult, RobotScanResultEnum

    plan = _robot_plan(gathered)
    if plan is None:
        return RobotScanResult(RobotScanResultEnum.NOT_VULNERABLE_RSA_NOT_SUPPORTED)
    rounds = [_submit_robot_round(server, budget, plan)]
    verdict = _robot_verdict(RobotServerResponsesAnalyzer, budget, rounds)
    if verdict.name.startswith("VULNERABLE"):
        rounds += [_submit_robot_round(server, budget, plan) for _ in range(ROBOT_CONFIRMATIONS)]
        verdict = _robot_verdict(RobotServerResponsesAnalyzer, budget, rounds)
    return RobotScanResult(verdict)


def _robot_verdict(
    analyzer: Any, budget: _Budget, rounds: list[dict[Any, futures.Future[Any]]]
) -> Any:
    budget.wait([job for jobs in rounds for job in jobs.values()])
    combined: dict[Any, list[str]] = {}
    for jobs in rounds:
        for payload, job in jobs.items():
            combined.setdefault(payload, []).append(job.result(timeout=0))  # raises if failed
    return analyzer(combined, len(rounds)).compute_result_enum()


def _preference(server: ServerConnectivityInfo, gathered: _Gathered) -> Preference:
    """Does the server impose its TLS 1.2 order, and what is it over the reference suites?

    The modern walk offered the reference suites first, in a fixed order. A server that follows
    the client picks them in that order; so does a server whose own order happens to match. A
    pick out of our order proves the server chooses. Otherwise one handshake offering the
    accepted reference suites in reverse tells the two apart (the same answer: the server's).
    """
    from scanner.checks.tls.walk import _offer

    walks = gathered.walks.get("TLSv1.2") or []
    if not walks:
        return Preference()
    reference = probe_suites()
    order = [name for name in walks[0].names if name in reference]
    if not order:
        return Preference()
    if len(order) == 1:
        return Preference(True, tuple(order))
    offer = [s.name for s in tls12_offer(candidates("TLSv1.2"), client_cipher_names(False))]
    positions = [offer.index(name) for name in walks[0].names if name in offer]
    if positions != sorted(positions) and not walks[0].fell_back:
        return Preference(True, tuple(order))
    by_name = {s.name: s for s in candidates("TLSv1.2")}
    pick = _offer(server, "TLSv1.2", [by_name[n] for n in reversed(order)], legacy=False,
                  want_chain=False)
    openssl_first = by_name[order[0]].openssl_name
    if pick.suite_name == openssl_first:
        return Preference(True, tuple(order))
    return Preference(server_enforces_order=False)


def _error_text(error: BaseException) -> str:
    message = getattr(error, "error_message", None) or str(error) or type(error).__name__
    return safe_text(f"{type(error).__name__}: {message}", 200)


# --- results -> facts --------------------------------------------------------------------------


def _facts(gathered: _Gathered, endpoint: Endpoint, name: str, hsts: Hsts) -> TlsFacts:
    now = dt.datetime.now(dt.UTC)
    protocols = tuple(_protocol(version, gathered) for version in PROTOCOLS)
    not_tested = [f"{what}: {why}" for what, why in sorted(gathered.errors.items())
                  if what not in PROTOCOLS]
    certificate = None
    chain, ocsp = _chain(gathered)
    if chain:
        try:
            certificate = certificate_from_chain(chain, ocsp, endpoint.ca_file, now)
        except Exception as error:  # a certificate we cannot analyse: say so, grade without it
            not_tested.append(f"certificate analysis: {_error_text(error)}")
    results = dict(gathered.results)
    session = results.pop("legacy_session", None)
    if session is not None:
        results["session_renegotiation"] = SimpleNamespace(
            supports_secure_renegotiation=session.secure,
            client_renegotiations_success_count=None if session.client_renegotiation is None
            else int(session.client_renegotiation))
        results["tls_compression"] = SimpleNamespace(supports_compression=session.compression)
    return TlsFacts(
        name=name,
        name_is_address=endpoint.hostname is None,
        protocols=protocols,
        observed_at=now,
        preference=gathered.preference,
        certificate=certificate,
        vulnerabilities=vulnerabilities_from_results(results),
        hsts=hsts,
        not_tested=tuple(not_tested),
    )


def _chain(gathered: _Gathered) -> tuple[list[Any], Any]:
    """The chain of the first handshake at the highest version (what sslyze's certificate test
    calls the default deployment), as cryptography certificates, and its stapled OCSP."""
    from cryptography import x509

    for version in CHAIN_PREFERENCE:
        for walked in gathered.walks.get(version, []):
            if walked.chain:
                return [x509.load_pem_x509_certificate(pem.encode("ascii"))
                        for pem in walked.chain], walked.ocsp
        raw = gathered.raw.get(version)
        if raw is not None and raw.certificates:
            return [x509.load_der_x509_certificate(der) for der in raw.certificates], None
    return [], None


def _protocol(version: str, gathered: _Gathered) -> ProtocolSupport:
    if version in gathered.errors:
        return ProtocolSupport(version, "not_tested", how=gathered.errors[version])
    if version not in gathered.walks:
        return ProtocolSupport(version, "not_tested", how="not scanned")
    accepted = gathered.accepted(version)
    # sslyze's order (by name, descending), so reports read the same as before.
    accepted = sorted(accepted, key=lambda a: a.cipher_suite.name, reverse=True)
    suites = [suite_from_accepted(version, a) for a in accepted]
    raw = gathered.raw.get(version)
    how = "walk"
    if raw is not None:
        suites += list(raw.suites)
        how = "walk, own ClientHello"
    status: Status = "supported" if suites else "not_supported"
    return ProtocolSupport(version, status, tuple(suites), how=how)


def protocol_from_result(version: str, result: Any) -> ProtocolSupport:
    """From an sslyze CipherSuitesScanResult (kept for sslyze's own per-suite results)."""
    suites = tuple(suite_from_accepted(version, accepted)
                   for accepted in result.accepted_cipher_suites)
    status: Status = "supported" if suites else "not_supported"
    return ProtocolSupport(version, status, suites, how="enumerated")


def suite_from_accepted(version: str, accepted: Any) -> Suite:
    key = accepted.ephemeral_key
    ephemeral_type = getattr(key, "type_name", None) if key is not None else None
    return Suite(
        name=accepted.cipher_suite.name,
        protocol=version,
        key_bits=int(accepted.cipher_suite.key_size),
        anonymous=bool(accepted.cipher_suite.is_anonymous),
        ephemeral_type=ephemeral_type if ephemeral_type in ("DH", "ECDH") else None,
        ephemeral_bits=int(key.size) if key is not None and ephemeral_type in ("DH", "ECDH")
        else None,
        curve=getattr(key, "curve_name", None),
    )


def certificate_from_chain(
    chain: Sequence[Any], ocsp: Any, ca_file: Path | None, now: dt.datetime
) -> CertificateFacts:
    return certificate_facts(chain, load_trust_anchors(ca_file), now,
                             revoked=_stapled_revocation(ocsp))


def _stapled_revocation(response: Any) -> bool | None:
    if response is None:
        return None
    try:
        from cryptography.x509.ocsp import (
            OCSPCertStatus,
            OCSPResponseStatus,
            load_der_ocsp_response,
        )

        if hasattr(response, "as_der_bytes"):  # nassl's object
            response = load_der_ocsp_response(response.as_der_bytes())
        if response.response_status != OCSPResponseStatus.SUCCESSFUL:
            return None
        return bool(response.certificate_status == OCSPCertStatus.REVOKED)
    except Exception:
        return None


def vulnerabilities_from_results(results: Mapping[str, Any]) -> Vulnerabilities:
    def field_of(command: str, attribute: str) -> Any:
        result = results.get(command)
        return getattr(result, attribute, None) if result is not None else None

    robot = field_of("robot", "robot_result")
    successes = field_of("session_renegotiation", "client_renegotiations_success_count")
    return Vulnerabilities(
        heartbleed=field_of("heartbleed", "is_vulnerable_to_heartbleed"),
        ccs_injection=field_of("openssl_ccs_injection", "is_vulnerable_to_ccs_injection"),
        robot=str(robot.value).lower() if robot is not None else None,
        secure_renegotiation=field_of("session_renegotiation", "supports_secure_renegotiation"),
        client_renegotiation=None if successes is None else successes > 0,
        compression=field_of("tls_compression", "supports_compression"),
        fallback_scsv=field_of("tls_fallback_scsv", "supports_fallback_scsv"),
    )
