"""Turn what the user typed into addresses to scan.

A hostname is scanned on every address it resolves to, A and AAAA alike: IPv6 is often
reachable directly because it bypasses the router's NAT, so it must never be skipped.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

from scanner.errors import BadInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_NETWORK_ADDRESSES = 256  # a /24 (or an IPv6 /120) without --allow-large-range
LARGE_NETWORK_LIMIT = 65536  # even with the flag: this tool scans homes, not the internet


@dataclass(frozen=True)
class Target:
    """One address to scan, and what the user typed to get it."""

    input: str
    address: IPAddress
    hostname: str | None = None  # the name typed, used later for TLS SNI and HTTP Host

    @property
    def family(self) -> int:
        return socket.AF_INET6 if self.address.version == 6 else socket.AF_INET


def parse_targets(inputs: list[str], *, allow_large_range: bool = False) -> list[Target]:
    """Parse and resolve every input; raise BadInput (one line) on the first bad one."""
    cleaned = [text.strip() for text in inputs]
    if not cleaned or any(not text for text in cleaned):
        raise BadInput("no target given (a hostname, an IP address or a small CIDR)")
    targets: list[Target] = []
    seen: set[IPAddress] = set()
    for text in cleaned:
        for target in _parse_one(text, allow_large_range):
            if target.address not in seen:
                seen.add(target.address)
                targets.append(target)
    return targets


def _parse_one(text: str, allow_large_range: bool) -> list[Target]:
    literal = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        return [Target(text, ipaddress.ip_address(literal))]
    except ValueError:
        pass
    if "/" in text:
        return _expand_network(text, allow_large_range)
    return _resolve(text)


def _expand_network(text: str, allow_large_range: bool) -> list[Target]:
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError as error:
        raise BadInput(f"bad network {text!r}: {error}") from None
    size = network.num_addresses
    if size > MAX_NETWORK_ADDRESSES and not allow_large_range:
        raise BadInput(
            f"{text} has {size} addresses; more than {MAX_NETWORK_ADDRESSES} needs "
            "--allow-large-range"
        )
    if size > LARGE_NETWORK_LIMIT:
        raise BadInput(f"{text} has {size} addresses; the limit is {LARGE_NETWORK_LIMIT}")
    hosts = list(network.hosts()) if size > 2 else list(network)
    return [Target(text, address) for address in hosts]


def _resolve(name: str) -> list[Target]:
    try:  # internationalised names resolve by their ASCII (punycode) form
        ascii_name = name.encode("idna").decode("ascii")
    except UnicodeError:
        raise BadInput(f"{name!r} is not a valid hostname") from None
    if not _looks_like_hostname(ascii_name):
        raise BadInput(f"{name!r} is not a hostname, an IP address or a CIDR network")
    try:
        infos = socket.getaddrinfo(ascii_name, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as error:
        raise BadInput(f"cannot resolve {name!r}: {error.strerror}") from None
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    addresses.sort(key=lambda address: address.version)  # IPv4 first, then IPv6
    return [Target(name, address, hostname=name) for address in addresses]


def _looks_like_hostname(name: str) -> bool:
    if len(name) > 253 or name.startswith("-"):
        return False
    labels = name.rstrip(".").split(".")
    allowed = set("abcdefghijklmnopqrstuvwxyz0123456789-_")
    return all(0 < len(label) <= 63 and set(label.lower()) <= allowed for label in labels)
