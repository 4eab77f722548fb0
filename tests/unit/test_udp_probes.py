"""UDP probes: the datagrams we build, the parsers (never raise on any bytes), the findings,
and the three states on loopback (closed by ICMP, open, open|filtered) in bounded time."""

from __future__ import annotations

import ipaddress
import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.discovery import udp
from scanner.discovery.udp import UdpOptions, UdpService, probe_udp, udp_findings
from scanner.net import RateBucket

ANY_BYTES = st.binary(max_size=2048)
LOOPBACK = ipaddress.ip_address("127.0.0.1")


# --- building requests -------------------------------------------------------------------


def test_dns_query_asks_recursion_for_one_name() -> None:
    query = udp.dns_query("example.com", ident=0x1234)
    assert query[:4] == b"\x12\x34\x01\x00"  # id, RD set, QR clear
    assert query[12:] == b"\x07example\x03com\x00\x00\x01\x00\x01"
    assert udp.parse_dns(query) is None  # a query is not a response


def test_snmp_request_is_a_v2c_get_for_sysdescr() -> None:
    request = udp.snmp_get()
    assert request[:2] == b"\x30" + bytes([len(request) - 2])
    assert b"\x04\x06public" in request and b"\xa0" in request
    assert b"\x06\x08\x2b\x06\x01\x02\x01\x01\x01\x00" in request  # 1.3.6.1.2.1.1.1.0


def test_ntp_and_other_requests() -> None:
    assert udp.NTP_CLIENT[0] & 0x07 == 3 and len(udp.NTP_CLIENT) == 48
    assert udp.NTP_READVAR[0] & 0x07 == 6 and udp.NTP_READVAR[1] == 2
    assert udp.NTP_MONLIST[:4] == b"\x17\x00\x03\x2a"
    assert udp.openvpn_reset()[0] >> 3 == 7 and len(udp.openvpn_reset()) == 14
    assert udp.memcached_stats().endswith(b"stats\r\n")
    assert udp.ssdp_search().startswith(b"M-SEARCH * HTTP/1.1\r\n")


# --- parsing answers ---------------------------------------------------------------------


def _dns_response(flags: int, answers: bytes = b"", ancount: int = 0) -> bytes:
    question = udp.encode_name("example.com") + b"\x00\x01\x00\x01"
    return struct.pack("!HHHHHH", 7, flags, 1, ancount, 0, 0) + question + answers


def test_parse_dns_answer_with_compression() -> None:
    record = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 300, 4) + bytes([192, 0, 2, 80])
    reply = udp.parse_dns(_dns_response(0x8180, record, 1))
    assert reply is not None and reply.recursion_available and reply.rcode == 0
    assert reply.answers == (("example.com", 1, "192.0.2.80"),)
    refused = udp.parse_dns(_dns_response(0x8105))
    assert refused is not None and refused.rcode == 5 and not refused.recursion_available


def test_pointer_loops_are_rejected() -> None:
    looping = struct.pack("!HHHHHH", 1, 0x8180, 1, 0, 0, 0) + b"\xc0\x0c"
    assert udp.parse_dns(looping) is None


def test_parse_snmp_response() -> None:
    value = b"Linux nas 6.1"
    varbind = udp._tlv(0x30, udp._ber_oid(udp.SYS_DESCR) + udp._tlv(0x04, value))
    pdu = udp._tlv(0xA2, udp._ber_int(1) + udp._ber_int(0) + udp._ber_int(0)
                   + udp._tlv(0x30, varbind))
    message = udp._tlv(0x30, udp._ber_int(1) + udp._tlv(0x04, b"public") + pdu)
    reply = udp.parse_snmp(message)
    assert reply == udp.SnmpReply("public", 0, "Linux nas 6.1")
    assert udp.parse_snmp(udp.snmp_get()) is None  # a GetRequest is not a response


def test_parse_ntp_and_ssdp_and_memcached() -> None:
    server = bytes([0x24, 2]) + bytes(10) + bytes([192, 0, 2, 1]) + bytes(32)
    assert udp.parse_ntp_time(server) == {"version": 4, "stratum": 2, "refid": "192.0.2.1"}
    control = struct.pack("!BBHHHHH", 0x16, 0x82, 1, 0, 0, 0, 16) + b'version="ntpd 4"'
    assert udp.parse_ntp_control([control]) == 'version="ntpd 4"'
    assert udp.is_ntp_private([bytes([0x97, 0, 3, 42]) + bytes(8)])
    ssdp = b"HTTP/1.1 200 OK\r\nST: upnp:rootdevice\r\nSERVER: Linux UPnP/1.0\r\n\r\n"
    assert udp.parse_ssdp(ssdp) == {"st": "upnp:rootdevice", "server": "Linux UPnP/1.0"}
    frame = bytes(8) + b"STAT pid 1\r\nSTAT version 1.6.9\r\nEND\r\n"
    assert udp.parse_memcached([frame]) == {"version": "1.6.9"}


