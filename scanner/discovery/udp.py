"""UDP services (`--udp`): which answer, and which can be abused from the internet.

UDP has no handshake, so a port is only known to be open when a service answers a request in
its own protocol. Each probe below is the smallest harmless request of its protocol:

    dns        53  a recursive query (RD=1) for one name: answered with RA=1 and an answer =
                   an open resolver (amplification, cache snooping)
    ntp       123  a client request (mode 3); mode 6 READVAR and mode 7 MON_GETLIST (monlist):
                   answered = usable for amplification
    snmp      161  SNMPv2c GET sysDescr.0 with community "public"
    ssdp     1900  a unicast M-SEARCH (ssdp:all); we never follow the LOCATION it names
    mdns     5353  a legacy unicast query for _services._dns-sd._udp.local
    openvpn  1194  P_CONTROL_HARD_RESET_CLIENT_V2 (tls-auth/tls-crypt servers stay silent)
    memcached 11211 "stats" in a UDP frame (the 2018 amplification vector)
    wireguard 51820 nothing is sent: WireGuard answers only peers that know its public key, so
                   an open WireGuard port cannot be told from a filtered one, by design

States: "open" (it answered), "closed" (ICMP port unreachable), "open|filtered" (no answer
in time: either nothing listens and the firewall drops, or the service ignored us).
Everything is sent to the one address scanned, from one socket per probe, with a fixed
number of resends; the whole run takes at most timeout x (retries + 1) seconds (plus the
pacing when a rate cap is given: about 10 datagrams per round).

    from scanner.discovery.udp import probe_udp, udp_findings
    services = probe_udp(ip_address("203.0.113.10"))
    findings = udp_findings(services)
"""

from __future__ import annotations

import functools
import os
import re
import selectors
import socket
import struct
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from scanner.core.findings import Finding, FindingSpec, Severity
from scanner.core.text import safe_text
from scanner.net.budget import RateBucket
from scanner.targets import IPAddress

OPEN, CLOSED, OPEN_FILTERED = "open", "closed", "open|filtered"
MAX_DATAGRAMS = 32  # per probe: an amplifier may send many; we keep counting only this far
MAX_BYTES = 64 * 1024  # per probe
DATAGRAM = 65535
TEXT_CHARS = 300

# --- findings ----------------------------------------------------------------------------

OPEN_RESOLVER = FindingSpec(
    "dns.open_resolver", Severity.HIGH,
    "The DNS server resolves names for anyone on the internet (open resolver)",
    ("https://www.cisa.gov/news-events/alerts/2013/03/29/dns-amplification-attacks",),
)
NTP_AMPLIFICATION = FindingSpec(
    "ntp.amplification", Severity.MEDIUM,
    "The NTP server answers control queries from the internet (amplification)",
    ("https://www.cisa.gov/news-events/alerts/2014/01/13/"
     "ntp-amplification-attacks-using-cve-2013-5211",),
)
SSDP_EXPOSED = FindingSpec(
    "ssdp.exposed", Severity.HIGH,
    "UPnP/SSDP answers discovery requests from the internet",
    ("https://www.cisa.gov/news-events/alerts/2014/01/17/udp-based-amplification-attacks",),
)
SNMP_PUBLIC = FindingSpec(
    "snmp.public_community", Severity.HIGH,
    "SNMP answers the default community \"public\" from the internet",
    ("https://www.cisa.gov/news-events/alerts/2017/06/05/reducing-risk-snmp-abuse",),
)
MDNS_EXPOSED = FindingSpec(
    "mdns.exposed", Severity.MEDIUM,
    "mDNS answers queries from the internet: device and service names leak",
    ("https://www.rfc-editor.org/rfc/rfc6762#section-5.5",),
)
MEMCACHED_UDP = FindingSpec(
    "memcached.udp_amplification", Severity.HIGH,
    "memcached answers over UDP from the internet (massive amplification)",
    ("https://www.cisa.gov/news-events/alerts/2018/02/27/memcached-ddos-exploitation",),
)
OPENVPN_DETECTED = FindingSpec(
    "openvpn.detected", Severity.INFO,
    "An OpenVPN server answers without tls-auth/tls-crypt",
    ("https://openvpn.net/community-resources/hardening-openvpn-security/",),
)
FINDINGS: tuple[FindingSpec, ...] = (  # part of scanner.core.catalogue
    OPEN_RESOLVER, NTP_AMPLIFICATION, SSDP_EXPOSED, SNMP_PUBLIC, MDNS_EXPOSED, MEMCACHED_UDP,
    OPENVPN_DETECTED,
)


