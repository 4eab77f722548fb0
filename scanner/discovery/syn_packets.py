"""Pure packet logic of the syn engine: SYN templates, SYN cookies, reply parsing, BPF programs.

Nothing here touches the network, so all of it is unit-testable. The one expensive import,
scapy, happens lazily inside `build_syn_with_scapy` and pulls in only the layers needed.

Per probe the engine does not build a packet: it takes the bytes scapy built once and patches
the destination port, the sequence number (our SYN cookie) and the TCP checksum. The checksum
is the ones'-complement sum of the constant part of the segment (computed once) plus the three
16-bit words that change (RFC 1071; the incremental-update idea of RFC 1624).
"""

from __future__ import annotations

import hashlib
import ipaddress
import struct
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass

from scanner.discovery.base import PortState
from scanner.targets import IPAddress

TCP_PROTOCOL = 6
TCP_FIN, TCP_SYN, TCP_RST, TCP_ACK = 0x01, 0x02, 0x04, 0x10

# A small window and a plain MSS option, as nmap sends: an ordinary-looking SYN that every
# stack answers, without options (timestamps, SACK) that some middleboxes treat specially.
SYN_WINDOW = 1024
SYN_TTL = 64
MSS_IPV4 = 1460
MSS_IPV6 = 1440

IPV4_HEADER_MIN = 20
IPV6_HEADER_LENGTH = 40
TCP_HEADER_MIN = 20

_PORT_COUNT = 65536
_COOKIE_BYTES = 4
_UINT32 = 0xFFFFFFFF


# --- checksums ------------------------------------------------------------------------------


def ones_complement_sum(data: bytes) -> int:
    """RFC 1071 sum of big-endian 16-bit words, folded to 16 bits (odd length: zero-padded)."""
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def pseudo_header(source: IPAddress, destination: IPAddress, tcp_length: int) -> bytes:
    """The pseudo-header the TCP checksum covers (RFC 793 for IPv4, RFC 8200 §8.1 for IPv6)."""
    if source.version != destination.version:
        raise ValueError("source and destination must be of the same IP version")
    if source.version == 4:
        return source.packed + destination.packed + struct.pack("!xBH", TCP_PROTOCOL, tcp_length)
    return source.packed + destination.packed + struct.pack("!I3xB", tcp_length, TCP_PROTOCOL)


# --- the SYN template -----------------------------------------------------------------------


class SynTemplate:
    """A SYN packet built once; `probe(port, seq)` returns it for one destination port.

    `packet` is what goes on the wire through our socket: the whole IPv4 packet (the socket
    has IP_HDRINCL), or the bare TCP segment for IPv6 (the kernel writes the IPv6 header, as
    IPv6 raw sockets have no IP_HDRINCL; we still compute the TCP checksum ourselves over the
    IPv6 pseudo-header, so both families share this code and the unit tests check both).
    """

    __slots__ = ("_constant_sum", "_head", "_layout", "_middle", "_tail", "tcp_offset")

    def __init__(self, packet: bytes, tcp_offset: int, pseudo: bytes) -> None:
        if len(packet) < tcp_offset + TCP_HEADER_MIN:
            raise ValueError("template too short to hold a TCP header")
        self.tcp_offset = tcp_offset
        # Layout: [head: IP header + source port][dport][seq][middle: ack, offset, flags,
        # window][checksum][tail: urgent pointer + options].
        self._head = packet[: tcp_offset + 2]
        self._middle = packet[tcp_offset + 8 : tcp_offset + 16]
        self._tail = packet[tcp_offset + 18 :]
        self._layout = struct.Struct(
            f"!{len(self._head)}sHI{len(self._middle)}sH{len(self._tail)}s"
        )
        constant_segment = bytearray(packet[tcp_offset:])
        constant_segment[2:8] = bytes(6)  # destination port and sequence number vary
        constant_segment[16:18] = bytes(2)  # the checksum field counts as zero while summing
        self._constant_sum = ones_complement_sum(pseudo + bytes(constant_segment))

    def probe(self, port: int, seq: int) -> bytes:
        """The template for destination `port` with sequence number `seq` (hot path)."""
        total = self._constant_sum + port + (seq >> 16) + (seq & 0xFFFF)
        total = (total & 0xFFFF) + (total >> 16)  # at most 0x3FFFC before: two folds suffice
        total = (total & 0xFFFF) + (total >> 16)
        return self._layout.pack(self._head, port, seq, self._middle, ~total & 0xFFFF, self._tail)


