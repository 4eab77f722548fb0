"""UDP probes (`--udp`) against real UDP servers in the lab, open and locked down.

Open home: unbound as an open resolver (answering a name from a local zone: the lab has no
internet), ntpsec answering mode 6, snmpd with community public, miniupnpd answering SSDP,
python-zeroconf (HA's mDNS library) answering unicast queries, OpenVPN without tls-crypt,
memcached with UDP on. Locked home: unbound refusing outside clients, ntpsec with noquery,
snmpd with a secret community, miniupnpd behind a router that drops UDP 1900, avahi (which
ignores unicast queries from other hosts), OpenVPN with tls-crypt, and a forwarded UDP port
with nothing behind it. Every run must end in bounded time and say open|filtered where no
answer came.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.lab import Lab
from tests.lab.support_services import (
    LAB_DNS_NAME,
    avahi,
    memcached_udp,
    miniupnpd,
    ntpsec,
    open_udp,
    openvpn,
    snmpd,
    udp_scan,
    unbound,
    zeroconf_responder,
)

pytestmark = pytest.mark.lab

TIMEOUT, RETRIES = 1.0, 1
BOUND = TIMEOUT * (RETRIES + 1) + 1.0  # the promise, plus process start-up


@pytest.fixture(scope="module")
def open_home() -> Iterator[Lab]:
    services = [unbound(), ntpsec(), snmpd(), miniupnpd(), zeroconf_responder(), openvpn(),
                memcached_udp()]
    with Lab(services=services) as lab:
        yield lab


@pytest.fixture(scope="module")
def open_report(open_home: Lab) -> dict[str, Any]:
    return udp_scan(open_home, dns_name=LAB_DNS_NAME, timeout=TIMEOUT, retries=RETRIES)


@pytest.fixture(scope="module")
def locked_report() -> dict[str, Any]:
    services = [unbound(open_resolver=False), ntpsec(noquery=True), snmpd(public=False),
                miniupnpd(forwarded=False), avahi(), openvpn(tls_crypt=True)]
    with Lab(services=services) as lab:
        open_udp(lab, 11211)  # forwarded, nothing listens: the kernel answers port unreachable
        return udp_scan(lab, dns_name=LAB_DNS_NAME, timeout=TIMEOUT, retries=RETRIES)


OPEN_FINDINGS = {
    "dns": "dns.open_resolver",
    "ntp": "ntp.amplification",
    "snmp": "snmp.public_community",
    "ssdp": "ssdp.exposed",
    "mdns": "mdns.exposed",
    "openvpn": "openvpn.detected",
    "memcached": "memcached.udp_amplification",
}


@pytest.mark.parametrize("service", sorted(OPEN_FINDINGS))
def test_open_udp_service_is_flagged(open_report: dict[str, Any], service: str) -> None:
    entry = open_report["services"][service]
    assert entry["state"] == "open" and entry["protocol"] == "udp"
    found = [f for f in open_report["findings"] if f["id"] == OPEN_FINDINGS[service]]
    assert len(found) == 1 and found[0]["protocol"] == "udp"
    assert found[0]["port"] == entry["port"] and found[0]["evidence"]


def test_open_details_say_what_answered(open_report: dict[str, Any]) -> None:
    services = open_report["services"]
    assert services["dns"]["details"]["dns"]["recursion_available"] is True
    assert services["ntp"]["version"].startswith("ntpd ntpsec")
    assert services["ntp"]["details"]["ntp"]["amplification"] > 5
    assert "Net-SNMP" in services["snmp"]["details"]["snmp"]["sysDescr"]
    assert "MiniUPnPd" in services["ssdp"]["details"]["ssdp"]["server"]
    assert "_home-assistant._tcp.local" in services["mdns"]["details"]["mdns"]["services"]
    assert services["memcached"]["details"]["memcached"]["amplification"] > 50


def test_wireguard_is_reported_silent_by_design(open_report: dict[str, Any]) -> None:
    wireguard = open_report["services"]["wireguard"]
    assert wireguard["state"] == "open|filtered"
    assert wireguard["details"]["wireguard"]["probed"] is False
    assert "silent by design" in " ".join(wireguard["details"]["wireguard"]["notes"])


def test_open_probe_time_is_bounded(open_report: dict[str, Any]) -> None:
    assert open_report["seconds"] < BOUND


LOCKED_STATES = {
    "dns": "open",  # answers, with REFUSED: a resolver for its LAN only
    "ntp": "open",  # answers time requests, not control queries
    "snmp": "open|filtered",  # a wrong community is dropped silently
    "ssdp": "open|filtered",  # the router drops UDP 1900
    "mdns": "open|filtered",  # avahi ignores unicast queries from other hosts
    "openvpn": "open|filtered",  # tls-crypt: silent without the key
    "memcached": "closed",  # forwarded, nothing listens: ICMP port unreachable
    "wireguard": "open|filtered",
}


def test_locked_home_has_no_udp_findings(locked_report: dict[str, Any]) -> None:
    assert locked_report["findings"] == []


@pytest.mark.parametrize("service", sorted(LOCKED_STATES))
def test_locked_states_are_honest(locked_report: dict[str, Any], service: str) -> None:
    entry = locked_report["services"][service]
    assert entry["state"] == LOCKED_STATES[service]
    if entry["state"] == "open|filtered":
        assert entry["details"][service]["notes"], "silence must be explained"


def test_locked_dns_refused_and_ntp_quiet(locked_report: dict[str, Any]) -> None:
    dns = locked_report["services"]["dns"]["details"]["dns"]
    assert dns["rcode"] == "REFUSED" and dns["open_resolver"] is False
    ntp = locked_report["services"]["ntp"]["details"]["ntp"]
    assert "mode6_readvar" not in ntp and "mode7_monlist" not in ntp


def test_locked_probe_time_is_bounded(locked_report: dict[str, Any]) -> None:
    assert locked_report["seconds"] < BOUND


def test_blackholed_host_is_all_open_filtered_in_bounded_time(open_home: Lab) -> None:
    report = udp_scan(open_home, address=Lab.BLACKHOLE_V4, timeout=TIMEOUT, retries=RETRIES)
    assert {entry["state"] for entry in report["services"].values()} == {"open|filtered"}
    assert report["findings"] == []
    assert report["seconds"] < BOUND


def test_cli_udp_reports_udp_ports_and_findings(open_home: Lab) -> None:
    """--udp through the real CLI: UDP entries in the port list, UDP findings in the report."""
    from tests.lab.scanning import LAB_SPEED, scan_json

    report = scan_json(open_home, Lab.HOME_V4, "--ports", "22", "--no-identify", "--udp",
                       "--resolver-test-name", LAB_DNS_NAME, *LAB_SPEED)
    (target,) = report["targets"]
    udp_ports = {p["service"]: p for p in target["ports"] if p["protocol"] == "udp"}
    assert udp_ports["dns"]["state"] == "open"
    assert udp_ports["wireguard"]["state"] == "open|filtered"
    ids = {f["id"] for f in target["findings"] if f["protocol"] == "udp"}
    assert {"dns.open_resolver", "snmp.public_community", "ssdp.exposed"} <= ids