# --- options and results -----------------------------------------------------------------

DEFAULT_PORTS: Mapping[str, int] = {
    "dns": 53, "ntp": 123, "snmp": 161, "ssdp": 1900, "mdns": 5353, "openvpn": 1194,
    "memcached": 11211, "wireguard": 51820,
}


@dataclass(frozen=True)
class UdpOptions:
    timeout: float = 1.5  # seconds to wait for answers after each send
    retries: int = 1  # resends to probes still silent (UDP loses packets)
    dns_name: str = "example.com"  # the name the recursion test asks for
    # The scan's rate bucket (every datagram takes a token from it); None: no cap.
    bucket: RateBucket | None = field(default=None, compare=False)
    services: tuple[str, ...] = tuple(DEFAULT_PORTS)
    ports: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))

    def port_of(self, service: str) -> int:
        return int(self.ports.get(service, DEFAULT_PORTS[service]))


@dataclass(frozen=True)
class UdpService:
    """One UDP service's port entry: maps onto a `ports` entry of the JSON report."""

    port: int
    service: str
    state: str  # "open", "closed", "open|filtered"
    product: str | None = None
    version: str | None = None
    banner: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    request_bytes: int = 0
    response_bytes: int = 0
    notes: tuple[str, ...] = ()

    @property
    def amplification(self) -> float | None:
        if not self.request_bytes or not self.response_bytes:
            return None
        return round(self.response_bytes / self.request_bytes, 1)

    def to_port_dict(self) -> dict[str, Any]:
        details = {self.service: dict(self.details)}
        if self.amplification is not None:
            details[self.service]["amplification"] = self.amplification
        if self.notes:
            details[self.service]["notes"] = list(self.notes)
        return {
            "port": self.port, "protocol": "udp", "state": self.state, "service": self.service,
            "product": self.product, "version": self.version, "tls": False,
            "banner": self.banner, "details": details,
        }


@dataclass
class Exchange:
    """One probe datagram to one port, and what came back."""

    service: str
    name: str
    port: int
    payload: bytes
    answers: list[bytes] = field(default_factory=list)
    refused: bool = False  # ICMP port unreachable
    sends: int = 0

    @property
    def received(self) -> int:
        return sum(len(answer) for answer in self.answers)


# --- the network part --------------------------------------------------------------------


def run_exchanges(address: IPAddress, exchanges: Sequence[Exchange], options: UdpOptions) -> None:
    """Send every probe (resending to silent ones), collect answers until the deadline."""
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    selector = selectors.DefaultSelector()
    sockets: list[socket.socket] = []
    try:
        for exchange in exchanges:
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sockets.append(sock)
            sock.setblocking(False)
            sock.connect((str(address), exchange.port))  # connected: ICMP errors reach us
            selector.register(sock, selectors.EVENT_READ, exchange)
        pace = options.bucket
        for attempt in range(max(0, options.retries) + 1):
            settled = _settled_services(exchanges)
            for sock, exchange in zip(sockets, exchanges, strict=True):
                if attempt == 0 or exchange.service not in settled:
                    if pace:  # the datagram leaves at the moment the bucket admits it
                        pace.take(emit=functools.partial(_send, sock, exchange))
                    else:
                        _send(sock, exchange)
            _collect(selector, time.monotonic() + options.timeout)
            if len(_settled_services(exchanges)) == len({e.service for e in exchanges}):
                break
    finally:
        selector.close()
        for sock in sockets:
            sock.close()


def _settled_services(exchanges: Sequence[Exchange]) -> set[str]:
    """Services that answered one of their probes (or refused): no resend for any of them
    (an NTP server that answers mode 3 but ignores mode 7 simply has no monlist)."""
    return {exchange.service for exchange in exchanges if exchange.answers or exchange.refused}


def _send(sock: socket.socket, exchange: Exchange) -> None:
    try:
        sock.send(exchange.payload)
        exchange.sends += 1
    except ConnectionRefusedError:
        exchange.refused = True
    except OSError:
        pass


