"""Websocket openings (RFC 6455): upgrade, optionally send one message, read one frame, close.

That is all any check needs: HA's greeting frame (then a close, never an auth message), the
first frame of a product's API socket, MQTT inside websocket frames. One frame codec for all.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from dataclasses import dataclass

from scanner.net.errors import NetError
from scanner.net.http import HttpResponse, Request, ResponseReader, read_response
from scanner.net.http_parse import HEAD_CAP
from scanner.net.stream import Dialer, Endpoint, Stream

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
FRAME_CAP = 16 * 1024
OPCODE_TEXT, OPCODE_BINARY, OPCODE_CLOSE = 1, 2, 8
NORMAL_CLOSURE = 1000


def accept_value(key: str) -> str:
    """The Sec-WebSocket-Accept a real websocket server answers to `key` (RFC 6455 4.2.2)."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode("ascii")).digest()).decode()


@dataclass(frozen=True)
class FrameHeader:
    fin: bool
    opcode: int  # 1 text, 2 binary, 8 close, 9 ping, 10 pong
    masked: bool
    length: int
    header_size: int  # bytes before the payload (mask key included)


def parse_frame_header(data: bytes) -> FrameHeader | None:
    """The header of the frame at the start of `data`; None while incomplete or malformed."""
    if len(data) < 2:
        return None
    first, second = data[0], data[1]
    if first & 0x70:  # RSV bits: we negotiate no extension, so a real server sets none
        return None
    length, size = second & 0x7F, 2
    if length == 126:
        if len(data) < 4:
            return None
        length, size = int.from_bytes(data[2:4], "big"), 4
    elif length == 127:
        if len(data) < 10:
            return None
        length, size = int.from_bytes(data[2:10], "big"), 10
    masked = bool(second & 0x80)
    if masked:
        size += 4  # servers must not mask; skip the key if one does
    return FrameHeader(bool(first & 0x80), first & 0x0F, masked, length, size)


def client_frame(opcode: int, payload: bytes, mask: bytes | None = None) -> bytes:
    """One final client frame, masked as clients must (RFC 6455 section 5.3)."""
    mask = (mask or os.urandom(4))[:4]
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    return header + mask + bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))


def close_frame(mask: bytes | None = None) -> bytes:
    return client_frame(OPCODE_CLOSE, struct.pack("!H", NORMAL_CLOSURE), mask)


@dataclass(frozen=True)
class Frame:
    header: FrameHeader
    payload: bytes  # at most FRAME_CAP bytes of it

    @property
    def opcode(self) -> int:
        return self.header.opcode

    @property
    def complete(self) -> bool:
        return len(self.payload) == self.header.length

    @property
    def close_code(self) -> int | None:
        if self.opcode != OPCODE_CLOSE or len(self.payload) < 2:
            return None
        return int(struct.unpack("!H", self.payload[:2])[0])


@dataclass(frozen=True)
class Opening:
    """What a websocket upgrade produced: the HTTP answer and the server's first frame."""

    status: int
    upgraded: bool  # 101 Switching Protocols
    accept_valid: bool  # ...with the Sec-WebSocket-Accept our key calls for
    subprotocol: str | None
    first_frame: Frame | None


def read_frame(stream: Stream, initial: bytes, cap: int = FRAME_CAP) -> Frame | None:
    """The next frame (payload capped); None when the stream ends or stalls first."""
    data = bytearray(initial)

    def fill(count: int) -> bool:
        while len(data) < count:
            try:
                chunk = stream.recv()
            except NetError:
                return False
            if not chunk:
                return False
            data.extend(chunk)
        return True

    header = parse_frame_header(bytes(data[:14]))
    while header is None and len(data) < 14:
        if not fill(len(data) + 1):
            return None
        header = parse_frame_header(bytes(data[:14]))
    if header is None:
        return None
    wanted = header.header_size + min(header.length, cap)
    fill(wanted)
    return Frame(header, bytes(data[header.header_size : wanted]))


def upgrade_request(path: str, key: str, subprotocol: str | None) -> Request:
    headers = [
        ("Connection", "Upgrade"),
        ("Upgrade", "websocket"),
        ("Sec-WebSocket-Key", key),
        ("Sec-WebSocket-Version", "13"),
    ]
    if subprotocol:
        headers.append(("Sec-WebSocket-Protocol", subprotocol))
    return Request("GET", path, tuple(headers), accept_encoding="identity")


def open_websocket(
    dialer: Dialer,
    endpoint: Endpoint,
    path: str,
    *,
    subprotocol: str | None = None,
    first_message: bytes | None = None,
    farewell: bytes | None = None,
    frame_cap: int = FRAME_CAP,
) -> Opening | None:
    """Upgrade, optionally send one binary message, read one frame, close politely.

    `farewell` is a binary message sent before the close frame when the server answered with
    data (MQTT's DISCONNECT). None when the exchange fails or the answer is not HTTP.
    """
    key = base64.b64encode(os.urandom(16)).decode()
    request = upgrade_request(path, key, subprotocol)
    try:
        with dialer.open(endpoint, cap=HEAD_CAP + frame_cap + 1024) as stream:
            stream.send(request.encode(endpoint.host))
            reader = ResponseReader(path, head_cap=HEAD_CAP)
            answer = read_response(stream, reader)
            if not isinstance(answer, HttpResponse):
                return None
            if answer.status != 101:
                return Opening(answer.status, False, False, None, None)
            if first_message is not None:
                stream.send(client_frame(OPCODE_BINARY, first_message))
            frame = read_frame(stream, reader.leftover, frame_cap)
            if frame is not None and frame.opcode != OPCODE_CLOSE and farewell is not None:
                stream.send_quietly(client_frame(OPCODE_BINARY, farewell))
            stream.send_quietly(close_frame())  # the server then ends without logging a thing
            return Opening(
                101,
                True,
                answer.header("sec-websocket-accept") == accept_value(key),
                answer.header("sec-websocket-protocol"),
                frame,
            )
    except NetError:
        return None
