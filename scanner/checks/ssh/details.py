"""details.ssh: the server's identification line (from identification) and the SSH audit.

Identification parses the line (protocol, software, comment, distro); the SSH check keeps that
and adds the KEXINIT lists, the flagged algorithms, advisories and what authentication offers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from scanner.core.details import OMIT_NONE, DetailsRecord


@dataclass(frozen=True)
class FlaggedAlgorithm(DetailsRecord):
    kind: str = ""
    name: str = ""
    why: str = ""
    source: str = ""


@dataclass(frozen=True)
class Advisory(DetailsRecord):
    id: str = ""
    name: str | None = None
    status: str | None = None
    severity: str | None = None
    explanation: str | None = None


@dataclass(frozen=True)
class HostKey(DetailsRecord):
    algorithms: tuple[str, ...] = ()
    type: str | None = None
    bits: int | None = None
    sha256: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class SshDetails(DetailsRecord):
    HIGHLIGHTS = (
        ("software", "software"),
        ("distro", "distribution"),
        ("auth_methods", "auth methods"),
        ("none_auth_accepted", "no-auth accepted"),
        ("strict_kex", "strict kex (Terrapin fix)"),
        ("advisories", "advisories"),
        ("weak_algorithms", "weak algorithms"),
        ("kex", "key exchange"),
        ("host_key_algorithms", "host key types"),
        ("ciphers", "ciphers"),
        ("macs", "MACs"),
    )
    TABLE = (("auth_methods", "auth"),)
    TABLE_RANK = 3

    protocol: str | None = None
    software: str | None = None
    comment: str | None = None
    distro: str | None = None
    distro_revision: str | None = None
    banner: str | None = None
    product: str | None = None
    version: str | None = None
    kex: tuple[str, ...] = ()
    host_key_algorithms: tuple[str, ...] = ()
    host_keys: tuple[HostKey, ...] = ()
    ciphers: tuple[str, ...] = ()
    macs: tuple[str, ...] = ()
    compression: tuple[str, ...] = ()
    strict_kex: bool | None = None
    ciphers_server_to_client: tuple[str, ...] | None = field(default=None, metadata=OMIT_NONE)
    macs_server_to_client: tuple[str, ...] | None = field(default=None, metadata=OMIT_NONE)
    compression_server_to_client: tuple[str, ...] | None = field(default=None,
                                                                 metadata=OMIT_NONE)
    weak_algorithms: tuple[FlaggedAlgorithm, ...] = ()
    legacy_algorithms: tuple[FlaggedAlgorithm, ...] = ()
    advisories: tuple[Advisory, ...] = ()
    auth_methods: tuple[str, ...] | None = None
    none_auth_accepted: bool | None = None
    auth_asked_as: str | None = field(default=None, metadata=OMIT_NONE)
    auth_banner: str | None = field(default=None, metadata=OMIT_NONE)
    connections: int | None = None
    audit_seconds: float | None = None
    errors: tuple[str, ...] | None = field(default=None, metadata=OMIT_NONE)


DETAILS = {"ssh": SshDetails.from_dict}