def _collect(selector: selectors.BaseSelector, deadline: float) -> None:
    while (left := deadline - time.monotonic()) > 0:
        for key, _ in selector.select(left):
            exchange: Exchange = key.data
            sock: socket.socket = key.fileobj  # type: ignore[assignment]
            try:
                data = sock.recv(DATAGRAM)
            except ConnectionRefusedError:
                exchange.refused = True
                continue
            except OSError:
                continue
            if len(exchange.answers) < MAX_DATAGRAMS and exchange.received < MAX_BYTES:
                exchange.answers.append(data[:MAX_BYTES])


# --- DNS (also mDNS): building and reading messages, pure --------------------------------


def dns_query(name: str, qtype: int = 1, recursion: bool = True, ident: int | None = None) -> bytes:
    ident = int.from_bytes(os.urandom(2), "big") if ident is None else ident
    flags = 0x0100 if recursion else 0
    header = struct.pack("!HHHHHH", ident, flags, 1, 0, 0, 0)
    return header + encode_name(name) + struct.pack("!HH", qtype, 1)


def encode_name(name: str) -> bytes:
    out = bytearray()
    for label in name.strip(".").split("."):
        raw = label.encode("idna") if label else b""
        if not raw or len(raw) > 63:
            raise ValueError(f"bad DNS label in {name!r}")
        out += bytes([len(raw)]) + raw
    return bytes(out) + b"\x00"


def decode_name(data: bytes, offset: int) -> tuple[str, int]:
    """A (possibly compressed) name at `offset`: (name, offset after it). ValueError if bad."""
    labels: list[str] = []
    jumps = 0
    end: int | None = None
    while True:
        if offset >= len(data):
            raise ValueError("name runs past the message")
        length = data[offset]
        if length == 0:
            offset += 1
            break
        if length & 0xC0 == 0xC0:
            if offset + 1 >= len(data):
                raise ValueError("truncated pointer")
            jumps += 1
            if jumps > 32:
                raise ValueError("pointer loop")
            if end is None:
                end = offset + 2
            offset = ((length & 0x3F) << 8) | data[offset + 1]
            continue
        if length > 63 or offset + 1 + length > len(data):
            raise ValueError("bad label")
        labels.append(data[offset + 1 : offset + 1 + length].decode("ascii", "replace"))
        if len(labels) > 64:
            raise ValueError("too many labels")
        offset += 1 + length
    return ".".join(labels), (end if end is not None else offset)


@dataclass(frozen=True)
class DnsAnswer:
    ident: int
    authoritative: bool
    truncated: bool
    recursion_desired: bool
    recursion_available: bool
    rcode: int
    answers: tuple[tuple[str, int, str], ...]  # (name, type, data as text)


RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


def parse_dns(data: bytes) -> DnsAnswer | None:
    """A DNS response (QR=1); None if it is not one. Never raises."""
    try:
        return _parse_dns(data)
    except (ValueError, struct.error, IndexError):
        return None


def _parse_dns(data: bytes) -> DnsAnswer | None:
    if len(data) < 12:
        return None
    ident, flags, qdcount, ancount, _, _ = struct.unpack("!HHHHHH", data[:12])
    if not flags & 0x8000:
        return None
    offset = 12
    for _ in range(min(qdcount, 4)):
        _, offset = decode_name(data, offset)
        offset += 4
    answers = []
    for _ in range(min(ancount, 32)):
        name, offset = decode_name(data, offset)
        rtype, _, _, length = struct.unpack("!HHIH", data[offset : offset + 10])
        offset += 10
        rdata = data[offset : offset + length]
        if len(rdata) < length:
            raise ValueError("truncated record")
        answers.append((safe_text(name, 120), rtype, _rdata_text(data, offset, rtype, rdata)))
        offset += length
    return DnsAnswer(
        ident=ident, authoritative=bool(flags & 0x0400), truncated=bool(flags & 0x0200),
        recursion_desired=bool(flags & 0x0100), recursion_available=bool(flags & 0x0080),
        rcode=flags & 0x000F, answers=tuple(answers),
    )


