"""What the parsers make of real-world banners, heads and pages (examples, not properties)."""

from __future__ import annotations

import base64
import gzip
import ipaddress
import shutil
import socket
import time

import mmh3
import pytest

from scanner.identification import IdentifyOptions, identify_services
from scanner.identification.banner import classify_greeting, greeting_wait
from scanner.identification.http import favicon_hash, page_request
from scanner.identification.mqtt import PROBE, parse_connack
from scanner.identification.nmap_fallback import parse_nmap_services, port_arguments
from scanner.identification.shodan_view import ShodanEvidence, shodan_queries
from scanner.net import Limits, ScanBudget
from scanner.net.http_parse import (
    Origin,
    data_uri_bytes,
    dechunk,
    decode_content,
    extract_icon_links,
    extract_title,
    html_text,
    missing_security_headers,
    parse_head,
    resolve_same_origin,
)
from tests.unit import ident_servers as servers


@pytest.mark.parametrize(
    ("greeting", "service", "product", "version"),
    [
        (b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n", "ssh", "OpenSSH", "9.2p1"),
        (b"SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.6\r\n", "ssh", "OpenSSH", "8.9p1"),
        (b"SSH-2.0-OpenSSH_for_Windows_8.1\r\n", "ssh", "OpenSSH", "8.1"),
        (b"SSH-2.0-dropbear_2022.83\r\n", "ssh", "Dropbear", "2022.83"),
        (b"SSH-2.0-dropbear\r\n", "ssh", "Dropbear", None),
        (b"SSH-2.0-ROSSSH\r\n", "ssh", "MikroTik RouterOS sshd", None),
        (b"SSH-1.99-Cisco-1.25\r\n", "ssh", "Cisco SSH", "1.25"),
        (b"Please wait\r\nSSH-2.0-libssh_0.9.6\r\n", "ssh", "libssh", "0.9.6"),
        (b"SSH-2.0-SomethingNew_1.0\r\n", "ssh", None, None),
        (b"220 (vsFTPd 3.0.3)\r\n", "ftp", "vsftpd", "3.0.3"),
        (b"220 ProFTPD 1.3.8 Server (Debian) [::ffff:1.2.3.4]\r\n", "ftp", "ProFTPD", "1.3.8"),
        (b"220---------- Welcome to Pure-FTPd [privsep] [TLS] ----------\r\n220-You are user"
         b" number 1 of 50 allowed.\r\n", "ftp", "Pure-FTPd", None),
        (b"220-FileZilla Server 1.7.3\r\n220 Please visit https://filezilla-project.org/\r\n",
         "ftp", "FileZilla Server", "1.7.3"),
        (b"220 mail.example.org ESMTP Postfix (Debian/GNU)\r\n", "smtp", "Postfix", None),
        (b"220 mx.example.org ESMTP Exim 4.96 Mon, 01 Jan 2024 00:00:00 +0000\r\n",
         "smtp", "Exim", "4.96"),
        (b"220 mail.example.org ESMTP Sendmail 8.17.1/8.17.1; Mon, 1 Jan 2024\r\n",
         "smtp", "Sendmail", "8.17.1/8.17.1"),
        (b"+OK Dovecot (Debian) ready.\r\n", "pop3", "Dovecot", None),
        (b"* OK [CAPABILITY IMAP4rev1 SASL-IR] Dovecot (Debian) ready.\r\n", "imap", "Dovecot",
         None),
        (b"RFB 003.008\n", "vnc", None, None),
        (b"\xff\xfd\x18\xff\xfd\x20", "telnet", None, None),
        (b"220 welcome\r\n", None, None, None),  # FTP or SMTP? nmap decides
        (b"hello there\r\n", None, None, None),
    ],
)  # fmt: skip
def test_greetings(
    greeting: bytes, service: str | None, product: str | None, version: str | None
) -> None:
    found = classify_greeting(greeting)
    assert (found.service, found.product, found.version) == (service, product, version)


def test_ssh_distro_patch_level_is_kept_apart_from_the_version() -> None:
    found = classify_greeting(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n")
    assert found.banner == "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3"
    assert found.details["ssh"] == {
        "protocol": "2.0",
        "software": "OpenSSH_9.2p1",
        "comment": "Debian-2+deb12u3",
        "distro": "Debian",
        "distro_revision": "2+deb12u3",
    }


def test_mysql_and_mariadb_handshakes() -> None:
    def handshake(version: bytes) -> bytes:
        payload = b"\x0a" + version + b"\x00" + b"\x08\x00\x00\x00" + b"salt" * 5
        return len(payload).to_bytes(3, "little") + b"\x00" + payload

    mysql = classify_greeting(handshake(b"8.0.35"))
    assert (mysql.service, mysql.product, mysql.version) == ("mysql", "MySQL", "8.0.35")
    maria = classify_greeting(handshake(b"5.5.5-10.11.6-MariaDB-0+deb12u1"))
    assert (maria.service, maria.product, maria.version) == ("mysql", "MariaDB", "10.11.6")
    message = b"\xffj\x04Host '203.0.113.9' is not allowed to connect to this MariaDB server"
    refused = classify_greeting(len(message).to_bytes(3, "little") + b"\x00" + message)
    assert (refused.service, refused.product) == ("mysql", "MariaDB")


def test_greeting_wait_is_short_but_adapts_to_slow_links() -> None:
    assert greeting_wait(rtt=0.0001, remaining=3.0) == 0.5
    assert greeting_wait(rtt=0.3, remaining=3.0) == 0.75  # capped at a quarter of the budget
    assert greeting_wait(rtt=0.2, remaining=10.0) == pytest.approx(0.8)


# --- HTTP -------------------------------------------------------------------------------


def test_request_is_a_normal_browser_like_get() -> None:
    request = page_request("/").encode(Origin("https", "home.example", 443).host_header)
    assert request.startswith(b"GET / HTTP/1.1\r\nHost: home.example\r\n")
    assert b"\r\nUser-Agent: exposure/" in request
    assert request.endswith(b"\r\n\r\n")
    v6 = page_request("/").encode(Origin("http", "[2001:db8::7]", 8123).host_header)
    assert b"\r\nHost: [2001:db8::7]:8123\r\n" in v6


def test_head_parsing() -> None:
    head = parse_head(
        b"HTTP/1.1 302 Found\r\nServer: nginx/1.22.1\r\nLocation: /auth\r\n"
        b"junk line without colon\r\nX-Frame-Options: DENY\r\n\r\nbody"
    )
    assert head is not None
    assert (head.status, head.reason, head.get("server")) == (302, "Found", "nginx/1.22.1")
    assert head.get("location") == "/auth"
    assert "x-frame-options" not in missing_security_headers(head, "https")
    assert "strict-transport-security" in missing_security_headers(head, "https")
    assert "strict-transport-security" not in missing_security_headers(head, "http")
    assert parse_head(b"SSH-2.0-OpenSSH\r\n\r\n") is None
    assert parse_head(b"HTTP/1.0 200\r\n\r\n") is not None


def test_titles() -> None:
    assert extract_title("<html><head><TITLE>Home Assistant</TITLE>") == "Home Assistant"
    assert extract_title("<title lang='en'>\n  Node-RED \t</title >") == "Node-RED"
    assert extract_title("<title>Caf&eacute; &amp; &#x1F600;</title>") == "Café & 😀"
    assert extract_title("<title></title>") is None
    assert extract_title("no title here") is None
    assert extract_title("<title>unclosed") == "unclosed"


def test_charsets() -> None:
    body = "<title>Caf\u00e9</title>".encode("latin-1")
    assert extract_title(html_text(body, "text/html; charset=ISO-8859-1")) == "Café"
    assert extract_title(html_text(b'<meta charset="latin-1"><title>\xe9</title>', None)) == "é"
    assert "\ufffd" in html_text(b"\xff", "text/html; charset=base64")  # not a text codec


def test_icon_links_prefer_real_icons() -> None:
    page = (
        '<link rel="apple-touch-icon" href="/apple.png">'
        "<link rel='stylesheet' href='/style.css'>"
        '<LINK REL="shortcut icon" HREF="/static/icons/favicon.ico?v=2">'
        "<link href=/second.png rel=icon>"
    )
    assert extract_icon_links(page) == [
        "/static/icons/favicon.ico?v=2", "/second.png", "/apple.png"
    ]  # fmt: skip


def test_same_origin_resolution() -> None:
    origin = Origin("http", "127.0.0.1", 8123)
    assert resolve_same_origin(origin, "/a/b", "c.ico") == "/a/c.ico"
    assert resolve_same_origin(origin, "/", "/auth?x=1 2") == "/auth?x=1%202"
    assert resolve_same_origin(origin, "/", "http://127.0.0.1:8123/x") == "/x"
    assert resolve_same_origin(origin, "/", "https://127.0.0.1:8123/x") is None  # scheme
    assert resolve_same_origin(origin, "/", "http://127.0.0.1/x") is None  # port 80
    assert resolve_same_origin(origin, "/", "//evil.example/x") is None
    assert resolve_same_origin(origin, "/", "http://[::1") is None
    assert resolve_same_origin(origin, "/", "/x\r\nInjected: yes") is None
    v6 = Origin("https", "[2001:db8::7]", 443)
    assert resolve_same_origin(v6, "/", "https://[2001:db8::7]/y") == "/y"


def test_chunked_and_gzip_bodies() -> None:
    assert dechunk(b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nTrailer: x\r\n\r\n") == (
        b"Wikipedia", True
    )  # fmt: skip
    assert dechunk(b"4\r\nWi") == (b"Wi", False)
    assert decode_content(gzip.compress(b"hello"), "gzip") == (b"hello", True)
    assert decode_content(b"not gzip", "gzip") == (b"not gzip", False)
    assert decode_content(b"brotli?", "br") == (b"brotli?", False)


def test_favicon_hash_is_shodans() -> None:
    icon = bytes(range(256)) * 10
    assert favicon_hash(icon) == mmh3.hash(base64.encodebytes(icon))
    assert data_uri_bytes("data:image/png;base64," + base64.b64encode(icon).decode()) == icon
    assert data_uri_bytes("data:text/plain,hello") is None


# --- MQTT, Shodan view, nmap ------------------------------------------------------------


def test_mqtt_probe_is_a_refused_by_design_connect() -> None:
    assert PROBE[0] == 0x10 and PROBE[1] == len(PROBE) - 2
    assert PROBE[4:8] == b"MQTT" and PROBE[8] == 0  # protocol level 0: no version uses it
    assert PROBE[9] == 0x02  # clean session, no user name, no password flags
    assert parse_connack(b"\x20\x02\x00\x01") is not None
    assert parse_connack(b"\x20\x02\x00\x01").return_code == 1  # type: ignore[union-attr]
    assert parse_connack(b"\x20\x03\x00\x84\x00").return_code == 0x84  # type: ignore[union-attr]
    assert parse_connack(b"HTTP/1.1 400") is None


def test_shodan_queries_for_an_https_home_assistant() -> None:
    evidence = ShodanEvidence(
        port=8443,
        service="http",
        product="Home Assistant",
        title='Home "Assistant"',
        favicon_mmh3=-1234,
        certificate={"subject_cn": "home.example", "sans": ["home.example"], "sha256": "ab"},
    )
    assert shodan_queries(evidence) == [
        'ssl.cert.fingerprint:"ab"',
        'ssl.cert.subject.cn:"home.example"',
        'ssl:"home.example"',
        'http.title:"Home Assistant"',
        "http.favicon.hash:-1234",
        'product:"Home Assistant" port:8443',
    ]


NMAP_XML = """<?xml version="1.0"?><nmaprun><host><ports>
<port protocol="tcp" portid="11211"><state state="open"/><service name="memcached"
 product="Memcached" version="1.6.18" method="probed" conf="10">
 <cpe>cpe:/a:memcached:memcached:1.6.18</cpe></service></port>
<port protocol="tcp" portid="8443"><state state="open"/><service name="http" product="Jetty"
 tunnel="ssl" method="probed" conf="10"/></port>
<port protocol="tcp" portid="22"><state state="open"/>
 <service name="ssh" method="table" conf="3"/></port>
</ports></host></nmaprun>"""


def test_nmap_xml_keeps_probed_answers_only() -> None:
    found = parse_nmap_services(NMAP_XML, {11211, 8443, 22})
    assert set(found) == {11211, 8443}  # port 22's "ssh" is nmap guessing from the number
    assert (found[11211].product, found[11211].version) == ("Memcached", "1.6.18")
    assert found[11211].cpes == ("cpe:/a:memcached:memcached:1.6.18",)
    assert (found[8443].service, found[8443].tls) == ("http", True)
    budget = ScanBudget(Limits(rate=50))
    arguments = port_arguments(ipaddress.ip_address("::1"), 8443, 3.7, budget)
    assert "-sV" in arguments and "-6" in arguments and "--max-parallelism=1" in arguments
    assert "--host-timeout=3s" in arguments and "--scan-delay=20ms" in arguments


def test_nmap_missing_is_skipped_quietly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")  # no nmap to be found

    def silent(conn: socket.socket, server: servers.ThreadServer) -> None:
        servers.wait_until_stopped(conn, server)

    with servers.thread_server(silent) as server:
        found = identify_services(
            ipaddress.ip_address("127.0.0.1"), [server.port], IdentifyOptions(timeout=0.3)
        )
    assert found[server.port].service is None and found[server.port].source == "probe"


@pytest.mark.skipif(shutil.which("nmap") is None, reason="nmap is not installed")
def test_nmap_names_what_our_probes_cannot() -> None:
    """A memcached look-alike: silent, answers each line with ERROR, as memcached does."""

    def memcached(conn: socket.socket, server: servers.ThreadServer) -> None:
        buffer = b""
        while not server.stopping.is_set():
            try:
                chunk = conn.recv(4096)
            except TimeoutError:
                continue
            if not chunk:
                return
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            if lines and not server.send(conn, b"ERROR\r\n" * len(lines)):  # in one segment
                return

    with servers.thread_server(memcached) as server:
        started = time.monotonic()
        found = identify_services(
            ipaddress.ip_address("127.0.0.1"), [server.port], IdentifyOptions(timeout=1.0)
        )[server.port]
        elapsed = time.monotonic() - started
    assert found.source == "nmap"
    assert (found.service, found.product) == ("memcached", "Memcached")
    assert found.details["nmap"]["product"] == "Memcached"
    assert elapsed < 30
