"""The service catalogue against real servers, each open and locked down, through the CLI.

One home with every server that installs here (Debian: mosquitto, redis-server, memcached,
TigerVNC's Xvnc, inetutils telnetd, influxdb, samba, GStreamer's RTSP server; npm: node-red;
PyPI: the ESPHome dashboard)
plus nginx answering the same page (200) or 401 to every path. One scan from the scan
namespace; then each open configuration must be flagged with the right id and product, each
locked one must not, the catch-alls must produce nothing, and the servers' own logs must show
that nothing was written, subscribed or authenticated.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.lab import Lab, mosquitto, read_access_log
from tests.lab.daemons import Daemon
from tests.lab.scanning import LAB_SPEED, scan_json
from tests.lab.support_services import (
    check_port,
    esphome_dashboards,
    influxdb,
    memcached,
    mosquitto_locked,
    mosquitto_tls,
    mosquitto_websockets,
    nginx_catch_all,
    node_red,
    redis,
    redis_cli,
    rtsp_server,
    samba,
    telnetd,
    xvnc,
)

pytestmark = pytest.mark.lab

REDIS_PASSWORD = "lab-" + "x" * 12
SERVICES_IDS = {
    "mqtt.anonymous", "service.unauthenticated", "service.auth_required",
    "service.cleartext_auth", "smb.exposed",
}

# port -> (the finding that must be there, details.product key, details.product auth)
OPEN = {
    1883: ("mqtt.anonymous", "mqtt", "none"),
    8883: ("mqtt.anonymous", "mqtt", "none"),
    9001: ("mqtt.anonymous", "mqtt", "none"),
    6379: ("service.unauthenticated", "redis", "none"),
    11211: ("service.unauthenticated", "memcached", "none"),
    5900: ("service.unauthenticated", "vnc", "none"),
    5902: ("service.unauthenticated", "vnc", "none"),  # VeNCrypt TLSNone
    2323: ("service.unauthenticated", "telnet", "none"),
    1880: ("service.unauthenticated", "node_red", "none"),
    8086: ("service.unauthenticated", "influxdb", "none"),
    445: ("smb.exposed", "smb", "unknown"),
    8554: ("service.unauthenticated", "rtsp", "none"),
    6052: ("service.unauthenticated", "esphome", "none"),
}
LOCKED = {
    1884: ("service.auth_required", "mqtt", "required"),
    6380: ("service.auth_required", "redis", "required"),
    6381: ("service.auth_required", "redis", "required"),  # protected mode
    11212: ("service.auth_required", "memcached", "required"),
    5901: ("service.auth_required", "vnc", "required"),
    2324: ("service.auth_required", "telnet", "required"),
    1881: ("service.auth_required", "node_red", "required"),
    8087: ("service.auth_required", "influxdb", "required"),
    8555: ("service.auth_required", "rtsp", "required"),
    6053: ("service.auth_required", "esphome", "required"),
}
CATCH_ALL = (8080, 8081)
CLEARTEXT = {1884, 6380, 2324}  # asks for credentials over plain TCP


@pytest.fixture(scope="module")
def home() -> Iterator[Lab]:
    services = [
        mosquitto(1883), mosquitto_locked(1884), mosquitto_tls(8883), mosquitto_websockets(9001),
        redis(6379), redis(6380, password=REDIS_PASSWORD), redis(6381, protected_mode=True),
        memcached(11211), memcached(11212, auth=True),
        xvnc(5900), xvnc(5901, password=True), xvnc(5902, security="TLSNone"),
        telnetd(2323, shell=True), telnetd(2324),
        node_red(1880), node_red(1881, admin_auth=True),
        influxdb(8086), influxdb(8087, auth=True),
        samba(445),
        rtsp_server(8554), rtsp_server(8555, auth=True),
        esphome_dashboards(6052, 6053),
        nginx_catch_all(8080), nginx_catch_all(8081, status=401),
    ]
    with Lab(services=services) as lab:
        yield lab


@pytest.fixture(scope="module")
def report(home: Lab) -> dict[str, Any]:
    ports = ",".join(str(port) for port in home.open_ports)
    started = time.monotonic()
    scanned = scan_json(home, Lab.HOME_V4, "--ports", ports, *LAB_SPEED, timeout=180)
    scanned["_seconds"] = time.monotonic() - started
    return scanned


def _port(report: dict[str, Any], number: int) -> dict[str, Any]:
    (target,) = report["targets"]
    return next(entry for entry in target["ports"] if entry["port"] == number)


def _findings(report: dict[str, Any], number: int) -> list[dict[str, Any]]:
    (target,) = report["targets"]
    return [finding for finding in target["findings"] if finding["port"] == number]


def _daemon(lab: Lab, name: str) -> Daemon:
    return next(daemon for daemon in lab.daemons if daemon.name == name)


@pytest.mark.parametrize("port", sorted(OPEN))
def test_open_configuration_is_flagged(report: dict[str, Any], port: int) -> None:
    finding_id, key, auth = OPEN[port]
    findings = _findings(report, port)
    assert finding_id in {finding["id"] for finding in findings}, findings
    details = _port(report, port)["details"]
    assert details["product"]["key"] == key and details["product"]["auth"] == auth
    assert details[key]["auth"] == auth and details[key]["evidence"]
    flagged = next(finding for finding in findings if finding["id"] == finding_id)
    assert flagged["severity"] in ("high", "critical")
    assert flagged["remediation"] and flagged["references"]


@pytest.mark.parametrize("port", sorted(LOCKED))
def test_locked_configuration_is_not_flagged(report: dict[str, Any], port: int) -> None:
    finding_id, key, auth = LOCKED[port]
    findings = _findings(report, port)
    ids = {finding["id"] for finding in findings}
    assert finding_id in ids
    assert not ids & {"mqtt.anonymous", "service.unauthenticated"}, findings
    assert all(finding["severity"] in ("info", "medium") for finding in findings)
    assert ("service.cleartext_auth" in ids) == (port in CLEARTEXT)
    details = _port(report, port)["details"]
    assert details["product"] == {"name": details["product"]["name"], "key": key, "auth": auth}


@pytest.mark.parametrize("port", CATCH_ALL)
def test_catch_all_servers_produce_no_product_finding(report: dict[str, Any], port: int) -> None:
    assert not [f for f in _findings(report, port) if f["id"] in SERVICES_IDS]
    details = _port(report, port)["details"]
    assert "product" not in details
    assert _port(report, port)["service"] == "http"


def test_catch_all_nginx_saw_only_gets(home: Lab, report: dict[str, Any]) -> None:
    for status in (200, 401):
        port = 8080 if status == 200 else 8081
        requests = read_access_log(_daemon(home, f"nginx-catchall-{status}-{port}"))
        assert requests, "the scan must have probed the catch-all"
        methods = {request["method"] for request in requests}
        # "" = bytes that were no HTTP request at all (identification's TLS and MQTT probes)
        assert methods <= {"GET", ""} and "GET" in methods, methods
        # the catalogue's API paths were asked, and answered with the catch-all's page
        assert any(request["uri"] == "/version" for request in requests)


def test_mosquitto_saw_connect_and_disconnect_only(home: Lab, report: dict[str, Any]) -> None:
    for name in ("mosquitto-1883", "mosquitto-locked", "mosquitto-tls", "mosquitto-ws"):
        log = _daemon(home, name).log_path.read_text(errors="replace")
        assert not re.search(r"SUBSCRIBE|PUBLISH|, u'", log), f"{name}: {log[-1500:]}"
    for name in ("mosquitto-1883", "mosquitto-tls", "mosquitto-ws"):  # anonymous: let in, left
        log = _daemon(home, name).log_path.read_text(errors="replace")
        assert re.search(r"New client connected from \S+ as exposure-\w+ \(p2, c1, k30\)", log)
    opened = _daemon(home, "mosquitto-1883").log_path.read_text(errors="replace")
    assert re.search(r"Received DISCONNECT from exposure-", opened)
    locked = _daemon(home, "mosquitto-locked").log_path.read_text(errors="replace")
    assert re.search(r"Sending CONNACK to 203\.0\.113\.1 \(0, 5\)", locked)


def test_redis_only_ran_info(home: Lab, report: dict[str, Any]) -> None:
    for port, password in ((6379, None), (6380, REDIS_PASSWORD)):
        stats = redis_cli(home, port, "INFO", "commandstats", password=password)
        called = {
            match[1]: int(match[2])
            for match in re.finditer(r"cmdstat_(\w+):calls=(\d+)", stats)
        }
        assert {name for name, calls in called.items() if calls > 0} <= {"info", "auth"}, called
    assert "cmdstat_info" in redis_cli(home, 6379, "INFO", "commandstats")


def test_node_red_saw_no_login_or_write(home: Lab, report: dict[str, Any]) -> None:
    for name in ("node-red-1880", "node-red-1881"):
        log = _daemon(home, name).log_path.read_text(errors="replace")
        assert "auth.login" not in log and "flows.set" not in log, log[-2000:]


def test_esphome_saw_only_gets(home: Lab, report: dict[str, Any]) -> None:
    for port in (6052, 6053):
        log = _daemon(home, f"esphome-{port}").log_path.read_text(errors="replace")
        requests = re.findall(r"INFO \d{3} (\w+) ", log)
        assert requests and set(requests) == {"GET"}, log[-1500:]


def test_vnc_saw_no_failed_authentication(home: Lab, report: dict[str, Any]) -> None:
    log = _daemon(home, "xvnc-5901").log_path.read_text(errors="replace")
    assert "Authentication failure" not in log and "AuthFailure" not in log


def test_influxdb_saw_only_reads(home: Lab, report: dict[str, Any]) -> None:
    for name in ("influxdb-8086", "influxdb-8087"):
        log = _daemon(home, name).log_path.read_text(errors="replace")
        ours = [line for line in log.splitlines() if "exposure/" in line]
        assert ours and all('"GET ' in line for line in ours), ours


def test_scan_time_and_per_port_check_time(home: Lab, report: dict[str, Any]) -> None:
    assert report["scan"]["complete"] and not report["scan"]["errors"]
    assert report["_seconds"] < 90
    telnet = check_port(home, 2324, service="telnet")  # the slowest probe: a conversation
    assert telnet["seconds"] < 2.0
    redis_guess = check_port(home, 6380, service=None)  # a port identification could not name
    assert redis_guess["seconds"] < 2.5
    assert {f["id"] for f in redis_guess["findings"]} == {
        "service.auth_required", "service.cleartext_auth"
    }
