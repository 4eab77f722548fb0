"""The only HTTP the service checks send: bounded GETs, and a websocket opening read once.

Requests name us in the User-Agent and never carry credentials or a body. Responses are
parsed with identification's pure parsers (scanner.net.http_parse) and capped.
"""

from __future__ import annotations

import base64
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from scanner import __version__
from scanner.checks.services.transport import Endpoint, ProbeError, Stream, open_stream
from scanner.net.http_parse import (
    HEAD_CAP,
    ChunkedDecoder,
    HttpHead,
    body_expected,
    content_length,
    decode_content,
    find_head_end,
    is_chunked,
    parse_head,
)

USER_AGENT = f"exposure/{__version__} (external exposure scanner)"
BODY_CAP = 128 * 1024  # product markers sit near the top of a page or in small JSON answers
WS_FRAME_CAP = 16 * 1024
Headers = Sequence[tuple[str, str]]


@dataclass(frozen=True)
class HttpReply:
    path: str
    status: int
    headers: tuple[tuple[str, str], ...]  # (lowercased name, value)
    body: bytes  # decoded, capped
    complete: bool

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


@dataclass(frozen=True)
class WsFrame:
    opcode: int  # 1 text, 2 binary, 8 close, 9 ping, 10 pong
    payload: bytes  # capped

    @property
    def close_code(self) -> int | None:
        if self.opcode != 8 or len(self.payload) < 2:
            return None
        return int(struct.unpack("!H", self.payload[:2])[0])


@dataclass(frozen=True)
class WsOpening:
    """What a websocket upgrade produced: the HTTP answer, and the server's first frame."""

    status: int
    accepted: bool  # 101 Switching Protocols
    subprotocol: str | None
    first_frame: WsFrame | None


def build_get(endpoint: Endpoint, path: str, extra: Headers = ()) -> bytes:
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {endpoint.host_header or endpoint.authority()}",
        f"User-Agent: {USER_AGENT}",
        "Accept: */*",
        "Accept-Encoding: gzip",
        "Connection: close",
        *(f"{name}: {value}" for name, value in extra),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii", "replace")


def http_get(endpoint: Endpoint, path: str, extra: Headers = ()) -> HttpReply | None:
    """GET `path`; None when the exchange fails or the answer is not HTTP."""
    try:
        with open_stream(endpoint, cap=HEAD_CAP + BODY_CAP) as stream:
            stream.send(build_get(endpoint, path, extra))
            return read_reply(stream, path)
    except ProbeError:
        return None


def read_reply(stream: Stream, path: str) -> HttpReply | None:
    raw = stream.recv_until(lambda buffer: find_head_end(buffer) is not None, HEAD_CAP)
    head_end = find_head_end(raw)
    if head_end is None or not raw.startswith(b"HTTP/"):
        return None
    head = parse_head(raw[:head_end])
    if head is None:
        return None
    body, complete = _read_body(stream, head, raw[head_end:])
    decoded, decoded_complete = decode_content(body, head.get("content-encoding"), BODY_CAP)
    return HttpReply(path, head.status, head.headers, decoded, complete and decoded_complete)


def _read_body(stream: Stream, head: HttpHead, initial: bytes) -> tuple[bytes, bool]:
    if not body_expected(head, "GET"):
        return b"", True
    length = content_length(head)
    if is_chunked(head):
        decoder = ChunkedDecoder()
        decoder.feed(initial)
        while not decoder.done and len(decoder.body) < BODY_CAP:
            chunk = _recv_or_empty(stream)
            if not chunk:
                break
            decoder.feed(chunk)
        return bytes(decoder.body[:BODY_CAP]), decoder.done
    wanted = min(length, BODY_CAP) if length is not None else BODY_CAP
    buffer = bytearray(initial)
    while len(buffer) < wanted:
        chunk = _recv_or_empty(stream)
        if not chunk:
            break
        buffer += chunk
    complete = len(buffer) >= length if length is not None else len(buffer) < BODY_CAP
    return bytes(buffer[:wanted]), complete


def _recv_or_empty(stream: Stream) -> bytes:
    try:
        return stream.recv()
    except ProbeError:
        return b""


# --- websocket (RFC 6455): open, read the first frame, close -----------------------------


def websocket_open(
    endpoint: Endpoint,
    path: str,
    subprotocol: str | None = None,
    first_message: bytes | None = None,
    farewell: bytes | None = None,
) -> WsOpening | None:
    """Upgrade to a websocket, optionally send one binary message, read one frame, close.

    `farewell` is a binary message sent before the close frame when the server answered with
    data (MQTT's DISCONNECT).
    """
    key = base64.b64encode(os.urandom(16)).decode()
    extra = [
        ("Upgrade", "websocket"),
        ("Sec-WebSocket-Key", key),
        ("Sec-WebSocket-Version", "13"),
    ]
    if subprotocol:
        extra.append(("Sec-WebSocket-Protocol", subprotocol))
    request = build_get(endpoint, path, extra).replace(
        b"Connection: close", b"Connection: Upgrade"
    )
    try:
        with open_stream(endpoint, cap=HEAD_CAP + WS_FRAME_CAP + 1024) as stream:
            stream.send(request)
            raw = stream.recv_until(lambda buffer: find_head_end(buffer) is not None, HEAD_CAP)
            head_end = find_head_end(raw)
            head = parse_head(raw[:head_end]) if head_end is not None else None
            if head is None or head_end is None:
                return None
            if head.status != 101:
                return WsOpening(head.status, False, None, None)
            if first_message is not None:
                stream.send(mask_frame(2, first_message))
            frame = read_frame(stream, raw[head_end:])
            if frame is not None and frame.opcode != 8:
                if farewell is not None:
                    stream.send(mask_frame(2, farewell))
                stream.send(mask_frame(8, struct.pack("!H", 1000)))  # a polite close
            return WsOpening(101, True, head.get("sec-websocket-protocol"), frame)
    except ProbeError:
        return None


def mask_frame(opcode: int, payload: bytes) -> bytes:
    """One final client frame (clients must mask, RFC 6455 section 5.3)."""
    mask = os.urandom(4)
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    return header + mask + masked


def read_frame(stream: Stream, initial: bytes) -> WsFrame | None:
    data = bytearray(initial)

    def need(count: int) -> bool:
        while len(data) < count:
            chunk = _recv_or_empty(stream)
            if not chunk:
                return False
            data.extend(chunk)
        return True

    if not need(2):
        return None
    header = parse_frame_header(bytes(data[:14]))
    if header is None:
        if not need(14):
            return None
        header = parse_frame_header(bytes(data[:14]))
        if header is None:
            return None
    opcode, offset, length = header
    wanted = offset + min(length, WS_FRAME_CAP)
    need(wanted)
    return WsFrame(opcode, bytes(data[offset:wanted]))


def parse_frame_header(data: bytes) -> tuple[int, int, int] | None:
    """(opcode, payload offset, payload length) of a server frame; None if incomplete."""
    if len(data) < 2:
        return None
    opcode = data[0] & 0x0F
    masked = bool(data[1] & 0x80)
    length = data[1] & 0x7F
    offset = 2
    if length == 126:
        if len(data) < 4:
            return None
        length = struct.unpack("!H", data[2:4])[0]
        offset = 4
    elif length == 127:
        if len(data) < 10:
            return None
        length = struct.unpack("!Q", data[2:10])[0]
        offset = 10
    if masked:
        offset += 4  # servers must not mask; skip the key if one does
    return opcode, offset, length
