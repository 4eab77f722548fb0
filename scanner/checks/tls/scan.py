"""One sslyze scan of one TLS endpoint, with the scan commands the grade needs, into TlsFacts.

We drive sslyze's plugins (each scan command splits into jobs of at most one connection) with
our own executor instead of sslyze.Scanner, because:

- the connection cap must hold per host, across every TLS port of that host the runner checks
  at once (Scanner caps per scan only); one bounded pool per address does that;
- Scanner polls for finished jobs every 200 ms and re-runs its connectivity test;
- we skip work the grade does not need: SSL 3.0 / TLS 1.0 / TLS 1.1 are first probed with one
  handshake offering every suite, and their 121 suites are enumerated only when the server did
  not refuse the version outright (a refusal must be an explicit TLS alert; a reset or a timeout
  leaves the version to sslyze's full enumeration). HTTP headers come from identification
  (hsts.py), and elliptic-curve enumeration is left out: the curve each suite actually uses is in
  the ephemeral key sslyze records per accepted suite, which is what the grade looks at.

Every connection sslyze opens comes from the network layer (scanner.net) through one hook
(`install_connection_bounds`): it takes a rate token and a host slot from the scan's budget,
and its reads are bounded in time and bytes (several sslyze plugins read "until
ServerHelloDone" without a limit, which a hostile server could stretch forever). The dialer
of the endpoint being graded travels with each job in a context variable. Jobs not started by
the endpoint's deadline (`--timeout` x 20, at least 10 s) are skipped and reported as not
tested.
"""

from __future__ import annotations

import concurrent.futures as futures
import contextvars
import datetime as dt
import ipaddress
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scanner.checks.tls.certificate import certificate_facts, load_trust_anchors
from scanner.checks.tls.clients import probe_suites
from scanner.checks.tls.facts import (
    PROTOCOLS,
    CertificateFacts,
    Hsts,
    Preference,
    ProtocolSupport,
    Suite,
    TlsFacts,
    Vulnerabilities,
)
from scanner.net import Dialer, Limits, ScanBudget, SocketAdapter
from scanner.net import Endpoint as NetEndpoint
from scanner.report.sanitize import safe_text

if TYPE_CHECKING:
    from sslyze import ServerNetworkLocation
    from sslyze.plugins.scan_commands import ScanCommand
    from sslyze.server_connectivity import ServerConnectivityInfo

# Jobs of one endpoint in flight at once (each holds at most one connection); the scan's budget
# caps connections per host over everything (16 by default). 12 keeps a 100 ms-RTT endpoint
# near 3 s.
ENDPOINT_JOBS = 12
NETWORK_RETRIES = 2  # connection attempts per job (sslyze default 3, with 1-6 s back-off)
CONNECTION_LIFETIME_FACTOR = 3  # one connection may live 3 x the timeout, then it is cut
HANDSHAKE_TIMEOUTS = 2  # sslyze's network timeout, in read timeouts (--timeout)
CONNECTION_BYTE_CAP = 512 * 1024  # a handshake with a long chain is ~20 KiB
LEGACY_PROBED = ("SSLv3", "TLSv1.0", "TLSv1.1")
MAX_ORDER_PROBES = 24  # handshakes to learn the server's TLS 1.2 order (reference suites only)


@dataclass(frozen=True)
class Endpoint:
    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    port: int
    hostname: str | None  # what the user typed, sent as SNI; None when they typed an address
    dialer: Dialer  # the scan's budget; its deadline bounds the whole grading
    ca_file: Path | None = None

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
    connections: int = 0  # jobs run (each at most one connection), for the benchmarks
    notes: tuple[str, ...] = field(default_factory=tuple)


# --- connections: from the network layer ------------------------------------------------------

_current_dialer: contextvars.ContextVar[Dialer] = contextvars.ContextVar("tls_dialer")
_install_lock = threading.Lock()
_installed = False


