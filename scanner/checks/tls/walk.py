"""Which cipher suites a server accepts, one handshake per accepted suite (plus one refusal).

sslyze tests every suite it knows on its own connection (about 450 handshakes for SSL 2.0 to
TLS 1.3). We offer every candidate suite at once instead: the server picks one, we remove it
and offer the rest again, until the server refuses what is left. The server names each suite it
accepts, so the walk costs one handshake per accepted suite plus the final refusal (testssl.sh
enumerates the same way). The same walk yields the server's order: a server that imposes its
preference picks its favourite of what is left each time, a server that follows the client
picks our first acceptable suite (rating.py needs to know which, for the reference browsers).

Each handshake uses the OpenSSL that sslyze would use for those suites: nassl's modern OpenSSL
for TLS 1.3 and for the TLS 1.2 suites it can offer, nassl's legacy OpenSSL (which still has
SSL 2.0/3.0, export, RC4, NULL...) for SSL 2.0 to TLS 1.1 and for the TLS 1.2 suites the modern
one did not get (its security level silently drops NULL and the like from the ClientHello).

A server that answers a large offer with a reset or silence instead of an alert (some F5
devices choke on long ClientHellos) gets the offer in halves, down to MIN_CHUNK suites; a pick
we cannot read falls back to sslyze's one-suite-per-handshake test for what is left.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sslyze.plugins.openssl_cipher_suites.cipher_suites import CipherSuite
    from sslyze.server_connectivity import ServerConnectivityInfo, TlsVersionEnum

MIN_CHUNK = 16  # below this many suites, a reset or a silence is the server's refusal
EXPLICIT = ("TLS alert", "TLS error")  # sslyze's words for a refusal the server stated
PROTOCOL_VERSION_ALERT = "protocol version"
SSLYZE_VERSIONS = {"SSLv2": "SSL_2_0", "SSLv3": "SSL_3_0", "TLSv1.0": "TLS_1_0",
                   "TLSv1.1": "TLS_1_1", "TLSv1.2": "TLS_1_2", "TLSv1.3": "TLS_1_3"}


@dataclass
class Walk:
    """What one walk over one version (and one OpenSSL) learnt."""

    version: str
    accepted: list[Any] = field(default_factory=list)  # CipherSuiteAcceptedByServer, as picked
    refusal: str | None = None  # how the server refused the first offer, when it did
    chain: tuple[str, ...] = ()  # PEM chain of the first accepted handshake
    ocsp: Any = None  # nassl OCSP response stapled on that handshake
    rsa_leaf: str | None = None  # leaf (PEM) of the first RSA key exchange handshake
    fell_back: bool = False  # the offer was split, or suites were tested one per handshake

    @property
    def names(self) -> list[str]:
        return [accepted.cipher_suite.name for accepted in self.accepted]


@dataclass(frozen=True)
class _Pick:
    suite_name: str | None = None  # OpenSSL name of what the server chose
    key: Any = None
    chain: tuple[str, ...] = ()
    ocsp: Any = None
    refusal: str | None = None  # sslyze's message for a refusal
    explicit: bool = False  # the refusal came as a TLS alert or error
    nothing_to_offer: bool = False
    unreadable: bool = False  # the server answered, but which suite it chose is unknown


def sslyze_version(version: str) -> TlsVersionEnum:
    from sslyze.server_connectivity import TlsVersionEnum

    return TlsVersionEnum[SSLYZE_VERSIONS[version]]


@functools.cache
def client_cipher_names(legacy: bool) -> frozenset[str]:
    """OpenSSL names one of nassl's clients can put in a TLS 1.2 ClientHello (before levels)."""
    from nassl.legacy_ssl_client import LegacySslClient
    from nassl.ssl_client import OpenSslVerifyEnum, OpenSslVersionEnum, SslClient

    cls = LegacySslClient if legacy else SslClient
    client = cls(ssl_version=OpenSslVersionEnum.TLSV1_2, ssl_verify=OpenSslVerifyEnum.NONE)
    client.set_cipher_list("ALL:COMPLEMENTOFALL")
    return frozenset(client.get_cipher_list())


def candidates(version: str) -> list[CipherSuite]:
    """Every suite sslyze knows for `version`, in a fixed order (by IANA name)."""
    from sslyze.plugins.openssl_cipher_suites.cipher_suites import CipherSuitesRepository

    suites = CipherSuitesRepository.get_all_cipher_suites(sslyze_version(version))
    return sorted(suites, key=lambda suite: suite.name)


def walk(
    server: ServerConnectivityInfo,
    version: str,
    offer: Sequence[CipherSuite],
    legacy: bool,
    deadline: float,
) -> Walk:
    """Enumerate the suites of `offer` the server accepts with `version` (see the docstring)."""
    result = Walk(version)
    _walk_chunk(server, result, list(offer), legacy, deadline, first=True)
    return result


