"""What Shodan already knows (`--internetdb`, off by default): Shodan's free InternetDB.

One GET per public IPv4 address to `{base_url}/{ip}` returns the ports, hostnames, tags,
CPEs and vulns Shodan saw last time it crawled that address. Compared with the live scan it
shows the user what the internet has on record: ports Shodan lists that are closed now (old
exposure still indexed) and ports open now that Shodan has not seen yet.

The base URL is a parameter so tests replay recorded answers from a local server. Every
failure (network, HTTP status, size, JSON) comes back as a warning, never an exception:
this is context for the report, not part of the scan.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import requests
from urllib3.exceptions import HTTPError as Urllib3Error  # raised by response.raw reads

from scanner import __version__
from scanner.core.report import Note
from scanner.core.text import safe_text
from scanner.targets import IPAddress

DEFAULT_BASE_URL = "https://internetdb.shodan.io"
RESPONSE_CAP = 256 * 1024  # a real record is well under 10 KiB
MAX_ITEMS = 200
ITEM_CHARS = 200
USER_AGENT = f"exposure/{__version__} (external exposure scanner)"


@dataclass(frozen=True)
class InternetDbRecord:
    ip: str
    ports: tuple[int, ...] = ()
    hostnames: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    cpes: tuple[str, ...] = ()
    vulns: tuple[str, ...] = ()
    known: bool = True  # False: InternetDB has no information about this address


@dataclass(frozen=True)
class InternetDbResult:
    record: InternetDbRecord | None
    warning: str | None = None


@dataclass(frozen=True)
class InternetDbComparison:
    indexed_but_closed_now: tuple[int, ...]  # Shodan lists them; the scan found them not open
    open_but_not_indexed: tuple[int, ...]  # open now; Shodan has not seen them (yet)
    open_and_indexed: tuple[int, ...]
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class InternetDbLookup:
    """The InternetDB stage's answer for one address: the report's `internetdb` object and
    what the reader should be told (a failed lookup is a note, never a failed scan)."""

    details: dict[str, Any]
    notes: tuple[Note, ...] = ()


def eligible(address: IPAddress) -> bool:
    """InternetDB covers public IPv4 only; private, reserved and IPv6 addresses are skipped."""
    return address.version == 4 and address.is_global


def worth_asking(address: IPAddress, base_url: str) -> bool:
    """Shodan only has public IPv4; a server the user points us at may know other addresses
    (a local replay of recorded answers), but still only IPv4 ones."""
    own_server = base_url.rstrip("/") != DEFAULT_BASE_URL
    return eligible(address) or (own_server and address.version == 4)


def look_up(address: IPAddress, open_ports: Iterable[int], base_url: str) -> InternetDbLookup:
    """Side by side with Shodan's record of `address`, or why there is none."""
    if not worth_asking(address, base_url):
        return InternetDbLookup({"skipped": "InternetDB covers public IPv4 addresses only"})
    result = fetch_internetdb(address, base_url)
    if result.record is None:
        return InternetDbLookup({"warning": result.warning},
                                (Note(None, result.warning or "InternetDB lookup failed"),))
    return InternetDbLookup(compare_with_scan(result.record, open_ports).details)


def fetch_internetdb(
    address: IPAddress,
    base_url: str = DEFAULT_BASE_URL,
    timeout: float = 5.0,
    session: requests.Session | None = None,
) -> InternetDbResult:
    """The InternetDB record for `address`; a warning instead of a record on any failure.

    Bounded like every other remote read: at most `timeout` to connect, `timeout` for the
    answer's head, then `timeout` in total for the body (checked after every packet, so a
    server dripping bytes cannot stretch it); RESPONSE_CAP bytes; no redirects.
    """
    url = f"{base_url.rstrip('/')}/{address}"
    client = session or requests.Session()
    try:
        body, status = _bounded_get(client, url, timeout)
    except (requests.RequestException, Urllib3Error, OSError, ValueError) as error:
        return InternetDbResult(None, _warning(f"InternetDB unreachable: {type(error).__name__}"))
    finally:
        if session is None:
            client.close()
    if status == 404:
        return InternetDbResult(InternetDbRecord(ip=str(address), known=False))
    if status != 200:
        return InternetDbResult(None, _warning(f"InternetDB answered HTTP {status}"))
    try:
        record = parse_internetdb(json.loads(body), str(address))
    except (ValueError, RecursionError) as error:  # RecursionError: "[[[[..." nested deep
        return InternetDbResult(None, _warning(f"InternetDB answer not understood: {error}"))
    return InternetDbResult(record)


def _bounded_get(client: requests.Session, url: str, timeout: float) -> tuple[bytes, int]:
    deadline = time.monotonic() + timeout
    response = client.get(
        url,
        timeout=(timeout, timeout),
        stream=True,
        allow_redirects=False,
        headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
    )
    with response:
        body = bytearray()
        for chunk in _pieces(response):
            body += chunk
            if len(body) > RESPONSE_CAP:
                raise ValueError("answer larger than the cap")
            if time.monotonic() > deadline:
                raise TimeoutError("answer took longer than the timeout")
        return bytes(body), response.status_code


def _pieces(response: requests.Response) -> Iterator[bytes]:
    """The body as it arrives: read1 returns what is there instead of waiting for a full
    chunk, so the deadline is checked after every packet of a dripping server."""
    read1 = getattr(response.raw, "read1", None)
    if read1 is None:  # urllib3 < 2.3
        yield from response.iter_content(chunk_size=512)
        return
    while piece := read1(8192, decode_content=True):
        yield piece


def parse_internetdb(payload: Any, address: str) -> InternetDbRecord:
    """Validate an InternetDB JSON answer (raises ValueError when it is not one)."""
    if not isinstance(payload, dict):
        raise ValueError("not a JSON object")
    if "detail" in payload and "ports" not in payload:
        return InternetDbRecord(ip=address, known=False)  # {"detail": "No information available"}
    return InternetDbRecord(
        ip=address,
        ports=tuple(sorted({port for port in _list(payload, "ports") if _is_port(port)})),
        hostnames=_texts(payload, "hostnames"),
        tags=_texts(payload, "tags"),
        cpes=_texts(payload, "cpes"),
        vulns=_texts(payload, "vulns"),
    )


def _list(payload: dict[str, Any], key: str) -> list[Any]:
    value = payload.get(key, [])
    if not isinstance(value, list):
        raise ValueError(f"{key} is not a list")
    return value[:MAX_ITEMS]


def _is_port(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536


def _texts(payload: dict[str, Any], key: str) -> tuple[str, ...]:
    items = _list(payload, key)
    return tuple(safe_text(item, ITEM_CHARS) for item in items if isinstance(item, str))


def compare_with_scan(
    record: InternetDbRecord, open_ports: Iterable[int]
) -> InternetDbComparison:
    """Side by side: what Shodan has on record against what is open right now."""
    now = set(open_ports)
    indexed = set(record.ports)
    return InternetDbComparison(
        indexed_but_closed_now=tuple(sorted(indexed - now)),
        open_but_not_indexed=tuple(sorted(now - indexed)),
        open_and_indexed=tuple(sorted(now & indexed)),
        details={
            "known": record.known,
            "ports": list(record.ports),
            "hostnames": list(record.hostnames),
            "tags": list(record.tags),
            "cpes": list(record.cpes),
            "vulns": list(record.vulns),
            "indexed_but_closed_now": sorted(indexed - now),
            "open_but_not_indexed": sorted(now - indexed),
        },
    )


def _warning(text: str) -> str:
    return safe_text(text, 200)
