"""details.http: the page identification fetched, and the plain-login check's verdict on it.

Identification writes the survey of GET / (status, title, server, favicon, headers, redirects);
the http_login check adds plain_login when the page asks for a password over plain HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from scanner.core.details import OMIT_NONE, DetailsRecord
from scanner.core.text import safe_text


@dataclass(frozen=True)
class Redirect(DetailsRecord):
    status: int | None = None
    location: str | None = None
    followed: bool | None = None


@dataclass(frozen=True)
class HttpDetails(DetailsRecord):
    HIGHLIGHTS = (
        ("status", "status"),
        ("title", "title"),
        ("server", "server"),
        ("favicon_mmh3", "favicon hash (mmh3)"),
        ("missing_security_headers", "missing security headers"),
    )
    TABLE = (("title", "title"), ("server", "server"))
    TABLE_RANK = 2

    status: int | None = None
    title: str | None = None
    server: str | None = None
    favicon_mmh3: int | None = None
    favicon_path: str | None = None
    path: str | None = None
    headers: Mapping[str, str] | None = None
    missing_security_headers: tuple[str, ...] = ()
    redirects: tuple[Redirect, ...] = ()
    application_hint: str | None = field(default=None, metadata=OMIT_NONE)  # "Node-RED"
    plain_login: str | None = field(default=None, metadata=OMIT_NONE)  # http_login's evidence

    def crawler_phrase(self) -> tuple[str, str] | None:
        """Crawlers index the page title (scanner.core.details.CrawlerFacts)."""
        if not self.title or not self.title.strip():
            return None
        return "title", f'title "{safe_text(self.title.strip(), 80)}"'


DETAILS = {"http": HttpDetails.from_dict}