def _walk_chunk(
    server: ServerConnectivityInfo,
    result: Walk,
    remaining: list[CipherSuite],
    legacy: bool,
    deadline: float,
    first: bool,
) -> None:
    by_name = {suite.openssl_name: suite for suite in remaining}
    retried = False
    while remaining:
        _check_deadline(deadline)
        pick = _offer(server, result.version, remaining, legacy, want_chain=not result.chain)
        if pick.unreadable:
            _one_by_one(server, result, remaining, deadline)
            return
        if pick.suite_name is not None:
            suite = by_name.get(pick.suite_name)
            if suite is None or suite not in remaining:  # a pick we did not offer, or unreadable
                _one_by_one(server, result, remaining, deadline)
                return
            _record(result, suite, pick)
            remaining.remove(suite)
            first, retried = False, False
            continue
        if pick.nothing_to_offer:
            return
        if first and result.refusal is None and not result.accepted:
            result.refusal = pick.refusal
        if pick.explicit:
            return
        # A reset or a silence: a large offer may be what the server cannot take.
        if first and len(remaining) > MIN_CHUNK and result.version != "SSLv2":
            result.fell_back = True  # picks across the halves say nothing about an order
            half = len(remaining) // 2
            _walk_chunk(server, result, remaining[:half], legacy, deadline, first=True)
            _walk_chunk(server, result, remaining[half:], legacy, deadline, first=True)
            return
        if first or retried:
            return  # this is how the server refuses
        retried = True  # once more: a glitch in the middle of a walk is not a refusal


def _record(result: Walk, suite: CipherSuite, pick: _Pick) -> None:
    from sslyze.plugins.openssl_cipher_suites._test_cipher_suite import (
        CipherSuiteAcceptedByServer,
    )

    result.accepted.append(CipherSuiteAcceptedByServer(cipher_suite=suite, ephemeral_key=pick.key))
    if pick.chain and not result.chain:
        result.chain, result.ocsp = pick.chain, pick.ocsp
    if pick.chain and result.rsa_leaf is None and suite.name.startswith("TLS_RSA_WITH_"):
        result.rsa_leaf = pick.chain[0]


def _one_by_one(
    server: ServerConnectivityInfo, result: Walk, remaining: list[CipherSuite], deadline: float
) -> None:
    """sslyze's own test, one suite per handshake, for what the walk could not tell."""
    from sslyze.connection_helpers.tls_connection import NoCiphersAvailableBugInSSlyze
    from sslyze.plugins.openssl_cipher_suites._test_cipher_suite import (
        CipherSuiteAcceptedByServer,
        connect_with_cipher_suite,
    )

    result.fell_back = True
    for suite in list(remaining):
        _check_deadline(deadline)
        try:
            outcome = connect_with_cipher_suite(server, sslyze_version(result.version), suite)
        except NoCiphersAvailableBugInSSlyze:
            continue
        if isinstance(outcome, CipherSuiteAcceptedByServer):
            result.accepted.append(outcome)


def _check_deadline(deadline: float) -> None:
    if time.monotonic() > deadline:
        raise TimeoutError("endpoint time budget exhausted during the suite walk")


def _offer(
    server: ServerConnectivityInfo,
    version: str,
    suites: Sequence[CipherSuite],
    legacy: bool,
    want_chain: bool,
) -> _Pick:
    """One handshake offering `suites`; what the server picked, or how it refused."""
    from nassl import _nassl
    from nassl.ssl_client import ClientCertificateRequested
    from sslyze.connection_helpers.tls_connection import NoCiphersAvailableBugInSSlyze
    from sslyze.errors import (
        ServerRejectedTlsHandshake,
        ServerTlsConfigurationNotSupported,
        TlsHandshakeTimedOut,
    )

    connection = server.get_preconfigured_tls_connection(
        override_tls_version=sslyze_version(version),
        should_use_legacy_openssl=legacy if version != "TLSv1.3" else False,
    )
    names = ":".join(suite.openssl_name for suite in suites)
    client = connection.ssl_client
    try:
        if version == "TLSv1.3":
            client.set_ciphersuites(names)  # type: ignore[attr-defined]
        else:
            client.set_cipher_list(names)
    except _nassl.OpenSSLError:  # none of these names exists in this OpenSSL
        return _Pick(nothing_to_offer=True)
    if want_chain:
        client.set_tlsext_status_ocsp()
    try:
        # The server answered with a suite (our client then gave up): still a pick.
        with contextlib.suppress(ClientCertificateRequested, ServerTlsConfigurationNotSupported):
            connection.connect()
        name = _current_cipher(client)
        if name is None:
            return _Pick(unreadable=True)
        # The chain costs no traffic (it came with the handshake): kept for the RSA key ROBOT
        # needs; the stapled OCSP response only where it was asked for.
        return _Pick(name, _safe(client.get_ephemeral_key),
                     tuple(_safe(client.get_received_chain) or ()),
                     _safe(client.get_tlsext_status_ocsp_resp) if want_chain else None)
    except ServerRejectedTlsHandshake as error:
        message = str(error.error_message)
        return _Pick(refusal=message, explicit=message.startswith(EXPLICIT))
    except TlsHandshakeTimedOut:
        return _Pick(refusal="timed out during the TLS handshake")
    except NoCiphersAvailableBugInSSlyze:
        return _Pick(nothing_to_offer=True)
    finally:
        connection.close()


def _current_cipher(client: Any) -> str | None:
    name = _safe(client.get_current_cipher_name)
    return str(name) if name and name != "(NONE)" else None


def _safe(getter: Any) -> Any:
    try:
        return getter()
    except Exception:  # nassl raises when the handshake did not get that far
        return None


def is_version_refusal(message: str | None) -> bool:
    """The server refused the protocol version itself (not merely our suites)."""
    return bool(message) and PROTOCOL_VERSION_ALERT in str(message).lower()