def build_syn_with_scapy(
    source: IPAddress, destination: IPAddress, source_port: int, destination_port: int, seq: int
) -> bytes:
    """The complete SYN packet (IP header included) as scapy builds it: the reference."""
    # Imported here, and only these layers: scapy costs ~0.25 s to import, which counts
    # against the scan's wall time, and the connect engine must not pay it at all.
    from scapy.layers.inet import IP, TCP

    tcp = TCP(
        sport=source_port,
        dport=destination_port,
        seq=seq,
        flags="S",
        window=SYN_WINDOW,
        options=[("MSS", MSS_IPV4 if destination.version == 4 else MSS_IPV6)],
    )
    if destination.version == 4:
        return bytes(IP(src=str(source), dst=str(destination), ttl=SYN_TTL, flags="DF") / tcp)
    from scapy.layers.inet6 import IPv6

    return bytes(IPv6(src=str(source), dst=str(destination), hlim=SYN_TTL) / tcp)


def build_syn_template(source: IPAddress, destination: IPAddress, source_port: int) -> SynTemplate:
    """Build the scan's template once with scapy (port 0, seq 0: both are patched per probe)."""
    packet = build_syn_with_scapy(source, destination, source_port, 0, 0)
    if destination.version == 4:
        header_length = (packet[0] & 0x0F) * 4
        pseudo = pseudo_header(source, destination, len(packet) - header_length)
        return SynTemplate(packet, header_length, pseudo)
    segment = packet[IPV6_HEADER_LENGTH:]
    return SynTemplate(segment, 0, pseudo_header(source, destination, len(segment)))


# --- SYN cookies ----------------------------------------------------------------------------


def cookie_table(secret: bytes, destination: bytes, source_port: int) -> Sequence[int]:
    """The SYN cookie (initial sequence number) for every destination port 0-65535.

    A keyed hash of (destination address, destination port, source port): SHAKE-256 keyed
    with the per-scan secret and fed the address and source port gives a keystream; the
    cookie of port P is its P-th 32-bit word. One call costs ~1 ms for all 65,536 ports
    (a hash call per port costs ~45 ms), and an off-path sender cannot guess any cookie.
    """
    if len(secret) < 16:
        raise ValueError("the cookie secret must have at least 16 bytes")
    material = b"exposure-syn-cookie\x00" + secret + destination + source_port.to_bytes(2, "big")
    stream = hashlib.shake_256(material).digest(_PORT_COUNT * _COOKIE_BYTES)
    return memoryview(stream).cast("I")  # native byte order: only unpredictability matters


# --- replies --------------------------------------------------------------------------------

_TCP_HEAD = struct.Struct("!HHIIBB")  # source port, destination port, seq, ack, offset, flags


@dataclass(frozen=True, slots=True)
class TcpReply:
    """The fields of an incoming TCP segment that the SYN-cookie check needs."""

    source: bytes  # packed source address (4 or 16 bytes)
    source_port: int
    destination_port: int
    ack: int
    flags: int


def parse_ipv4_reply(datagram: bytes) -> TcpReply | None:
    """Parse an IPv4 datagram (header included) as read from a raw socket; None if not ours.

    Replies are hostile remote data: every offset is bounds-checked, nothing raises.
    """
    if len(datagram) < IPV4_HEADER_MIN or datagram[0] >> 4 != 4:
        return None
    header_length = (datagram[0] & 0x0F) * 4
    if header_length < IPV4_HEADER_MIN or datagram[9] != TCP_PROTOCOL:
        return None
    if int.from_bytes(datagram[6:8], "big") & 0x3FFF:  # a fragment (MF or offset): no header
        return None
    return parse_tcp_segment(datagram[header_length:], bytes(datagram[12:16]))


def parse_tcp_segment(segment: bytes, source: bytes) -> TcpReply | None:
    """Parse a bare TCP segment (what an IPv6 raw socket returns) from address `source`."""
    if len(segment) < TCP_HEADER_MIN:
        return None
    source_port, destination_port, _seq, ack, offset, flags = _TCP_HEAD.unpack_from(segment)
    if offset >> 4 < TCP_HEADER_MIN // 4:
        return None
    return TcpReply(source, source_port, destination_port, ack, flags)


@dataclass(frozen=True)
class ReplyCheck:
    """What a reply must match to be believed: one of our targets, our port, our cookie.

    One scan pass covers several targets with one source port: the cookie of (target, port)
    is `cookies[port] ^ targets[target]`, a keystream word per port (cookie_table) and a keyed
    32-bit mask per target (cookie_mask). An off-path sender can guess neither; a scanned host
    sees its own cookies only, which tell it nothing of another target's mask.
    """

    targets: Mapping[bytes, int]  # packed target address -> its cookie mask
    source_port: int  # our (reserved) source port
    cookies: Sequence[int]  # the keystream word per destination port, from cookie_table
    probed: Container[int]  # destination ports this scan probes (a set: `in` means membership)


