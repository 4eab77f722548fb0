"""Host keys from the outside, without trusting or logging in: the client half of a key exchange
just far enough for the server to send its host key (K_S in SSH_MSG_KEXDH_REPLY /
SSH_MSG_KEX_ECDH_REPLY, RFC 4253 8 and RFC 5656 4), then hang up.

The key is fingerprinted as the server presented it; its signature is not verified because no
trust decision is made from it (the same as `ssh-keyscan` and ssh-audit). Building our messages
and parsing the server's reply and key blobs are pure functions; the socket work is in audit.py.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519

from scanner.checks.ssh.kexinit import MAX_NAME_CHARS, SSH_MSG_KEXINIT, KexInit, WireReader
from scanner.core.text import safe_text

SSH_MSG_KEX_INIT = 30  # SSH_MSG_KEXDH_INIT and SSH_MSG_KEX_ECDH_INIT share the number
SSH_MSG_KEX_REPLY = 31  # SSH_MSG_KEXDH_REPLY and SSH_MSG_KEX_ECDH_REPLY share the number
MAX_HOST_KEY_BYTES = 16 * 1024  # an RSA-16384 key is ~2 KB; certificates are larger

# RFC 2409 6.2 (Oakley group 2, 1024-bit) and RFC 3526 3 (group 14, 2048-bit), generator 2.
# Tests check both are safe primes of the stated size.
DH_GROUP1_PRIME = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22"
    "514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6"
    "F44C42E9A637ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE65381"
    "FFFFFFFFFFFFFFFF",
    16,
)
DH_GROUP14_PRIME = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22"
    "514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6"
    "F44C42E9A637ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3D"
    "C2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB"
    "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3BE39E772C180E8603"
    "9B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA0510"
    "15728E5A8AACAA68FFFFFFFFFFFFFFFF",
    16,
)
DH_GENERATOR = 2

_CURVES: dict[str, ec.EllipticCurve] = {
    "ecdh-sha2-nistp256": ec.SECP256R1(),
    "ecdh-sha2-nistp384": ec.SECP384R1(),
    "ecdh-sha2-nistp521": ec.SECP521R1(),
}
_DH_GROUPS = {
    "diffie-hellman-group14-sha256": DH_GROUP14_PRIME,
    "diffie-hellman-group14-sha1": DH_GROUP14_PRIME,
    "diffie-hellman-group1-sha1": DH_GROUP1_PRIME,
}
# Key exchanges we can start, in the order we offer them. One of them is enough to make the
# server send its host key; which one does not matter because we never derive keys.
KEX_METHODS: tuple[str, ...] = (
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    *_CURVES,
    *_DH_GROUPS,
)

RSA_ALGORITHMS = ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")
_ECDSA_BITS = {"nistp256": 256, "nistp384": 384, "nistp521": 521}


@dataclass(frozen=True)
class HostKey:
    """One host key as the server presented it."""

    type: str  # the key's own type name from the blob: "ssh-ed25519", "ssh-rsa", ...
    bits: int | None
    sha256: str  # "SHA256:<base64 without padding>", what `ssh-keygen -l` prints

    def to_dict(self) -> dict[str, object]:
        return {"type": self.type, "bits": self.bits, "sha256": self.sha256}


@dataclass(frozen=True)
class KeyFamily:
    """Host key algorithms that all use one key (rsa-sha2-512, rsa-sha2-256 and ssh-rsa)."""

    name: str
    algorithms: tuple[str, ...]  # as the server listed them, in its order

    @property
    def request(self) -> str:
        """The algorithm to ask for to make the server show this key."""
        return self.algorithms[0]


def key_family_name(algorithm: str) -> str | None:
    """Which key an algorithm signs with; None for certificates (not fetched: the blob would
    be the certificate, whose fingerprint is not the key's)."""
    if "-cert-" in algorithm:
        return None
    return "ssh-rsa" if algorithm in RSA_ALGORITHMS else algorithm


def key_families(host_key_algorithms: Sequence[str]) -> tuple[KeyFamily, ...]:
    """The distinct keys behind the server's host key algorithms, in the server's order."""
    grouped: dict[str, list[str]] = {}
    for algorithm in host_key_algorithms:
        family = key_family_name(algorithm)
        if family is not None:
            grouped.setdefault(family, []).append(algorithm)
    return tuple(KeyFamily(name, tuple(algorithms)) for name, algorithms in grouped.items())


# --- our messages ----------------------------------------------------------------------------


def ssh_string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def ssh_mpint(value: int) -> bytes:
    """RFC 4251 5 mpint for a non-negative integer (a leading zero byte keeps it positive)."""
    raw = value.to_bytes((value.bit_length() + 8) // 8, "big") if value else b""
    return ssh_string(raw)


def name_list(names: Sequence[str]) -> bytes:
    return ssh_string(",".join(names).encode("ascii", "replace"))


def _echoable(names: Sequence[str]) -> list[str]:
    """The names of a server's list we can send back: plain printable ASCII names only (what
    we parsed was sanitised, so a hostile name may carry replacement or truncation marks)."""
    return [
        name
        for name in names
        if name.isascii() and name.isprintable() and "," not in name and " " not in name
    ]


def frame(payload: bytes, block: int = 8) -> bytes:
    """A cleartext binary packet: length, padding length, payload, random padding (>= 4)."""
    padding = block - (len(payload) + 5) % block
    if padding < 4:
        padding += block
    body = bytes([padding]) + payload + os.urandom(padding)
    return struct.pack(">I", len(body)) + body


def choose_kex(server_kex: Sequence[str]) -> str | None:
    """RFC 4253 7.1: the first of the client's methods that the server also lists."""
    offered = set(server_kex)
    return next((method for method in KEX_METHODS if method in offered), None)


def client_kexinit(kex: str, host_key_algorithm: str, server: KexInit) -> bytes:
    """Our KEXINIT payload asking for one kex method and one host key algorithm.

    Ciphers, MACs and compression echo the server's own lists so negotiation cannot fail on
    them; they are never used because we hang up before NEWKEYS.
    """
    lists: list[Sequence[str]] = [
        [kex],
        [host_key_algorithm],
        _echoable(server.ciphers_c2s),
        _echoable(server.ciphers_s2c),
        _echoable(server.macs_c2s),
        _echoable(server.macs_s2c),
        _echoable(server.compression_c2s),
        _echoable(server.compression_s2c),
        [],
        [],
    ]
    body = b"".join(name_list(names) for names in lists)
    # first_kex_packet_follows = false, reserved uint32 = 0
    return bytes([SSH_MSG_KEXINIT]) + secrets.token_bytes(16) + body + b"\x00" * 5


def kex_init_message(method: str) -> bytes:
    """Our SSH_MSG_KEX(DH|_ECDH)_INIT payload for `method`: a fresh ephemeral public value."""
    if method.startswith("curve25519"):
        public = x25519.X25519PrivateKey.generate().public_key()
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return bytes([SSH_MSG_KEX_INIT]) + ssh_string(raw)
    if method in _CURVES:
        point = (
            ec.generate_private_key(_CURVES[method])
            .public_key()
            .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        )
        return bytes([SSH_MSG_KEX_INIT]) + ssh_string(point)
    prime = _DH_GROUPS[method]
    exponent = secrets.randbelow(prime - 3) + 2
    return bytes([SSH_MSG_KEX_INIT]) + ssh_mpint(pow(DH_GENERATOR, exponent, prime))


# --- the server's reply ------------------------------------------------------------------------


def parse_kex_reply(payload: bytes) -> bytes | None:
    """K_S, the host key blob, from a KEX reply payload; None if it is not one."""
    reader = WireReader(payload)
    if reader.take(1) != bytes([SSH_MSG_KEX_REPLY]):
        return None
    blob = reader.string(MAX_HOST_KEY_BYTES)
    return blob or None


def fingerprint_sha256(blob: bytes) -> str:
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii")
    return "SHA256:" + digest.rstrip("=")


def _mpint_bits(raw: bytes | None) -> int | None:
    if raw is None:
        return None
    return int.from_bytes(raw, "big").bit_length()


def _key_bits(key_type: str, reader: WireReader) -> int | None:
    """Key size from the fields after the type name (RFC 4253 6.6, RFC 5656 3.1, RFC 8709)."""
    if key_type == "ssh-rsa":
        reader.string(MAX_HOST_KEY_BYTES)  # e
        return _mpint_bits(reader.string(MAX_HOST_KEY_BYTES))  # n
    if key_type == "ssh-dss":
        return _mpint_bits(reader.string(MAX_HOST_KEY_BYTES))  # p
    if key_type in ("ssh-ed25519", "sk-ssh-ed25519@openssh.com"):
        return 256
    if key_type == "ssh-ed448":
        return 456
    for curve, bits in _ECDSA_BITS.items():
        if curve in key_type:
            return bits
    return None


def describe_host_key(blob: bytes) -> HostKey | None:
    """Type, size and SHA256 fingerprint of a public key blob; None if it has no type name."""
    blob = blob[:MAX_HOST_KEY_BYTES]
    reader = WireReader(blob)
    raw_type = reader.string(MAX_NAME_CHARS)
    if not raw_type:
        return None
    key_type = safe_text(raw_type.decode("ascii", "replace"), MAX_NAME_CHARS)
    return HostKey(type=key_type, bits=_key_bits(key_type, reader), sha256=fingerprint_sha256(blob))
