"""The probe sequence for one port, and running it for all ports of an address at once.

What runs on a port is decided by how it behaves, never by its number:

1. connect and listen: a server that speaks first (SSH, FTP, SMTP, ...) names itself;
2. silent: an HTTP GET on the same connection. Most services that wait for the client are
   web servers, and on a plain-HTTP port a TLS ClientHello makes Home Assistant's aiohttp
   log an 11-line traceback. A GET on a TLS port is a quiet handshake failure (Python's
   asyncio) or one line (nginx's "plain HTTP request was sent to HTTPS port" answer, read as
   "try TLS"; mosquitto's "OpenSSL Error ... http request");
3. not HTTP: a TLS ClientHello on a fresh connection. TLS records back mean TLS on any port;
   the handshake completes and we ask again inside (HTTP, or a greeting);
4. neither: the MQTT probe (a CONNECT the broker must refuse before auth).

On the ports that conventionally carry TLS (TLS_FIRST_PORTS: 443, 8443, 8883, 993...) steps 2
and 3 swap, as nmap orders its probes by `sslports`: the port number orders the questions,
never what the answer means. So nginx and mosquitto log no plain-text request on their TLS
ports, and Home Assistant on 8123 no ClientHello.

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

from scanner.core.text import safe_text
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
from scanner.identification.tls import TlsOutcome, looks_like_tls, session_summary, start_tls
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
from scanner.net.codecs.ssh import IDENTIFICATION_LINE
from scanner.net.http import HttpResponse, NotHttp
from scanner.net.http_parse import Origin, head_text
from scanner.targets import IPAddress

GREETING_TEXT_CHARS = 1024
# Ports where TLS is the convention (IANA's "over TLS" assignments, and what self-hosters use
# for TLS): a silent port among them gets a ClientHello before a GET (only the order changes).
TLS_FIRST_PORTS = frozenset({
    443, 465, 563, 636, 853, 989, 990, 992, 993, 994, 995, 2376, 4443, 5061, 5223, 5349,
    5671, 5986, 6514, 6697, 8443, 8531, 8883, 9443, 10443,
})
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
class _TlsContact:
    """A ClientHello's outcome, and the answer to a GET inside the session if there was one."""

    outcome: TlsOutcome
    inside: HttpResponse | NotHttp | None = None


@dataclass(frozen=True)
class _FirstContact:
    """The first connection's outcome: a greeting, or (silent) the answer to the first probe."""

    greeting: bytes = b""
    closed_silently: bool = False
    plain: HttpResponse | NotHttp | None = None
    tls: _TlsContact | None = None


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
                " HTTP GET, TLS ClientHello, MQTT CONNECT)"
            )

    def _origin(self, scheme: str) -> Origin:
        return Origin(scheme, self._host, self._port)

    async def _identify(self) -> None:
        tls_first = self._port in TLS_FIRST_PORTS
        contact = await self._first_contact(tls_first)
        if contact.greeting:
            self._learnt.apply_greeting(classify_greeting(contact.greeting), contact.greeting)
            return
        if contact.closed_silently:
            self._learnt.note("accepts connections and closes them without a word")
        if contact.tls is not None and contact.tls.outcome.spoke_tls:
            await self._inside_tls(contact.tls.outcome, contact.tls.inside)
            return
        plain = contact.plain
        if plain is None and (tls_first or contact.closed_silently):
            plain = await self._plain_get()  # not asked yet, or it hung up on an idle client
        if isinstance(plain, HttpResponse) and not http.asks_for_tls(plain):
            origin = self._origin("http")
            self._learnt.apply_http(await http.survey(plain, self._plain_channel, origin), "http")
            return
        if (isinstance(plain, NotHttp) and plain.data and not looks_like_tls(plain.data[:3])
                and self._named_by_reply(plain.data)):
            return
        if not tls_first:
            tls = await self._tls_contact()
            if tls is not None and tls.outcome.spoke_tls:
                await self._inside_tls(tls.outcome, tls.inside)
                return
        await self._try_mqtt(self._plain_channel)

    async def _first_contact(self, tls_first: bool) -> _FirstContact:
        """Listen for a greeting; a silent port gets its first probe on the same connection:
        a GET, or on the ports that conventionally carry TLS a ClientHello."""
        async with self._open() as raw:
            wait = min(greeting_wait(raw.rtt, seconds_left(raw.deadline)), raw.read_timeout)
            greeting = await read_greeting(raw, deadline_after(wait))
            if greeting.data.startswith(b"SSH-") and not greeting.closed:
                # identify ourselves before hanging up: sshd then logs a plain close
                with contextlib.suppress(*PROBE_ERRORS):
                    await raw.send(IDENTIFICATION_LINE)
            if greeting.data or greeting.closed:
                return _FirstContact(greeting=greeting.data, closed_silently=greeting.closed)
            if tls_first:
                with contextlib.suppress(*PROBE_ERRORS):
                    return _FirstContact(tls=await self._start_tls_on(raw))
                return _FirstContact()
            plain: HttpResponse | NotHttp | None = None
            with contextlib.suppress(*PROBE_ERRORS):
                first_byte = share_of_remaining(raw, 0.75, floor=0.0, ceiling=60.0)
                plain = await http.exchange(raw, self._origin("http"), "/", first_byte)
            return _FirstContact(plain=plain)

    async def _plain_get(self) -> HttpResponse | NotHttp | None:
        try:
            async with self._plain_channel() as channel:
                first_byte = share_of_remaining(channel, 0.75, floor=0.0, ceiling=60.0)
                return await http.exchange(channel, self._origin("http"), "/", first_byte)
        except PROBE_ERRORS:
            return None

    async def _tls_contact(self) -> _TlsContact | None:
        """A ClientHello on a fresh connection (see _start_tls_on)."""
        try:
            async with self._open() as raw:
                return await self._start_tls_on(raw)
        except PROBE_ERRORS:
            return None  # it hung up on the ClientHello: not TLS

    async def _start_tls_on(self, raw: AsyncStream) -> _TlsContact:
        """A ClientHello, and a GET inside if the handshake completes.

        Servers answer a ClientHello in one round trip; one that has not started to by then
        is not doing TLS."""
        round_trips = 4 * raw.rtt
        tls_deadline = share_of_remaining(raw, 0.5, floor=round_trips,
                                          ceiling=max(1.0, round_trips))
        outcome = await start_tls(raw, self._options.sni, tls_deadline)
        if outcome.channel is None:
            return _TlsContact(outcome)
        self._learnt.apply_tls(session_summary(outcome.channel))
        first_byte = share_of_remaining(outcome.channel, 0.7, floor=0.0, ceiling=60.0)
        inside: HttpResponse | NotHttp | None = None
        with contextlib.suppress(*PROBE_ERRORS):
            inside = await http.exchange(outcome.channel, self._origin("https"), "/", first_byte)
        return _TlsContact(outcome, inside)

    def _named_by_reply(self, reply: bytes) -> bool:
        """A non-HTTP answer to our GET: a late greeting (an SMTP pre-greet delay), or a
        service that answers any line (Redis' -ERR)."""
        late = classify_greeting(reply)
        if late.service and late.service != "http":
            self._learnt.apply_greeting(late, reply)
            return True
        return self._recognised(reply)

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
