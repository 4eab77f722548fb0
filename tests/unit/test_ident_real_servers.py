"""Identification against real daemons on loopback, on ports that say nothing about them."""

from __future__ import annotations

import base64
import ipaddress
import re
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import mmh3
import pytest

from scanner.identification import IdentifyOptions, identify_ports, identify_services
from tests.unit import ident_servers as servers

ADDRESS = ipaddress.ip_address(servers.LOOPBACK)
OPTIONS = IdentifyOptions(timeout=3.0, nmap_fallback=False)
ICON = b"\x00\x00\x01\x00" + bytes(range(256)) * 3  # an "icon" whose bytes we know
DEFAULT_ICON = b"\x89PNG\r\n\x1a\n" + b"default icon" * 50
SITE = servers.WebSite("Exposure Lab Home", ICON, "/static/icons/lab.ico", DEFAULT_ICON)


def _needs(*programs: str) -> None:
    missing = [name for name in programs if shutil.which(name) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")


def _shodan_hash(icon: bytes) -> int:
    return int(mmh3.hash(base64.encodebytes(icon)))


@pytest.fixture
def openssh(tmp_path: Path) -> Iterator[int]:
    _needs("/usr/sbin/sshd", "ssh-keygen")
    port = servers.free_port()
    with servers.sshd(tmp_path, port):
        yield port


@pytest.fixture
def dropbear(tmp_path: Path) -> Iterator[int]:
    _needs("dropbear", "dropbearkey")
    port = servers.free_port()
    with servers.dropbear(tmp_path, port):
        yield port


@pytest.fixture
def certificate(tmp_path: Path) -> servers.SelfSigned:
    return servers.self_signed(tmp_path, "home.example", ["home.example", "127.0.0.1"])


@pytest.fixture
def web(tmp_path: Path, certificate: servers.SelfSigned) -> Iterator[tuple[int, int]]:
    _needs("nginx")
    http_port, tls_port = servers.free_port(), servers.free_port()
    directory = tmp_path / "nginx"
    directory.mkdir()
    with servers.nginx(directory, SITE, http_port, tls_port, certificate):
        yield http_port, tls_port


@pytest.fixture
def broker(tmp_path: Path, certificate: servers.SelfSigned) -> Iterator[tuple[int, int]]:
    _needs("mosquitto")
    port, tls_port = servers.free_port(), servers.free_port()
    with servers.mosquitto(tmp_path, port, tls_port, certificate):
        yield port, tls_port


def test_openssh_on_a_non_standard_port(openssh: int) -> None:
    found = identify_services(ADDRESS, [openssh], OPTIONS)[openssh]
    assert found.service == "ssh"
    assert found.product == "OpenSSH"
    assert found.version and re.fullmatch(r"\d+\.\d+p\d+", found.version)
    assert found.banner and found.banner.startswith(f"SSH-2.0-OpenSSH_{found.version}")
    assert found.details["ssh"]["distro"] == "Debian"
    assert found.details["ssh"]["distro_revision"].startswith("2+deb12")  # the patch level
    assert found.tls is False
    assert found.source == "probe"
    queries = found.details["shodan"]["queries"]
    assert f'product:"OpenSSH" port:{openssh}' in queries
    assert f'"{found.banner}"' in queries
    assert found.details["shodan"]["banner"] == found.banner


def test_dropbear(dropbear: int) -> None:
    found = identify_services(ADDRESS, [dropbear], OPTIONS)[dropbear]
    assert (found.service, found.product) == ("ssh", "Dropbear")
    assert found.version and re.fullmatch(r"20\d\d\.\d+", found.version)
    assert f'product:"Dropbear sshd" port:{dropbear}' in found.details["shodan"]["queries"]


def test_nginx_plain_http_title_server_and_linked_favicon(web: tuple[int, int]) -> None:
    http_port, _ = web
    found = identify_services(ADDRESS, [http_port], OPTIONS)[http_port]
    assert (found.service, found.product, found.version, found.tls) == (
        "http", "nginx", "1.22.1", False
    )  # fmt: skip
    details = found.details["http"]
    assert details["status"] == 200
    assert details["title"] == SITE.title
    assert details["server"] == "nginx/1.22.1"
    # The icon the page links to, hashed the way Shodan's http.favicon.hash is.
    assert details["favicon_mmh3"] == _shodan_hash(ICON)
    assert details["favicon_path"] == SITE.icon_path
    assert "x-frame-options" in details["missing_security_headers"]
    queries = found.details["shodan"]["queries"]
    assert f'http.title:"{SITE.title}"' in queries
    assert f"http.favicon.hash:{_shodan_hash(ICON)}" in queries
    assert found.details["shodan"]["banner"].startswith("HTTP/1.1 200 OK\nServer: nginx/1.22.1")


def test_https_on_any_port_is_http_inside_tls(
    web: tuple[int, int], certificate: servers.SelfSigned
) -> None:
    _, tls_port = web
    options = IdentifyOptions(timeout=3.0, nmap_fallback=False, sni="home.example")
    found = identify_services(ADDRESS, [tls_port], options)[tls_port]
    assert (found.service, found.product, found.tls) == ("http", "nginx", True)
    cert = found.details["tls"]["certificate"]
    assert cert["subject_cn"] == "home.example"
    assert cert["sans"] == ["home.example", "127.0.0.1"]
    assert cert["self_signed"] is True
    assert cert["not_after"] > cert["not_before"]
    assert found.details["http"]["title"] == SITE.title
    assert found.details["http"]["headers"]["strict-transport-security"] == "max-age=63072000"
    assert found.details["http"]["favicon_mmh3"] == _shodan_hash(ICON)
    queries = found.details["shodan"]["queries"]
    assert 'ssl.cert.subject.cn:"home.example"' in queries
    assert "SSL Certificate" in found.details["shodan"]["banner"]


def test_mosquitto_plain_and_tls_detected_without_logging_in(
    broker: tuple[int, int], tmp_path: Path
) -> None:
    port, tls_port = broker
    found = identify_services(ADDRESS, [port, tls_port], OPTIONS)
    assert (found[port].service, found[port].tls) == ("mqtt", False)
    assert (found[tls_port].service, found[tls_port].tls) == ("mqtt", True)
    assert found[port].details["mqtt"]["connack_return_code"] == 1  # protocol refused
    log = (tmp_path / "mosquitto.log").read_text()
    assert "Invalid protocol version" in log
    assert "not authorised" not in log  # no authentication was ever attempted


def test_eight_services_identified_well_under_three_seconds(
    openssh: int, dropbear: int, web: tuple[int, int], broker: tuple[int, int]
) -> None:
    with (
        servers.thread_server(_greeter(b"220 mail.home.example ESMTP Postfix (Debian/GNU)\r\n"))
        as smtp,
        servers.thread_server(_greeter(b"220 (vsFTPd 3.0.3)\r\n")) as ftp,
    ):
        ports = [openssh, dropbear, *web, *broker, smtp.port, ftp.port]
        started = time.monotonic()
        results = identify_ports(ADDRESS, ports, OPTIONS)
        elapsed = time.monotonic() - started
    services = {port: result.identity.service for port, result in results.items()}
    assert services == {
        openssh: "ssh", dropbear: "ssh", web[0]: "http", web[1]: "http",
        broker[0]: "mqtt", broker[1]: "mqtt", smtp.port: "smtp", ftp.port: "ftp",
    }  # fmt: skip
    assert results[smtp.port].identity.product == "Postfix"
    assert (results[ftp.port].identity.product, results[ftp.port].identity.version) == (
        "vsftpd", "3.0.3"
    )  # fmt: skip
    print(f"\nidentified {len(ports)} services in {elapsed:.2f}s")
    assert elapsed < 1.5


def _greeter(greeting: bytes) -> servers.Handler:
    def handler(conn: socket.socket, server: servers.ThreadServer) -> None:
        server.send(conn, greeting)
        servers.wait_until_stopped(conn, server)

    return handler
