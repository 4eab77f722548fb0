"""A tiny TLS PKI for the lab: a CA, intermediates, and leaf or self-signed certificates.

Everything is configurable (names, validity window, key type and size, signature hash) so tests
can build the bad certificates the scanner must recognise: expired, not yet valid, self-signed,
wrong hostname, weak key (e.g. RSA 1024), incomplete chain (intermediate() plus a server that sends
cert_path instead of chain_path). SHA-1 signatures are refused by the `cryptography` package
("not supported for signatures"); a SHA-1 test certificate needs `openssl x509 -sha1` instead.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
KeyType = Literal["rsa", "ec", "ed25519"]

_CURVES: dict[str, ec.EllipticCurve] = {
    "secp256r1": ec.SECP256R1(),
    "secp384r1": ec.SECP384R1(),
    "secp521r1": ec.SECP521R1(),
}


@dataclass(frozen=True)
class KeySpec:
    """Which key to generate: RSA of `size` bits, EC on `curve`, or Ed25519."""

    type: KeyType = "rsa"
    size: int = 2048
    curve: str = "secp256r1"

    def generate(self) -> PrivateKey:
        if self.type == "rsa":
            return rsa.generate_private_key(public_exponent=65537, key_size=self.size)
        if self.type == "ec":
            return ec.generate_private_key(_CURVES[self.curve])
        return ed25519.Ed25519PrivateKey.generate()


@dataclass(frozen=True)
class Issued:
    """A certificate with its key, written to disk as PEM files."""

    name: str
    cert: x509.Certificate
    key: PrivateKey
    cert_path: Path  # the leaf alone
    key_path: Path
    chain_path: Path  # the leaf followed by the intermediates: what a server should send

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Exposure Lab"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _san(names: Sequence[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for item in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(item)))
        except ValueError:
            entries.append(x509.DNSName(item))
    return x509.SubjectAlternativeName(entries)


def _sign_hash(
    key: PrivateKey, algorithm: hashes.HashAlgorithm | None
) -> hashes.HashAlgorithm | None:
    # Ed25519 signs without a separate digest; cryptography wants None there.
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    return algorithm or hashes.SHA256()


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes, mode: int = 0o644) -> Path:
    path.write_bytes(data)
    os.chmod(path, mode)
    return path


def _window(
    not_before: dt.datetime | None, not_after: dt.datetime | None, valid_days: int
) -> tuple[dt.datetime, dt.datetime]:
    # Back-date by an hour so a freshly issued certificate is valid despite small clock skews.
    start = not_before or (_utcnow() - dt.timedelta(hours=1))
    return start, not_after or (start + dt.timedelta(days=valid_days))


@dataclass
class _CertRequest:
    common_name: str
    sans: Sequence[str]
    key: PrivateKey
    not_before: dt.datetime
    not_after: dt.datetime
    is_ca: bool
    hash_algorithm: hashes.HashAlgorithm | None = None
    extra_extensions: list[x509.ExtensionType] = field(default_factory=list)


def _build(req: _CertRequest, issuer_name: x509.Name, issuer_key: PrivateKey) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(req.common_name))
        .issuer_name(issuer_name)
        .public_key(req.key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(req.not_before)
        .not_valid_after(req.not_after)
        .add_extension(x509.BasicConstraints(ca=req.is_ca, path_length=None), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(req.key.public_key()), critical=False
        )
    )
    if req.is_ca:
        usage = x509.KeyUsage(
            digital_signature=False,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=True,
            crl_sign=True,
            encipher_only=False,
            decipher_only=False,
        )
        builder = builder.add_extension(usage, critical=True)
    else:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    if req.sans:
        builder = builder.add_extension(_san(req.sans), critical=False)
    for ext in req.extra_extensions:
        builder = builder.add_extension(ext, critical=False)
    return builder.sign(issuer_key, _sign_hash(issuer_key, req.hash_algorithm))


class LabCA:
    """A certificate authority whose files live in `directory` (ca.crt / ca.key, or per name)."""

    def __init__(
        self,
        directory: Path,
        *,
        common_name: str = "Exposure Lab Root CA",
        key: KeySpec = KeySpec("ec"),  # EC: fast to generate, nothing tests the CA's key type
        valid_days: int = 3650,
        parent: LabCA | None = None,
        filename: str = "ca",
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.parent = parent
        self.key: PrivateKey = key.generate()
        start, end = _window(None, None, valid_days)
        req = _CertRequest(common_name, (), self.key, start, end, is_ca=True)
        issuer_key = parent.key if parent else self.key
        issuer_name = parent.cert.subject if parent else _name(common_name)
        self.cert = _build(req, issuer_name, issuer_key)
        self.cert_path = _write(self.directory / f"{filename}.crt", self.pem)
        self.key_path = _write(self.directory / f"{filename}.key", _key_pem(self.key), 0o600)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def intermediates(self) -> list[x509.Certificate]:
        """Certificates between a leaf issued here and the root (excluded), nearest first."""
        if self.parent is None:
            return []
        return [self.cert, *self.parent.intermediates]

    def intermediate(self, common_name: str = "Exposure Lab Intermediate CA") -> LabCA:
        """A CA signed by this one; its leaves' chain files include it."""
        slug = common_name.lower().replace(" ", "-")
        return LabCA(self.directory, common_name=common_name, parent=self, filename=slug)

    def issue(
        self,
        name: str,
        *,
        sans: Sequence[str] | None = None,
        common_name: str | None = None,
        key: KeySpec = KeySpec(),
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        valid_days: int = 90,
        hash_algorithm: hashes.HashAlgorithm | None = None,
        filename: str | None = None,
    ) -> Issued:
        """A leaf certificate for `name` (SANs default to [name]), signed by this CA."""
        leaf_key = key.generate()
        start, end = _window(not_before, not_after, valid_days)
        req = _CertRequest(
            common_name or name,
            [name] if sans is None else sans,
            leaf_key,
            start,
            end,
            is_ca=False,
            hash_algorithm=hash_algorithm,
        )
        cert = _build(req, self.cert.subject, self.key)
        return _save(self.directory, filename or name, name, cert, leaf_key, self.intermediates)


def self_signed(
    directory: Path,
    name: str,
    *,
    sans: Sequence[str] | None = None,
    key: KeySpec = KeySpec(),
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    valid_days: int = 365,
    hash_algorithm: hashes.HashAlgorithm | None = None,
    filename: str | None = None,
) -> Issued:
    """A self-signed leaf for `name`, like the one a router or a fresh appliance ships with."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    leaf_key = key.generate()
    start, end = _window(not_before, not_after, valid_days)
    req = _CertRequest(
        name,
        [name] if sans is None else sans,
        leaf_key,
        start,
        end,
        is_ca=False,
        hash_algorithm=hash_algorithm,
    )
    cert = _build(req, _name(name), leaf_key)
    return _save(directory, filename or f"{name}-selfsigned", name, cert, leaf_key, [])


def _save(
    directory: Path,
    stem: str,
    name: str,
    cert: x509.Certificate,
    key: PrivateKey,
    intermediates: Sequence[x509.Certificate],
) -> Issued:
    pem = cert.public_bytes(serialization.Encoding.PEM)
    chain = pem + b"".join(c.public_bytes(serialization.Encoding.PEM) for c in intermediates)
    return Issued(
        name=name,
        cert=cert,
        key=key,
        cert_path=_write(directory / f"{stem}.crt", pem),
        key_path=_write(directory / f"{stem}.key", _key_pem(key), 0o600),
        chain_path=_write(directory / f"{stem}-chain.pem", chain),
    )
