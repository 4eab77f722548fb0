"""Key-exchange messages we build and host key blobs we parse (pure), checked against
ssh-keygen's own fingerprints for real keys."""

from __future__ import annotations

import base64
import random
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.checks.ssh.hostkeys import (
    DH_GROUP1_PRIME,
    DH_GROUP14_PRIME,
    KEX_METHODS,
    MAX_HOST_KEY_BYTES,
    SSH_MSG_KEX_INIT,
    choose_kex,
    describe_host_key,
    kex_init_message,
    key_families,
    key_family_name,
    parse_kex_reply,
    ssh_mpint,
    ssh_string,
)
from scanner.checks.ssh.kexinit import WireReader
from scanner.core.text import TRUNCATION_MARK


def _probably_prime(n: int, rounds: int = 16) -> bool:
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    rng = random.Random(n)
    for _ in range(rounds):
        x = pow(rng.randrange(2, n - 2), d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


@pytest.mark.parametrize(("prime", "bits"), [(DH_GROUP1_PRIME, 1024), (DH_GROUP14_PRIME, 2048)])
def test_dh_groups_are_the_safe_primes_of_rfc_2409_and_3526(prime: int, bits: int) -> None:
    assert prime.bit_length() == bits
    assert _probably_prime(prime) and _probably_prime((prime - 1) // 2)
    # both start with 2^64-1 and the same digits of pi (the MODP construction)
    assert prime >> (bits - 64) == 2**64 - 1 and prime % 2**64 == 2**64 - 1
    assert DH_GROUP1_PRIME >> 200 == DH_GROUP14_PRIME >> (2048 - 1024 + 200)


def test_mpint_encoding() -> None:
    assert ssh_mpint(0) == b"\x00\x00\x00\x00"
    assert ssh_mpint(0x80) == b"\x00\x00\x00\x02\x00\x80"  # RFC 4251 5 example
    assert ssh_mpint(0x9A378F9B2E332A7) == b"\x00\x00\x00\x08\x09\xa3\x78\xf9\xb2\xe3\x32\xa7"


def test_choose_kex_follows_our_preference() -> None:
    assert choose_kex(["diffie-hellman-group14-sha1", "curve25519-sha256"]) == "curve25519-sha256"
    assert choose_kex(["diffie-hellman-group1-sha1"]) == "diffie-hellman-group1-sha1"
    assert choose_kex(["sntrup761x25519-sha512@openssh.com", "gss-gex-sha1-x"]) is None


@pytest.mark.parametrize("method", KEX_METHODS)
def test_kex_init_messages_carry_a_valid_public_value(method: str) -> None:
    payload = kex_init_message(method)
    assert payload[0] == SSH_MSG_KEX_INIT
    value = WireReader(payload[1:]).string(4096)
    assert value is not None
    if method.startswith("curve25519"):
        assert len(value) == 32
    elif method.startswith("ecdh"):
        assert value[0] == 4  # uncompressed point
    else:
        prime = DH_GROUP1_PRIME if "group1-" in method else DH_GROUP14_PRIME
        e = int.from_bytes(value, "big")
        assert 1 < e < prime - 1  # what servers check (RFC 4253 8)


def test_key_families_group_rsa_signatures_and_skip_certificates() -> None:
    families = key_families(
        [
            "rsa-sha2-512",
            "ssh-ed25519-cert-v01@openssh.com",
            "rsa-sha2-256",
            "ecdsa-sha2-nistp256",
            "ssh-rsa",
            "ssh-ed25519",
        ]
    )
    assert [(f.name, f.algorithms) for f in families] == [
        ("ssh-rsa", ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")),
        ("ecdsa-sha2-nistp256", ("ecdsa-sha2-nistp256",)),
        ("ssh-ed25519", ("ssh-ed25519",)),
    ]
    assert families[0].request == "rsa-sha2-512"
    assert key_family_name("rsa-sha2-256-cert-v01@openssh.com") is None


@pytest.fixture(scope="module")
def real_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("keys")
    keys = {}
    for kind, extra in (("ed25519", []), ("ecdsa", ["-b", "384"]), ("rsa", ["-b", "1024"])):
        path = directory / kind
        subprocess.run(
            ["ssh-keygen", "-q", "-t", kind, *extra, "-N", "", "-f", str(path)], check=True
        )
        keys[kind] = path.with_suffix(".pub")
    return keys


@pytest.mark.parametrize(
    ("kind", "key_type", "bits"),
    [
        ("ed25519", "ssh-ed25519", 256),
        ("ecdsa", "ecdsa-sha2-nistp384", 384),
        ("rsa", "ssh-rsa", 1024),
    ],
)
def test_host_key_fingerprints_match_ssh_keygen(
    real_keys: dict[str, Path], kind: str, key_type: str, bits: int
) -> None:
    public = real_keys[kind]
    blob = base64.b64decode(public.read_text().split()[1])
    described = describe_host_key(blob)
    assert described is not None
    keygen = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", str(public)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert described.sha256 == keygen[1]
    assert (described.type, described.bits) == (key_type, bits)
    assert int(keygen[0]) == bits


def test_kex_reply_carries_the_host_key() -> None:
    blob = ssh_string(b"ssh-ed25519") + ssh_string(bytes(32))
    payload = b"\x1f" + ssh_string(blob) + ssh_string(bytes(32)) + ssh_string(b"sig")
    assert parse_kex_reply(payload) == blob
    assert parse_kex_reply(b"\x1e" + payload[1:]) is None
    assert parse_kex_reply(b"\x1f") is None


@given(st.binary(max_size=MAX_HOST_KEY_BYTES + 100))
@settings(max_examples=300)
def test_host_key_parsers_never_raise(data: bytes) -> None:
    parse_kex_reply(data)
    parse_kex_reply(b"\x1f" + data)
    described = describe_host_key(data)
    if described is not None:
        assert len(described.type) <= 64 + len(TRUNCATION_MARK)
        assert described.sha256.startswith("SHA256:") and len(described.sha256) == 50
        assert "\x1b" not in described.type
