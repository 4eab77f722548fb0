"""The catalogue's data files: one TOML file per product, validated when it is loaded.

A product file says how to identify the product, what proves it open to anyone, what proves it
asks for credentials, its severity, remediation and references (see products/README.md for
the format, and any file there for an example). Everything is checked here, before a scan
starts: unknown keys, wrong types, regexes that do not compile, requests a rule names but the
file does not define, a rule that would identify or open a product on a status code alone.
A mistake is one `CatalogueError` naming the file and the key, never a traceback mid-scan.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from scanner.checks.services.model import (
    Exposure,
    Hint,
    HttpProduct,
    JsonMarker,
    JsonTest,
    Match,
    ProtocolProduct,
    Remedy,
    Request,
    Rule,
)
from scanner.core.findings import Severity

PRODUCTS_PACKAGE = "scanner.checks.services"
PRODUCTS_DIR = "products"
KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
FINDING_PATTERN = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
MAX_FILE_BYTES = 64 * 1024


class CatalogueError(ValueError):
    """A product data file is wrong: the message names the file and the key."""


@dataclass(frozen=True)
class Catalogue:
    http: tuple[HttpProduct, ...]
    protocols: tuple[ProtocolProduct, ...]

    def all(self) -> tuple[HttpProduct | ProtocolProduct, ...]:
        return (*self.http, *self.protocols)


# --- reading -----------------------------------------------------------------------------


def product_files() -> list[Path]:
    """The catalogue files shipped in the package, sorted by name."""
    directory = resources.files(PRODUCTS_PACKAGE).joinpath(PRODUCTS_DIR)
    return sorted(Path(str(item)) for item in directory.iterdir() if item.name.endswith(".toml"))


def load_catalogue(paths: Iterable[Path] | None = None) -> Catalogue:
    http: list[HttpProduct] = []
    protocols: list[ProtocolProduct] = []
    for path in paths if paths is not None else product_files():
        product = load_product(path)
        if isinstance(product, HttpProduct):
            http.append(product)
        else:
            protocols.append(product)
    _unique([product.key for product in http], "HTTP product key")
    sources = [item.source for item in http] + [item.source for item in protocols]
    _unique(sources, "product file name")
    return Catalogue(tuple(http), tuple(protocols))


def load_product(path: Path) -> HttpProduct | ProtocolProduct:
    where = path.name
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise CatalogueError(f"{where}: cannot be read: {error}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise CatalogueError(f"{where}: larger than {MAX_FILE_BYTES} bytes")
    try:
        document = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise CatalogueError(f"{where}: not valid TOML: {error}") from None
    return parse_product(document, where)


def parse_product(document: Mapping[str, Any], where: str) -> HttpProduct | ProtocolProduct:
    fields = _Table(document, where)
    kind = fields.text("kind", choices=("http", "protocol"))
    product = _http_product(fields) if kind == "http" else _protocol_product(fields)
    fields.done()
    return product


# --- the two kinds of product ------------------------------------------------------------

def _common(fields: _Table) -> dict[str, Any]:
    key = fields.text("key")
    if not KEY_PATTERN.match(key):
        raise fields.error("key", f"{key!r} is not a lowercase identifier")
    ports = fields.list_of("usual_ports", int)
    for port in ports:
        if not 0 < port < 65536:
            raise fields.error("usual_ports", f"{port} is not a TCP port")
    return {
        "key": key,
        "name": fields.text("name"),
        "usual_ports": tuple(ports),
        "severity": fields.severity("severity", default=Severity.HIGH),
        "open_title": fields.text("open_title", default=""),
        "remedy": _remedy(fields.required_table("remedy")),
        "exposed": _exposure(fields.table("exposed", required=False)),
        "source": fields.where,
    }


def _http_product(fields: _Table) -> HttpProduct:
    common = _common(fields)
    requests = {
        name: _request(_Table(value, f"{fields.where}: requests.{name}"))
        for name, value in fields.mapping("requests").items()
    }
    if not requests:
        raise fields.error("requests", "an HTTP product needs at least one request")

    def rules(key: str, required: bool) -> tuple[Rule, ...]:
        found = tuple(
            _rule(_Table(item, f"{fields.where}: {key}[{i}]"), requests)
            for i, item in enumerate(fields.list_of(key, dict, required=required))
        )
        return found

    identify = rules("identify", True)
    open_when = rules("open_when", False)
    locked_when = rules("locked_when", False)
    then_probe = fields.text("then_probe", default="") or None
    if not identify:
        raise fields.error("identify", "needs at least one identifying rule")
    if not (open_when or then_probe or locked_when or common["exposed"]):
        raise fields.error("open_when", "needs an open rule, a locked rule (a product that "
                                        "always asks), a then_probe or [exposed]")
    for key, group in (("identify", identify), ("open_when", open_when)):
        for rule in group:
            if not rule.has_marker:
                raise fields.error(key, f"rule {rule.says!r} has no body/JSON/header marker")
    version = fields.table("version", required=False)
    facts = fields.list_of("facts", dict, required=False)
    try:
        return HttpProduct(
            hints=tuple(_hint(_Table(item, f"{fields.where}: hints[{i}]"))
                        for i, item in enumerate(fields.list_of("hints", dict, required=False))),
            identify=identify,
            open_when=open_when,
            locked_when=locked_when,
            version_from=_version_from(version, requests, fields.where) if version else None,
            facts=tuple(_fact(_Table(item, f"{fields.where}: facts[{i}]"), requests)
                        for i, item in enumerate(facts)),
            then_probe=then_probe,
            note_unknown=fields.text("note_unknown", default=""),
            generic=fields.boolean("generic", default=False),
            **common,
        )
    except ValueError as error:
        raise CatalogueError(f"{fields.where}: {error}") from None


def _protocol_product(fields: _Table) -> ProtocolProduct:
    common = _common(fields)
    finding_open = fields.text("finding_open", default="service.unauthenticated")
    if not FINDING_PATTERN.match(finding_open):
        raise fields.error("finding_open", f"{finding_open!r} is not a finding id")
    probe = fields.text("probe")
    if not KEY_PATTERN.match(probe):
        raise fields.error("probe", f"{probe!r} is not a probe name")
    return ProtocolProduct(
        probe=probe,
        services=tuple(fields.list_of("services", str, required=False)),
        banner=fields.regex("banner"),
        http_server=fields.regex("http_server"),
        try_unknown=fields.boolean("try_unknown", default=False),
        finding_open=finding_open,
        cleartext_credentials=fields.boolean("cleartext_credentials", default=False),
        **common,
    )


# --- the parts ---------------------------------------------------------------------------


def _remedy(fields: _Table) -> Remedy:
    remedy = Remedy(fields.text("text"), tuple(fields.list_of("references", str)))
    for reference in remedy.references:
        if not reference.startswith("https://"):
            raise fields.error("references", f"{reference!r} is not an https:// address")
    if not remedy.references:
        raise fields.error("references", "name at least one reference")
    fields.done()
    return remedy


def _exposure(fields: _Table | None) -> Exposure | None:
    if fields is None:
        return None
    finding = fields.text("finding", default="service.exposed")
    if not FINDING_PATTERN.match(finding):
        raise fields.error("finding", f"{finding!r} is not a finding id")
    exposure = Exposure(finding, fields.severity("severity", default=Severity.MEDIUM),
                        fields.text("why"))
    fields.done()
    return exposure


def _request(fields: _Table) -> Request:
    headers = fields.mapping("headers", required=False)
    for name, value in headers.items():
        if not isinstance(value, str):
            raise fields.error("headers", f"{name}: a header value is a string")
    if any(name.lower() in ("authorization", "cookie") for name in headers):
        raise fields.error("headers", "the catalogue never sends credentials")
    try:
        request = Request(fields.text("path"), fields.text("kind", default="get",
                                                           choices=("get", "ws")),
                          tuple(headers.items()))
    except ValueError as error:
        raise CatalogueError(f"{fields.where}: {error}") from None
    fields.done()
    return request


def _rule(fields: _Table, requests: Mapping[str, Request]) -> Rule:
    says = fields.text("says")
    when = []
    for i, item in enumerate(fields.list_of("when", dict)):
        condition = _Table(item, f"{fields.where}.when[{i}]")
        request = _named_request(condition, requests)
        when.append((request, _match(condition)))
        condition.done()
    if not when:
        raise fields.error("when", "a rule needs at least one condition")
    fields.done()
    return Rule(tuple(when), says)


def _named_request(fields: _Table, requests: Mapping[str, Request]) -> Request:
    name = fields.text("request")
    if name not in requests:
        raise fields.error("request", f"{name!r} is not in [requests] ({', '.join(requests)})")
    return requests[name]


def _match(fields: _Table) -> Match:
    status = fields.list_of("status", int, required=False)
    json_markers = []
    for i, item in enumerate(fields.list_of("json", dict, required=False)):
        marker = _Table(item, f"{fields.where}.json[{i}]")
        path = marker.text("path", default="")
        test = marker.text("test", default="", choices=("", *(str(t) for t in JsonTest)))
        pattern = marker.regex("pattern")
        if bool(test) == (pattern is not None):
            raise marker.error("test", "give exactly one of test and pattern")
        json_markers.append(JsonMarker(path, JsonTest(test) if test else None, pattern))
        marker.done()
    headers = []
    for name, pattern in fields.mapping("headers", required=False).items():
        if not isinstance(pattern, str):
            raise fields.error("headers", f"{name}: the pattern is a string")
        _compile(pattern, fields, f"headers.{name}")
        headers.append((name.lower(), pattern))
    close_code = fields.integer("ws_close_code", default=0)
    return Match(
        status=frozenset(status) if status else None,
        body=tuple(_compile(p, fields, "body") for p in fields.list_of("body", str,
                                                                         required=False)),
        json=tuple(json_markers),
        headers=tuple(headers),
        ws_close_code=close_code or None,
        ws_text=tuple(_compile(p, fields, "ws_text") for p in fields.list_of("ws_text", str,
                                                                             required=False)),
    )


def _hint(fields: _Table) -> Hint:
    hint = Hint(title=fields.regex("title"), server=fields.regex("server"),
                location=fields.regex("location"))
    if not (hint.title or hint.server or hint.location):
        raise fields.error("title", "a hint needs a title, server or location pattern")
    fields.done()
    return hint


def _version_from(
    fields: _Table, requests: Mapping[str, Request], where: str
) -> tuple[Request, str]:
    value = (_named_request(fields, requests), fields.text("value"))
    fields.done()
    return value


def _fact(fields: _Table, requests: Mapping[str, Request]) -> tuple[Request, str, str]:
    fact = (_named_request(fields, requests), fields.text("value"), fields.text("key"))
    if not KEY_PATTERN.match(fact[2]):
        raise fields.error("key", f"{fact[2]!r} is not a lowercase identifier")
    fields.done()
    return fact


def _compile(pattern: str, fields: _Table, key: str) -> str:
    try:
        re.compile(pattern)
    except re.error as error:
        raise fields.error(key, f"{pattern!r} is not a valid regex: {error}") from None
    return pattern


def _unique(keys: list[str], what: str) -> None:
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise CatalogueError(f"duplicate {what}: {', '.join(duplicates)}")


class _Table:
    """Typed reads from one TOML table, remembering which keys were used (done() refuses
    the rest: a misspelt key is an error, not a silently ignored line)."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise CatalogueError(f"{where}: expected a table")
        self.data = data
        self.where = where
        self.used: set[str] = set()

    def error(self, key: str, problem: str) -> CatalogueError:
        return CatalogueError(f"{self.where}: {key}: {problem}")

    def _get(self, key: str, kind: type | tuple[type, ...], required: bool) -> Any:
        self.used.add(key)
        if key not in self.data:
            if required:
                raise self.error(key, "missing")
            return None
        value = self.data[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.error(key, f"expected {getattr(kind, '__name__', kind)}, "
                                  f"got {type(value).__name__}")
        return value

    def text(self, key: str, *, default: str | None = None,
             choices: tuple[str, ...] | None = None) -> str:
        value = self._get(key, str, default is None)
        value = default if value is None else value
        assert value is not None
        if choices is not None and value not in choices:
            raise self.error(key, f"{value!r} is not one of {', '.join(map(repr, choices))}")
        return value

    def integer(self, key: str, *, default: int) -> int:
        value = self._get(key, int, False)
        return default if value is None else value

    def boolean(self, key: str, *, default: bool) -> bool:
        value = self._get(key, bool, False)
        return default if value is None else value

    def severity(self, key: str, *, default: Severity) -> Severity:
        value = self.text(key, default=str(default), choices=tuple(str(s) for s in Severity))
        return Severity(value)

    def regex(self, key: str) -> str | None:
        value = self._get(key, str, False)
        return None if value is None else _compile(value, self, key)

    def list_of(self, key: str, item: type, *, required: bool = True) -> list[Any]:
        value = self._get(key, list, required) or []
        for position, element in enumerate(value):
            if not isinstance(element, item) or (item is int and isinstance(element, bool)):
                raise self.error(f"{key}[{position}]", f"expected {item.__name__}")
        return value

    def mapping(self, key: str, *, required: bool = True) -> dict[str, Any]:
        return self._get(key, dict, required) or {}

    def table(self, key: str, *, required: bool = True) -> _Table | None:
        value = self._get(key, dict, required)
        return None if value is None else _Table(value, f"{self.where}: {key}")

    def required_table(self, key: str) -> _Table:
        return _Table(self._get(key, dict, True), f"{self.where}: {key}")

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise CatalogueError(f"{self.where}: unknown key(s): {', '.join(unknown)}")
