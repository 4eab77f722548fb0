"""A port's details as typed records: what each check (or stage) keeps, and how it is shown.

A port's `details` in the JSON report is one object per key ("ssh", "tls", "http", "ha",
"mqtt", "shodan"...). Each key has one frozen dataclass, declared next to the code that fills
it (scanner/checks/ssh/details.py, scanner/identification/shodan_view.py...), and that class
also says how it is displayed: its highlight rows, its rows in the port table, a grade if it
has one. The renderers only ask those questions, so a new check's details show in every
report without editing a renderer.

The classes are found the way the finding catalogue finds finding specs (core/catalogue.py):
by module name, each source exporting `DETAILS` ({key: class}); scanner.checks.registry
gathers the DETAILS of every check module it loads. Core never imports a stage.

`DetailsRecord` gives every class the same JSON codec: `to_dict()` writes today's keys (the
field names), `from_dict()` is the typed loader stored reports go through (`show`, `diff`).
A loaded record remembers the keys it was read with, in order, and keys it has no field for
(`extra`: a newer or older report), so JSON -> typed -> JSON is the identity. A record a check
builds writes every field but those marked OMIT_NONE that are None; `partial()` builds one
with just the keys given.
"""

from __future__ import annotations

import dataclasses
import importlib
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, ClassVar, Protocol, Self, runtime_checkable

from scanner.core.grades import Grade
from scanner.core.text import safe_text

# Modules that export DETAILS: {details key: its loader, JSON object -> typed details}.
DETAILS_SOURCES: tuple[str, ...] = (
    "scanner.identification.shodan_view",
    "scanner.checks.registry",
)
# Field metadata: leave the key out of the JSON when the value is None (keys a check writes
# only sometimes, e.g. ssh.auth_banner).
OMIT_NONE = {"omit_none": True}

FACT_CHARS = 300
LIST_ITEMS_SHOWN = 12
# In a list of objects (advisories, legacy algorithms), what names an item and what qualifies
# it: {"id": "CVE-2024-6387", "status": "fixed-by-distro"} is "CVE-2024-6387 (fixed-by-distro)".
ITEM_NAME_FIELDS = ("id", "name", "type", "rule", "grade")
ITEM_QUALIFIER_FIELDS = ("status", "severity", "bits", "why", "reason")

JsonObject = Mapping[str, Any]


@dataclass(frozen=True)
class Row:
    """One line of a details block or of the port table: a label and its value, as text."""

    label: str
    value: str


@runtime_checkable
class PortDetails(Protocol):
    """What every renderer may ask of a details key."""

    def to_dict(self) -> dict[str, Any]: ...

    def rows(self) -> tuple[Row, ...]: ...

    def table_rows(self) -> tuple[Row, ...]: ...

    @property
    def table_rank(self) -> int: ...


