"""Identification on the lab's home host, through the CLI in the scan namespace.

Every open port must be named by probing: SSH on 22 and 2222 (and Dropbear on 2022), nginx
over plain HTTP on 80 and 8123, HTTP inside TLS on 443 and 8443, MQTT on 1883 and MQTT inside
TLS on 8883, whatever the port numbers suggest.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

import mmh3
import pytest

from tests.lab import (
    Lab,
    NginxSite,
    Probe,
    Service,
    dropbear,
    nginx,
    start_mosquitto,
    stop_daemons,
)
from tests.lab.scanning import LAB_SPEED, scan_json

pytestmark = pytest.mark.lab

ICON = b"\x00\x00\x01\x00" + bytes(range(256)) * 4  # the icon the page links to
APP_PORT, DROPBEAR_PORT, MQTTS_PORT, LOOPBACK_MQTT_PORT = 8123, 2022, 8883, 18830
APP_PAGE = (
    '<!doctype html><html><head><link rel="icon" href="/static/icons/favicon.ico">'
    "<title>Home Assistant</title></head><body></body></html>"
)


def _mqtts(lab: Lab) -> Service:
    """mosquitto with TLS listeners (the lab CA's certificate for home.lab) on 8883.

    start_mosquitto's own plain listener goes on the home namespace's loopback, where the
    scan namespace cannot reach it; the TLS listeners come in through extra_config.
    """

    def start(lab: Lab) -> list[Any]:
        cert = lab.home_cert
        assert cert is not None
        listeners = "".join(
            f"listener {MQTTS_PORT} {address}\ncertfile {cert.chain_path}\n"
            f"keyfile {cert.key_path}\n"
            for address in lab.place.addresses
        )
        daemon = start_mosquitto(lab, LOOPBACK_MQTT_PORT, name="mosquitto-tls",
                                 addresses=["127.0.0.1"], extra_config=listeners)
        deadline = time.monotonic() + 10
        while lab.probe(Lab.HOME_V4, MQTTS_PORT) is not Probe.OPEN:
            assert time.monotonic() < deadline, daemon.log_tail()
            time.sleep(0.05)
        return [daemon]

    return Service("mosquitto-tls", {MQTTS_PORT: "mosquitto MQTT over TLS"}, start)


@pytest.fixture(scope="module")
def home(lab: Lab) -> Iterator[Lab]:
    """The default home plus an app page with a favicon, Dropbear, and MQTT over TLS."""
    app = nginx(
        lambda _: [NginxSite(APP_PORT, pages={"index.html": APP_PAGE,
                                              "static/icons/favicon.ico": ICON})],
        {APP_PORT: "an app page with a favicon"},
        name="nginx-app",
    )
    added: list[Any] = []
    services = [app, dropbear(DROPBEAR_PORT), _mqtts(lab)]
    try:
        for service in services:
            added += lab.add_service(service)
        yield lab
    finally:
        stop_daemons(added)
        for service in services:
            for port in service.ports:
                lab.close_port(port)


def _ports(report: dict[str, Any]) -> dict[int, dict[str, Any]]:
    (target, *_) = report["targets"]
    return {entry["port"]: entry for entry in target["ports"] if entry["state"] == "open"}


def test_every_open_port_is_identified_by_probing(home: Lab) -> None:
    wanted = ",".join(str(port) for port in home.open_ports)
    started = time.monotonic()
    report = scan_json(home, Lab.HOSTNAME, "--ports", wanted, *LAB_SPEED)
    elapsed = time.monotonic() - started
    ports = _ports(report)
    assert set(ports) == set(home.open_ports)
    for number in (22, 2222):
        assert (ports[number]["service"], ports[number]["product"]) == ("ssh", "OpenSSH")
        assert ports[number]["version"] and ports[number]["tls"] is False
        assert ports[number]["details"]["ssh"]["distro"] == "Debian"
    assert (ports[DROPBEAR_PORT]["service"], ports[DROPBEAR_PORT]["product"]) == (
        "ssh", "Dropbear"
    )  # fmt: skip
    for number in (80, 443, 8443):
        entry = ports[number]
        assert (entry["service"], entry["product"], entry["version"]) == (
            "http", "nginx", "1.22.1"
        )  # fmt: skip
        assert entry["tls"] is (number != 80)
        assert entry["details"]["http"]["title"] == "Exposure Lab Home"
    for number in (443, 8443):
        certificate = ports[number]["details"]["tls"]["certificate"]
        assert certificate["subject_cn"] == Lab.HOSTNAME and not certificate["self_signed"]
        assert f'ssl.cert.subject.cn:"{Lab.HOSTNAME}"' in ports[number]["details"]["shodan"][
            "queries"
        ]
    assert (ports[1883]["service"], ports[1883]["tls"]) == ("mqtt", False)
    assert (ports[MQTTS_PORT]["service"], ports[MQTTS_PORT]["tls"]) == ("mqtt", True)
    print(f"\nscan with identification of {len(ports)} ports: {elapsed:.2f}s")


def test_favicon_hash_is_that_of_the_served_icon(home: Lab) -> None:
    report = scan_json(home, Lab.HOME_V4, "--ports", str(APP_PORT), *LAB_SPEED)
    entry = _ports(report)[APP_PORT]
    # A title is a hint, not a product: only the HA check's own endpoints confirm HA.
    assert (entry["service"], entry["product"]) == ("http", "nginx")
    assert entry["details"]["http"]["application_hint"] == "Home Assistant"
    expected = mmh3.hash(base64.encodebytes(ICON))
    assert entry["details"]["http"]["favicon_mmh3"] == expected
    queries = entry["details"]["shodan"]["queries"]
    assert 'http.title:"Home Assistant"' in queries
    assert f"http.favicon.hash:{expected}" in queries


def test_ipv6_gets_the_same_identification(home: Lab) -> None:
    report = scan_json(home, Lab.HOME_V6, "--ports", "2222,8443", *LAB_SPEED)
    ports = _ports(report)
    assert (ports[2222]["service"], ports[8443]["service"], ports[8443]["tls"]) == (
        "ssh", "http", True
    )  # fmt: skip


def test_identification_of_the_whole_home_adds_little(home: Lab) -> None:
    wanted = ",".join(str(port) for port in home.open_ports)
    started = time.monotonic()
    scan_json(home, Lab.HOME_V4, "--ports", wanted, "--no-identify", *LAB_SPEED)
    bare = time.monotonic() - started
    started = time.monotonic()
    scan_json(home, Lab.HOME_V4, "--ports", wanted, *LAB_SPEED)
    full = time.monotonic() - started
    print(f"\nwithout identification {bare:.2f}s, with identification and checks {full:.2f}s")
    assert full - bare < 3.0
