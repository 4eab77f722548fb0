"""The SSH identification line, cleartext packet framing and KEXINIT parsers (pure)."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.checks.ssh.hostkeys import client_kexinit, frame, name_list
from scanner.checks.ssh.kexinit import (
    FIELD_CHARS,
    MAX_LINE_BYTES,
    MAX_NAME_CHARS,
    MAX_NAMES_PER_LIST,
    MAX_PACKET_LENGTH,
    STRICT_KEX_SERVER,
    KexInit,
    packet_length,
    packet_payload,
    parse_disconnect,
    parse_identification,
    parse_identification_line,
    parse_kexinit,
)
from scanner.core.text import TRUNCATION_MARK

# What OpenSSH 9.2p1 (Debian 12) sends, as ssh-audit and our lab test saw it.
DEBIAN_KEX = (
    "sntrup761x25519-sha512@openssh.com",
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "ecdh-sha2-nistp256",
    "diffie-hellman-group14-sha256",
    STRICT_KEX_SERVER,
)
DEBIAN_HOST_KEYS = ("rsa-sha2-512", "rsa-sha2-256", "ecdsa-sha2-nistp256", "ssh-ed25519")
DEBIAN_CIPHERS = ("chacha20-poly1305@openssh.com", "aes128-ctr", "aes256-gcm@openssh.com")
DEBIAN_MACS = ("umac-64-etm@openssh.com", "hmac-sha2-256-etm@openssh.com", "hmac-sha1")


def kexinit_payload(
    kex: tuple[str, ...] = DEBIAN_KEX,
    host_keys: tuple[str, ...] = DEBIAN_HOST_KEYS,
    ciphers: tuple[str, ...] = DEBIAN_CIPHERS,
    macs: tuple[str, ...] = DEBIAN_MACS,
    compression: tuple[str, ...] = ("none", "zlib@openssh.com"),
) -> bytes:
    lists = [kex, host_keys, ciphers, ciphers, macs, macs, compression, compression, (), ()]
    body = b"".join(name_list(names) for names in lists)
    return b"\x14" + bytes(16) + body + b"\x00" + bytes(4)


def test_identification_line_fields() -> None:
    found = parse_identification_line(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n")
    assert found is not None
    assert found.protocol == "2.0"
    assert found.software == "OpenSSH_9.2p1"
    assert found.comment == "Debian-2+deb12u3"
    assert found.line == "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3"


def test_identification_without_comment_and_bare_dropbear() -> None:
    found = parse_identification_line(b"SSH-2.0-dropbear")
    assert found is not None and found.software == "dropbear" and found.comment is None


def test_identification_may_follow_other_lines() -> None:
    data = b"Welcome to the router\r\nno kidding\r\nSSH-2.0-dropbear_2022.83\r\n"
    found = parse_identification(data)
    assert found is not None and found.software == "dropbear_2022.83"


def test_not_an_identification() -> None:
    assert parse_identification_line(b"HTTP/1.1 400 Bad Request") is None
    assert parse_identification_line(b"SSH-2.0-") is None
    assert parse_identification_line(b"SSH-") is None
    assert parse_identification(b"220 ftp ready\r\n") is None


def test_identification_is_sanitised() -> None:
    found = parse_identification_line(b"SSH-2.0-evil\x1b[2J \x1b]8;;http://x\x07click")
    assert found is not None
    assert "\x1b" not in found.line and "\x07" not in (found.comment or "")


def test_kexinit_lists_in_server_order() -> None:
    parsed = parse_kexinit(kexinit_payload())
    assert parsed is not None
    assert parsed.kex == DEBIAN_KEX
    assert parsed.host_key == DEBIAN_HOST_KEYS
    assert parsed.ciphers == DEBIAN_CIPHERS and parsed.macs == DEBIAN_MACS
    assert parsed.compression == ("none", "zlib@openssh.com")
    assert parsed.strict_kex and not parsed.first_kex_follows and not parsed.truncated


def test_kexinit_without_strict_marker() -> None:
    parsed = parse_kexinit(kexinit_payload(kex=("curve25519-sha256",)))
    assert parsed is not None and not parsed.strict_kex


def test_kexinit_round_trips_through_our_own_builder() -> None:
    server = parse_kexinit(kexinit_payload())
    assert server is not None
    ours = parse_kexinit(client_kexinit("curve25519-sha256", "ssh-ed25519", server))
    assert ours is not None
    assert ours.kex == ("curve25519-sha256",) and ours.host_key == ("ssh-ed25519",)
    assert ours.ciphers_c2s == server.ciphers_c2s and ours.macs_s2c == server.macs_s2c


def test_kexinit_rejects_other_messages_and_truncation() -> None:
    payload = kexinit_payload()
    assert parse_kexinit(b"\x15" + payload[1:]) is None
    assert parse_kexinit(payload[:40]) is None
    assert parse_kexinit(b"") is None


def test_kexinit_caps_names() -> None:
    many = tuple(f"alg{i}" for i in range(MAX_NAMES_PER_LIST + 50))
    long_name = "x" * 500
    parsed = parse_kexinit(kexinit_payload(kex=many, host_keys=(long_name,)))
    assert parsed is not None
    assert len(parsed.kex) == MAX_NAMES_PER_LIST and parsed.truncated
    assert len(parsed.host_key[0]) <= MAX_NAME_CHARS + len(TRUNCATION_MARK)


def test_packet_framing_round_trip() -> None:
    payload = kexinit_payload()
    packet = frame(payload)
    assert len(packet) % 8 == 0 and packet[4] >= 4  # RFC 4253 6: whole packet, length included
    assert packet_length(packet) == len(packet) - 4
    assert packet_payload(packet) == payload


def test_implausible_packet_lengths() -> None:
    assert packet_length(struct.pack(">I", MAX_PACKET_LENGTH + 1)) is None
    assert packet_length(struct.pack(">I", 2**31)) is None
    assert packet_length(struct.pack(">I", 0)) is None
    assert packet_length(b"\x00\x00") is None


def test_padding_longer_than_packet_is_malformed() -> None:
    body = bytes([200]) + b"\x14" + bytes(10)
    assert packet_payload(struct.pack(">I", len(body)) + body) is None


def test_disconnect_reason() -> None:
    reason = b"Too many \x1b[31mconnections"
    payload = b"\x01" + struct.pack(">I", 2) + struct.pack(">I", len(reason)) + reason
    assert parse_disconnect(payload) == "Too many \\e[31mconnections"
    assert parse_disconnect(b"\x02") is None


# --- properties: anything goes in, nothing raises, output stays bounded ----------------------


@given(st.binary(max_size=4096))
@settings(max_examples=300)
def test_identification_parsers_never_raise(data: bytes) -> None:
    for found in (parse_identification(data), parse_identification_line(data)):
        if found is not None:
            assert len(found.line) <= MAX_LINE_BYTES + len(TRUNCATION_MARK)
            assert len(found.software) <= FIELD_CHARS + len(TRUNCATION_MARK)
            assert "\x1b" not in found.line and "\r" not in found.line


@given(st.binary(max_size=4096))
@settings(max_examples=300)
def test_packet_parsers_never_raise(data: bytes) -> None:
    packet_length(data)
    packet_payload(data)
    parse_disconnect(data)
    parsed = parse_kexinit(b"\x14" + data)
    if parsed is not None:
        _assert_bounded(parsed)


@given(
    st.lists(
        st.lists(st.text(min_size=0, max_size=80), max_size=200).map(tuple), min_size=5, max_size=5
    ),
    st.binary(max_size=64),
)
@settings(max_examples=150)
def test_kexinit_of_any_names_stays_bounded(lists: list[tuple[str, ...]], tail: bytes) -> None:
    payload = kexinit_payload(*lists)  # type: ignore[arg-type]
    parsed = parse_kexinit(payload + tail)
    assert parsed is not None
    _assert_bounded(parsed)


def _assert_bounded(parsed: KexInit) -> None:
    for names in (parsed.kex, parsed.host_key, parsed.ciphers, parsed.macs, parsed.compression):
        assert len(names) <= 2 * MAX_NAMES_PER_LIST
        for name in names:
            assert len(name) <= MAX_NAME_CHARS + len(TRUNCATION_MARK)
            assert not any(ch in name for ch in "\x00\x1b\r\n")
