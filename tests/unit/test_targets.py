import io
import ipaddress
import re
import socket
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.errors import BadInput
from scanner.targets import collect_targets, parse_targets, split_host_port
from scanner.targets.inputs import parse_target_lines


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


# --- -4 / -6, literals that are not names, host:port, target lists ------------------------


def _dual_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_getaddrinfo(name: str, *args: object, **kwargs: object) -> list[tuple]:
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("2001:db8:1::10", 0, 0, 0)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("203.0.113.10", 0)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)


def test_family_keeps_one_ip_version(monkeypatch: pytest.MonkeyPatch) -> None:
    _dual_stack(monkeypatch)
    assert [str(t.address) for t in parse_targets(["home.example"], family=4)] == ["203.0.113.10"]
    assert [str(t.address) for t in parse_targets(["home.example"], family=6)] == [
        "2001:db8:1::10"]
    with pytest.raises(BadInput, match="no IPv4 address"):
        parse_targets(["2001:db8::1"], family=4)


@pytest.mark.parametrize(("text", "says"), [
    ("999.1.1.1", "999 is more than 255"),
    ("1.2.3", "four numbers"),
    ("192.168.001.1", "leading zero"),
    ("2001:db8::g", "not a valid IPv6 address"),
    ("router.42", "no top-level domain is a number"),
])
def test_malformed_addresses_are_never_looked_up(
    text: str, says: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_lookup(*args: object, **kwargs: object) -> list[tuple]:
        raise AssertionError("a malformed address must not be resolved")

    monkeypatch.setattr(socket, "getaddrinfo", no_lookup)
    with pytest.raises(BadInput, match=re.escape(says)):
        parse_targets([text])


def test_every_input_is_checked_before_the_first_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    looked_up: list[str] = []
    monkeypatch.setattr(socket, "getaddrinfo", lambda name, *a, **k: looked_up.append(name))
    with pytest.raises(BadInput):
        parse_targets(["home.example", "999.1.1.1"])
    assert looked_up == []


@pytest.mark.parametrize(("text", "expected"), [
    ("home.example:8123", ("home.example", 8123)),
    ("203.0.113.7:22", ("203.0.113.7", 22)),
    ("[2001:db8::1]:443", ("2001:db8::1", 443)),
    ("[2001:db8::1]", ("2001:db8::1", None)),
    ("2001:db8::1", ("2001:db8::1", None)),
    ("home.example", ("home.example", None)),
    ("203.0.113.0/30:22", ("203.0.113.0/30", 22)),
])
def test_host_port(text: str, expected: tuple[str, int | None]) -> None:
    assert split_host_port(text) == expected


@pytest.mark.parametrize("text", ["home:0", "home:65536", "home:x", ":22", "[::1", "[::1]x"])
def test_bad_host_port(text: str) -> None:
    with pytest.raises(BadInput):
        split_host_port(text)


def test_target_lists(tmp_path: Path) -> None:
    listed = tmp_path / "hosts.txt"
    listed.write_text("# home\nhome.example:8123  # HA\n\n  203.0.113.7\n[2001:db8::1]:443\n")
    inputs = collect_targets(["198.51.100.1"], str(listed))
    assert inputs.hosts == ("198.51.100.1", "home.example", "203.0.113.7", "2001:db8::1")
    assert inputs.extra_ports == (8123, 443)
    assert collect_targets(["-"], stdin=io.StringIO("a.example\n")).hosts == ("a.example",)
    assert parse_target_lines("a # b\n#c\n  \nd") == ["a", "d"]


@pytest.mark.parametrize(("content", "says"), [
    (b"", "no target in it"),
    (b"\xff\xfe\x00binary", "not text"),
    (b"a\n" * (1 << 20), "larger than"),
])
def test_bad_target_lists(content: bytes, says: str, tmp_path: Path) -> None:
    listed = tmp_path / "hosts.txt"
    listed.write_bytes(content)
    with pytest.raises(BadInput, match=says):
        collect_targets([], str(listed))


@settings(max_examples=200)
@given(st.text(max_size=60))
def test_any_text_splits_or_is_refused(text: str) -> None:
    try:
        host, port = split_host_port(text)
    except BadInput:
        return
    assert port is None or 1 <= port <= 65535
    assert host in text
