"""The shapes of the catalogue: what a product definition says, and what probing it concluded.

A definition never states a status code alone as evidence: every `Match` that identifies a
product or calls it open must carry a body, JSON or header marker (checked when the catalogue
is built), because a catch-all server answers 200 (or 401) to every path.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from scanner.core.findings import Severity


class Auth(enum.StrEnum):
    NONE = "none"  # anyone gets in: no credentials asked
    REQUIRED = "required"  # the service asks for credentials (or refuses anonymous clients)
    UNKNOWN = "unknown"  # identified, but whether it asks for credentials cannot be told


class JsonTest(enum.StrEnum):
    PRESENT = "present"  # the key exists (any value)
    TRUE = "true"
    FALSE = "false"
    NULL = "null"
    EMPTY_OBJECT = "empty_object"  # the value (or the whole document, path "") is {}
    NON_EMPTY_LIST = "non_empty_list"


@dataclass(frozen=True)
class JsonMarker:
    """A test on one value of a JSON answer; `path` is dotted ("session.valid", "results.0")."""

    path: str
    test: JsonTest | None = None
    pattern: str | None = None  # or: the value as text matches this regex

    def __post_init__(self) -> None:
        if (self.test is None) == (self.pattern is None):
            raise ValueError(f"JsonMarker {self.path!r}: give exactly one of test/pattern")


@dataclass(frozen=True)
class Match:
    """All of these must hold for one HTTP answer. `status` never counts as a marker alone."""

    status: frozenset[int] | None = None
    body: tuple[str, ...] = ()  # regexes searched in the (capped) body text
    json: tuple[JsonMarker, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()  # (lowercase header name, regex on its value)
    ws_close_code: int | None = None  # websocket probes: the server's close code
    ws_text: tuple[str, ...] = ()  # websocket probes: regexes on the first text frame

    @property
    def has_marker(self) -> bool:
        return bool(self.body or self.json or self.headers or self.ws_text)

    @property
    def status_only(self) -> bool:
        return not self.has_marker and self.ws_close_code is None


@dataclass(frozen=True)
class Request:
    """One request of a definition: a GET (kind "get") or a websocket opening (kind "ws")."""

    path: str
    kind: str = "get"
    headers: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in ("get", "ws"):
            raise ValueError(f"request kind {self.kind!r}: only GET and websocket openings")
        if not self.path.startswith("/"):
            raise ValueError(f"request path {self.path!r} must start with /")


@dataclass(frozen=True)
class Rule:
    """Conditions over several requests: the rule holds when every (request, match) holds."""

    when: tuple[tuple[Request, Match], ...]
    says: str = ""  # what the rule means, in plain words, for the evidence

    @property
    def has_marker(self) -> bool:
        return any(match.has_marker or match.ws_close_code is not None for _, match in self.when)


@dataclass(frozen=True)
class Hint:
    """Cheap evidence identification already has (page title, Server header) that makes a
    definition worth probing. A hint never makes a finding by itself."""

    title: str | None = None  # regex on details.http.title
    server: str | None = None  # regex on details.http.server
    location: str | None = None  # regex on a redirect's Location (details.http.redirects)


@dataclass(frozen=True)
class Remedy:
    """What the user should do, and where the product documents it."""

    text: str
    references: tuple[str, ...] = ()


@dataclass(frozen=True)
class Exposure:
    """A product whose mere presence on the internet is the risk (a database, an admin login):
    the finding it gets whenever it is identified, even when it asks for a password."""

    finding: str  # "service.exposed", "smb.exposed"
    severity: Severity
    why: str = ""  # in plain words: brute force, pre-auth CVEs...


@dataclass(frozen=True)
class HttpProduct:
    """A product with an HTTP surface, identified and judged by GETs (see catalogue.py)."""

    key: str  # details key, e.g. "node_red"
    name: str  # "Node-RED"
    usual_ports: tuple[int, ...]  # informational only: definitions run on any HTTP port
    hints: tuple[Hint, ...]  # empty: probe every HTTP port (API-only products)
    identify: tuple[Rule, ...]
    open_when: tuple[Rule, ...]
    locked_when: tuple[Rule, ...] = ()
    severity: Severity = Severity.HIGH
    open_title: str = ""
    remedy: Remedy = field(default_factory=lambda: Remedy(""))
    version_from: tuple[Request, str] | None = None  # (request, JSON path or header:NAME)
    facts: tuple[tuple[Request, str, str], ...] = ()  # (request, JSON path, details key)
    then_probe: str | None = None  # a protocol probe that decides auth once identified
    note_unknown: str = ""  # what to say when identified but auth cannot be told
    exposed: Exposure | None = None  # presence itself is the risk (an admin login)
    # a surface many products embed (Prometheus /metrics): said only when no specific product
    # answered on the same port (etcd, Grafana... serve /metrics themselves)
    generic: bool = False
    source: str = ""  # the data file it was loaded from

    def __post_init__(self) -> None:
        for rule in (*self.identify, *self.open_when):
            if not rule.has_marker:
                raise ValueError(f"{self.key}: a rule that identifies or opens needs a marker")
        if not self.identify:
            raise ValueError(f"{self.key}: needs at least one identifying rule")

    def requests(self) -> list[Request]:
        """Every request the definition may send, in order, without repeats."""
        seen: dict[Request, None] = {}
        for rule in (*self.identify, *self.open_when, *self.locked_when):
            for request, _ in rule.when:
                seen.setdefault(request, None)
        if self.version_from:
            seen.setdefault(self.version_from[0], None)
        for request, _, _ in self.facts:
            seen.setdefault(request, None)
        return list(seen)


@dataclass(frozen=True)
class ProtocolProduct:
    """A product judged by a protocol probe (probe name -> module in engine.PROBES)."""

    key: str
    name: str
    usual_ports: tuple[int, ...]
    probe: str
    services: tuple[str, ...]  # identification's service names it applies to
    banner: str | None = None  # or: regex on identification's banner
    http_server: str | None = None  # or: regex on the HTTP Server header (HTTP tunnelling)
    try_unknown: bool = False  # also probe ports identification could not name
    finding_open: str = "service.unauthenticated"
    severity: Severity = Severity.HIGH
    open_title: str = ""
    exposed: Exposure | None = None  # presence itself is the risk (a database, SMB)
    cleartext_credentials: bool = False  # asking for credentials here means sending them in clear
    remedy: Remedy = field(default_factory=lambda: Remedy(""))
    source: str = ""  # the data file it was loaded from


@dataclass(frozen=True)
class ProbeOutcome:
    """What one protocol probe concluded. `identified` False: not this protocol at all."""

    identified: bool
    auth: Auth = Auth.UNKNOWN
    evidence: str = ""
    version: str | None = None
    product: str | None = None  # a more precise name, e.g. "OpenSearch", "TigerVNC"
    facts: Mapping[str, Any] = field(default_factory=dict)
    transport: str = "tcp"
    notes: tuple[str, ...] = ()


NOT_IDENTIFIED = ProbeOutcome(identified=False)
# facts key: the server turned this client away before any login could start (a host rule,
# e.g. MariaDB's "Host ... is not allowed to connect"): nothing to brute-force from here
REFUSED_BEFORE_LOGIN = "refused_before_login"


@dataclass(frozen=True)
class Assessment:
    """The verdict on one product at one port."""

    key: str
    product: str
    auth: Auth
    evidence: str
    version: str | None = None
    facts: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    transport: str = "tcp"


def compile_checked(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE | re.DOTALL)