def install_connection_bounds() -> None:
    """Make every direct connection sslyze opens come from the network layer (idempotent)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        from sslyze.connection_helpers import tls_connection

        def from_the_network_layer(
            server_location: ServerNetworkLocation, network_timeout: int
        ) -> SocketAdapter:
            dialer = _current_dialer.get(None)
            if dialer is None:  # only ever reached from scan_endpoint's jobs
                raise ConnectionError("sslyze connection outside a TLS endpoint scan")
            endpoint = NetEndpoint(str(server_location.ip_address), server_location.port)
            lifetime = CONNECTION_LIFETIME_FACTOR * float(network_timeout)
            return dialer.open_socket(endpoint, cap=CONNECTION_BYTE_CAP, lifetime=lifetime,
                                      bulk=True)

        tls_connection._open_socket_for_direct_connection = from_the_network_layer
        _load_sslyze_trust_stores()
        _installed = True


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
    """Runs an endpoint's jobs on its pool, each with the endpoint's dialer in its context;
    a job not started by the deadline is skipped."""

    def __init__(self, pool: futures.ThreadPoolExecutor, dialer: Dialer) -> None:
        self.pool = pool
        self.dialer = dialer
        self.deadline = dialer.deadline
        self.jobs = 0
        self._lock = threading.Lock()

    def submit(self, function: Callable[..., Any], *args: Any) -> futures.Future[Any]:
        context = contextvars.copy_context()
        context.run(_current_dialer.set, self.dialer)
        return self.pool.submit(context.run, self._run, function, args)

    def _run(self, function: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        if time.monotonic() > self.deadline:
            raise TimeoutError("endpoint time budget exhausted before this test started")
        with self._lock:
            self.jobs += 1
        return function(*args)

    def wait(self, pending: list[futures.Future[Any]]) -> None:
        futures.wait(pending, timeout=max(0.0, self.deadline - time.monotonic()) + 1)


# --- the scan ----------------------------------------------------------------------------------


def scan_endpoint(endpoint: Endpoint, hsts: Hsts | None = None) -> ScanOutcome:
    """Scan one endpoint and return its facts. Never raises for network problems."""
    install_connection_bounds()
    from sslyze import ServerNetworkConfiguration, ServerNetworkLocation
    from sslyze.server_connectivity import ServerConnectivityInfo, check_connectivity_to_server

    started = time.monotonic()
    address = str(endpoint.address)
    name = endpoint.hostname or address
    location = ServerNetworkLocation(name, endpoint.port, ip_address=address)
    # DECISION: with an address typed, sslyze puts the address in SNI (RFC 6066 says not to);
    # servers ignore it, and certificate_info then matches against the address, as we want.
    config = ServerNetworkConfiguration(
        tls_server_name_indication=name,
        # a handshake is a few round trips: two read timeouts for each of sslyze's connections
        network_timeout=HANDSHAKE_TIMEOUTS * endpoint.timeout,  # type: ignore[arg-type]
        network_max_retries=NETWORK_RETRIES,
    )
    pool = futures.ThreadPoolExecutor(ENDPOINT_JOBS, thread_name_prefix=f"tls-{endpoint.port}")
    budget = _Budget(pool, endpoint.dialer)
    try:
        try:
            probing = budget.submit(check_connectivity_to_server, location, config).result(
                timeout=max(0.1, budget.deadline - time.monotonic())
            )
        except Exception as error:  # no handshake at all: nothing to grade
            return ScanOutcome(None, _error_text(error), time.monotonic() - started, budget.jobs)
        server = ServerConnectivityInfo(location, config, probing)
        gathered = _gather(server, budget, endpoint)
    finally:
        # Jobs still running end at their connection's deadline; none is left queued.
        pool.shutdown(wait=False, cancel_futures=True)
    facts = _facts(gathered, endpoint, name, hsts or Hsts())
    return ScanOutcome(facts, None, time.monotonic() - started, budget.jobs, gathered.notes)


@dataclass
class _Gathered:
    versions: dict[str, ProtocolSupport] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)  # scan command value -> result
    errors: dict[str, str] = field(default_factory=dict)  # scan command value -> why not
    preference: Preference = field(default_factory=Preference)
    notes: tuple[str, ...] = ()


def _gather(server: ServerConnectivityInfo, budget: _Budget, endpoint: Endpoint) -> _Gathered:
    from sslyze.plugins.scan_commands import ScanCommand

    gathered = _Gathered()
    order = budget.submit(_server_preference, server)
    probes = {version: budget.submit(_probe_version, server, version) for version in LEGACY_PROBED}
    always, by_version = _scan_commands()
    commands: dict[ScanCommand, Any] = {command: None for command in always}
    commands[ScanCommand.CERTIFICATE_INFO] = _certificate_argument(endpoint.ca_file)
    commands[ScanCommand.SESSION_RENEGOTIATION] = _renegotiation_argument()
    running = {command: _submit_command(server, budget, command, argument)
               for command, argument in commands.items()}
    budget.wait(list(probes.values()))
    for version, probe in probes.items():
        verdict = _result_or(probe, "unknown")
        if verdict == "not_supported":
            gathered.versions[version] = ProtocolSupport(version, "not_supported", how="probe")
        else:
            command = by_version[version]
            running[command] = _submit_command(server, budget, command, None)
    pending = [job for jobs in running.values() if isinstance(jobs, tuple) for job in jobs[1]]
    budget.wait([*pending, order])
    for command, submitted in running.items():
        _collect(server, command, submitted, gathered)
    gathered.preference = _result_or(order, Preference())
    return gathered


def _result_or(future: futures.Future[Any], default: Any) -> Any:
    try:
        return future.result(timeout=0) if future.done() else default
    except Exception:
        return default


def _submit_command(
    server: ServerConnectivityInfo, budget: _Budget, command: ScanCommand, argument: Any
) -> tuple[Any, list[futures.Future[Any]]] | str:
    """Start a scan command's jobs; returns (implementation, futures) or why it could not."""
    from sslyze.plugins.scan_commands import ScanCommandsRepository

    implementation = ScanCommandsRepository.get_implementation_cls(command)
    try:
        jobs = implementation.scan_jobs_for_scan_command(server, argument)
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