def _rdata_text(message: bytes, offset: int, rtype: int, rdata: bytes) -> str:
    if rtype == 1 and len(rdata) == 4:
        return socket.inet_ntop(socket.AF_INET, rdata)
    if rtype == 28 and len(rdata) == 16:
        return socket.inet_ntop(socket.AF_INET6, rdata)
    if rtype in (2, 5, 12):  # NS, CNAME, PTR: a name, possibly compressed against the message
        try:
            return safe_text(decode_name(message, offset)[0], 120)
        except ValueError:
            return ""
    if rtype == 16:
        return safe_text(rdata[1 : 1 + rdata[0]] if rdata else b"", 120)
    return f"{len(rdata)} bytes"


# --- NTP, pure ---------------------------------------------------------------------------

NTP_CLIENT = bytes([0x23]) + bytes(47)  # LI 0, version 4, mode 3 (client)
NTP_READVAR = struct.pack("!BBHHHHH", 0x16, 0x02, 1, 0, 0, 0, 0)  # version 2, mode 6, READVAR
NTP_MONLIST = bytes([0x17, 0x00, 0x03, 0x2A]) + bytes(44)  # mode 7, XNTPD, MON_GETLIST_1
_NTP_VERSION_VAR = re.compile(r'version="([^"]{1,120})"')


def parse_ntp_time(data: bytes) -> dict[str, Any] | None:
    """A mode 4 (server) reply: stratum, version and reference id."""
    if len(data) < 48 or data[0] & 0x07 != 4:
        return None
    stratum = data[1]
    refid = data[12:16]
    ref = (
        safe_text(refid.rstrip(b"\x00"), 8) if stratum <= 1
        else socket.inet_ntop(socket.AF_INET, refid)
    )
    return {"version": (data[0] >> 3) & 0x07, "stratum": stratum, "refid": ref}


def parse_ntp_control(answers: Sequence[bytes]) -> str | None:
    """Text of mode 6 responses (R bit set, READVAR), joined; None if there are none."""
    parts = []
    for data in answers:
        if len(data) >= 12 and data[0] & 0x07 == 6 and data[1] & 0x80 and data[1] & 0x1F == 2:
            count = struct.unpack("!H", data[10:12])[0]
            parts.append(data[12 : 12 + count].decode("ascii", "replace"))
    return "".join(parts) if parts else None


def is_ntp_private(answers: Sequence[bytes]) -> bool:
    """Mode 7 responses (R bit set) to the monlist request."""
    return any(len(data) >= 8 and data[0] & 0x87 == 0x87 for data in answers)


# --- SNMP (BER), pure --------------------------------------------------------------------

SYS_DESCR = "1.3.6.1.2.1.1.1.0"


