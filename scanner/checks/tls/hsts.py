"""HTTP Strict Transport Security, read from the header identification already fetched.

Identification surveyed the HTTPS service with bounded reads (same SNI and Host) and kept the
security headers, sanitised, in details.http.headers. Reusing that answer avoids a second request,
and avoids sslyze's http_headers plugin, whose response reader has no byte limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scanner.checks.tls.facts import Hsts
from scanner.core.text import safe_text

HSTS_HEADER = "strict-transport-security"
A_PLUS_MIN_AGE = 180 * 86400  # SSL Labs: A+ needs max-age of at least 180 days (15,552,000 s)
RAW_CHARS = 200
MAX_AGE_LIMIT = 10**12  # anything longer is "forever"; keeps the number bounded


def parse_hsts(value: str | None, applicable: bool = True) -> Hsts:
    """RFC 6797 section 6.1: directives separated by ';', names case-insensitive, max-age required.

    Never raises; a header without a usable max-age counts as absent (browsers ignore it).
    """
    if value is None:
        return Hsts(applicable=applicable)
    text = str(value)[: RAW_CHARS * 4]
    max_age: int | None = None
    include_subdomains = preload = False
    for directive in text.split(";"):
        name, _, argument = directive.strip().partition("=")
        key = name.strip().lower()
        if key == "max-age" and max_age is None:
            max_age = _seconds(argument)
        elif key == "includesubdomains":
            include_subdomains = True
        elif key == "preload":
            preload = True
    return Hsts(
        applicable=applicable,
        present=max_age is not None,
        max_age=max_age,
        include_subdomains=include_subdomains,
        preload=preload,
        raw=safe_text(text, RAW_CHARS),
    )


def _seconds(argument: str) -> int | None:
    digits = argument.strip().strip('"').strip()
    if not digits.isascii() or not digits.isdigit():
        return None
    return min(int(digits[:13]), MAX_AGE_LIMIT)


def hsts_from_identity(service: str | None, details: Mapping[str, Any]) -> Hsts:
    """The HSTS facts of a port from what identification learnt about it."""
    if service != "http":
        return Hsts(applicable=False)
    http = details.get("http")
    headers = http.get("headers") if isinstance(http, Mapping) else None
    value = headers.get(HSTS_HEADER) if isinstance(headers, Mapping) else None
    return parse_hsts(value if isinstance(value, str) else None)
