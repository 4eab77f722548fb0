"""Weak/legacy algorithm verdicts and the Terrapin conditions (data + engine, pure)."""

from __future__ import annotations

import pytest

from scanner.checks.ssh import algorithms
from scanner.checks.ssh.algorithms import CIPHER, HOST_KEY, KEX, LEGACY, MAC, VERDICTS, WEAK
from scanner.checks.ssh.evaluate import (
    flag_algorithms,
    flag_small_keys,
    terrapin_exposure,
    verdict,
)
from scanner.checks.ssh.hostkeys import HostKey
from scanner.checks.ssh.kexinit import STRICT_KEX_SERVER, KexInit

# OpenSSH 9.2p1's defaults on Debian 12, as the lab's sshd and ssh-audit list them.
DEFAULT_KEX = (
    "sntrup761x25519-sha512",
    "sntrup761x25519-sha512@openssh.com",
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "ecdh-sha2-nistp256",
    "ecdh-sha2-nistp384",
    "ecdh-sha2-nistp521",
    "diffie-hellman-group-exchange-sha256",
    "diffie-hellman-group16-sha512",
    "diffie-hellman-group18-sha512",
    "diffie-hellman-group14-sha256",
    STRICT_KEX_SERVER,
)
DEFAULT_HOST_KEYS = ("ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512", "rsa-sha2-256")
DEFAULT_CIPHERS = (
    "chacha20-poly1305@openssh.com",
    "aes128-ctr",
    "aes192-ctr",
    "aes256-ctr",
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
)
DEFAULT_MACS = (
    "umac-64-etm@openssh.com",
    "umac-128-etm@openssh.com",
    "hmac-sha2-256-etm@openssh.com",
    "hmac-sha2-512-etm@openssh.com",
    "hmac-sha1-etm@openssh.com",
    "umac-64@openssh.com",
    "umac-128@openssh.com",
    "hmac-sha2-256",
    "hmac-sha2-512",
    "hmac-sha1",
)


def kexinit(
    kex: tuple[str, ...] = DEFAULT_KEX,
    host_key: tuple[str, ...] = DEFAULT_HOST_KEYS,
    ciphers: tuple[str, ...] = DEFAULT_CIPHERS,
    macs: tuple[str, ...] = DEFAULT_MACS,
) -> KexInit:
    return KexInit(kex, host_key, ciphers, ciphers, macs, macs, ("none",), ("none",))


def test_openssh_defaults_have_no_weak_algorithm() -> None:
    flagged = flag_algorithms(kexinit())
    assert [f.name for f in flagged if f.tier == WEAK] == []
    assert {f.name for f in flagged if f.tier == LEGACY} == {
        "umac-64-etm@openssh.com",
        "hmac-sha1-etm@openssh.com",
        "umac-64@openssh.com",
        "hmac-sha1",
    }


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        (KEX, "diffie-hellman-group1-sha1"),
        (KEX, "diffie-hellman-group14-sha1"),
        (KEX, "diffie-hellman-group-exchange-sha1"),
        (KEX, "gss-group1-sha1-toWM5Slw5Ew8Mqkay+al2g=="),
        (HOST_KEY, "ssh-rsa"),
        (HOST_KEY, "ssh-dss"),
        (CIPHER, "aes128-cbc"),
        (CIPHER, "3des-cbc"),
        (CIPHER, "rijndael-cbc@lysator.liu.se"),
        (CIPHER, "arcfour256"),
        (CIPHER, "none"),
        (MAC, "hmac-md5"),
        (MAC, "hmac-md5-96-etm@openssh.com"),
        (MAC, "hmac-sha1-96"),
        (MAC, "hmac-ripemd160@openssh.com"),
    ],
)
def test_weak(kind: str, name: str) -> None:
    found = verdict(kind, name)
    assert found is not None and found.tier == WEAK and found.why and found.source


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        (KEX, "curve25519-sha256"),
        (KEX, "ecdh-sha2-nistp256"),  # deliberately not flagged: see algorithms.py
        (KEX, "diffie-hellman-group14-sha256"),
        (HOST_KEY, "rsa-sha2-512"),
        (HOST_KEY, "ecdsa-sha2-nistp256"),
        (CIPHER, "aes128-ctr"),
        (CIPHER, "chacha20-poly1305@openssh.com"),
        (MAC, "hmac-sha2-256"),
        (MAC, "hmac-sha2-256-etm@openssh.com"),
    ],
)
def test_not_flagged(kind: str, name: str) -> None:
    assert verdict(kind, name) is None


def test_every_verdict_says_why_and_where_from() -> None:
    assert algorithms.REVIEWED
    for exact, patterns in VERDICTS.values():
        entries = [*exact.values(), *(p.verdict for p in patterns)]
        for entry in entries:
            assert entry.tier in (WEAK, LEGACY) and entry.why and entry.source


def test_small_rsa_keys_are_weak() -> None:
    keys = [
        HostKey("ssh-rsa", 1024, "SHA256:a"),
        HostKey("ssh-rsa", 3072, "SHA256:b"),
        HostKey("ssh-ed25519", 256, "SHA256:c"),
    ]
    assert [f.name for f in flag_small_keys(keys)] == ["ssh-rsa 1024-bit key"]


def test_terrapin_chacha20_without_strict_kex() -> None:
    exposure = terrapin_exposure(kexinit(kex=("curve25519-sha256",)))
    assert exposure is not None and exposure.chacha20 == ("chacha20-poly1305@openssh.com",)
    assert exposure.cbc_ciphers == ()


def test_terrapin_cbc_with_etm_without_strict_kex() -> None:
    exposure = terrapin_exposure(
        kexinit(
            kex=("curve25519-sha256",),
            ciphers=("aes128-ctr", "aes128-cbc"),
            macs=("hmac-sha2-256-etm@openssh.com", "hmac-sha2-256"),
        )
    )
    assert exposure is not None and exposure.chacha20 == ()
    assert exposure.cbc_ciphers == ("aes128-cbc",)
    assert exposure.etm_macs == ("hmac-sha2-256-etm@openssh.com",)


@pytest.mark.parametrize(
    ("kex", "ciphers", "macs"),
    [
        # strict kex (Debian's patched 9.2p1, Dropbear 2022.83-1+deb12u1 and later)
        (DEFAULT_KEX, (*DEFAULT_CIPHERS, "aes128-cbc"), DEFAULT_MACS),
        # CBC without EtM, and CTR with EtM (not practically exploitable): not reported
        (("curve25519-sha256",), ("aes128-cbc", "aes128-ctr"), ("hmac-sha2-256",)),
        (("curve25519-sha256",), ("aes128-ctr",), ("hmac-sha2-256-etm@openssh.com",)),
        # GCM is not affected
        (("curve25519-sha256",), ("aes256-gcm@openssh.com",), ("hmac-sha2-256-etm@openssh.com",)),
    ],
)
def test_no_terrapin(kex: tuple[str, ...], ciphers: tuple[str, ...], macs: tuple[str, ...]) -> None:
    assert terrapin_exposure(kexinit(kex=kex, ciphers=ciphers, macs=macs)) is None