def _error_text(error: BaseException) -> str:
    message = getattr(error, "error_message", None) or str(error) or type(error).__name__
    return safe_text(f"{type(error).__name__}: {message}", 200)


def _certificate_argument(ca_file: Path | None) -> Any:
    if ca_file is None:
        return None
    from sslyze import CertificateInfoExtraArgument

    return CertificateInfoExtraArgument(custom_ca_file=Path(ca_file))


def _renegotiation_argument() -> Any:
    from sslyze import SessionRenegotiationExtraArgument

    # One client-initiated renegotiation tells whether it is accepted; the default of ten is a
    # DoS test we do not need.
    return SessionRenegotiationExtraArgument(client_renegotiation_attempts=1)


def _scan_commands() -> tuple[tuple[ScanCommand, ...], dict[str, ScanCommand]]:
    from sslyze.plugins.scan_commands import ScanCommand

    always = (
        ScanCommand.SSL_2_0_CIPHER_SUITES,  # 7 suites: cheaper to enumerate than to probe
        ScanCommand.TLS_1_2_CIPHER_SUITES,
        ScanCommand.TLS_1_3_CIPHER_SUITES,
        ScanCommand.HEARTBLEED,
        ScanCommand.OPENSSL_CCS_INJECTION,
        ScanCommand.ROBOT,
        ScanCommand.TLS_COMPRESSION,
        ScanCommand.TLS_FALLBACK_SCSV,
    )
    by_version = {
        "SSLv3": ScanCommand.SSL_3_0_CIPHER_SUITES,
        "TLSv1.0": ScanCommand.TLS_1_0_CIPHER_SUITES,
        "TLSv1.1": ScanCommand.TLS_1_1_CIPHER_SUITES,
    }
    return always, by_version


# --- our own handshakes: version probes and the server's preference ---------------------------

_SSLYZE_VERSIONS = {"SSLv3": "SSL_3_0", "TLSv1.0": "TLS_1_0", "TLSv1.1": "TLS_1_1",
                    "TLSv1.2": "TLS_1_2"}


def _handshake(
    server: ServerConnectivityInfo, version: str, cipher_string: str, legacy: bool
) -> str | None:
    """One handshake offering `cipher_string`; the suite (OpenSSL name) the server picked.

    Raises sslyze's ServerRejectedTlsHandshake on a refusal, other errors as they come.
    """
    from sslyze.errors import ServerTlsConfigurationNotSupported
    from sslyze.server_connectivity import TlsVersionEnum

    connection = server.get_preconfigured_tls_connection(
        override_tls_version=TlsVersionEnum[_SSLYZE_VERSIONS[version]],
        should_use_legacy_openssl=legacy,
    )
    connection.ssl_client.set_cipher_list(cipher_string)
    try:
        connection.connect(should_retry_connection=False)
        return str(connection.ssl_client.get_current_cipher_name())
    except ServerTlsConfigurationNotSupported:
        return None  # our client refused the server's (weak) parameters: the server did answer
    finally:
        connection.close()


def _probe_version(server: ServerConnectivityInfo, version: str) -> str:
    """"supported", "not_supported" (an explicit TLS refusal), or "unknown"."""
    from nassl.ssl_client import ClientCertificateRequested
    from sslyze.errors import ServerRejectedTlsHandshake

    try:
        _handshake(server, version, "ALL:COMPLEMENTOFALL", legacy=True)
    except ClientCertificateRequested:
        return "supported"
    except ServerRejectedTlsHandshake as error:
        message = str(getattr(error, "error_message", ""))
        return "not_supported" if message.startswith("TLS ") else "unknown"
    except Exception:
        return "unknown"
    return "supported"