def cookie_mask(secret: bytes, destination: bytes) -> int:
    """The per-target part of the SYN cookie: a keyed 32-bit word."""
    material = b"exposure-syn-mask\x00" + secret + destination
    return int.from_bytes(hashlib.shake_256(material).digest(4), "big")


def classify_reply(reply: TcpReply, check: ReplyCheck) -> PortState | None:
    """OPEN for a valid SYN-ACK, CLOSED for a valid RST, None for anything else.

    Valid means: from a target, from a port we probed, to our source port, and acknowledging
    its cookie + 1 (which only someone who saw our SYN can know). A RST without ACK carries no
    acknowledgement number, so it cannot be validated and is ignored.
    """
    port = reply.source_port
    if reply.destination_port != check.source_port:
        return None
    mask = check.targets.get(reply.source)
    if mask is None or not 0 < port < len(check.cookies) or port not in check.probed:
        return None
    if reply.ack != ((check.cookies[port] ^ mask) + 1) & _UINT32 or not reply.flags & TCP_ACK:
        return None
    if reply.flags & TCP_RST:
        return PortState.CLOSED
    if reply.flags & TCP_SYN and not reply.flags & TCP_FIN:
        return PortState.OPEN
    return None


def packed_address(text: str) -> bytes | None:
    """The packed form of an address string from recvfrom, None if it is not one."""
    try:
        return ipaddress.ip_address(text.split("%", 1)[0]).packed
    except ValueError:
        return None


# --- classic BPF ----------------------------------------------------------------------------

# struct sock_filter { __u16 code; __u8 jt; __u8 jf; __u32 k; } (linux/filter.h)
BpfInstruction = tuple[int, int, int, int]
_BPF_LD_H_ABS = 0x28
_BPF_LD_H_IND = 0x48
_BPF_LD_B_ABS = 0x30
_BPF_LD_B_IND = 0x50
_BPF_LDX_B_MSH = 0xB1  # X = 4 * (packet[k] & 0x0f): the IPv4 header length
_BPF_JEQ_K = 0x15
_BPF_JSET_K = 0x45
_BPF_RET_K = 0x06

# Bytes of each accepted packet that the kernel keeps: longest IPv4 header (60) + the TCP
# fields we read (14), rounded up. Trimming keeps a flood of big segments out of our buffer.
REPLY_SNAP_LENGTH = 96


def reply_filter_program(source_port: int, *, ip_header_included: bool) -> list[BpfInstruction]:
    """A classic BPF program accepting only unfragmented TCP segments to `source_port` with ACK.

    `ip_header_included`: an IPv4 raw socket sees the IP header first; an IPv6 raw socket
    sees the TCP header at offset 0. The cookie check still runs in Python: this only keeps
    the kernel from waking us for traffic that cannot be a reply.
    """
    if not 0 < source_port < _PORT_COUNT:
        raise ValueError(f"bad source port {source_port}")
    accept, drop = (_BPF_RET_K, 0, 0, REPLY_SNAP_LENGTH), (_BPF_RET_K, 0, 0, 0)
    if ip_header_included:
        return [
            (_BPF_LD_H_ABS, 0, 0, 6),  # IPv4 flags + fragment offset
            (_BPF_JSET_K, 6, 0, 0x3FFF),  # a fragment -> drop
            (_BPF_LDX_B_MSH, 0, 0, 0),  # X = IPv4 header length
            (_BPF_LD_H_IND, 0, 0, 2),  # TCP destination port
            (_BPF_JEQ_K, 0, 3, source_port),
            (_BPF_LD_B_IND, 0, 0, 13),  # TCP flags
            (_BPF_JSET_K, 0, 1, TCP_ACK),
            accept,
            drop,
        ]
    return [
        (_BPF_LD_H_ABS, 0, 0, 2),  # TCP destination port
        (_BPF_JEQ_K, 0, 3, source_port),
        (_BPF_LD_B_ABS, 0, 0, 13),  # TCP flags
        (_BPF_JSET_K, 0, 1, TCP_ACK),
        accept,
        drop,
    ]


DROP_ALL_PROGRAM: list[BpfInstruction] = [(_BPF_RET_K, 0, 0, 0)]


def pack_bpf_program(program: Sequence[BpfInstruction]) -> bytes:
    """The program as the kernel's array of struct sock_filter (native byte order)."""
    return b"".join(struct.pack("=HBBI", *instruction) for instruction in program)
