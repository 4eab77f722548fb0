"""MongoDB: does the server list its databases without authentication?

Two OP_MSG commands an anonymous client may send: `isMaster` (the handshake every driver
sends; it answers without auth and names the wire version) and `listDatabases` with
nameOnly (a read of database names). `ok: 1` with a database list = no access control;
`ok: 0` with code 13 (Unauthorized) = access control is on. Nothing is written.
"""

from __future__ import annotations

import os
import struct
from typing import Any

from scanner.checks.services.model import NOT_IDENTIFIED, Auth, ProbeOutcome
from scanner.core.text import safe_text
from scanner.net import Connector, NetError, Stream

OP_MSG = 2013
REPLY_CAP = 64 * 1024
MAX_DEPTH = 6
UNAUTHORIZED = 13


# --- a minimal BSON: enough to write our two commands and read the replies ----------------


def encode_document(fields: dict[str, Any]) -> bytes:
    body = bytearray()
    for key, value in fields.items():
        name = key.encode() + b"\x00"
        if isinstance(value, bool):
            body += b"\x08" + name + (b"\x01" if value else b"\x00")
        elif isinstance(value, int):
            body += b"\x10" + name + struct.pack("<i", value)
        elif isinstance(value, str):
            encoded = value.encode() + b"\x00"
            body += b"\x02" + name + struct.pack("<i", len(encoded)) + encoded
        else:
            raise TypeError(f"unsupported BSON value for {key!r}")
    return struct.pack("<i", len(body) + 5) + bytes(body) + b"\x00"


class BsonError(ValueError):
    pass


def decode_document(data: bytes, depth: int = 0) -> dict[str, Any]:
    """Decode one BSON document (the types a reply uses); BsonError on anything malformed."""
    if depth > MAX_DEPTH:
        raise BsonError("nested too deeply")
    if len(data) < 5:
        raise BsonError("too short")
    length = struct.unpack("<i", data[:4])[0]
    if length < 5 or length > len(data) or data[length - 1] != 0:
        raise BsonError("bad length")
    out: dict[str, Any] = {}
    i = 4
    while i < length - 1:
        kind = data[i]
        end = data.find(b"\x00", i + 1, length)
        if end == -1:
            raise BsonError("unterminated key")
        key = data[i + 1 : end].decode("utf-8", "replace")
        value, i = _decode_value(kind, data, end + 1, length, depth)
        if len(out) < 256:
            out[key] = value
    return out


def _decode_value(kind: int, data: bytes, i: int, limit: int, depth: int) -> tuple[Any, int]:
    def need(count: int) -> None:
        if i + count > limit:
            raise BsonError("truncated value")

    if kind == 0x01:
        need(8)
        return struct.unpack("<d", data[i : i + 8])[0], i + 8
    if kind in (0x02, 0x0D, 0x0E):
        need(4)
        size = struct.unpack("<i", data[i : i + 4])[0]
        if size < 1:
            raise BsonError("bad string length")
        need(4 + size)
        return data[i + 4 : i + 4 + size - 1].decode("utf-8", "replace"), i + 4 + size
    if kind in (0x03, 0x04):
        need(4)
        size = struct.unpack("<i", data[i : i + 4])[0]
        if size < 5:
            raise BsonError("bad document length")
        need(size)
        document = decode_document(data[i : i + size], depth + 1)
        value: Any = list(document.values()) if kind == 0x04 else document
        return value, i + size
    if kind == 0x05:
        need(5)
        size = struct.unpack("<i", data[i : i + 4])[0]
        if size < 0:
            raise BsonError("bad binary length")
        need(5 + size)
        return b"<binary>", i + 5 + size
    if kind == 0x07:
        need(12)
        return data[i : i + 12].hex(), i + 12
    if kind == 0x08:
        need(1)
        return data[i] != 0, i + 1
    if kind in (0x09, 0x11, 0x12):
        need(8)
        return struct.unpack("<q", data[i : i + 8])[0], i + 8
    if kind in (0x0A, 0x06, 0x7F, 0xFF):
        return None, i
    if kind == 0x10:
        need(4)
        return struct.unpack("<i", data[i : i + 4])[0], i + 4
    if kind == 0x13:
        need(16)
        return "<decimal128>", i + 16
    raise BsonError(f"unsupported BSON type 0x{kind:02x}")


# --- OP_MSG ------------------------------------------------------------------------------


def op_msg(command: dict[str, Any]) -> bytes:
    request_id = struct.unpack("<i", os.urandom(4))[0]
    body = struct.pack("<I", 0) + b"\x00" + encode_document(command)
    return struct.pack("<iiii", 16 + len(body), request_id, 0, OP_MSG) + body


def parse_op_msg(data: bytes) -> dict[str, Any] | None:
    """The body document of an OP_MSG reply; None if it is not one (never raises)."""
    if len(data) < 21:
        return None
    length, _, _, opcode = struct.unpack("<iiii", data[:16])
    if opcode != OP_MSG or length < 21 or length > len(data):
        return None
    if data[20] != 0:  # section kind 0: the body document
        return None
    try:
        return decode_document(data[21:length])
    except (BsonError, struct.error, IndexError):
        return None


def _message_complete(data: bytes) -> bool:
    return len(data) >= 4 and len(data) >= struct.unpack("<i", data[:4])[0]


def _command(stream: Stream, command: dict[str, Any]) -> dict[str, Any] | None:
    stream.send(op_msg(command))
    return parse_op_msg(stream.recv_until(_message_complete, REPLY_CAP))


def classify(hello: dict[str, Any] | None, listing: dict[str, Any] | None) -> ProbeOutcome:
    if hello is None:
        return NOT_IDENTIFIED
    facts: dict[str, Any] = {}
    if isinstance(hello.get("maxWireVersion"), int):
        facts["max_wire_version"] = hello["maxWireVersion"]
    if listing is None:
        return ProbeOutcome(True, Auth.UNKNOWN, "isMaster answered; listDatabases did not",
                            product="MongoDB", facts=facts)
    if listing.get("ok") in (1, 1.0, True) and isinstance(listing.get("databases"), list):
        names = [
            safe_text(str(entry.get("name", "?")), 40)
            for entry in listing["databases"][:20]
            if isinstance(entry, dict)
        ]
        facts["databases"] = names
        return ProbeOutcome(True, Auth.NONE,
                            f"listDatabases without authentication listed {len(names)} "
                            f"database(s): {', '.join(names[:8])}", product="MongoDB", facts=facts)
    code = listing.get("code")
    message = safe_text(str(listing.get("errmsg", "")), 120)
    if code == UNAUTHORIZED or "auth" in message.lower():
        return ProbeOutcome(True, Auth.REQUIRED,
                            f"listDatabases without authentication refused: {message or code}",
                            product="MongoDB", facts=facts)
    return ProbeOutcome(True, Auth.UNKNOWN, f"listDatabases answered: {message or code}",
                        product="MongoDB", facts=facts)


def probe(connector: Connector) -> ProbeOutcome:
    try:
        with connector.open(cap=2 * REPLY_CAP) as stream:
            hello = _command(stream, {"isMaster": 1, "$db": "admin"})
            listing = None
            if hello is not None:
                listing = _command(stream, {"listDatabases": 1, "nameOnly": True, "$db": "admin"})
    except NetError:
        return NOT_IDENTIFIED
    return classify(hello, listing)
