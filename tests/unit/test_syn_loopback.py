"""The syn engine on real raw sockets, against loopback only (skipped without privileges)."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Iterator

import pytest

from scanner.discovery.base import DiscoveryOptions, PortState
from scanner.discovery.syn import SynEngine, raw_sockets_available

pytestmark = pytest.mark.skipif(
    not raw_sockets_available(), reason="needs raw sockets (root or CAP_NET_RAW)"
)


@contextlib.contextmanager
def tcp_socket(family: int, host: str, *, listen: bool) -> Iterator[int]:
    """A loopback port that is listening (open) or only bound (closed: the kernel RSTs)."""
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        if listen:
            sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize(
    ("family", "host"), [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")]
)
def test_open_and_closed_ports_on_loopback(family: int, host: str):
    if family == socket.AF_INET6 and not socket.has_ipv6:
        pytest.skip("no IPv6")
    with (
        tcp_socket(family, host, listen=True) as open_port,
        tcp_socket(family, host, listen=False) as closed_port,
    ):
        options = DiscoveryOptions(rate=5000, timeout=0.5, retries=1)
        states = SynEngine().scan(ipaddress.ip_address(host), [open_port, closed_port], options)
    assert states == {open_port: PortState.OPEN, closed_port: PortState.CLOSED}