@given(ANY_BYTES)
@settings(max_examples=400)
def test_parsers_never_raise(data: bytes) -> None:
    reply = udp.parse_dns(data)
    if reply is not None:
        assert len(reply.answers) <= 32
    udp.parse_snmp(data)
    udp.parse_ntp_time(data)
    udp.parse_ntp_control([data])
    udp.is_ntp_private([data])
    udp.parse_ssdp(data)
    udp.parse_openvpn(data)
    udp.parse_memcached([data])


@given(ANY_BYTES, st.integers(min_value=0, max_value=4096))
def test_name_decoder_is_bounded(data: bytes, offset: int) -> None:
    try:
        name, end = udp.decode_name(data, offset)
    except ValueError:
        return
    assert len(name) <= 64 * 64 and end <= len(data) + 2


# --- findings ----------------------------------------------------------------------------


def test_findings_only_for_evidence() -> None:
    resolver = UdpService(53, "dns", "open", details={"open_resolver": True, "query": "x",
                                                      "answers": ["x 1 192.0.2.1"]},
                          request_bytes=30, response_bytes=60)
    closed = UdpService(53, "dns", "open", details={"open_resolver": False})
    silent = UdpService(161, "snmp", "open|filtered")
    ntp = UdpService(123, "ntp", "open", details={"mode6_readvar": {}}, request_bytes=12,
                     response_bytes=480)
    findings = udp_findings([resolver, closed, silent, ntp])
    assert [(f.id, f.severity.value, f.protocol) for f in findings] == [
        ("dns.open_resolver", "high", "udp"), ("ntp.amplification", "medium", "udp"),
    ]
    assert "x40.0" in findings[1].evidence
    monlist = UdpService(123, "ntp", "open", details={"mode7_monlist": {}})
    assert udp_findings([monlist])[0].severity.value == "high"


def test_the_scan_bucket_spaces_the_datagrams() -> None:
    bucket = RateBucket(20.0, burst=1)  # the scan's bucket at --rate 20
    exchanges = [udp.Exchange("dns", f"q{index}", 9, b"x") for index in range(5)]
    started = time.monotonic()
    udp.run_exchanges(LOOPBACK, exchanges, UdpOptions(timeout=0.01, retries=0, bucket=bucket))
    assert time.monotonic() - started >= 4 / 20.0 - 0.01
    assert bucket.booked == 5


def test_port_entry_shape() -> None:
    entry = UdpService(1900, "ssdp", "open", banner="x", details={"responses": 2},
                       request_bytes=10, response_bytes=100).to_port_dict()
    assert entry["protocol"] == "udp" and entry["state"] == "open"
    assert entry["details"]["ssdp"] == {"responses": 2, "amplification": 10.0}


# --- loopback: the three states, in bounded time -----------------------------------------


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def resolver() -> Iterator[int]:
    """A loopback DNS responder that answers every query as an open resolver would."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(512)
            except TimeoutError:
                continue
            answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + bytes([192, 0, 2, 1])
            header = data[:2] + struct.pack("!HHHHH", 0x8180, 1, 1, 0, 0)
            sock.sendto(header + data[12:] + answer, peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(sock.getsockname()[1])
    finally:
        stop.set()
        thread.join()
        sock.close()


def test_loopback_states_and_time_bound(resolver: int) -> None:
    nothing = _free_udp_port()
    options = UdpOptions(timeout=0.3, retries=1, services=("dns", "snmp", "wireguard"),
                         ports={"dns": resolver, "snmp": nothing})
    started = time.monotonic()
    services = {service.service: service for service in probe_udp(LOOPBACK, options)}
    elapsed = time.monotonic() - started
    assert services["dns"].state == "open" and services["dns"].details["open_resolver"]
    assert services["snmp"].state == "closed"  # ICMP port unreachable on loopback
    assert services["wireguard"].state == "open|filtered"
    assert elapsed < 0.3 * 2 + 0.5
    assert [f.id for f in udp_findings(list(services.values()))] == ["dns.open_resolver"]
