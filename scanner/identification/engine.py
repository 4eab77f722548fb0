"""The probe sequence for one port, and running it for all ports of an address at once.

What runs on a port is decided by how it behaves, never by its number:

1. connect and listen: a server that speaks first (SSH, FTP, SMTP, ...) names itself;
2. silent: send a TLS ClientHello on the same connection. TLS records back mean TLS on
   any port; the handshake completes and we ask again inside (HTTP, or a greeting);
3. not TLS: an HTTP GET on a fresh connection;
4. not HTTP either: the MQTT probe (a CONNECT the broker must refuse before auth).

All of it runs on connections from the network layer, under the scan's budget: each read waits
at most one read timeout (`--timeout`), everything ends at the deadline the caller's Dialer
carries, and the port's connections share PORT_BYTE_CAP bytes. A tarpit costs its deadline,
however many steps it makes us try.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from scanner.identification import http
from scanner.identification.banner import (
    GreetingIdentity,
    classify_greeting,
    classify_reply_to_http,
    deadline_after,
    greeting_wait,
    normalise_text,
    printable,
    read_greeting,
)
from scanner.identification.connection import (
    PORT_BYTE_CAP,
    PROBE_ERRORS,
    seconds_left,
    share_of_remaining,
)
from scanner.identification.model import IdentifyOptions, ServiceIdentity
from scanner.identification.mqtt import Connack, probe_mqtt
from scanner.identification.shodan_view import ShodanEvidence, shodan_view
from scanner.identification.tls import TlsOutcome, session_summary, start_tls
from scanner.net import (
    Allowance,
    AsyncStream,
    Channel,
    Dialer,
    Endpoint,
    Limits,
    ProbeFailed,
    ScanBudget,
    Traffic,
)
from scanner.net.http import HttpResponse, NotHttp
from scanner.net.http_parse import Origin, head_text
from scanner.report.sanitize import safe_text
from scanner.targets import IPAddress

GREETING_TEXT_CHARS = 1024
MQTT_PROBE_NOTE = "CONNECT with unused protocol level 0: refused before authentication"


@dataclass(frozen=True)
class PortResult:
    identity: ServiceIdentity
    evidence: ShodanEvidence  # kept so a later merge (nmap) can rebuild the Shodan view
    traffic: Traffic
    seconds: float = 0.0  # wall time identification spent on the port


@dataclass
class _Learnt:
    """What the probes of one port have found so far (mutable while probing)."""

    service: str | None = None
    product: str | None = None
    version: str | None = None
    shodan_product: str | None = None
    tls: bool = False
    banner: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    greeting_text: str | None = None
    http_head: str | None = None
    title: str | None = None
    favicon_mmh3: int | None = None
    certificate: dict[str, Any] | None = None
    mqtt_return_code: int | None = None

    def apply_greeting(self, found: GreetingIdentity, raw: bytes) -> None:
        self.service = found.service
        self.product = found.product
        self.version = found.version
        self.shodan_product = found.shodan_product
        self.banner = found.banner
        self.details.update(found.details)
        self.greeting_text = safe_text(normalise_text(raw), GREETING_TEXT_CHARS, keep_newlines=True)
        if found.service == "ssh":  # the SSH line alone is what gets indexed
            self.greeting_text = found.banner

    def apply_tls(self, summary: dict[str, Any]) -> None:
        self.tls = True
        self.certificate = summary.get("certificate")
        self.details["tls"] = {
            "certificate": self.certificate,
            "negotiated_version": summary.get("version"),
            "negotiated_cipher": summary.get("cipher"),
        }

    def apply_http(self, survey: http.HttpSurvey, scheme: str) -> None:
        server = http.server_product(survey)
        application = http.title_application(survey)
        self.service = "http"
        self.product = server.product if server else None
        self.version = server.version if server else None
        # Shodan tags products from titles too: the view shows what it would index.
        hinted = application or server
        self.shodan_product = hinted.shodan_product if hinted else None
        self.banner = http.status_line(survey.first)
        self.details["http"] = http.http_details(survey, scheme)
        if application:
            self.details["http"]["application_hint"] = application.product
        self.http_head = head_text(survey.first.raw_head)
        self.title = survey.title
        self.favicon_mmh3 = survey.favicon.mmh3 if survey.favicon else None

    def apply_mqtt(self, connack: Connack) -> None:
        self.service = "mqtt"
        self.banner = f"CONNACK return code {connack.return_code} ({connack.meaning})"
        self.mqtt_return_code = connack.return_code
        self.details["mqtt"] = {
            "connack_return_code": connack.return_code,
            "connack_meaning": connack.meaning,
            "probe": MQTT_PROBE_NOTE,
        }

    def note(self, text: str) -> None:
        self.details.setdefault("probe", {})["note"] = text

    def evidence(self, port: int) -> ShodanEvidence:
        return ShodanEvidence(
            port=port,
            service=self.service,
            product=self.shodan_product or self.product,
            version=self.version,
            greeting=self.greeting_text,
            http_head=self.http_head,
            title=self.title,
            favicon_mmh3=self.favicon_mmh3,
            certificate=self.certificate,
            mqtt_return_code=self.mqtt_return_code,
        )

    def identity(self, evidence: ShodanEvidence) -> ServiceIdentity:
        return ServiceIdentity(
            service=self.service,
            product=self.product,
            version=self.version,
            tls=self.tls,
            banner=self.banner,
            details=with_shodan_view(self.details, evidence),
            source="probe",
        )


def with_shodan_view(details: dict[str, Any], evidence: ShodanEvidence) -> dict[str, Any]:
    view = shodan_view(evidence)
    if not view["banner"] and not view["queries"]:
        return {key: value for key, value in details.items() if key != "shodan"}
    return {**details, "shodan": view}


@dataclass(frozen=True)
class _FirstContact:
    """The first connection's outcome: a greeting, a TLS session (and HTTP inside), or
    silence (`reply` holds any non-TLS answer to the ClientHello)."""

    greeting: bytes = b""
    closed_silently: bool = False
    tls: TlsOutcome | None = None
    inside: http.HttpResponse | http.NotHttp | None = None
    reply: bytes = b""


class PortProbe:
    """Identifies one port; every connection comes from `dialer` (its deadline bounds us)."""

    def __init__(
        self, dialer: Dialer, address: IPAddress, port: int, options: IdentifyOptions
    ) -> None:
        self._allowance = dialer.allowance or Allowance(PORT_BYTE_CAP)
        self._dialer = replace(dialer, allowance=self._allowance)
        self._endpoint = Endpoint(str(address), port)
        self._port = port
        self._options = options
        self._host = options.sni or (f"[{address}]" if address.version == 6 else str(address))
        self._learnt = _Learnt()

    async def run(self) -> PortResult:
        started = time.monotonic()
        try:
            await self._identify()
        except PROBE_ERRORS:
            pass  # the network or the budget ended it: keep what was learnt
        except Exception as error:  # a bug meeting hostile data must not sink the whole scan
            self._learnt.details["identification_error"] = safe_text(
                f"{type(error).__name__}: {error}", 200
            )
        self._explain_silence()
        evidence = self._learnt.evidence(self._port)
        return PortResult(self._learnt.identity(evidence), evidence, self._allowance.traffic,
                          time.monotonic() - started)

    def _explain_silence(self) -> None:
        """Tell the user why a port has no name, when nothing else does."""
        learnt = self._learnt
        if learnt.service or learnt.tls or learnt.banner or "probe" in learnt.details:
            return
        if self._allowance.traffic.connections == 0:
            learnt.note("could not connect during identification")
        else:
            learnt.note(
                "accepts connections but answered none of our probes (waiting for a greeting,"
                " TLS ClientHello, HTTP GET, MQTT CONNECT)"
            )

    def _origin(self, scheme: str) -> Origin:
        return Origin(scheme, self._host, self._port)

    async def _identify(self) -> None:
        contact = await self._first_contact()
        if contact.greeting:
            self._learnt.apply_greeting(classify_greeting(contact.greeting), contact.greeting)
        elif contact.tls is not None and contact.tls.spoke_tls:
            await self._inside_tls(contact.tls, contact.inside)
        else:
            if contact.closed_silently:
                self._learnt.note("accepts connections and closes them without a word")
            await self._client_first(contact.reply)

    async def _first_contact(self) -> _FirstContact:
        async with self._open() as raw:
            wait = min(greeting_wait(raw.rtt, seconds_left(raw.deadline)), raw.read_timeout)
            greeting = await read_greeting(raw, deadline_after(wait))
            if greeting.data or greeting.closed:
                return _FirstContact(greeting=greeting.data, closed_silently=greeting.closed)
            # Silent: a TLS server waits for our ClientHello. Servers answer it in one round
            # trip; one that has not started to by then is not doing TLS.
            tls_deadline = share_of_remaining(
                raw, 0.5, floor=4 * raw.rtt, ceiling=max(1.0, 4 * raw.rtt)
            )
            try:
                outcome = await start_tls(raw, self._options.sni, tls_deadline)
            except PROBE_ERRORS:
                return _FirstContact()  # it hung up on the ClientHello: not TLS, try the rest
            if outcome.channel is None:
                return _FirstContact(tls=outcome, reply=outcome.reply)
            self._learnt.apply_tls(session_summary(outcome.channel))
            first_byte = share_of_remaining(outcome.channel, 0.7, floor=0.0, ceiling=60.0)
            inside: HttpResponse | NotHttp | None = None
            with contextlib.suppress(*PROBE_ERRORS):
                inside = await http.exchange(
                    outcome.channel, self._origin("https"), "/", first_byte
                )
            return _FirstContact(tls=outcome, inside=inside)

    async def _inside_tls(
        self, outcome: TlsOutcome, inside: HttpResponse | NotHttp | None
    ) -> None:
        self._learnt.tls = True
        if outcome.channel is None:
            self._learnt.details["tls"] = {"handshake_error": outcome.error}
            return
        if isinstance(inside, HttpResponse):
            origin = self._origin("https")
            self._learnt.apply_http(await http.survey(inside, self._tls_channel, origin), "https")
            return
        if inside is not None and inside.data and self._recognised(inside.data):
            return  # a server-first protocol inside TLS (IMAPS, SMTPS...) greeted us
        await self._try_mqtt(self._tls_channel)

    async def _client_first(self, reply_to_client_hello: bytes) -> None:
        if reply_to_client_hello:
            late = classify_greeting(reply_to_client_hello)  # e.g. an SMTP pre-greet delay
            if late.service and late.service != "http":
                self._learnt.apply_greeting(late, reply_to_client_hello)
                return
        origin = self._origin("http")
        answer: HttpResponse | NotHttp | None = None
        try:
            async with self._plain_channel() as channel:
                first_byte = share_of_remaining(channel, 0.75, floor=0.0, ceiling=60.0)
                answer = await http.exchange(channel, origin, "/", first_byte)
        except PROBE_ERRORS:
            answer = None
        if isinstance(answer, HttpResponse):
            self._learnt.apply_http(await http.survey(answer, self._plain_channel, origin), "http")
            return
        if answer is not None and answer.data and self._recognised(answer.data):
            return
        await self._try_mqtt(self._plain_channel)

    def _recognised(self, reply: bytes) -> bool:
        """Name the service from a non-HTTP reply if we can; else keep it as the banner."""
        known = classify_reply_to_http(reply)
        if known is not None:
            self._learnt.apply_greeting(known, reply)
            return True
        self._learnt.banner = printable(reply)
        self._learnt.greeting_text = safe_text(
            normalise_text(reply), GREETING_TEXT_CHARS, keep_newlines=True
        )
        return False

    async def _try_mqtt(self, open_channel: http.ChannelOpener) -> None:
        try:
            async with open_channel() as channel:
                connack = await probe_mqtt(channel, channel.deadline)
        except PROBE_ERRORS:
            return
        if connack is not None:
            self._learnt.apply_mqtt(connack)

    def _open(self) -> contextlib.AbstractAsyncContextManager[AsyncStream]:
        return self._dialer.open_async(self._endpoint)

    @contextlib.asynccontextmanager
    async def _plain_channel(self) -> AsyncIterator[Channel]:
        async with self._open() as raw:
            yield raw

    @contextlib.asynccontextmanager
    async def _tls_channel(self) -> AsyncIterator[Channel]:
        async with self._open() as raw:
            outcome = await start_tls(raw, self._options.sni, raw.deadline)
            if outcome.channel is None:
                raise ProbeFailed(f"TLS handshake failed: {outcome.error}")
            yield outcome.channel


def standalone_budget(options: IdentifyOptions) -> ScanBudget:
    """For identification on its own (no scan around it): a budget from its options."""
    return ScanBudget(Limits(timeout=options.timeout,
                             host_connections=options.max_connections_per_host))


async def identify_all(
    address: IPAddress,
    ports: Sequence[int],
    options: IdentifyOptions,
    budget: ScanBudget | None = None,
) -> dict[int, PortResult]:
    """Probe the ports concurrently under `budget` (default: one built from `options`), as
    many at once as the host may have connections; each port gets `options.timeout` seconds
    from when its turn comes (waiting for a turn is not charged to it)."""
    budget = budget or standalone_budget(options)
    unique = list(dict.fromkeys(ports))
    turns = asyncio.Semaphore(budget.limits.host_connections)

    async def one(port: int) -> PortResult:
        async with turns:
            dialer = Dialer.for_port(budget).within(options.timeout)
            return await PortProbe(dialer, address, port, options).run()

    results = await asyncio.gather(*(one(port) for port in unique))
    return dict(zip(unique, results, strict=True))
