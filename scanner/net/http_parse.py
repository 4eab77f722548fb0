"""Parsing HTTP responses and HTML from hostile servers: pure functions, capped, never raise.

Nothing here does I/O. Every function takes bytes or text that a server chose, looks at a
bounded prefix of it, and returns bounded output. Scans over HTML are linear (str.find and
regexes with bounded repetition), so a page built to make a parser backtrack stays cheap.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import html
import re
import zlib
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from scanner.core.text import safe_text

HEAD_CAP = 32 * 1024  # status line + headers
MAX_HEADERS = 100
BODY_CAP = 256 * 1024  # raw body bytes read (a page's title and icon links are near the top)
DECODED_CAP = 512 * 1024  # after gzip/deflate: a gzip bomb stops here
HTML_SCAN_CHARS = 256 * 1024
TITLE_CHARS = 200
HEADER_VALUE_CHARS = 512
MAX_ICON_LINKS = 10
MAX_TAG_CHARS = 2048

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
SECURITY_HEADERS = (
    "strict-transport-security",
    "content-security-policy",
    "x-frame-options",
    "x-content-type-options",
    "referrer-policy",
    "permissions-policy",
)
# Headers worth keeping besides the security ones: they name software or an auth surface.
DESCRIPTIVE_HEADERS = ("server", "x-powered-by", "www-authenticate", "content-type", "location")


@dataclass(frozen=True)
class HttpHead:
    version: str
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]  # (lowercased name, value), in order received

    def get(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


@dataclass(frozen=True)
class Origin:
    """Where a request goes: the scheme and authority we are allowed to talk to."""

    scheme: str  # "http" or "https"
    host: str  # the Host header's host part (a name, or an address; IPv6 in brackets)
    port: int

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        return self.host if self.port == default else f"{self.host}:{self.port}"


def looks_like_http(prefix: bytes) -> bool:
    """Could these first bytes start an HTTP response? (True for a too-short prefix.)"""
    wanted = b"HTTP/"
    return prefix[: len(wanted)] == wanted[: len(prefix)]


def find_head_end(buffer: bytes | bytearray, start: int = 0) -> int | None:
    """Index just past the blank line that ends the head; None while it has not arrived.

    `start` lets a caller that reads in pieces search only the new bytes (minus 3).
    """
    start = max(0, start)
    crlf = buffer.find(b"\r\n\r\n", start, HEAD_CAP + 4)
    lf = buffer.find(b"\n\n", start, HEAD_CAP + 2)
    candidates = [i + 4 for i in (crlf,) if i != -1] + [i + 2 for i in (lf,) if i != -1]
    return min(candidates) if candidates else None


_STATUS_LINE = re.compile(r"^HTTP/(?P<version>\d(?:\.\d)?) +(?P<status>\d{3})(?: (?P<reason>.*))?$")


def parse_head(raw: bytes) -> HttpHead | None:
    """Status line and headers; None if the first line is not an HTTP status line."""
    text = raw[:HEAD_CAP].decode("latin-1")  # RFC 9110: header bytes are opaque octets
    lines = text.replace("\r\n", "\n").split("\n")
    found = _STATUS_LINE.match(lines[0].rstrip("\r"))
    if not found:
        return None
    headers: list[tuple[str, str]] = []
    for line in lines[1 : MAX_HEADERS + 1]:
        if not line.strip():
            break
        name, separator, value = line.partition(":")
        if not separator or not name.strip() or " " in name.strip():
            continue  # not a header line (obsolete folding, junk): skip, do not fail
        headers.append((name.strip().lower()[:64], value.strip()[:HEADER_VALUE_CHARS * 4]))
    return HttpHead(
        version=found.group("version"),
        status=int(found.group("status")),
        reason=(found.group("reason") or "").strip()[:100],
        headers=tuple(headers),
    )


def body_expected(head: HttpHead, method: str) -> bool:
    return not (method == "HEAD" or 100 <= head.status < 200 or head.status in (204, 304))


def content_length(head: HttpHead) -> int | None:
    value = head.get("content-length")
    if value is None or not value.strip().isdigit() or len(value.strip()) > 12:
        return None
    return int(value.strip())


def is_chunked(head: HttpHead) -> bool:
    return "chunked" in (head.get("transfer-encoding") or "").lower()


class ChunkedDecoder:
    """Incremental decoder for chunked transfer coding, linear in the bytes fed.

    `feed` never rescans what it already decoded, so a server that drips a body one byte at
    a time costs no more CPU than one that sends it at once.
    """

    def __init__(self, cap: int = BODY_CAP) -> None:
        self._cap = cap
        self._pending = bytearray()  # received but not yet decoded
        self._chunk_left = 0  # bytes of the current chunk's data still to come
        self._after_data = False  # the CRLF after a chunk's data is due next
        self.body = bytearray()
        self.done = False  # the last chunk was seen, or the framing broke: stop reading

    def feed(self, data: bytes) -> None:
        self._pending += data
        while not self.done and self._step():
            pass

    def _step(self) -> bool:
        """Decode one piece of the stream; False when more bytes are needed."""
        if self._chunk_left:
            return self._take_data()
        if self._after_data:
            return self._skip_line_end()
        return self._read_size_line()

    def _take_data(self) -> bool:
        if not self._pending:
            return False
        piece = bytes(self._pending[: self._chunk_left])
        del self._pending[: len(piece)]
        self._chunk_left -= len(piece)
        self.body += piece[: max(0, self._cap - len(self.body))]
        self._after_data = self._chunk_left == 0
        if len(self.body) >= self._cap:
            self.done = True
        return True

    def _skip_line_end(self) -> bool:
        if self._pending[:2] == b"\r\n":
            del self._pending[:2]
        elif self._pending[:1] == b"\n":
            del self._pending[:1]
        elif len(self._pending) < 2:
            return False
        self._after_data = False
        return True

    def _read_size_line(self) -> bool:
        line_end = self._pending.find(b"\n", 0, 1024)
        if line_end == -1:
            if len(self._pending) >= 1024:
                self.done = True  # a size line this long is not chunked coding
            return False
        size_text = bytes(self._pending[:line_end]).split(b";", 1)[0].strip()
        del self._pending[: line_end + 1]
        try:
            size = int(size_text, 16) if size_text else -1
        except ValueError:
            size = -1
        if size <= 0:
            self.done = True  # the last chunk (0), or junk: either way nothing more to take
            return False
        self._chunk_left = size
        return True


def dechunk(raw: bytes, cap: int = BODY_CAP) -> tuple[bytes, bool]:
    """Decode chunked transfer coding at once: (body so far, whether it ended)."""
    decoder = ChunkedDecoder(cap)
    decoder.feed(raw)
    return bytes(decoder.body), decoder.done


def decode_content(body: bytes, encoding: str | None, cap: int = DECODED_CAP) -> tuple[bytes, bool]:
    """Undo gzip/deflate: (decoded bytes, complete). Never inflates past `cap`.

    Unknown codings (br, zstd, stacked codings) are returned as they are, marked incomplete.
    """
    coding = (encoding or "").strip().lower()
    if coding in ("", "identity"):
        return body[:cap], len(body) <= cap
    if coding in ("gzip", "x-gzip", "deflate"):
        for window in (47, -15):  # 47: zlib or gzip header, auto-detected; -15: raw deflate
            try:
                inflater = zlib.decompressobj(window)
                decoded = inflater.decompress(body, cap)
            except zlib.error:
                continue
            return decoded, inflater.eof
    return body[:cap], False


_CHARSET = re.compile(r"charset\s*=\s*[\"']?(?P<charset>[\w.:-]{1,40})", re.IGNORECASE)


def html_text(body: bytes, content_type: str | None) -> str:
    """The page as text, in its declared charset when that is a real text encoding."""
    declared = _CHARSET.search(content_type or "") or _CHARSET.search(
        body[:4096].decode("ascii", "replace")
    )
    charset = declared.group("charset") if declared else "utf-8"
    try:
        codecs.lookup(charset)
        return body[:HTML_SCAN_CHARS].decode(charset, "replace")
    except (LookupError, ValueError):  # unknown, or not a text codec ("zlib", "base64")
        return body[:HTML_SCAN_CHARS].decode("utf-8", "replace")


_TITLE_OPEN = re.compile(r"<title\b[^>]{0,256}>", re.IGNORECASE)
_TITLE_CLOSE = re.compile(r"</title\s{0,16}>", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")


def extract_title(text: str) -> str | None:
    """The first <title>, unescaped, whitespace collapsed, safe and capped; None if empty."""
    text = text[:HTML_SCAN_CHARS]
    opening = _TITLE_OPEN.search(text)
    if not opening:
        return None
    closing = _TITLE_CLOSE.search(text, opening.end())
    end = closing.start() if closing else len(text)
    raw_title = text[opening.end() : min(end, opening.end() + TITLE_CHARS * 8)]
    title = _WHITESPACE.sub(" ", html.unescape(raw_title)).strip()
    return safe_text(title, TITLE_CHARS) or None


_ATTRIBUTE = re.compile(r"""([\w:-]{1,64})\s*=\s*("[^"]*"|'[^']*'|[^\s"'>]+)""")


