"""Runs the catalogue against one open port: which products answer there, and are they open?

HTTP definitions: a definition with hints runs only where identification's evidence (page
title, Server header) suggests the product; one without hints (API-only products) runs on
every HTTP port. Each request is sent at most once per port (answers are cached), lazily, in
the order the rules need them. A product is identified only by a body/JSON/header marker.

Protocol definitions run where identification named their protocol (or its banner), and the
cheap read-only ones also on ports identification could not name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from scanner.checks.base import CheckContext
from scanner.checks.services import memcached, mongodb, mqtt, redis, rtsp, smb, telnet, vnc
from scanner.checks.services.catalogue import HTTP_PRODUCTS, MQTT_WEBSOCKET, PROTOCOL_PRODUCTS
from scanner.checks.services.connected import CONNECTOR_PROBES
from scanner.checks.services.markers import describe, opening_matches, reply_matches, reply_value
from scanner.checks.services.model import (
    Assessment,
    Auth,
    HttpProduct,
    ProbeOutcome,
    ProtocolProduct,
    Request,
    Rule,
)
from scanner.core.text import safe_text
from scanner.net import Connector, HttpReply
from scanner.net.websocket import Opening

Probe = Callable[[Connector], ProbeOutcome]
PROBES: dict[str, Probe] = {
    "mqtt": mqtt.probe,
    "mqtt_websocket": mqtt.probe_websocket,
    "redis": redis.probe,
    "memcached": memcached.probe,
    "vnc": vnc.probe,
    "telnet": telnet.probe,
    "rtsp": rtsp.probe,
    "smb": smb.probe,
    "mongodb": mongodb.probe,
    **CONNECTOR_PROBES,  # issue 18: ftp, rsync, x11, postgresql, mysql, etcd, portmapper
}
UNKNOWN_PORT_SECONDS = 2.0  # a port nobody could name: its protocol guesses end this soon
BODY_CAP = 128 * 1024  # product markers sit near the top of a page or in small JSON answers
EVIDENCE_CHARS = 600
# HTTP answers that suggest a non-web server behind HTTP framing (a websocket-only listener)
WEBSOCKET_ONLY_STATUSES = frozenset({400, 404, 405, 426, 501})


@dataclass(frozen=True)
class Judged:
    """A definition and the verdict it reached on this port."""

    definition: HttpProduct | ProtocolProduct
    assessment: Assessment


@dataclass
class HttpFetcher:
    """Sends each request of a port at most once."""

    connector: Connector
    _gets: dict[Request, HttpReply | None] = field(default_factory=dict)
    _sockets: dict[Request, Opening | None] = field(default_factory=dict)

    def get(self, request: Request) -> HttpReply | None:
        if request not in self._gets:
            self._gets[request] = self.connector.get(request.path, request.headers,
                                                     body_cap=BODY_CAP)
        return self._gets[request]

    def websocket(self, request: Request) -> Opening | None:
        if request not in self._sockets:
            self._sockets[request] = self.connector.websocket(request.path)
        return self._sockets[request]

    def holds(self, rule: Rule) -> bool:
        for request, match in rule.when:
            if request.kind == "ws":
                if not opening_matches(self.websocket(request), match):
                    return False
            elif not reply_matches(self.get(request), match):
                return False
        return True

    def describe(self, rule: Rule) -> str:
        parts = []
        for request, _ in rule.when:
            if request.kind == "ws":
                parts.append(_describe_opening(request, self._sockets.get(request)))
            else:
                parts.append(describe(self._gets.get(request), 200))
        return safe_text(f"{rule.says}: " + "; ".join(parts), EVIDENCE_CHARS)

    @property
    def requests_sent(self) -> int:
        return len(self._gets) + len(self._sockets)


def assess_port(context: CheckContext) -> list[Judged]:
    """Every catalogue product found on this port, with its verdict."""
    # Protocols first: where a server named its protocol (an RTSP server answering HTTP), that
    # probe is the strong lead, and a slow sweep of HTTP products must not eat its deadline.
    judged = assess_protocols(context)
    if context.identity.service == "http" and not judged:
        judged += assess_http(context)
    return judged


# --- HTTP --------------------------------------------------------------------------------


# Home Assistant counts every 401 as a failed login towards its IP ban: its own check (ha)
# looks at it, and no catalogue request is sent to a port identification named HA.
SKIP_HTTP_PRODUCTS = frozenset({"Home Assistant"})


def assess_http(context: CheckContext) -> list[Judged]:
    http = context.identity.details.get("http") or {}
    if {context.identity.product, http.get("application_hint")} & SKIP_HTTP_PRODUCTS:
        return []
    fetcher = HttpFetcher(context.connector)
    found = []
    for product in HTTP_PRODUCTS:
        if not hinted(product, http):
            continue
        assessment = assess_http_product(product, fetcher)
        if assessment is not None:
            found.append(Judged(product, assessment))
    if not found and websocket_candidate(http):
        outcome = mqtt.probe_websocket(fetcher.connector)
        if outcome.identified:
            found.append(Judged(MQTT_WEBSOCKET, _from_outcome(MQTT_WEBSOCKET, outcome)))
    return found


def hinted(product: HttpProduct, http: dict[str, Any]) -> bool:
    """Is the product worth probing here? (No hints: always; a hint is never evidence.)"""
    if not product.hints:
        return True
    title = str(http.get("title") or "")
    server = str(http.get("server") or "")
    recorded = http.get("redirects")
    redirects = recorded if isinstance(recorded, list) else []
    locations = [str(hop.get("location") or "") for hop in redirects if isinstance(hop, dict)]
    for hint in product.hints:
        if hint.title and title and re.search(hint.title, title[:512], re.IGNORECASE):
            return True
        if hint.server and server and re.search(hint.server, server[:512], re.IGNORECASE):
            return True
        if hint.location and any(
            re.search(hint.location, location[:512], re.IGNORECASE) for location in locations
        ):
            return True
    return False


def websocket_candidate(http: dict[str, Any]) -> bool:
    """An HTTP listener with no page of its own (MQTT-over-websocket listeners answer so)."""
    return not http.get("title") and http.get("status") in WEBSOCKET_ONLY_STATUSES


def assess_http_product(product: HttpProduct, fetcher: HttpFetcher) -> Assessment | None:
    identifying = next((rule for rule in product.identify if fetcher.holds(rule)), None)
    if identifying is None:
        return None
    version = _version(product, fetcher)
    facts = _facts(product, fetcher)
    if product.then_probe:
        outcome = PROBES[product.then_probe](fetcher.connector)
        if outcome.identified:
            return Assessment(
                product.key, outcome.product or product.name, outcome.auth,
                safe_text(outcome.evidence, EVIDENCE_CHARS), outcome.version or version,
                {**facts, **outcome.facts}, outcome.notes, outcome.transport,
            )
        return Assessment(product.key, product.name, Auth.UNKNOWN, fetcher.describe(identifying),
                          version, facts, (f"the {product.then_probe} probe got no answer",))
    opened = next((rule for rule in product.open_when if fetcher.holds(rule)), None)
    if opened is not None:
        return Assessment(product.key, product.name, Auth.NONE, fetcher.describe(opened),
                          version, facts)
    locked = next((rule for rule in product.locked_when if fetcher.holds(rule)), None)
    if locked is not None:
        return Assessment(product.key, product.name, Auth.REQUIRED, fetcher.describe(locked),
                          version, facts)
    note = product.note_unknown or (
        f"{product.name} answers here, but whether it asks for credentials cannot be verified "
        "from outside"
    )
    return Assessment(product.key, product.name, Auth.UNKNOWN, fetcher.describe(identifying),
                      version, facts, (note,))


def _version(product: HttpProduct, fetcher: HttpFetcher) -> str | None:
    if product.version_from is None:
        return None
    request, source = product.version_from
    return reply_value(fetcher.get(request), source)


def _facts(product: HttpProduct, fetcher: HttpFetcher) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    for request, path, key in product.facts:
        value = reply_value(fetcher.get(request), path, 80)
        if value is not None:
            facts[key] = value
    return facts


def _describe_opening(request: Request, opening: Opening | None) -> str:
    if opening is None:
        return f"websocket {request.path}: no answer"
    if not opening.upgraded:
        return f"websocket {request.path}: HTTP {opening.status}, not upgraded"
    frame = opening.first_frame
    if frame is None:
        return f"websocket {request.path}: upgraded, no frame"
    if frame.close_code is not None:
        return f"websocket {request.path}: closed with {frame.close_code}"
    text = frame.payload[:120].decode("utf-8", "replace") if frame.opcode == 1 else "binary"
    return f"websocket {request.path}: first frame {text}"


# --- protocols ---------------------------------------------------------------------------


def applicable_protocols(context: CheckContext) -> list[ProtocolProduct]:
    identity = context.identity
    banner = identity.banner or ""
    http = identity.details.get("http") if isinstance(identity.details.get("http"), dict) else {}
    server = str((http or {}).get("server") or "")[:256]
    chosen = []
    for product in PROTOCOL_PRODUCTS:
        named = identity.service in product.services
        by_banner = bool(product.banner and re.search(product.banner, banner[:256]))
        by_banner |= bool(product.http_server and server and re.search(product.http_server, server))
        guess = product.try_unknown and identity.service is None and not identity.tls
        if named or by_banner or guess:
            chosen.append(product)
    return chosen


def assess_protocols(context: CheckContext) -> list[Judged]:
    products = applicable_protocols(context)
    if not products:
        return []
    connector = context.connector
    if context.identity.service is None:
        return _first_that_speaks(products, connector.within(UNKNOWN_PORT_SECONDS))
    found = []
    for product in products:
        outcome = PROBES[product.probe](connector)
        if outcome.identified:
            found.append(Judged(product, _from_outcome(product, outcome)))
    return found


def _first_that_speaks(products: list[ProtocolProduct], connector: Connector) -> list[Judged]:
    """Guesses on a port nobody could name run side by side; the first protocol that answers
    wins, and the others are not waited for (each ends at its own deadline)."""
    pool = ThreadPoolExecutor(max_workers=len(products), thread_name_prefix="service-guess")
    try:
        futures = {pool.submit(PROBES[product.probe], connector): product for product in products}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                outcome = future.result()
                if outcome.identified:
                    product = futures[future]
                    return [Judged(product, _from_outcome(product, outcome))]
        return []
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _from_outcome(product: ProtocolProduct, outcome: ProbeOutcome) -> Assessment:
    return Assessment(
        key=product.key,
        product=outcome.product or product.name,
        auth=outcome.auth,
        evidence=safe_text(outcome.evidence, EVIDENCE_CHARS),
        version=outcome.version,
        facts=dict(outcome.facts),
        notes=outcome.notes,
        transport=outcome.transport,
    )


def definitions() -> Iterable[HttpProduct | ProtocolProduct]:
    return (*HTTP_PRODUCTS, *PROTOCOL_PRODUCTS)
