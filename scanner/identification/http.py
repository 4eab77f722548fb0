"""HTTP on any port (plain or inside TLS): status, Server, title, redirects, favicon hash.

Requests are what a browser's first visit would send: GET with a normal Host header and a
User-Agent that names us. Redirects are followed a few times, and only to the exact origin
being identified. Reads go through the bounded channel; parsing is in http_parse.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import mmh3

from scanner.core.text import safe_text
from scanner.identification.connection import PROBE_ERRORS
from scanner.identification.products import (
    HTTP_SERVER_RULES,
    HTTP_TITLE_RULES,
    ProductMatch,
    match_product,
)
from scanner.net import Channel
from scanner.net.http import HttpResponse, NotHttp, Request, exchange_async
from scanner.net.http_parse import (
    REDIRECT_STATUSES,
    Origin,
    data_uri_bytes,
    extract_icon_links,
    extract_title,
    header_summary,
    html_text,
    missing_security_headers,
    resolve_same_origin,
)

MAX_REDIRECTS = 3
BROWSER_ACCEPT = "text/html,application/xhtml+xml,*/*;q=0.8"
ChannelOpener = Callable[[], AbstractAsyncContextManager[Channel]]


@dataclass(frozen=True)
class Redirect:
    status: int
    location: str
    followed: bool


@dataclass(frozen=True)
class Favicon:
    path: str  # request target, or "data:" for an inline icon
    mmh3: int
    size: int


@dataclass(frozen=True)
class HttpSurvey:
    first: HttpResponse  # the answer to GET /: what Shodan would store
    final: HttpResponse  # after same-origin redirects
    redirects: tuple[Redirect, ...]
    title: str | None
    favicon: Favicon | None


# What a TLS server (nginx, Apache, Go) answers a plain-HTTP request with: "speak TLS to me".
_TLS_REQUIRED = re.compile(
    r"plain HTTP request was sent to HTTPS port|speaking plain HTTP to an SSL-enabled"
    r"|HTTP request to an HTTPS server|requires? (?:TLS|SSL|HTTPS)\b",
    re.IGNORECASE,
)


def asks_for_tls(response: HttpResponse) -> bool:
    """A 400 that says the port wants TLS: not a plain-HTTP service, try a ClientHello."""
    if response.status != 400:
        return False
    text = f"{response.head.reason} {response.body[:4096].decode('latin-1')}"
    return bool(_TLS_REQUIRED.search(text))


def page_request(path: str) -> Request:
    """What a browser's first visit sends (minus cookies): GET, HTML preferred, gzip."""
    return Request("GET", path, accept=BROWSER_ACCEPT)


async def exchange(
    channel: Channel, origin: Origin, path: str, first_byte_deadline: float | None = None
) -> HttpResponse | NotHttp:
    """One GET on an open channel. The answer must start by `first_byte_deadline` (default:
    one read timeout)."""
    return await exchange_async(channel, origin.host_header, page_request(path),
                                first_byte_deadline)


async def fetch(open_channel: ChannelOpener, origin: Origin, path: str) -> HttpResponse | None:
    """GET on a fresh connection; None when it fails or is not HTTP."""
    try:
        async with open_channel() as channel:
            answer = await exchange(channel, origin, path)
    except PROBE_ERRORS:
        return None
    return answer if isinstance(answer, HttpResponse) else None


async def follow_redirects(
    response: HttpResponse, open_channel: ChannelOpener, origin: Origin, limit: int
) -> tuple[HttpResponse, tuple[Redirect, ...]]:
    """Follow same-origin redirects at most `limit` times; never the same target twice."""
    hops: list[Redirect] = []
    seen = {response.path}
    while response.head.status in REDIRECT_STATUSES and len(hops) < limit:
        location = response.head.get("location") or ""
        target = resolve_same_origin(origin, response.path, location)
        follow = target is not None and target not in seen
        hops.append(Redirect(response.head.status, safe_text(location, 512), follow))
        if target is None or not follow:
            break
        seen.add(target)
        following = await fetch(open_channel, origin, target)
        if following is None:
            break
        response = following
    return response, tuple(hops)


async def survey(first: HttpResponse, open_channel: ChannelOpener, origin: Origin) -> HttpSurvey:
    """Everything we learn over HTTP after the first answer: redirects, title, favicon."""
    final, redirects = await follow_redirects(first, open_channel, origin, MAX_REDIRECTS)
    page = html_text(final.body, final.head.get("content-type"))
    favicon = await _favicon(page, final, open_channel, origin)
    return HttpSurvey(first, final, redirects, extract_title(page), favicon)


async def _favicon(
    page: str, final: HttpResponse, open_channel: ChannelOpener, origin: Origin
) -> Favicon | None:
    """The icon the page names (first usable <link rel=icon>), else /favicon.ico."""
    target = "/favicon.ico"
    for link in extract_icon_links(page):
        inline = data_uri_bytes(link)
        if inline:
            return Favicon("data:", favicon_hash(inline), len(inline))
        resolved = resolve_same_origin(origin, final.path, link)
        if resolved:
            target = resolved
            break
    response = await fetch(open_channel, origin, target)
    if response is None:
        return None
    response, _ = await follow_redirects(response, open_channel, origin, 2)
    if response.head.status != 200 or not response.body or not response.body_complete:
        return None
    return Favicon(response.path, favicon_hash(response.body), len(response.body))


def favicon_hash(icon: bytes) -> int:
    """Shodan's http.favicon.hash: MurmurHash3 (signed 32-bit) of the base64 with newlines."""
    return int(mmh3.hash(base64.encodebytes(icon)))


# --- what the survey means (pure) -------------------------------------------------------


def title_application(survey: HttpSurvey) -> ProductMatch | None:
    """The application the page title names. A hint only: any page can carry any title, so
    checks confirm it with the application's own endpoints before anyone relies on it."""
    return match_product(HTTP_TITLE_RULES, survey.title) if survey.title else None


def server_product(survey: HttpSurvey) -> ProductMatch | None:
    """The web server software its own headers name (Server, X-Powered-By)."""
    for header in ("server", "x-powered-by"):
        value = survey.final.head.get(header) or survey.first.head.get(header)
        if value:
            match = match_product(HTTP_SERVER_RULES, value)
            if match:
                return match
    return None


def http_details(survey: HttpSurvey, scheme: str) -> dict[str, Any]:
    head = survey.final.head
    server = head.get("server") or survey.first.head.get("server")
    return {
        "status": head.status,
        "title": survey.title,
        "server": safe_text(server, 256) if server is not None else None,
        "favicon_mmh3": survey.favicon.mmh3 if survey.favicon else None,
        "favicon_path": safe_text(survey.favicon.path, 256) if survey.favicon else None,
        "path": safe_text(survey.final.path, 256),
        "headers": header_summary(head),
        "missing_security_headers": missing_security_headers(head, scheme),
        "redirects": [
            {"status": hop.status, "location": hop.location, "followed": hop.followed}
            for hop in survey.redirects
        ],
    }


def status_line(response: HttpResponse) -> str:
    head = response.head
    return safe_text(f"HTTP/{head.version} {head.status} {head.reason}".strip(), 200)