def extract_icon_links(text: str) -> list[str]:
    """hrefs of <link rel="icon">-like tags, best first ("icon" before "apple-touch-icon")."""
    text = text[:HTML_SCAN_CHARS]
    lowered = text.lower()  # same length as text only for ASCII; positions come from `text`
    preferred: list[str] = []
    others: list[str] = []
    position = 0
    while len(preferred) + len(others) < MAX_ICON_LINKS:
        start = _find_ascii_ci(text, lowered, "<link", position)
        if start == -1:
            break
        end = text.find(">", start)
        if end == -1:
            break
        position = end + 1
        if end - start > MAX_TAG_CHARS:
            continue
        rel, href = _rel_and_href(text[start + 5 : end])
        if href is None or "icon" not in rel:
            continue
        (others if "apple-touch" in rel or "mask" in rel else preferred).append(href)
    return preferred + others


def _find_ascii_ci(text: str, lowered: str, needle: str, start: int) -> int:
    """Case-insensitive find of an ASCII needle, with indexes valid in `text`."""
    if len(lowered) == len(text):
        return lowered.find(needle, start)
    found = re.compile(re.escape(needle), re.IGNORECASE).search(text, start)
    return found.start() if found else -1


def _rel_and_href(attributes: str) -> tuple[str, str | None]:
    rel = ""
    href: str | None = None
    for name, value in _ATTRIBUTE.findall(attributes):
        unquoted = html.unescape(value.strip("\"'")).strip()
        if name.lower() == "rel":
            rel = unquoted.lower()
        elif name.lower() == "href" and unquoted:
            href = unquoted[:MAX_TAG_CHARS]
    return rel, href


