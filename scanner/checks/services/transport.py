"""Bounded connections for the service probes: every read under a deadline and a byte cap.

A probe opens a `Stream` to one endpoint (plain TCP, or TLS without certificate verification:
we want to know what answers, grading the certificate is the TLS check's job), sends a few bytes
and reads at most `cap` bytes before `deadline`. A hostile or stuck server costs at most the
probe's time, never more memory than the cap.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

RECV_CHUNK = 16 * 1024


class ProbeError(OSError):
    """The probe could not complete (timeout, reset, TLS failure): no verdict from it."""


@dataclass(frozen=True)
class Endpoint:
    """Where a probe goes: a numeric address, a port, TLS or not, and the names to present."""

    address: str
    port: int
    tls: bool = False
    server_name: str | None = None  # TLS SNI (the hostname the user typed), None for an IP
    host_header: str = ""  # HTTP Host header value
    timeout: float = 5.0  # seconds for one whole exchange (connect, send, read)

    @property
    def family(self) -> socket.AddressFamily:
        return socket.AF_INET6 if ":" in self.address else socket.AF_INET

    def authority(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"


def client_tls_context() -> ssl.SSLContext:
    """TLS that talks to anything (old devices included) and verifies nothing."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with contextlib.suppress(ssl.SSLError, ValueError):
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    with contextlib.suppress(ValueError):
        context.minimum_version = ssl.TLSVersion.TLSv1
    return context


class Stream:
    """A connected socket with a deadline for the whole exchange and a cap on bytes read."""

    def __init__(self, sock: socket.socket, deadline: float, cap: int) -> None:
        self._sock = sock
        self.deadline = deadline
        self.bytes_left = cap

    def _arm(self) -> None:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise ProbeError("deadline passed")
        self._sock.settimeout(remaining)

    def send(self, data: bytes) -> None:
        self._arm()
        try:
            self._sock.sendall(data)
        except (TimeoutError, OSError) as error:
            raise ProbeError(f"send failed: {error}") from None

    def recv(self, limit: int = RECV_CHUNK) -> bytes:
        """Up to `limit` bytes; b"" at end of stream or when the byte cap is spent."""
        limit = min(limit, self.bytes_left)
        if limit <= 0:
            return b""
        self._arm()
        try:
            data = self._sock.recv(limit)
        except ConnectionResetError:
            return b""
        except (TimeoutError, OSError) as error:
            raise ProbeError(f"read failed: {error}") from None
        self.bytes_left -= len(data)
        return data

    def recv_until(self, done: Callable[[bytes], bool], cap: int) -> bytes:
        """Read until done(buffer) holds, the server hangs up, `cap` bytes, or the deadline.

        A deadline reached after some bytes arrived returns them (the caller judges them);
        one reached with nothing read raises ProbeError.
        """
        buffer = bytearray()
        while len(buffer) < cap and not done(bytes(buffer)):
            try:
                chunk = self.recv(min(RECV_CHUNK, cap - len(buffer)))
            except ProbeError:
                if buffer:
                    break
                raise
            if not chunk:
                break
            buffer += chunk
        return bytes(buffer[:cap])

    def recv_exactly(self, count: int) -> bytes:
        data = self.recv_until(lambda buffer: len(buffer) >= count, count)
        if len(data) < count:
            raise ProbeError(f"short read: {len(data)} of {count} bytes")
        return data


@contextlib.contextmanager
def open_stream(
    endpoint: Endpoint, cap: int = 256 * 1024, tls: bool | None = None
) -> Iterator[Stream]:
    """A Stream to the endpoint (TLS when `tls`, default endpoint.tls); closed on exit."""
    deadline = time.monotonic() + endpoint.timeout
    use_tls = endpoint.tls if tls is None else tls
    sock = socket.socket(endpoint.family, socket.SOCK_STREAM)
    try:
        sock.settimeout(endpoint.timeout)
        try:
            sock.connect((endpoint.address, endpoint.port))
            if use_tls:
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                sock = client_tls_context().wrap_socket(
                    sock, server_hostname=endpoint.server_name or None
                )
        except (TimeoutError, OSError) as error:
            raise ProbeError(f"connect failed: {error}") from None
        yield Stream(sock, deadline, cap)
    finally:
        sock.close()


def plain_request(
    endpoint: Endpoint, command: bytes, complete: Callable[[bytes], bool], cap: int
) -> bytes | None:
    """One command over plain TCP and its bounded reply; None when TLS or no usable answer.

    For the line protocols (Redis, memcached) that only speak plain TCP."""
    if endpoint.tls:
        return None
    try:
        with open_stream(endpoint, cap=cap) as stream:
            stream.send(command)
            return stream.recv_until(complete, cap)
    except ProbeError:
        return None
