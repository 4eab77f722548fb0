"""The one HTTP/1.1 client: requests that name us, responses read under caps.

Framing and parsing are sans-IO (`ResponseReader`, over the tolerant parsers of http_parse):
the reader is fed bytes and says when the answer is complete, so the blocking and the asyncio
clients below are two thin loops over one set of rules. Why not h11: a scanner must read the
servers it meets, and h11 (rightly, for a library) refuses answers that break RFC 9112 in ways
real devices do (header names with spaces, bare CR, invalid bytes in values, a Content-Length
that disagrees with itself); Shodan records those answers, and so must we.

Rules for a body: chunked until the last chunk, Content-Length until that many bytes, anything
else until the server closes; always at most `body_cap` raw bytes, then content-decoded (gzip,
deflate) to at most `decoded_cap` (a gzip bomb stops there).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from scanner import __version__
from scanner.net.errors import ByteCapReached, NetError, NetTimeout
from scanner.net.http_parse import (
    BODY_CAP,
    DECODED_CAP,
    HEAD_CAP,
    ChunkedDecoder,
    HttpHead,
    body_expected,
    content_length,
    decode_content,
    find_head_end,
    is_chunked,
    looks_like_http,
    parse_head,
)
from scanner.net.stream import RECV_CHUNK, Channel, Dialer, Endpoint, Stream

USER_AGENT = f"exposure/{__version__} (external exposure scanner)"
NOT_HTTP_KEEP = 4096  # what we keep of a non-HTTP answer, to classify it
Headers = Sequence[tuple[str, str]]


@dataclass(frozen=True)
class Request:
    """One request. Never credentials, never a write: a body only where a protocol reads with
    POST (etcd's v3 range read, count only) or for the --active login-flow start."""

    method: str
    path: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    accept: str = "*/*"
    accept_encoding: str = "gzip"

    def encode(self, host: str) -> bytes:
        lines = [
            f"{self.method} {self.path} HTTP/1.1",
            f"Host: {host}",
            f"User-Agent: {USER_AGENT}",
            f"Accept: {self.accept}",
            f"Accept-Encoding: {self.accept_encoding}",
        ]
        names = {name.lower() for name, _ in self.headers}
        if "connection" not in names:
            lines.append("Connection: close")
        lines += [f"{name}: {value}" for name, value in self.headers]
        if self.body:
            lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii", "replace") + self.body


def get(path: str, headers: Headers = (), accept: str = "*/*") -> Request:
    return Request("GET", path, tuple(headers), accept=accept)


@dataclass(frozen=True)
class HttpResponse:
    """An HTTP answer: the parsed head, its raw bytes, the decoded and capped body."""

    path: str  # the request target that produced it
    head: HttpHead
    raw_head: bytes
    body: bytes
    body_complete: bool

    @property
    def status(self) -> int:
        return self.head.status

    def header(self, name: str) -> str | None:
        return self.head.get(name)

    def reply(self) -> HttpReply:
        return HttpReply(self.head.status, self.head.headers, self.body, self.body_complete,
                         self.path)


@dataclass(frozen=True)
class NotHttp:
    data: bytes  # what came back instead; empty when the server closed or stayed silent


@dataclass(frozen=True)
class HttpReply:
    """What the checks keep of an answer: status, headers (lower-case names), body."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    complete: bool = True
    path: str = ""

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key == name), None)


class ResponseReader:
    """Sans-IO: feed it what the server sends (b"" at end of stream) until `done`."""

    def __init__(
        self,
        path: str,
        method: str = "GET",
        *,
        head_cap: int = HEAD_CAP,
        body_cap: int = BODY_CAP,
        decoded_cap: int = DECODED_CAP,
    ) -> None:
        self.path = path
        self.method = method
        self.head_cap = head_cap
        self.body_cap = body_cap
        self.decoded_cap = decoded_cap
        self.done = False
        self.started = False  # some bytes have arrived
        self._buffer = bytearray()
        self._head: HttpHead | None = None
        self._raw_head = b""
        self._chunks: ChunkedDecoder | None = None
        self._length: int | None = None
        self._body = bytearray()
        self._complete = False
        self._result: HttpResponse | NotHttp | None = None
        self.leftover = b""  # bytes after a head that has no body (a websocket's first frame)

    def feed(self, data: bytes) -> None:
        if self.done:
            return
        if not data:
            self._end_of_stream()
            return
        self.started = True
        if self._head is None:
            self._feed_head(data)
        else:
            self._feed_body(data)

    def result(self) -> HttpResponse | NotHttp:
        """The answer so far (call when done, or when time or bytes ran out)."""
        if self._result is None:
            self._finish(complete=False)
        assert self._result is not None
        return self._result

    def _feed_head(self, data: bytes) -> None:
        searched_from = max(0, len(self._buffer) - 3)
        self._buffer += data
        if not looks_like_http(bytes(self._buffer[:5])):
            self._set(NotHttp(bytes(self._buffer[:NOT_HTTP_KEEP])))
            return
        end = find_head_end(self._buffer, searched_from)
        if end is None:
            if len(self._buffer) > self.head_cap:  # endless headers: keep what parses
                self._head_only(bytes(self._buffer[: self.head_cap]))
            return
        head = parse_head(bytes(self._buffer[:end]))
        if head is None:
            self._set(NotHttp(bytes(self._buffer[:NOT_HTTP_KEEP])))
            return
        self._head, self._raw_head = head, bytes(self._buffer[:end])
        rest = bytes(self._buffer[end:])
        self._buffer.clear()
        if not body_expected(head, self.method):
            self.leftover = rest
            self._finish(complete=True)
            return
        self._length = content_length(head)
        self._chunks = ChunkedDecoder(self.body_cap) if is_chunked(head) else None
        if self._length == 0 and self._chunks is None:
            self._finish(complete=True)
            return
        if rest:
            self._feed_body(rest)

    def _head_only(self, raw: bytes) -> None:
        head = parse_head(raw)
        if head is None:
            self._set(NotHttp(raw[:NOT_HTTP_KEEP]))
            return
        self._head, self._raw_head = head, raw
        self._finish(complete=False)

    def _feed_body(self, data: bytes) -> None:
        if self._chunks is not None:
            self._chunks.feed(data)
            if self._chunks.done:
                self._finish(complete=True)
            elif len(self._chunks.body) >= self.body_cap:
                self._finish(complete=False)
            return
        self._body += data
        if self._length is not None and len(self._body) >= self._length:
            del self._body[self._length :]
            self._finish(complete=True)
        elif len(self._body) >= self.body_cap:
            del self._body[self.body_cap :]
            self._finish(complete=False)

    def _end_of_stream(self) -> None:
        if self._head is None:
            if self._buffer.startswith(b"HTTP/"):
                self._head_only(bytes(self._buffer))  # the head was cut off by the close
            else:
                self._set(NotHttp(bytes(self._buffer[:NOT_HTTP_KEEP])))
            return
        # Without framing the end of the stream ends the body; with it, the body is short.
        self._finish(complete=self._length is None and self._chunks is None)

    def _finish(self, complete: bool) -> None:
        if self._head is None:
            self._set(NotHttp(bytes(self._buffer[:NOT_HTTP_KEEP])))
            return
        raw = bytes(self._chunks.body) if self._chunks is not None else bytes(self._body)
        body, decoded_complete = decode_content(
            raw, self._head.get("content-encoding"), self.decoded_cap
        )
        self._set(HttpResponse(self.path, self._head, self._raw_head, body,
                               complete and decoded_complete))

    def _set(self, result: HttpResponse | NotHttp) -> None:
        self._result = result
        self.done = True


# --- the two I/O loops ---------------------------------------------------------------------


def read_response(
    stream: Stream, reader: ResponseReader, first_byte: float | None = None
) -> HttpResponse | NotHttp:
    """Feed `reader` from a blocking stream; the first byte may wait until `first_byte`."""
    while not reader.done:
        try:
            reader.feed(stream.recv(RECV_CHUNK, None if reader.started else first_byte))
        except (NetTimeout, ByteCapReached):
            break
        except NetError:
            break
    return reader.result()


async def read_response_async(
    stream: Channel, reader: ResponseReader, first_byte: float | None = None
) -> HttpResponse | NotHttp:
    """The same over a coroutine stream (plain or TLS)."""
    while not reader.done:
        try:
            reader.feed(await stream.recv(RECV_CHUNK, None if reader.started else first_byte))
        except (NetTimeout, ByteCapReached):
            break
        except NetError:
            break
    return reader.result()


async def exchange_async(
    stream: Channel, host: str, request: Request,
    first_byte: float | None = None, **caps: int,
) -> HttpResponse | NotHttp:
    """Send `request` on an open coroutine stream and read its answer."""
    await stream.send(request.encode(host))
    return await read_response_async(
        stream, ResponseReader(request.path, request.method, **caps), first_byte
    )


def exchange(stream: Stream, host: str, request: Request, **caps: int) -> HttpResponse | NotHttp:
    stream.send(request.encode(host))
    return read_response(stream, ResponseReader(request.path, request.method, **caps))


def fetch(
    dialer: Dialer, endpoint: Endpoint, request: Request, *, tls: bool | None = None,
    head_cap: int = HEAD_CAP, body_cap: int = BODY_CAP, decoded_cap: int = DECODED_CAP,
) -> HttpReply | None:
    """One request on a fresh connection; None when it fails or the answer is not HTTP."""
    try:
        with dialer.open(endpoint, cap=head_cap + body_cap, tls=tls) as stream:
            answer = exchange(stream, endpoint.host, request, head_cap=head_cap,
                              body_cap=body_cap, decoded_cap=decoded_cap)
    except NetError:
        return None
    return answer.reply() if isinstance(answer, HttpResponse) else None