def _server_preference(server: ServerConnectivityInfo) -> Preference:
    """Does the server impose its TLS 1.2 order, and what is it over the reference suites?

    Two handshakes offer the reference suites in opposite orders: the same answer means the
    server chooses (or accepts just one of them). Only then do we peel its order, one handshake
    per accepted suite, always offering what is left.
    """
    names = _openssl_names()
    offered = [names[s] for s in probe_suites() if s in names]
    forward = _pick(server, offered)
    if forward is None:
        return Preference()
    backward = _pick(server, list(reversed(offered)))
    if backward != forward:
        return Preference(server_enforces_order=False)
    order: list[str] = []
    remaining = list(offered)
    choice: str | None = forward
    while choice is not None and choice in remaining and len(order) < MAX_ORDER_PROBES:
        order.append(choice)
        remaining.remove(choice)
        choice = _pick(server, remaining) if remaining else None
    iana = {openssl: rfc for rfc, openssl in names.items()}
    return Preference(True, tuple(iana[o] for o in order if o in iana))


def _pick(server: ServerConnectivityInfo, openssl_names: list[str]) -> str | None:
    try:
        return _handshake(server, "TLSv1.2", ":".join(openssl_names), legacy=False)
    except Exception:  # refused, or no common suite: nothing picked
        return None


def _openssl_names() -> Mapping[str, str]:
    """IANA name -> OpenSSL name, for the TLS 1.2 suites sslyze knows."""
    from sslyze.plugins.openssl_cipher_suites.cipher_suites import CipherSuitesRepository
    from sslyze.server_connectivity import TlsVersionEnum

    return {
        suite.name: suite.openssl_name
        for suite in CipherSuitesRepository.get_all_cipher_suites(TlsVersionEnum.TLS_1_2)
    }


# --- sslyze results -> facts -------------------------------------------------------------------

_RESULT_FIELDS = {
    "SSLv2": "ssl_2_0_cipher_suites",
    "SSLv3": "ssl_3_0_cipher_suites",
    "TLSv1.0": "tls_1_0_cipher_suites",
    "TLSv1.1": "tls_1_1_cipher_suites",
    "TLSv1.2": "tls_1_2_cipher_suites",
    "TLSv1.3": "tls_1_3_cipher_suites",
}


def _facts(gathered: _Gathered, endpoint: Endpoint, name: str, hsts: Hsts) -> TlsFacts:
    now = dt.datetime.now(dt.UTC)
    protocols = tuple(_protocol(version, gathered) for version in PROTOCOLS)
    not_tested = [f"{command}: {why}" for command, why in sorted(gathered.errors.items())]
    certificate = None
    info = gathered.results.get("certificate_info")
    if info is not None:
        try:
            certificate = certificate_from_result(info, endpoint.ca_file, now)
        except Exception as error:  # a certificate we cannot analyse: say so, grade without it
            not_tested.append(f"certificate analysis: {_error_text(error)}")
    return TlsFacts(
        name=name,
        name_is_address=endpoint.hostname is None,
        protocols=protocols,
        observed_at=now,
        preference=gathered.preference,
        certificate=certificate,
        vulnerabilities=vulnerabilities_from_results(gathered.results),
        hsts=hsts,
        not_tested=tuple(not_tested),
    )


def _protocol(version: str, gathered: _Gathered) -> ProtocolSupport:
    if version in gathered.versions:
        return gathered.versions[version]
    result = gathered.results.get(_RESULT_FIELDS[version])
    if result is None:
        return ProtocolSupport(version, "not_tested", how=gathered.errors.get(
            _RESULT_FIELDS[version], "not scanned"))
    return protocol_from_result(version, result)


def protocol_from_result(version: str, result: Any) -> ProtocolSupport:
    suites = tuple(suite_from_accepted(version, accepted)
                   for accepted in result.accepted_cipher_suites)
    status = "supported" if suites else "not_supported"
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


def certificate_from_result(
    info: Any, ca_file: Path | None, now: dt.datetime
) -> CertificateFacts | None:
    deployments = info.certificate_deployments
    if not deployments:
        return None  # anonymous suites only: the server sent no certificate
    deployment = deployments[0]
    return certificate_facts(
        deployment.received_certificate_chain,
        load_trust_anchors(ca_file),
        now,
        revoked=_stapled_revocation(deployment.ocsp_response),
    )


def _stapled_revocation(response: Any) -> bool | None:
    if response is None:
        return None
    try:
        from cryptography.x509.ocsp import OCSPCertStatus, OCSPResponseStatus

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
