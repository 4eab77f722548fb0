"""The facts a TLS grade needs, as plain frozen data: what the scan saw, not what it means.

scan.py fills these from sslyze's results (and a few handshakes of our own); rating.py and
certificate.py judge them. Keeping the facts free of sslyze objects means the whole grading can be
tested, case by case, without a network or a server.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

# Oldest first: the order in which the guide's protocol table and our reports list them.
PROTOCOLS = ("SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3")
Status = Literal["supported", "not_supported", "not_tested"]

# RSA-equivalent strength of elliptic-curve keys and groups, by key size in bits: NIST SP 800-57
# Part 1 Rev. 5 (2020), table 2 (80/112/128/192/256-bit security). X25519 reports 253 bits and
# Ed25519 255: both are 128-bit-security curves, hence the 250 threshold rather than 256.
EC_RSA_EQUIVALENT: tuple[tuple[int, int], ...] = (
    (512, 15360),
    (384, 7680),
    (250, 3072),
    (224, 2048),
    (160, 1024),
    (0, 512),
)
EDWARDS_RSA_EQUIVALENT = {"Ed25519": 3072, "Ed448": 7680}


def rsa_equivalent(key_type: str, bits: int) -> int:
    """Strength of a key or key-exchange group in RSA bits (the unit of the guide's table)."""
    if key_type in EDWARDS_RSA_EQUIVALENT:
        return EDWARDS_RSA_EQUIVALENT[key_type]
    if key_type in ("EC", "ECDH"):
        return next(rsa for floor, rsa in EC_RSA_EQUIVALENT if bits >= floor)
    return bits  # RSA, DSA, finite-field DH: the modulus size is the measure


# --- cipher suites ---------------------------------------------------------------------------

# Substrings of IANA (and SSLv2) suite names, as sslyze reports them. Names are data: sslyze's
# CipherSuite carries key size and "anonymous", nothing else about the algorithms.
TLS13_PREFIXES = ("TLS_AES_", "TLS_CHACHA20_")
FORWARD_SECRET_KX = ("TLS_ECDHE_", "TLS_DHE_")
AEAD_MARKERS = ("_GCM_", "CHACHA20_POLY1305", "_CCM")
BLOCK_64_MARKERS = ("3DES", "_DES_", "DES40", "DES_64", "DES_192", "IDEA", "RC2")


@dataclass(frozen=True)
class Suite:
    """One cipher suite a server accepted for one protocol version."""

    name: str  # IANA name, e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
    protocol: str  # one of PROTOCOLS
    key_bits: int  # symmetric key size as sslyze reports it (3DES: 168, NULL: 0)
    anonymous: bool = False
    ephemeral_type: str | None = None  # "DH" or "ECDH" when the server sent an ephemeral key
    ephemeral_bits: int | None = None  # its size (DH modulus, or curve size)
    curve: str | None = None

    @property
    def tls13(self) -> bool:
        return self.name.startswith(TLS13_PREFIXES)

    @property
    def forward_secret(self) -> bool:
        return self.tls13 or (self.name.startswith(FORWARD_SECRET_KX) and not self.anonymous)

    @property
    def aead(self) -> bool:
        return self.tls13 or any(marker in self.name for marker in AEAD_MARKERS)

    @property
    def rc4(self) -> bool:
        return "RC4" in self.name

    @property
    def block_64(self) -> bool:
        """3DES, DES, IDEA, RC2: 64-bit blocks (Sweet32)."""
        return any(marker in self.name for marker in BLOCK_64_MARKERS)

    @property
    def export(self) -> bool:
        return "EXPORT" in self.name

    @property
    def null_cipher(self) -> bool:
        return self.key_bits == 0 or "_WITH_NULL_" in self.name

    @property
    def ephemeral_rsa_equivalent(self) -> int | None:
        if self.ephemeral_bits is None or self.ephemeral_type is None:
            return None
        return rsa_equivalent(self.ephemeral_type, self.ephemeral_bits)


@dataclass(frozen=True)
class ProtocolSupport:
    version: str
    status: Status
    suites: tuple[Suite, ...] = ()
    how: str = ""  # "enumerated" (sslyze tried every suite), "probe", or why not tested


@dataclass(frozen=True)
class Preference:
    """The server's cipher preference for TLS 1.2, measured over the reference clients' suites."""

    server_enforces_order: bool | None = None  # None: not measured (or TLS 1.2 not supported)
    server_order: tuple[str, ...] = ()  # accepted reference-client suites, most preferred first


# --- certificate -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CertificateFacts:
    """The leaf certificate the server sent (with SNI), and what its chain links to."""

    subject: str
    issuer: str
    sans: tuple[str, ...]  # DNS names and IP addresses, as text
    not_before: dt.datetime
    not_after: dt.datetime
    key_type: str  # "RSA", "EC", "DSA", "Ed25519", "Ed448"
    key_bits: int
    signature_hash: str | None  # of the leaf: "sha256", "sha1", "md5", None for Ed25519
    sha256: str
    self_signed: bool = False
    chain_trusted: bool = False  # links by signature to a trust anchor (dates and names aside)
    trust_anchor: str | None = None  # which store: "Mozilla NSS", "--ca-file"
    chain_error: str | None = None  # why linking failed, when it did
    chain_complete: bool = True  # every issuer is in the chain or is an anchor
    missing_issuer: str | None = None  # subject of the certificate the server should have sent
    aia_ca_issuers: tuple[str, ...] = ()  # where clients may fetch a missing intermediate
    completed_from: str | None = None  # who supplied the missing intermediate (chain trusted)
    weak_chain_signatures: tuple[str, ...] = ()  # hashes below SHA-256 on intermediates
    revoked: bool | None = None  # from a stapled OCSP response; None when none was stapled
    chain_length: int = 1

    @property
    def key_rsa_equivalent(self) -> int:
        return rsa_equivalent(self.key_type, self.key_bits)


# --- the rest --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Vulnerabilities:
    """None everywhere means "not tested" (an error, or not applicable); never "safe"."""

    heartbleed: bool | None = None
    ccs_injection: bool | None = None
    robot: str | None = None  # "not_vulnerable", "vulnerable_strong_oracle", ... ("no_rsa_kex")
    secure_renegotiation: bool | None = None
    client_renegotiation: bool | None = None  # client-initiated renegotiation accepted
    compression: bool | None = None
    fallback_scsv: bool | None = None


@dataclass(frozen=True)
class Hsts:
    applicable: bool = False  # the service inside TLS is HTTP (HSTS means nothing elsewhere)
    present: bool = False
    max_age: int | None = None
    include_subdomains: bool = False
    preload: bool = False
    raw: str | None = None  # the header as received, sanitised


@dataclass(frozen=True)
class TlsFacts:
    name: str  # what the user typed: the hostname (also sent as SNI), or the address
    name_is_address: bool
    protocols: tuple[ProtocolSupport, ...]
    observed_at: dt.datetime
    preference: Preference = field(default_factory=Preference)
    certificate: CertificateFacts | None = None
    vulnerabilities: Vulnerabilities = field(default_factory=Vulnerabilities)
    hsts: Hsts = field(default_factory=Hsts)
    not_tested: tuple[str, ...] = ()  # what the scan could not find out, in plain words

    def protocol(self, version: str) -> ProtocolSupport:
        for support in self.protocols:
            if support.version == version:
                return support
        return ProtocolSupport(version, "not_tested", how="not scanned")

    def supports(self, version: str) -> bool:
        return self.protocol(version).status == "supported"

    @property
    def supported_versions(self) -> tuple[str, ...]:
        return tuple(version for version in PROTOCOLS if self.supports(version))

    @property
    def suites(self) -> tuple[Suite, ...]:
        return tuple(suite for support in self.protocols for suite in support.suites)

    @property
    def complete(self) -> bool:
        """Every protocol version was tested: only then can protocol and cipher be scored."""
        return all(self.protocol(version).status != "not_tested" for version in PROTOCOLS)