def _ber_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    raw = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _tlv(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + _ber_length(len(value)) + value


def _ber_int(value: int) -> bytes:
    raw = value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big", signed=True)
    return _tlv(0x02, raw)


def _ber_oid(oid: str) -> bytes:
    parts = [int(part) for part in oid.split(".")]
    out = bytearray([40 * parts[0] + parts[1]])
    for part in parts[2:]:
        chunk = [part & 0x7F]
        part >>= 7
        while part:
            chunk.append(0x80 | (part & 0x7F))
            part >>= 7
        out += bytes(reversed(chunk))
    return _tlv(0x06, bytes(out))


def snmp_get(community: str = "public", oid: str = SYS_DESCR, request_id: int = 1) -> bytes:
    varbind = _tlv(0x30, _ber_oid(oid) + b"\x05\x00")
    pdu = _tlv(0xA0, _ber_int(request_id) + _ber_int(0) + _ber_int(0) + _tlv(0x30, varbind))
    return _tlv(0x30, _ber_int(1) + _tlv(0x04, community.encode()) + pdu)  # version 1 = v2c


def read_tlv(data: bytes, offset: int) -> tuple[int, bytes, int]:
    """(tag, value, offset after it); ValueError when malformed or truncated."""
    if offset + 2 > len(data):
        raise ValueError("truncated TLV")
    tag, first = data[offset], data[offset + 1]
    offset += 2
    if first & 0x80:
        count = first & 0x7F
        if count == 0 or count > 4 or offset + count > len(data):
            raise ValueError("bad length")
        length = int.from_bytes(data[offset : offset + count], "big")
        offset += count
    else:
        length = first
    if offset + length > len(data):
        raise ValueError("value runs past the message")
    return tag, data[offset : offset + length], offset + length


@dataclass(frozen=True)
class SnmpReply:
    community: str
    error_status: int
    value: str | None


def parse_snmp(data: bytes) -> SnmpReply | None:
    """A GetResponse (tag 0xA2) with its first varbind's value as text. Never raises."""
    try:
        tag, message, _ = read_tlv(data, 0)
        if tag != 0x30:
            return None
        _, _, offset = read_tlv(message, 0)  # version
        _, community, offset = read_tlv(message, offset)
        tag, pdu, _ = read_tlv(message, offset)
        if tag != 0xA2:
            return None
        _, _, offset = read_tlv(pdu, 0)  # request id
        _, status, offset = read_tlv(pdu, offset)
        _, _, offset = read_tlv(pdu, offset)  # error index
        _, varbinds, _ = read_tlv(pdu, offset)
        _, varbind, _ = read_tlv(varbinds, 0)
        _, _, inner = read_tlv(varbind, 0)  # the OID
        value_tag, value, _ = read_tlv(varbind, inner)
    except ValueError:
        return None
    text = safe_text(value, TEXT_CHARS) if value_tag == 0x04 else None
    return SnmpReply(safe_text(community, 64), int.from_bytes(status or b"\x00", "big"), text)


# --- SSDP, OpenVPN, memcached, pure ------------------------------------------------------


def ssdp_search() -> bytes:
    return (
        b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\n"
        b"MX: 1\r\nST: ssdp:all\r\n\r\n"
    )


def parse_ssdp(data: bytes) -> dict[str, str] | None:
    text = data[:4096].decode("utf-8", "replace")
    if not text.startswith("HTTP/1.1 200"):
        return None
    headers = {}
    for line in text.split("\r\n")[1:40]:
        name, sep, value = line.partition(":")
        if sep and name.strip().lower() in ("server", "st", "usn", "location"):
            headers[name.strip().lower()] = safe_text(value.strip(), 200)
    return headers if headers else None


def openvpn_reset() -> bytes:
    """P_CONTROL_HARD_RESET_CLIENT_V2, key id 0, a random session id, no ack, packet id 0."""
    return bytes([7 << 3]) + os.urandom(8) + b"\x00" + struct.pack("!I", 0)


def parse_openvpn(data: bytes) -> bool:
    """P_CONTROL_HARD_RESET_SERVER_V2 (opcode 8) with a session id."""
    return len(data) >= 10 and data[0] >> 3 == 8


def memcached_stats() -> bytes:
    return struct.pack("!HHHH", int.from_bytes(os.urandom(2), "big"), 0, 1, 0) + b"stats\r\n"


def parse_memcached(answers: Sequence[bytes]) -> dict[str, str] | None:
    text = "".join(data[8:].decode("ascii", "replace") for data in answers if len(data) > 8)
    stats = dict(re.findall(r"STAT (\w{1,40}) (\S{1,80})\r?\n", text[:MAX_BYTES]))
    if "pid" not in stats:
        return None
    return {key: safe_text(stats[key], 40) for key in ("version", "uptime") if key in stats}


# --- probes as data: which datagrams each service gets ------------------------------------


@dataclass(frozen=True)
class UdpProbe:
    service: str
    requests: Callable[[UdpOptions], tuple[tuple[str, bytes], ...]]
    judge: Callable[[Mapping[str, Exchange], UdpOptions], UdpService]


def _state(exchanges: Mapping[str, Exchange], answered: bool) -> str:
    if answered:
        return OPEN
    if any(exchange.refused for exchange in exchanges.values()):
        return CLOSED
    return OPEN_FILTERED


def _silent_note(service: str) -> str:
    return (f"no {service} answer: nothing listens and the firewall drops, or the service "
            "ignores this request (open|filtered: cannot be told apart from outside)")


def _base(service: str, port: int, exchanges: Mapping[str, Exchange], answered: bool,
          **kwargs: Any) -> UdpService:
    state = _state(exchanges, answered)
    notes = kwargs.pop("notes", ())
    if state == OPEN_FILTERED:
        notes = (*notes, _silent_note(service))
    return UdpService(port=port, service=service, state=state, notes=tuple(notes), **kwargs)


def _judge_dns(exchanges: Mapping[str, Exchange], options: UdpOptions) -> UdpService:
    exchange = exchanges["recursive_query"]
    replies = [reply for reply in map(parse_dns, exchange.answers) if reply is not None]
    port = options.port_of("dns")
    if not replies:
        return _base("dns", port, exchanges, False)
    reply = replies[0]
    recursed = reply.recursion_available and reply.rcode == 0 and bool(reply.answers)
    details = {
        "query": safe_text(options.dns_name, 120), "recursion_available": reply.recursion_available,
        "authoritative": reply.authoritative, "rcode": RCODES.get(reply.rcode, str(reply.rcode)),
        "answers": [f"{name} {rtype} {text}" for name, rtype, text in reply.answers[:5]],
        "open_resolver": recursed,
    }
    return _base("dns", port, exchanges, True, details=details,
                 request_bytes=len(exchange.payload), response_bytes=exchange.received)


def _judge_ntp(exchanges: Mapping[str, Exchange], options: UdpOptions) -> UdpService:
    port = options.port_of("ntp")
    time_reply = next(
        (parsed for parsed in map(parse_ntp_time, exchanges["client"].answers) if parsed), None
    )
    control = parse_ntp_control(exchanges["readvar"].answers)
    monlist = is_ntp_private(exchanges["monlist"].answers)
    answered = bool(time_reply or control or monlist)
    details: dict[str, Any] = dict(time_reply or {})
    version = None
    if control is not None:
        found = _NTP_VERSION_VAR.search(control)
        version = safe_text(found.group(1), 120) if found else None
        details["mode6_readvar"] = {"request_bytes": len(exchanges["readvar"].payload),
                                    "response_bytes": exchanges["readvar"].received}
    if monlist:
        details["mode7_monlist"] = {"request_bytes": len(exchanges["monlist"].payload),
                                    "response_bytes": exchanges["monlist"].received}
    amplifying = exchanges["monlist"] if monlist else exchanges["readvar"]
    return _base("ntp", port, exchanges, answered, details=details, version=version,
                 banner=version, request_bytes=len(amplifying.payload) if control or monlist else 0,
                 response_bytes=amplifying.received if control or monlist else 0)


def _judge_snmp(exchanges: Mapping[str, Exchange], options: UdpOptions) -> UdpService:
    exchange = exchanges["get_sysdescr_public"]
    reply = next((parsed for parsed in map(parse_snmp, exchange.answers) if parsed), None)
    port = options.port_of("snmp")
    if reply is None:
        return _base("snmp", port, exchanges, False, notes=(
            "a server configured with another community drops requests for \"public\" "
            "silently, so this is not proof that nothing listens",))
    details = {"community": reply.community, "error_status": reply.error_status,
               "sysDescr": reply.value}
    return _base("snmp", port, exchanges, True, details=details, banner=reply.value,
                 request_bytes=len(exchange.payload), response_bytes=exchange.received)


def _judge_ssdp(exchanges: Mapping[str, Exchange], options: UdpOptions) -> UdpService:
    exchange = exchanges["m_search"]
    replies = [parsed for parsed in map(parse_ssdp, exchange.answers) if parsed]
    port = options.port_of("ssdp")
    if not replies:
        return _base("ssdp", port, exchanges, False)
    server = next((reply["server"] for reply in replies if "server" in reply), None)
    details = {
        "responses": len(replies),
        "server": server,
        "locations": sorted({reply["location"] for reply in replies if "location" in reply})[:5],
        "search_targets": sorted({reply["st"] for reply in replies if "st" in reply})[:10],
    }
    return _base("ssdp", port, exchanges, True, details=details, banner=server,
                 request_bytes=len(exchange.payload), response_bytes=exchange.received,
                 notes=("the LOCATION URLs are never fetched (they often point into the LAN)",))


def _judge_mdns(exchanges: Mapping[str, Exchange], options: UdpOptions) -> UdpService:
    exchange = exchanges["services_query"]
    replies = [reply for reply in map(parse_dns, exchange.answers) if reply is not None]
    port = options.port_of("mdns")
    if not replies:
        return _base("mdns", port, exchanges, False)
    services = sorted({text for reply in replies for _, _, text in reply.answers if text})[:20]
    return _base("mdns", port, exchanges, True, details={"services": services},
                 request_bytes=len(exchange.payload), response_bytes=exchange.received)


def _judge_openvpn(exchanges: Mapping[str, Exchange], options: UdpOptions) -> UdpService:
    exchange = exchanges["hard_reset"]
    answered = any(parse_openvpn(data) for data in exchange.answers)
    notes = () if answered else (
        "an OpenVPN server with tls-auth or tls-crypt drops unauthenticated packets: silence "
        "does not mean nothing listens",)
    return _base("openvpn", options.port_of("openvpn"), exchanges, answered,
                 details={"tls_auth": False} if answered else {}, notes=notes,
                 product="OpenVPN" if answered else None)


def _judge_memcached(exchanges: Mapping[str, Exchange], options: UdpOptions) -> UdpService:
    exchange = exchanges["stats"]
    stats = parse_memcached(exchange.answers)
    return _base("memcached", options.port_of("memcached"), exchanges, stats is not None,
                 details=stats or {}, version=(stats or {}).get("version"),
                 product="memcached" if stats else None,
                 request_bytes=len(exchange.payload) if stats else 0,
                 response_bytes=exchange.received if stats else 0)


def _judge_wireguard(exchanges: Mapping[str, Exchange], options: UdpOptions) -> UdpService:
    return UdpService(
        port=options.port_of("wireguard"), service="wireguard", state=OPEN_FILTERED,
        details={"probed": False},
        notes=("WireGuard is silent by design: it answers only packets made with the server's "
               "public key, so nothing was sent and an open WireGuard port cannot be told from "
               "a filtered one from outside (this is a strength, not a risk)",),
    )


PROBES: tuple[UdpProbe, ...] = (
    UdpProbe("dns", lambda o: (("recursive_query", dns_query(o.dns_name)),), _judge_dns),
    UdpProbe("ntp", lambda o: (("client", NTP_CLIENT), ("readvar", NTP_READVAR),
                               ("monlist", NTP_MONLIST)), _judge_ntp),
    UdpProbe("snmp", lambda o: (("get_sysdescr_public", snmp_get()),), _judge_snmp),
    UdpProbe("ssdp", lambda o: (("m_search", ssdp_search()),), _judge_ssdp),
    UdpProbe("mdns", lambda o: (("services_query", dns_query("_services._dns-sd._udp.local", 12,
                                                              recursion=False)),), _judge_mdns),
    UdpProbe("openvpn", lambda o: (("hard_reset", openvpn_reset()),), _judge_openvpn),
    UdpProbe("memcached", lambda o: (("stats", memcached_stats()),), _judge_memcached),
    UdpProbe("wireguard", lambda o: (), _judge_wireguard),
)


def probe_udp(address: IPAddress, options: UdpOptions | None = None) -> list[UdpService]:
    """Probe the UDP services in `options.services` on `address`; one entry per service."""
    options = options or UdpOptions()
    chosen = [probe for probe in PROBES if probe.service in options.services]
    per_service: dict[str, dict[str, Exchange]] = {}
    for probe in chosen:
        port = options.port_of(probe.service)
        per_service[probe.service] = {
            name: Exchange(probe.service, name, port, payload)
            for name, payload in probe.requests(options)
        }
    everything = [exchange for group in per_service.values() for exchange in group.values()]
    if everything:
        run_exchanges(address, everything, options)
    return [probe.judge(per_service[probe.service], options) for probe in chosen]


# --- findings ----------------------------------------------------------------------------


def udp_findings(services: Sequence[UdpService]) -> list[Finding]:
    """The findings the UDP services' answers justify (nothing for silence)."""
    findings: list[Finding] = []
    for service in services:
        if service.state != OPEN:
            continue
        maker = _FINDING_MAKERS.get(service.service)
        if maker is not None:
            findings += maker(service)
    return findings


def _finding(spec: FindingSpec, service: UdpService, evidence: str, remediation: str,
             severity: Severity | None = None) -> Finding:
    return spec.finding(port=service.port, evidence=safe_text(evidence, 600),
                        remediation=remediation, severity=severity, protocol="udp")


def _amplified(service: UdpService) -> str:
    factor = service.amplification
    return (f" ({service.request_bytes} bytes in, {service.response_bytes} bytes out: "
            f"x{factor})") if factor else ""


def _dns_findings(service: UdpService) -> list[Finding]:
    if not service.details.get("open_resolver"):
        return []
    answers = "; ".join(service.details.get("answers", [])[:3])
    return [_finding(
        OPEN_RESOLVER, service,
        f"A recursive query for {service.details.get('query')} was answered with recursion "
        f"available and {len(service.details.get('answers', []))} answer(s): {answers}"
        + _amplified(service),
        "Do not forward port 53 (UDP and TCP) to a resolver (Pi-hole, AdGuard Home, unbound, "
        "dnsmasq): restrict it to the LAN (access-control / listening interface), or use "
        "DNS-over-HTTPS/TLS behind authentication if you need DNS away from home.",
    )]


def _ntp_findings(service: UdpService) -> list[Finding]:
    if "mode7_monlist" in service.details:
        return [_finding(
            NTP_AMPLIFICATION, service,
            "The monlist (mode 7 MON_GETLIST) request was answered" + _amplified(service),
            "Upgrade ntpd (4.2.7p26+ removed monlist) or add 'disable monitor' and "
            "'restrict default noquery'; do not forward UDP 123.",
            severity=Severity.HIGH,
        )]
    if "mode6_readvar" in service.details:
        return [_finding(
            NTP_AMPLIFICATION, service,
            "A mode 6 READVAR control query was answered"
            + (f" (version {service.version})" if service.version else "") + _amplified(service),
            "Add 'restrict default kod nomodify nopeer noquery limited' (ntpd/ntpsec) so control "
            "queries are refused, and do not forward UDP 123 unless you run a public server.",
        )]
    return []


def _ssdp_findings(service: UdpService) -> list[Finding]:
    return [_finding(
        SSDP_EXPOSED, service,
        f"M-SEARCH was answered {service.details.get('responses')} time(s); server: "
        f"{service.details.get('server')}" + _amplified(service),
        "Disable UPnP on the WAN side of the router and do not forward UDP 1900; SSDP is a "
        "reflection vector and LOCATION leaks LAN addresses.",
    )]


def _snmp_findings(service: UdpService) -> list[Finding]:
    return [_finding(
        SNMP_PUBLIC, service,
        "SNMPv2c GET sysDescr.0 with community \"public\" answered: "
        f"{service.details.get('sysDescr')}"
        + _amplified(service),
        "Change the community (or use SNMPv3 with authentication) and restrict SNMP to the LAN "
        "(e.g. rocommunity <secret> 192.168.0.0/16 in snmpd.conf); never forward UDP 161.",
    )]


def _mdns_findings(service: UdpService) -> list[Finding]:
    services = ", ".join(service.details.get("services", [])[:6]) or "an answer"
    return [_finding(
        MDNS_EXPOSED, service,
        f"A unicast mDNS query for _services._dns-sd._udp.local was answered: {services}"
        + _amplified(service),
        "mDNS must stay on the LAN: do not forward UDP 5353, and configure the responder "
        "(avahi, HA's zeroconf) to ignore queries from other networks.",
    )]


def _openvpn_findings(service: UdpService) -> list[Finding]:
    return [_finding(
        OPENVPN_DETECTED, service,
        "P_CONTROL_HARD_RESET_CLIENT_V2 without an HMAC was answered with "
        "P_CONTROL_HARD_RESET_SERVER_V2: the server does not use tls-auth/tls-crypt",
        "Fine to expose a VPN; add tls-crypt (or tls-auth) so the server stays silent to "
        "anyone without the key (this also hides it from scanners and blunts DoS).",
    )]


def _memcached_findings(service: UdpService) -> list[Finding]:
    return [_finding(
        MEMCACHED_UDP, service,
        "\"stats\" over UDP was answered" + _amplified(service),
        "Start memcached with -U 0 (UDP off, the default since 1.5.6), bind it to the LAN, "
        "and never forward port 11211.",
    )]


_FINDING_MAKERS: dict[str, Callable[[UdpService], list[Finding]]] = {
    "dns": _dns_findings, "ntp": _ntp_findings, "ssdp": _ssdp_findings,
    "snmp": _snmp_findings, "mdns": _mdns_findings, "openvpn": _openvpn_findings,
    "memcached": _memcached_findings,
}