@runtime_checkable
class Graded(Protocol):
    """Details that carry a grade (TLS): the grade, its scores and what caps it."""

    def graded(self) -> Grade | None: ...

    def score_rows(self) -> tuple[Row, ...]: ...

    def cap_texts(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class BannerSection:
    """A part of the crawler's banner, as the stage that wrote the banner knows it."""

    # "service": a line the scanner wrote, `text` says what it stands for ("MQTT broker");
    # "http", "certificate", "other": what the server sent
    kind: str
    text: str


@runtime_checkable
class CrawlerView(Protocol):
    """Details that say what an internet-wide crawler records for the port (the Shodan view)."""

    @property
    def banner(self) -> str: ...

    @property
    def queries(self) -> tuple[str, ...]: ...

    def sections(self) -> tuple[BannerSection, ...]: ...

    def certificate_name(self) -> str: ...


# Where a record's crawler phrase goes on the crawler's one line: "service" tells the
# service a line the scanner wrote stands for (MQTT: what the check learnt), "title" and
# "certificate" follow the banner's own parts.
CRAWLER_SLOTS = ("service", "title", "certificate")


@runtime_checkable
class CrawlerFacts(Protocol):
    """Details that add to the crawler's line: (slot in CRAWLER_SLOTS, phrase), or None."""

    def crawler_phrase(self) -> tuple[str, str] | None: ...


# --- the codec ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DetailsRecord:
    """Base of every details class: a JSON codec over the dataclass fields, and rows.

    HIGHLIGHTS and TABLE list (attribute path, label): what the details block and the port
    table show. A dotted path reads into nested records; a path a class has no field for
    reads `extra` (product facts of the services check are named by its YAML files)."""

    HIGHLIGHTS: ClassVar[tuple[tuple[str, str], ...] | None] = None  # None: generic rows
    TABLE: ClassVar[tuple[tuple[str, str], ...]] = ()
    TABLE_RANK: ClassVar[int] = 100  # where its table rows go among the keys' (lower first)

    extra: JsonObject = field(default_factory=dict, kw_only=True, compare=False, repr=False)
    # the JSON keys it has, in order: as read, or as given to partial()/updated();
    # None: every field (but OMIT_NONE ones that are None)
    json_keys: tuple[str, ...] | None = field(default=None, kw_only=True, compare=False,
                                              repr=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """The typed loader: each known key converted to its field's type, the rest kept."""
        hints = _hints(cls)
        names = {f.name for f in _fields(cls)}
        values = {key: _load(hints[key], value) for key, value in data.items() if key in names}
        extra = {key: value for key, value in data.items() if key not in names}
        return cls(**values, extra=extra, json_keys=tuple(data))

    @classmethod
    def partial(cls, **values: Any) -> Self:
        """A record with just these keys, in this order: what a check adds to a key another
        stage fills (http_login's plain_login in details.http), or a shape with few keys (TLS
        not graded)."""
        return cls(**values, json_keys=tuple(values))

    def updated(self, **values: Any) -> Self:
        """dict.update on a record: these values replace, keys it did not have come last
        (a check adding to what identification wrote under the same key)."""
        known = {f.name for f in _fields(type(self))}
        keys = self.json_keys
        if keys is not None:
            keys = (*keys, *(key for key in values if key not in keys))
        extra = {**self.extra, **{key: v for key, v in values.items() if key not in known}}
        fields = {key: v for key, v in values.items() if key in known}
        return dataclasses.replace(self, **fields, extra=extra, json_keys=keys)

    def to_dict(self) -> dict[str, Any]:
        if self.json_keys is not None:  # as it was read (or built): same keys, same order
            keys: Sequence[str] = self.json_keys
        else:
            keys = [f.name for f in _fields(type(self))
                    if not (f.metadata.get("omit_none") and getattr(self, f.name) is None)]
            keys = [*keys, *self.extra]
        return {key: _dump(self._value(key)) for key in keys}

    def _value(self, key: str) -> Any:
        if key in self.extra or key not in {f.name for f in _fields(type(self))}:
            return self.extra.get(key)
        return getattr(self, key)

    @property
    def table_rank(self) -> int:
        return self.TABLE_RANK

    def rows(self) -> tuple[Row, ...]:
        if self.HIGHLIGHTS is None:
            return generic_rows(self.to_dict())
        return self._rows(self.HIGHLIGHTS)

    def table_rows(self) -> tuple[Row, ...]:
        return self._rows(self.TABLE)

    def _rows(self, paths: Sequence[tuple[str, str]]) -> tuple[Row, ...]:
        found = ((label, fact_text(self.lookup(path))) for path, label in paths)
        return tuple(Row(label, text) for label, text in found if text)

    def lookup(self, path: str) -> Any:
        current: Any = self
        for part in path.split("."):
            if isinstance(current, DetailsRecord):
                current = current._value(part)
            elif isinstance(current, Mapping):
                current = current.get(part)
            else:
                return None
        return current


@dataclass(frozen=True)
class UntypedDetails:
    """A key no class is registered for (UDP services, a newer report): shown generically."""

    value: Any
    table_rank: int = 100

    def to_dict(self) -> dict[str, Any]:
        return dict(self.value) if isinstance(self.value, Mapping) else {"value": self.value}

    def rows(self) -> tuple[Row, ...]:
        return generic_rows(self.value) if isinstance(self.value, Mapping) else ()

    def table_rows(self) -> tuple[Row, ...]:
        return ()


_FIELDS: dict[type, tuple[dataclasses.Field[Any], ...]] = {}
_HINTS: dict[type, dict[str, Any]] = {}


def _fields(cls: type) -> tuple[dataclasses.Field[Any], ...]:
    """The JSON fields of a record class (not the loader's bookkeeping), computed once."""
    if cls not in _FIELDS:
        _FIELDS[cls] = tuple(f for f in dataclasses.fields(cls)
                             if f.name not in ("extra", "json_keys"))
    return _FIELDS[cls]


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


class DetailsShapeError(ValueError):
    """A JSON value that does not have the type its field declares (a hand-edited or foreign
    report): that key is shown untyped rather than trusted."""


def _load(hint: Any, value: Any) -> Any:
    """A JSON value as the field's type says: records, tuples of them, mappings of them."""
    if value is None or hint is Any:
        return value
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        options = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return _load(options[0] if len(options) == 1 else Any, value)
    if origin is tuple:
        _require(isinstance(value, list | tuple), hint, value)
        return tuple(_load(typing.get_args(hint)[0], item) for item in value)
    if origin in (Mapping, dict):
        _require(isinstance(value, Mapping), hint, value)
        item_hint = typing.get_args(hint)[1]
        return {str(key): _load(item_hint, item) for key, item in value.items()}
    if isinstance(hint, type) and issubclass(hint, DetailsRecord):
        _require(isinstance(value, Mapping), hint, value)
        return hint.from_dict(value)
    if hint is float:
        _require(isinstance(value, int | float) and not isinstance(value, bool), hint, value)
    elif hint is int:
        _require(isinstance(value, int) and not isinstance(value, bool), hint, value)
    elif isinstance(hint, type):
        _require(isinstance(value, hint), hint, value)
    return value


def _require(ok: bool, hint: Any, value: Any) -> None:
    if not ok:
        raise DetailsShapeError(f"expected {hint}, got {type(value).__name__}")


def _dump(value: Any) -> Any:
    if isinstance(value, DetailsRecord):
        return value.to_dict()
    if isinstance(value, tuple | list):
        return [_dump(item) for item in value]
    if isinstance(value, Mapping):
        return {key: _dump(item) for key, item in value.items()}
    return value


# --- the registry -------------------------------------------------------------------------

# A details class's from_dict, or a function choosing between shapes (details.ha).
DetailsLoader = Callable[[Mapping[str, Any]], PortDetails]


@cache
def details_loaders() -> Mapping[str, DetailsLoader]:
    """Every registered details loader by its key; a key declared twice is an error."""
    loaders: dict[str, DetailsLoader] = {}
    for name in DETAILS_SOURCES:
        declared: Mapping[str, DetailsLoader] = importlib.import_module(name).DETAILS
        for key, loader in declared.items():
            if key in loaders and loaders[key] != loader:
                raise RuntimeError(f"details key declared twice: {key}")
            loaders[key] = loader
    return loaders


def load_details(key: str, value: Any) -> PortDetails:
    """One key of a port's details, typed when a loader is registered for it."""
    loader = details_loaders().get(key)
    if loader is None or not isinstance(value, Mapping):
        return UntypedDetails(value)
    try:
        return loader(value)
    except DetailsShapeError:
        return UntypedDetails(value)


def load_port_details(details: Any) -> dict[str, PortDetails]:
    """A port's `details` object (from a scan or a stored JSON report), every key typed."""
    if not isinstance(details, Mapping):
        return {}
    return {str(key): load_details(str(key), value) for key, value in details.items()}


# --- showing values -----------------------------------------------------------------------


def generic_rows(value: Mapping[str, Any]) -> tuple[Row, ...]:
    """For details no one described: their scalar fields and short lists, in order."""
    found = ((str(name), fact_text(item)) for name, item in value.items())
    return tuple(Row(safe_text(name, 64).replace("_", " "), text) for name, text in found if text)


def fact_text(value: Any) -> str:
    """One line for a scalar or a list of scalars/named items; '' for what does not fit."""
    if isinstance(value, DetailsRecord):
        value = value.to_dict()
    if value is None or value == "" or value == [] or value == ():
        return ""
    if is_scalar(value):
        return scalar_text(value)
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        items = [_item_text(item) for item in value]
        if not all(items):
            return ""
        shown = ", ".join(items[:LIST_ITEMS_SHOWN])
        more = f" (+{len(items) - LIST_ITEMS_SHOWN} more)" if len(items) > LIST_ITEMS_SHOWN else ""
        return safe_text(shown, FACT_CHARS) + more
    return ""


def _item_text(item: Any) -> str:
    if isinstance(item, DetailsRecord):
        item = item.to_dict()
    if is_scalar(item):
        return scalar_text(item)
    if not isinstance(item, Mapping):
        return ""
    name = next((item[f] for f in ITEM_NAME_FIELDS if is_scalar(item.get(f)) and item.get(f)),
                None)
    if name is None:
        return ""
    qualifier = next(
        (item[f] for f in ITEM_QUALIFIER_FIELDS if is_scalar(item.get(f)) and item.get(f)), None
    )
    text = scalar_text(name)
    return f"{text} ({scalar_text(qualifier)})" if qualifier is not None else text


def is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return safe_text(str(value), FACT_CHARS)