def resolve_same_origin(origin: Origin, path: str, reference: str) -> str | None:
    """The request target for `reference` (from Location or an icon href, relative to the
    page at `path`) when it stays on our origin; None when it leaves it or is unusable.

    We only ever follow links to the exact scheme, host and port being identified: other
    ports are identified on their own, other hosts are not ours to probe.
    """
    reference = reference.strip()
    if not reference or any(ord(char) < 0x20 for char in reference):
        return None
    try:
        parts = urlsplit(reference)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme or parts.netloc:
        scheme = parts.scheme.lower() or origin.scheme
        default = 443 if scheme == "https" else 80
        host = (parts.hostname or "").lower()
        same = scheme == origin.scheme and (port or default) == origin.port
        if not same or host != _bare_host(origin.host).lower():
            return None
    target = parts.path or "/"
    if not target.startswith("/"):
        base = path.split("?", 1)[0]
        target = base[: base.rfind("/") + 1] + target
    query = f"?{parts.query}" if parts.query else ""
    return _safe_target(target + query)


def _bare_host(host: str) -> str:
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def _safe_target(target: str) -> str:
    """No whitespace or controls can reach our request line: percent-encode them."""
    return quote(target[:2048], safe="/?&=%:@!$'()*+,;~-._")


def data_uri_bytes(reference: str, cap: int = BODY_CAP) -> bytes | None:
    """The bytes of a base64 `data:` URI (an inline favicon); None for anything else."""
    if reference[:5].lower() != "data:":
        return None
    header, separator, payload = reference[5:].partition(",")
    if not separator or not header.lower().endswith(";base64"):
        return None
    try:
        return base64.b64decode(payload[: cap * 2], validate=False)[:cap]
    except (binascii.Error, ValueError):
        return None


def header_summary(head: HttpHead) -> dict[str, str]:
    """The headers worth reporting (software, auth, security), values sanitised."""
    kept: dict[str, str] = {}
    for name in (*DESCRIPTIVE_HEADERS, *SECURITY_HEADERS):
        value = head.get(name)
        if value is not None:
            kept[name] = safe_text(value, HEADER_VALUE_CHARS)
    return kept


def missing_security_headers(head: HttpHead, scheme: str) -> list[str]:
    """Security headers absent from the response (HSTS only counts over HTTPS)."""
    missing = [name for name in SECURITY_HEADERS if head.get(name) is None]
    if scheme != "https":  # browsers ignore HSTS received over plain HTTP
        missing = [name for name in missing if name != "strict-transport-security"]
    return missing


def head_text(raw: bytes, limit: int = 2048) -> str:
    """The response head as Shodan would store it: readable, newlines kept, capped."""
    text = raw[:HEAD_CAP].decode("latin-1").replace("\r\n", "\n").rstrip("\n")
    return safe_text(text, limit, keep_newlines=True)
