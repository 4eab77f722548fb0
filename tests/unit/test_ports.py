import pytest
from hypothesis import given
from hypothesis import strategies as st

from scanner.discovery.nmap_engine import expand_ports
from scanner.errors import BadInput
from scanner.targets.ports import ALL_PORTS, TOP_PORTS, compress_ports, parse_port_spec


def test_top_contains_self_hoster_ports() -> None:
    for port in (22, 443, 8123, 1883, 8883, 1880, 6052, 5000, 8971, 3000, 8086, 8096, 32400,
                 9000, 9443, 22222):
        assert port in TOP_PORTS
    assert list(TOP_PORTS) == sorted(set(TOP_PORTS))


def test_all_is_the_full_range() -> None:
    assert parse_port_spec("all") == ALL_PORTS
    assert len(ALL_PORTS) == 65535 and ALL_PORTS[0] == 1 and ALL_PORTS[-1] == 65535


def test_list_and_ranges_are_merged_and_sorted() -> None:
    assert parse_port_spec("8000-8003, 22,80,22") == (22, 80, 8000, 8001, 8002, 8003)


def test_top_can_be_extended() -> None:
    ports = parse_port_spec("top,2222,65000")
    assert 2222 in ports and 65000 in ports and 8123 in ports


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("999999", "out of range"),
        ("0", "out of range"),
        ("1-2-3", "bad port range"),
        ("", "empty port specification"),
        ("80,,81", "empty item"),
        ("abc", "bad port"),
        ("90-80", "greater than"),
        ("-5", "bad port"),
    ],
)
def test_bad_specs_raise_one_clear_line(spec: str, message: str) -> None:
    with pytest.raises(BadInput, match=message) as caught:
        parse_port_spec(spec)
    assert "\n" not in str(caught.value)


@given(st.text(max_size=40))
def test_any_spec_parses_or_raises_bad_input(spec: str) -> None:
    try:
        ports = parse_port_spec(spec)
    except BadInput:
        return
    assert all(1 <= port <= 65535 for port in ports)


@given(st.sets(st.integers(min_value=1, max_value=65535), max_size=300))
def test_compress_then_expand_round_trips(ports: set[int]) -> None:
    assert expand_ports(compress_ports(ports)) == sorted(ports)
