"""The syn engine's pure packet logic: templates vs scapy, reply parsing, cookies, BPF."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.discovery.base import PortState
from scanner.discovery.syn_packets import (
    DROP_ALL_PROGRAM,
    REPLY_SNAP_LENGTH,
    TCP_ACK,
    TCP_FIN,
    TCP_RST,
    TCP_SYN,
    BpfInstruction,
    ReplyCheck,
    TcpReply,
    build_syn_template,
    build_syn_with_scapy,
    classify_reply,
    cookie_table,
    ones_complement_sum,
    pack_bpf_program,
    packed_address,
    parse_ipv4_reply,
    parse_tcp_segment,
    pseudo_header,
    reply_filter_program,
)

ports = st.integers(min_value=1, max_value=65535)
seqs = st.integers(min_value=0, max_value=0xFFFFFFFF)
ipv4s = st.ip_addresses(v=4)
ipv6s = st.ip_addresses(v=6)

SOURCE_V4 = ipaddress.IPv4Address("203.0.113.1")
TARGET_V4 = ipaddress.IPv4Address("203.0.113.10")
SOURCE_V6 = ipaddress.IPv6Address("2001:db8:1::1")
TARGET_V6 = ipaddress.IPv6Address("2001:db8:1::10")
OUR_PORT = 40000
SECRET = bytes(range(16))


# --- templates ------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(source=ipv4s, target=ipv4s, source_port=ports, port=ports, seq=seqs)
def test_ipv4_probe_equals_what_scapy_builds(source, target, source_port, port, seq):
    template = build_syn_template(source, target, source_port)
    expected = build_syn_with_scapy(source, target, source_port, port, seq)
    assert template.probe(port, seq) == expected


@settings(max_examples=300, deadline=None)
@given(source=ipv6s, target=ipv6s, source_port=ports, port=ports, seq=seqs)
def test_ipv6_probe_equals_the_tcp_segment_scapy_builds(source, target, source_port, port, seq):
    template = build_syn_template(source, target, source_port)
    expected = build_syn_with_scapy(source, target, source_port, port, seq)[40:]
    assert template.probe(port, seq) == expected


@settings(max_examples=500)
@given(port=ports, seq=seqs)
def test_patched_checksum_verifies_for_both_families(port, seq):
    for source, target in ((SOURCE_V4, TARGET_V4), (SOURCE_V6, TARGET_V6)):
        template = build_syn_template(source, target, OUR_PORT)
        packet = template.probe(port, seq)
        segment = packet[template.tcp_offset :]
        # A correct checksum makes the sum over pseudo-header and segment all ones.
        assert ones_complement_sum(pseudo_header(source, target, len(segment)) + segment) == 0xFFFF
        sport, dport, sent_seq, _ack, _offset, flags = struct.unpack_from("!HHIIBB", segment)
        assert (sport, dport, sent_seq, flags) == (OUR_PORT, port, seq, TCP_SYN)


@pytest.mark.parametrize(("source", "target"), [(SOURCE_V4, TARGET_V4), (SOURCE_V6, TARGET_V6)])
def test_checksum_edge_where_the_sum_is_all_ones(source, target):
    # The one place ones'-complement arithmetic has two zeros: a sum of 0xFFFF must give a
    # checksum of 0x0000, exactly as scapy writes it.
    template = build_syn_template(source, target, OUR_PORT)
    segment = template.probe(1, 0)[template.tcp_offset :]
    constant = (~struct.unpack_from("!H", segment, 16)[0] & 0xFFFF) - 1  # sum without port 1
    for port, seq in ((1, 0xFFFE - constant), (0xFFFF, (0xFFFF << 16) | (0xFFFF - constant))):
        packet = template.probe(port, seq)
        assert packet[template.tcp_offset + 16 : template.tcp_offset + 18] == b"\x00\x00"
        reference = build_syn_with_scapy(source, target, OUR_PORT, port, seq)
        assert packet == reference[len(reference) - len(packet) :]


def test_template_looks_like_an_ordinary_syn():
    packet = build_syn_template(SOURCE_V4, TARGET_V4, OUR_PORT).probe(443, 12345)
    assert len(packet) == 44  # IPv4 20 + TCP 20 + MSS option 4
    assert packet[9] == 6 and packet[8] == 64  # TCP, TTL 64
    assert packet[40:44] == b"\x02\x04\x05\xb4"  # MSS 1460


def test_pseudo_header_rejects_mixed_families():
    with pytest.raises(ValueError):
        pseudo_header(SOURCE_V4, TARGET_V6, 24)


# --- cookies --------------------------------------------------------------------------------


def test_cookie_table_covers_every_port_and_depends_on_all_inputs():
    table = cookie_table(SECRET, TARGET_V4.packed, OUR_PORT)
    assert len(table) == 65536
    assert list(table) == list(cookie_table(SECRET, TARGET_V4.packed, OUR_PORT))
    assert all(0 <= cookie <= 0xFFFFFFFF for cookie in table[:1000])
    assert len(set(table)) > 65000  # 32-bit values: a handful of collisions at most
    others = (
        cookie_table(bytes(16), TARGET_V4.packed, OUR_PORT),
        cookie_table(SECRET, SOURCE_V4.packed, OUR_PORT),
        cookie_table(SECRET, TARGET_V4.packed, OUR_PORT + 1),
    )
    for other in others:
        assert sum(a == b for a, b in zip(table, other, strict=True)) < 10


def test_cookie_table_refuses_a_short_secret():
    with pytest.raises(ValueError):
        cookie_table(b"short", TARGET_V4.packed, OUR_PORT)


# --- replies --------------------------------------------------------------------------------

COOKIES = cookie_table(SECRET, TARGET_V4.packed, OUR_PORT)
PROBED = frozenset({22, 80, 443, 8443})
CHECK_V4 = ReplyCheck({TARGET_V4.packed: 0}, OUR_PORT, COOKIES, PROBED)
CHECK_V6 = ReplyCheck({TARGET_V6.packed: 0}, OUR_PORT, COOKIES, PROBED)
SYN_ACK, RST_ACK = TCP_SYN | TCP_ACK, TCP_RST | TCP_ACK


def tcp_segment(source_port: int, destination_port: int, ack: int, flags: int) -> bytes:
    return struct.pack("!HHIIBBHHH", source_port, destination_port, 777, ack, 0x50, flags, 0, 0, 0)


def ipv4_datagram(
    source: bytes, segment: bytes, *, fragment: int = 0, options: bytes = b""
) -> bytes:
    header_length = 20 + len(options)
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x40 | header_length // 4, 0, header_length + len(segment), 1, fragment, 64, 6, 0,
        source, SOURCE_V4.packed,
    )  # fmt: skip
    return header + options + segment


def valid_ack(port: int) -> int:
    return (COOKIES[port] + 1) & 0xFFFFFFFF


def reply_v4(port: int, flags: int, *, ack: int | None = None, **kwargs: object) -> bytes:
    segment = tcp_segment(port, OUR_PORT, valid_ack(port) if ack is None else ack, flags)
    return ipv4_datagram(TARGET_V4.packed, segment, **kwargs)  # type: ignore[arg-type]


def classify_v4(datagram: bytes) -> PortState | None:
    reply = parse_ipv4_reply(datagram)
    return None if reply is None else classify_reply(reply, CHECK_V4)


def test_valid_syn_ack_means_open_and_rst_means_closed_v4():
    assert classify_v4(reply_v4(22, SYN_ACK)) is PortState.OPEN
    assert classify_v4(reply_v4(8443, RST_ACK)) is PortState.CLOSED


def test_replies_built_by_scapy_are_understood():
    from scapy.layers.inet import IP, TCP
    from scapy.layers.inet6 import IPv6

    tcp = TCP(sport=443, dport=OUR_PORT, flags="SA", seq=1, ack=valid_ack(443))
    ipv4 = bytes(IP(src=str(TARGET_V4), dst=str(SOURCE_V4)) / tcp)
    assert classify_v4(ipv4) is PortState.OPEN
    ipv6 = bytes(IPv6(src=str(TARGET_V6), dst=str(SOURCE_V6)) / tcp)
    reply = parse_tcp_segment(ipv6[40:], packed_address(str(TARGET_V6)) or b"")
    assert reply is not None and classify_reply(reply, CHECK_V6) is PortState.OPEN


def test_ipv4_header_options_are_skipped():
    datagram = reply_v4(80, SYN_ACK, options=b"\x01\x01\x01\x00")  # NOP NOP NOP EOL
    assert classify_v4(datagram) is PortState.OPEN


@pytest.mark.parametrize(
    ("datagram", "why"),
    [
        (reply_v4(22, SYN_ACK, ack=COOKIES[22]), "ack is the cookie, not cookie + 1"),
        (reply_v4(22, SYN_ACK, ack=valid_ack(80)), "ack belongs to another port"),
        (reply_v4(22, TCP_RST), "RST without ACK cannot be validated"),
        (reply_v4(22, TCP_SYN), "SYN without ACK"),
        (reply_v4(22, TCP_ACK), "a bare ACK"),
        (reply_v4(22, SYN_ACK | TCP_FIN), "SYN-FIN-ACK is nonsense"),
        (reply_v4(21, SYN_ACK), "from a port we did not probe"),
        (reply_v4(22, SYN_ACK, fragment=0x2000), "a fragment (MF)"),
        (reply_v4(22, SYN_ACK, fragment=0x0001), "a fragment (offset)"),
        (
            ipv4_datagram(SOURCE_V4.packed, tcp_segment(22, OUR_PORT, valid_ack(22), SYN_ACK)),
            "from another address",
        ),
        (
            ipv4_datagram(TARGET_V4.packed, tcp_segment(22, OUR_PORT + 1, valid_ack(22), SYN_ACK)),
            "to another port of ours",
        ),
    ],
)
def test_invalid_replies_are_ignored_v4(datagram: bytes, why: str):
    assert classify_v4(datagram) is None, why


def test_ipv6_reply_checks_source_address_and_cookie():
    segment = tcp_segment(443, OUR_PORT, valid_ack(443), SYN_ACK)
    good = parse_tcp_segment(segment, TARGET_V6.packed)
    assert good is not None and classify_reply(good, CHECK_V6) is PortState.OPEN
    spoofed = parse_tcp_segment(segment, SOURCE_V6.packed)
    assert spoofed is not None and classify_reply(spoofed, CHECK_V6) is None
    # The same segment claiming to come from the IPv4 target is not ours either.
    from_v4 = TcpReply(TARGET_V4.packed, 443, OUR_PORT, valid_ack(443), SYN_ACK)
    assert classify_reply(from_v4, CHECK_V6) is None


def test_port_zero_and_out_of_table_ports_are_ignored():
    check = ReplyCheck({TARGET_V4.packed: 0}, OUR_PORT, COOKIES, range(0, 70000))
    port_zero = TcpReply(TARGET_V4.packed, 0, OUR_PORT, valid_ack(0), SYN_ACK)
    assert classify_reply(port_zero, check) is None


@pytest.mark.parametrize("length", range(0, 41))
def test_truncated_replies_are_ignored(length: int):
    datagram = reply_v4(22, SYN_ACK)
    assert len(datagram) == 40
    expected = PortState.OPEN if length == 40 else None
    assert classify_v4(datagram[:length]) is expected


@settings(max_examples=2000)
@given(data=st.binary(max_size=200))
def test_garbage_never_raises(data: bytes):
    for reply in (parse_ipv4_reply(data), parse_tcp_segment(data, TARGET_V6.packed)):
        if reply is not None:
            assert classify_reply(reply, CHECK_V4) in (None, PortState.OPEN, PortState.CLOSED)


@settings(max_examples=2000)
@given(
    prefix=st.binary(min_size=0, max_size=60),
    data=st.binary(max_size=100),
    version_ihl=st.integers(0, 255),
)
def test_garbage_that_looks_like_ipv4_never_raises(prefix: bytes, data: bytes, version_ihl: int):
    datagram = bytes([version_ihl]) + prefix + data
    reply = parse_ipv4_reply(datagram)
    if reply is not None:
        classify_reply(reply, CHECK_V4)


@given(port=ports, ack=seqs, flags=st.integers(0, 255), source=st.binary(min_size=4, max_size=4))
def test_only_an_exact_cookie_match_is_accepted(port, ack, flags, source):
    reply = TcpReply(source, port, OUR_PORT, ack, flags)
    state = classify_reply(reply, CHECK_V4)
    if state is not None:
        assert source == TARGET_V4.packed and port in PROBED and ack == valid_ack(port)
        assert flags & TCP_ACK


def test_packed_address_rejects_garbage():
    assert packed_address("2001:db8:1::10") == TARGET_V6.packed
    assert packed_address("fe80::1%eth0") == ipaddress.ip_address("fe80::1").packed
    assert packed_address("not an address") is None


# --- BPF ------------------------------------------------------------------------------------


def run_bpf(program: list[BpfInstruction], packet: bytes) -> int:
    """A tiny interpreter for the classic-BPF subset our programs use (linux/filter.h)."""
    accumulator = index = pc = 0
    while True:
        code, jump_true, jump_false, k = program[pc]
        pc += 1
        if code in (0x28, 0x30, 0x48, 0x50):  # ld{h,b} [k] / [x + k]
            offset = k + (index if code & 0x40 else 0)  # mode: 0x20 absolute, 0x40 indexed
            size = {0x08: 2, 0x10: 1}[code & 0x18]  # size: 0x08 half word, 0x10 byte
            if offset + size > len(packet):
                return 0  # out-of-bounds load: the kernel drops the packet
            accumulator = int.from_bytes(packet[offset : offset + size], "big")
        elif code == 0xB1:  # ldxb 4 * ([k] & 0xf)
            if k >= len(packet):
                return 0
            index = 4 * (packet[k] & 0x0F)
        elif code in (0x15, 0x45):  # jeq / jset
            taken = accumulator == k if code == 0x15 else bool(accumulator & k)
            pc += jump_true if taken else jump_false
        elif code == 0x06:
            return k
        else:
            raise AssertionError(f"opcode {code:#x} not expected")


def test_ipv4_filter_keeps_only_segments_to_our_port_with_ack():
    program = reply_filter_program(OUR_PORT, ip_header_included=True)
    assert run_bpf(program, reply_v4(22, SYN_ACK)) == REPLY_SNAP_LENGTH
    assert run_bpf(program, reply_v4(22, RST_ACK, options=b"\x01" * 8)) == REPLY_SNAP_LENGTH
    assert run_bpf(program, reply_v4(22, TCP_SYN)) == 0
    assert run_bpf(program, reply_v4(22, SYN_ACK, fragment=0x2000)) == 0
    other = ipv4_datagram(TARGET_V4.packed, tcp_segment(22, OUR_PORT + 1, 1, SYN_ACK))
    assert run_bpf(program, other) == 0


def test_ipv6_filter_reads_the_bare_segment():
    program = reply_filter_program(OUR_PORT, ip_header_included=False)
    assert run_bpf(program, tcp_segment(22, OUR_PORT, 1, RST_ACK)) == REPLY_SNAP_LENGTH
    assert run_bpf(program, tcp_segment(22, OUR_PORT, 1, TCP_RST)) == 0
    assert run_bpf(program, tcp_segment(22, OUR_PORT - 1, 1, SYN_ACK)) == 0
    assert run_bpf(DROP_ALL_PROGRAM, tcp_segment(22, OUR_PORT, 1, SYN_ACK)) == 0


@given(data=st.binary(max_size=120), header=st.booleans())
def test_filters_jump_only_inside_the_program(data: bytes, header: bool):
    program = reply_filter_program(OUR_PORT, ip_header_included=header)
    assert run_bpf(program, data) in (0, REPLY_SNAP_LENGTH)


def test_bpf_program_packs_as_struct_sock_filter():
    program = reply_filter_program(OUR_PORT, ip_header_included=True)
    packed = pack_bpf_program(program)
    assert len(packed) == 8 * len(program)
    assert struct.unpack_from("=HBBI", packed, 8 * 4) == program[4]
    with pytest.raises(ValueError):
        reply_filter_program(0, ip_header_included=True)
