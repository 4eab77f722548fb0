"""Turn what the user typed into addresses to scan.

A hostname is scanned on every address it resolves to, A and AAAA alike: IPv6 is often
reachable directly because it bypasses the router's NAT, so it must never be skipped.
"""

from __future__ import annotations

import ipaddress
import re
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


def parse_targets(
    inputs: list[str], *, allow_large_range: bool = False, family: int | None = None
) -> list[Target]:
    """Parse and resolve every input; raise BadInput (one line) on the first bad one.

    family 4 or 6 (-4 / -6) keeps only the addresses of that IP version. Every input is
    checked before the first name is resolved, so a typo late in the list costs no lookup.
    """
    cleaned = [text.strip() for text in inputs]
    if not cleaned or any(not text for text in cleaned):
        raise BadInput("no target given (a hostname, an IP address or a small CIDR)")
    if family not in (None, 4, 6):
        raise BadInput(f"unknown IP version {family} (4 or 6)")
    for text in cleaned:
        check_target_syntax(text)
    targets: list[Target] = []
    seen: set[IPAddress] = set()
    for text in cleaned:
        for target in _of_family(_parse_one(text, allow_large_range), family, text):
            if target.address not in seen:
                seen.add(target.address)
                targets.append(target)
    return targets


def check_target_syntax(text: str) -> None:
    """BadInput for what can be told wrong without the network: a malformed address or
    network, or something that is no hostname. `999.1.1.1` is a bad IPv4 address, never a
    name to look up: only digits and dots, or a colon, mean an address was meant."""
    literal = _unbracketed(text)
    if _is_address(literal):
        return
    if "/" in text:
        _network(text)
        return
    if ":" in literal:
        raise BadInput(f"{text!r} is not a valid IPv6 address")
    if _IPV4_LIKE.match(literal):
        if any(char.isalpha() for char in literal):
            raise BadInput(f"{text!r} is not a hostname (no top-level domain is a number) "
                           "nor an IPv4 address")
        raise BadInput(f"{text!r} is not a valid IPv4 address ({_ipv4_problem(literal)})")
    try:
        ascii_name = literal.encode("idna").decode("ascii")
    except UnicodeError:
        raise BadInput(f"{text!r} is not a valid hostname") from None
    if not _looks_like_hostname(ascii_name):
        raise BadInput(f"{text!r} is not a hostname, an IP address or a CIDR network")


# Digits and dots only, or a last label of digits (no top-level domain is numeric).
_IPV4_LIKE = re.compile(r"^(?:[0-9.]+|.*\.[0-9]+\.?)$")


def _ipv4_problem(text: str) -> str:
    parts = text.split(".")
    if len(parts) != 4 or not all(part.isdigit() for part in parts):
        return "it needs four numbers from 0 to 255, like 198.51.100.7"
    for part in parts:
        if int(part) > 255:
            return f"{part} is more than 255"
    return "a number has a leading zero"


def _unbracketed(text: str) -> str:
    return text[1:-1] if text.startswith("[") and text.endswith("]") else text


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _of_family(targets: list[Target], family: int | None, text: str) -> list[Target]:
    if family is None:
        return targets
    kept = [target for target in targets if target.address.version == family]
    if not kept:
        other = 6 if family == 4 else 4
        raise BadInput(f"{text} has no IPv{family} address (only IPv{other}), and -{family} "
                       f"was given")
    return kept


def _parse_one(text: str, allow_large_range: bool) -> list[Target]:
    literal = _unbracketed(text)
    try:
        return [Target(text, ipaddress.ip_address(literal))]
    except ValueError:
        pass
    if "/" in text:
        return _expand_network(text, allow_large_range)
    return _resolve(text)


def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError as error:
        raise BadInput(f"bad network {text!r}: {error}") from None


def _expand_network(text: str, allow_large_range: bool) -> list[Target]:
    network = _network(text)
    size = network.num_addresses
    if size > MAX_NETWORK_ADDRESSES and not allow_large_range:
        raise BadInput(
            f"{text} has {size} addresses; more than {MAX_NETWORK_ADDRESSES} needs "
            "--allow-large-range"
        )
    if size > LARGE_NETWORK_LIMIT:
        raise BadInput(f"{text} has {size} addresses; the limit is {LARGE_NETWORK_LIMIT}")
    hosts: list[IPAddress] = list(network.hosts()) if size > 2 else list(network)
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
