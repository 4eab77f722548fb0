"""What identification keeps of a TLS session: version, suite, and the certificate (lightly).

The handshake itself is driven by the network layer (scanner.net.tls_async): every byte goes
through the port's bounded stream, and a TLS alert alone proves the port speaks TLS. The full
TLS grade is a later stage (the TLS check); here nothing is verified.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from scanner.core.text import safe_text
from scanner.net.tls import looks_like_tls
from scanner.net.tls_async import TlsChannel, TlsOutcome, start_tls

__all__ = ["TlsChannel", "TlsOutcome", "looks_like_tls", "parse_certificate", "session_summary",
           "start_tls"]

MAX_SANS = 50
NAME_CHARS = 256


def session_summary(channel: TlsChannel) -> dict[str, Any]:
    summary: dict[str, Any] = {"version": channel.version, "cipher": channel.cipher}
    der = channel.peer_certificate()
    summary["certificate"] = parse_certificate(der) if der else None
    return summary


def parse_certificate(der: bytes) -> dict[str, Any] | None:
    """Subject, issuer, SANs and validity of a DER certificate; None if it will not parse."""
    try:
        cert = x509.load_der_x509_certificate(der)
        return {
            "subject": _name_text(cert.subject),
            "subject_cn": _common_name(cert.subject),
            "issuer": _name_text(cert.issuer),
            "issuer_cn": _common_name(cert.issuer),
            "sans": _sans(cert),
            "not_before": _iso(cert.not_valid_before_utc),
            "not_after": _iso(cert.not_valid_after_utc),
            "self_signed": _same_name(cert),
            "serial": safe_text(format(cert.serial_number, "x"), 64),
            "sha256": hashlib.sha256(der).hexdigest(),
        }
    except Exception:  # cryptography raises several types on malformed DER; all mean "bad"
        return None


def _same_name(cert: x509.Certificate) -> bool | None:
    """Issuer == subject; None when a hostile name cannot be decoded for the comparison."""
    try:
        return cert.subject == cert.issuer
    except Exception:
        return _raw_names_equal(cert)


def _raw_names_equal(cert: x509.Certificate) -> bool | None:
    try:
        return cert.subject.public_bytes() == cert.issuer.public_bytes()
    except Exception:
        return None


def _name_text(name: x509.Name) -> str:
    try:
        return safe_text(name.rfc4514_string(), NAME_CHARS)
    except Exception:  # undecodable attribute values in a hostile certificate
        return ""


def _common_name(name: x509.Name) -> str | None:
    try:
        values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    except Exception:
        return None
    if not values:
        return None
    value = values[0].value
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return safe_text(text, NAME_CHARS)


def _sans(cert: x509.Certificate) -> list[str]:
    try:
        extension = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except Exception:  # absent, or unparsable in a hostile certificate
        return []
    names = extension.value
    entries = [*names.get_values_for_type(x509.DNSName)]
    entries += [str(address) for address in names.get_values_for_type(x509.IPAddress)]
    return [safe_text(entry, NAME_CHARS) for entry in entries[:MAX_SANS]]


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds")
