import ipaddress
import socket

import pytest

from scanner.errors import BadInput
from scanner.targets import parse_targets


def test_ipv4_and_ipv6_literals() -> None:
    targets = parse_targets(["203.0.113.7", "2001:db8::1", "[2001:db8::2]"])
    assert [str(t.address) for t in targets] == ["203.0.113.7", "2001:db8::1", "2001:db8::2"]
    assert all(t.hostname is None for t in targets)


def test_small_cidr_expands_to_hosts() -> None:
    targets = parse_targets(["203.0.113.0/30"])
    assert [str(t.address) for t in targets] == ["203.0.113.1", "203.0.113.2"]
    assert len(parse_targets(["203.0.113.0/24"])) == 254


def test_large_cidr_needs_the_flag() -> None:
    with pytest.raises(BadInput, match="allow-large-range"):
        parse_targets(["10.0.0.0/8"])
    with pytest.raises(BadInput, match="limit"):
        parse_targets(["10.0.0.0/8"], allow_large_range=True)
    assert len(parse_targets(["198.51.100.0/23"], allow_large_range=True)) == 510


def test_duplicates_are_scanned_once() -> None:
    assert len(parse_targets(["203.0.113.7", "203.0.113.7", "203.0.113.6/31"])) == 2


@pytest.mark.parametrize("bad", ["", "   ", "not a host", "a..b", "-x.example", "1.2.3.4/33"])
def test_bad_targets(bad: str) -> None:
    with pytest.raises(BadInput):
        parse_targets([bad])


def test_empty_list() -> None:
    with pytest.raises(BadInput, match="no target"):
        parse_targets([])


def test_hostname_scans_every_address(monkeypatch: pytest.MonkeyPatch) -> None:
    # The resolver is the OS's; here it is replaced so the test needs no DNS at all.
    def fake_getaddrinfo(name: str, *args: object, **kwargs: object) -> list[tuple]:
        assert name == "home.example"
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("2001:db8:1::10", 0, 0, 0)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("203.0.113.10", 0)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    targets = parse_targets(["home.example"])
    assert [t.address for t in targets] == [
        ipaddress.ip_address("203.0.113.10"),
        ipaddress.ip_address("2001:db8:1::10"),
    ]
    assert all(t.hostname == "home.example" and t.input == "home.example" for t in targets)


def test_unresolvable_name_is_bad_input(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    with pytest.raises(BadInput, match=r"cannot resolve 'nowhere\.invalid'"):
        parse_targets(["nowhere.invalid"])
