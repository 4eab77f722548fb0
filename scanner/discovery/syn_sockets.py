"""The syn engine's sockets: raw sender and filtered raw receiver, source address and port.

Everything here only opens and configures sockets; nothing sends a packet.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import ipaddress
import socket
import struct
from collections.abc import Sequence

from scanner.discovery.syn_packets import (
    DROP_ALL_PROGRAM,
    BpfInstruction,
    pack_bpf_program,
    reply_filter_program,
)
from scanner.errors import ScanFailed
from scanner.targets import IPAddress

# From asm-generic/socket.h; Python's socket module does not export them.
SO_ATTACH_FILTER = 26
SO_SNDBUFFORCE = 32
SO_RCVBUFFORCE = 33

# Big buffers: at 150k pps a burst must never find the send queue full, and replies must wait
# safely while we are busy sending. The FORCE variants need CAP_NET_ADMIN (we have root);
# otherwise the plain options give what net.core.[rw]mem_max allows.
SEND_BUFFER_BYTES = 4 * 1024 * 1024
RECEIVE_BUFFER_BYTES = 8 * 1024 * 1024

SocketAddress = tuple[str, int] | tuple[str, int, int, int]  # what sendto/bind take

NO_PRIVILEGES_MESSAGE = (
    "the syn engine needs raw sockets (root or CAP_NET_RAW); run as root or use --engine connect"
)


def raw_sockets_available() -> bool:
    """Can this process open the raw sockets the syn engine needs? (Sends nothing.)"""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW):
            pass
        with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP):
            pass
    except OSError:
        return False
    return True


def family_of(address: IPAddress) -> socket.AddressFamily:
    return socket.AF_INET6 if address.version == 6 else socket.AF_INET


def socket_address(address: IPAddress, port: int = 0) -> SocketAddress:
    """The sockaddr tuple Python's socket functions expect for `address`."""
    if address.version == 6:
        return (str(address), port, 0, 0)
    return (str(address), port)


def source_address_for(destination: IPAddress) -> IPAddress:
    """The local address the kernel would use towards `destination`.

    connect() on a UDP socket only looks up the route; no packet is sent.
    """
    with socket.socket(family_of(destination), socket.SOCK_DGRAM) as udp:
        try:
            udp.connect(socket_address(destination, 9))
        except OSError as error:
            raise ScanFailed(f"no route to {destination}: {error.strerror or error}") from None
        local = str(udp.getsockname()[0]).split("%", 1)[0]
    return ipaddress.ip_address(local)


def reserve_source_port(source: IPAddress) -> socket.socket:
    """A bound, never listening TCP socket: its port is ours for as long as it stays open.

    The kernel then hands that port to no other connection, so every segment arriving at it
    is a reply to our probes. (The kernel still answers our SYN-ACKs with a RST, since no
    socket listens or connects there: polite, it frees the target's half-open connection.)
    """
    reservation = socket.socket(family_of(source), socket.SOCK_STREAM)
    try:
        reservation.bind(socket_address(source, 0))
    except OSError as error:
        reservation.close()
        raise ScanFailed(f"cannot reserve a source port on {source}: {error}") from None
    return reservation


def open_sender(source: IPAddress) -> socket.socket:
    """A non-blocking raw socket that sends our prebuilt packets.

    IPv4: IPPROTO_RAW, which implies IP_HDRINCL: we send the whole packet from the template.
    IPv6: a raw TCP socket bound to `source` (the address our checksum was computed with);
    we send the TCP segment and the kernel writes the IPv6 header.
    """
    if source.version == 4:
        sender = _raw_socket(socket.AF_INET, socket.IPPROTO_RAW)
    else:
        sender = _raw_socket(socket.AF_INET6, socket.IPPROTO_TCP)
        try:
            sender.bind(socket_address(source))
            # A raw TCP socket also receives every incoming TCP segment; the receiver reads
            # those, so this one drops them all instead of filling its buffer.
            attach_filter(sender, DROP_ALL_PROGRAM)
        except OSError as error:
            sender.close()
            raise ScanFailed(f"cannot set up the raw sender on {source}: {error}") from None
    _set_buffer(sender, SO_SNDBUFFORCE, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
    sender.setblocking(False)  # a full queue must give EAGAIN/ENOBUFS, never block the scan
    return sender


def open_receiver(source: IPAddress, source_port: int) -> socket.socket:
    """A non-blocking raw TCP socket that the kernel feeds only segments to `source_port`."""
    family = family_of(source)
    receiver = _raw_socket(family, socket.IPPROTO_TCP)
    try:
        receiver.bind(socket_address(source))
        program = reply_filter_program(source_port, ip_header_included=family == socket.AF_INET)
        attach_filter(receiver, program)
    except OSError as error:
        receiver.close()
        raise ScanFailed(f"cannot set up the raw receiver on {source}: {error}") from None
    _set_buffer(receiver, SO_RCVBUFFORCE, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
    receiver.setblocking(False)
    _discard_queued(receiver)  # what arrived before the filter was attached
    return receiver


def attach_filter(sock: socket.socket, program: Sequence[BpfInstruction]) -> None:
    """Attach a classic BPF program (SO_ATTACH_FILTER takes a struct sock_fprog)."""
    code = pack_bpf_program(program)
    instructions = ctypes.create_string_buffer(code, len(code))
    # struct sock_fprog { unsigned short len; struct sock_filter *filter; }: native layout,
    # the kernel copies the instructions during the call, so the buffer may die afterwards.
    fprog = struct.pack("HP", len(program), ctypes.addressof(instructions))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def _raw_socket(family: socket.AddressFamily, protocol: int) -> socket.socket:
    try:
        return socket.socket(family, socket.SOCK_RAW, protocol)
    except PermissionError:
        raise ScanFailed(NO_PRIVILEGES_MESSAGE) from None
    except OSError as error:
        if error.errno == errno.EAFNOSUPPORT:
            raise ScanFailed("this system has no IPv6 support for raw sockets") from None
        raise ScanFailed(f"cannot open a raw socket: {error}") from None


def _set_buffer(sock: socket.socket, forced_option: int, option: int, size: int) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, forced_option, size)
    except OSError:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, option, size)


def _discard_queued(sock: socket.socket, limit: int = 10_000) -> None:
    for _ in range(limit):
        try:
            sock.recv(1)
        except OSError:  # BlockingIOError: the queue is empty
            return
