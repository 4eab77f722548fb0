"""Pure parsers for what an SSH server sends before any encryption: its identification line,
the binary packet framing (RFC 4253 section 6, no MAC before the first NEWKEYS) and its
SSH_MSG_KEXINIT (RFC 4253 section 7.1).

Everything here takes bytes a hostile server chose. No function raises on any input; every
output is bounded (name counts, name lengths, text lengths) and remote text is sanitised.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from scanner.core.text import safe_text

# RFC 4253 4.2: the identification line is at most 255 bytes; servers may send other lines
# first. We are a little more lenient in length, strict in how much we read in total.
MAX_LINE_BYTES = 1024
MAX_PRE_BANNER_LINES = 20
MAX_PRE_BANNER_BYTES = 8 * 1024
# RFC 4253 6.1: implementations must handle packets of 35000 bytes; a KEXINIT is ~1-2 KB.
MAX_PACKET_LENGTH = 35000
# RFC 4251 6: algorithm names are at most 64 characters. Real lists hold fewer than 40 names.
MAX_NAME_CHARS = 64
MAX_NAMES_PER_LIST = 128
FIELD_CHARS = 200  # software version and comment of the identification line

SSH_MSG_DISCONNECT = 1
SSH_MSG_IGNORE = 2
SSH_MSG_DEBUG = 4
SSH_MSG_KEXINIT = 20
COOKIE_BYTES = 16
STRICT_KEX_SERVER = "kex-strict-s-v00@openssh.com"  # the Terrapin countermeasure marker


@dataclass(frozen=True)
class Identification:
    """SSH-protoversion-softwareversion SP comments (RFC 4253 4.2), sanitised."""

    line: str
    protocol: str
    software: str
    comment: str | None


@dataclass(frozen=True)
class KexInit:
    """The server's algorithm name-lists, in its order of preference."""

    kex: tuple[str, ...]
    host_key: tuple[str, ...]
    ciphers_c2s: tuple[str, ...]
    ciphers_s2c: tuple[str, ...]
    macs_c2s: tuple[str, ...]
    macs_s2c: tuple[str, ...]
    compression_c2s: tuple[str, ...]
    compression_s2c: tuple[str, ...]
    first_kex_follows: bool = False
    truncated: bool = False  # a list had more names than we keep

    @property
    def strict_kex(self) -> bool:
        return STRICT_KEX_SERVER in self.kex

    @property
    def ciphers(self) -> tuple[str, ...]:
        """Both directions, client-to-server order first (they are nearly always equal)."""
        return _union(self.ciphers_c2s, self.ciphers_s2c)

    @property
    def macs(self) -> tuple[str, ...]:
        return _union(self.macs_c2s, self.macs_s2c)

    @property
    def compression(self) -> tuple[str, ...]:
        return _union(self.compression_c2s, self.compression_s2c)


def _union(first: tuple[str, ...], second: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys((*first, *second)))


# --- identification line ---------------------------------------------------------------


def parse_identification_line(line: bytes) -> Identification | None:
    """One line (without its line end) if it is an SSH identification line, else None."""
    line = line[:MAX_LINE_BYTES].rstrip(b"\r\n")
    if not line.startswith(b"SSH-"):
        return None
    text = line.decode("utf-8", "replace")
    head, _, comment = text.partition(" ")
    parts = head.split("-", 2)
    if len(parts) != 3 or not parts[1] or not parts[2]:
        return None
    return Identification(
        line=safe_text(text, MAX_LINE_BYTES),
        protocol=safe_text(parts[1], 16),
        software=safe_text(parts[2], FIELD_CHARS),
        comment=safe_text(comment, FIELD_CHARS) if comment else None,
    )


def parse_identification(data: bytes) -> Identification | None:
    """The first identification line in what the server sent first (other lines may precede)."""
    lines = data[:MAX_PRE_BANNER_BYTES].split(b"\n")[:MAX_PRE_BANNER_LINES]
    for line in lines:
        found = parse_identification_line(line)
        if found is not None:
            return found
    return None


# --- binary packets ----------------------------------------------------------------------


def packet_length(header: bytes) -> int | None:
    """The packet_length field of a cleartext packet header (>= 4 bytes), if plausible."""
    if len(header) < 4:
        return None
    (length,) = struct.unpack(">I", header[:4])
    return length if 5 <= length <= MAX_PACKET_LENGTH else None


def packet_payload(packet: bytes) -> bytes | None:
    """The payload of one whole cleartext packet (length field included), or None."""
    length = packet_length(packet)
    if length is None or len(packet) != 4 + length:
        return None
    padding = packet[4]
    payload_end = 4 + length - padding
    if padding < 1 or payload_end <= 5:
        return None
    return packet[5:payload_end]


def message_type(payload: bytes) -> int | None:
    return payload[0] if payload else None


# --- KEXINIT -------------------------------------------------------------------------------


class WireReader:
    """Reads SSH wire types from a byte string; every read is bounds-checked."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def take(self, count: int) -> bytes | None:
        if count < 0 or self.offset + count > len(self.data):
            return None
        chunk = self.data[self.offset : self.offset + count]
        self.offset += count
        return chunk

    def uint32(self) -> int | None:
        raw = self.take(4)
        return None if raw is None else struct.unpack(">I", raw)[0]

    def string(self, limit: int) -> bytes | None:
        length = self.uint32()
        if length is None or length > limit:
            return None
        return self.take(length)

    def boolean(self) -> bool | None:
        raw = self.take(1)
        return None if raw is None else raw != b"\x00"


def _name_list(raw: bytes) -> tuple[tuple[str, ...], bool]:
    """Names of a name-list, sanitised and capped; and whether names were dropped."""
    if not raw:
        return (), False
    names = raw.split(b",")
    kept = tuple(
        safe_text(name.decode("ascii", "replace"), MAX_NAME_CHARS)
        for name in names[:MAX_NAMES_PER_LIST]
        if name
    )
    return kept, len(names) > MAX_NAMES_PER_LIST


def parse_kexinit(payload: bytes) -> KexInit | None:
    """An SSH_MSG_KEXINIT payload (message type byte included), or None if it is not one."""
    reader = WireReader(payload[:MAX_PACKET_LENGTH])
    kind = reader.take(1)
    if kind != bytes([SSH_MSG_KEXINIT]) or reader.take(COOKIE_BYTES) is None:
        return None
    lists: list[tuple[str, ...]] = []
    truncated = False
    for _ in range(10):  # kex, host key, 2 ciphers, 2 MACs, 2 compressions, 2 languages
        raw = reader.string(MAX_PACKET_LENGTH)
        if raw is None:
            return None
        names, dropped = _name_list(raw)
        lists.append(names)
        truncated = truncated or dropped
    follows = reader.boolean()
    return KexInit(
        kex=lists[0],
        host_key=lists[1],
        ciphers_c2s=lists[2],
        ciphers_s2c=lists[3],
        macs_c2s=lists[4],
        macs_s2c=lists[5],
        compression_c2s=lists[6],
        compression_s2c=lists[7],
        first_kex_follows=bool(follows),
        truncated=truncated,
    )


def parse_disconnect(payload: bytes) -> str | None:
    """The reason text of an SSH_MSG_DISCONNECT payload, sanitised; None if it is not one."""
    reader = WireReader(payload)
    if reader.take(1) != bytes([SSH_MSG_DISCONNECT]) or reader.uint32() is None:
        return None
    reason = reader.string(MAX_LINE_BYTES)
    return safe_text(reason or b"", 200)
