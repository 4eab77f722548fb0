"""The issue-18 parsers of remote data: examples from the real servers, and properties.

Examples are the bytes the lab's real servers sent (vsftpd 3.0.3, rsync 3.5.0 daemon,
Xvfb 21.1.7, MariaDB 10.11, PostgreSQL 15, etcd 3.4). Properties: anything a server sends
is parsed without raising, and what is kept stays bounded.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.checks.http_login import login_on_page
from scanner.checks.services import etcd, ftp, mysql, postgres, rsync, x11
from scanner.checks.services.model import REFUSED_BEFORE_LOGIN, Auth
from scanner.net.http import HttpReply

VSFTPD_FEAT = (b"211-Features:\r\n EPRT\r\n EPSV\r\n MDTM\r\n PASV\r\n REST STREAM\r\n"
               b" SIZE\r\n TVFS\r\n211 End\r\n")
_HANDSHAKE = (
    b"\x0a5.5.5-10.11.19-MariaDB-0+deb12u1\x00\x03\x00\x00\x00"
    b"abcdefgh\x00\xfe\xf7\x2d\x02\x00\xff\x81\x15\x00\x00\x00\x00\x00\x00\x1d\x00\x00\x00"
    b"ijklmnopqrst\x00mysql_native_password\x00"
)
MARIADB_GREETING = struct.pack("<I", len(_HANDSHAKE))[:3] + b"\x00" + _HANDSHAKE
_REFUSAL = b"\xff\x6a\x04Host '203.0.113.1' is not allowed to connect to this MariaDB server"
MARIADB_REFUSED = struct.pack("<I", len(_REFUSAL))[:3] + b"\x00" + _REFUSAL


def test_ftp_replies() -> None:
    assert ftp.parse_reply(b"220 (vsFTPd 3.0.3)\r\n") == ftp.Reply(220, "(vsFTPd 3.0.3)")
    assert ftp.parse_reply(b"220 (vsFTPd 3.0.3)") is None  # no line end yet
    assert ftp.parse_reply(b"220-Welcome\r\n220-to the\r\n") is None  # the last line is missing
    multi = ftp.parse_reply(b"220-Welcome\r\n to the archive\r\n220 ready\r\n")
    assert multi == ftp.Reply(220, "Welcome | to the archive | ready")
    assert ftp.features(ftp.parse_reply(VSFTPD_FEAT))[:2] == ("EPRT", "EPSV")
    assert ftp.parse_reply(b"SSH-2.0-OpenSSH_9.2\r\n") is None


def test_the_anonymous_ledger_allows_one_attempt_per_address() -> None:
    ledger = ftp.AnonymousLedger(window=60)
    assert ledger.claim("203.0.113.10")
    assert not ledger.claim("203.0.113.10")
    assert ledger.claim("2001:db8:1::10")
    ledger.forget()
    assert ledger.claim("203.0.113.10")


def test_rsync_listing() -> None:
    assert rsync.parse_greeting(b"@RSYNCD: 31.0 sha512 sha256 sha1 md5 md4\n") == "31.0"
    assert rsync.parse_greeting(b"@RSYNCD: 30\n") == "30.0"
    assert rsync.parse_greeting(b"HTTP/1.1 400 Bad\r\n") is None
    listing = b"backup         \tnightly backups\nmedia\t\n@RSYNCD: EXIT\n"
    assert rsync.parse_listing(listing) == ([("backup", "nightly backups"), ("media", "")], None)
    assert rsync.parse_listing(b"@ERROR: access denied to backup from x\n") == (
        [], "access denied to backup from x")
    assert rsync.outcome("31.0", [], None).auth is Auth.REQUIRED
    assert rsync.outcome("31.0", [("a", "")], None).auth is Auth.NONE


def _x11_head(status: int, reason_length: int, units: int) -> bytes:
    return bytes([status, reason_length]) + struct.pack("<HHH", 11, 0, units)


def test_x11_replies() -> None:
    reason = b"No protocol specified\n"
    padded = reason + b"\x00" * (-len(reason) % 4)
    refused = x11.parse_reply(_x11_head(0, len(reason), len(padded) // 4), padded)
    assert refused.identified and refused.auth is Auth.REQUIRED
    assert "No protocol specified" in refused.evidence
    vendor = b"The X.Org Foundation"
    extra = struct.pack("<IIIIHHBBBBBBBB", 12101007, 0, 0, 0, len(vendor), 65535, 1, 1, 0, 0,
                        32, 32, 8, 255) + b"\x00" * 4 + vendor
    accepted = x11.parse_reply(_x11_head(1, 0, len(extra) // 4), extra)
    assert accepted.auth is Auth.NONE and accepted.facts["vendor"] == "The X.Org Foundation"
    assert not x11.parse_reply(b"HTTP/1.1", b"").identified


def test_mysql_greetings() -> None:
    open_greeting = mysql.classify(MARIADB_GREETING)
    assert open_greeting.product == "MariaDB" and open_greeting.version == "10.11.19"
    assert open_greeting.facts["auth_plugin"] == "mysql_native_password"
    assert not open_greeting.facts.get(REFUSED_BEFORE_LOGIN)
    refused = mysql.classify(MARIADB_REFUSED)
    assert refused.identified and refused.facts[REFUSED_BEFORE_LOGIN]
    assert not mysql.classify(b"220 (vsFTPd 3.0.3)\r\n").identified


def test_postgres_answers() -> None:
    assert postgres.classify(b"N", b"").facts == {"ssl_offered": False}
    assert postgres.classify(b"S", b"").facts == {"ssl_offered": True}
    assert not postgres.classify(b"N", b"OTICE").identified  # more than the one byte
    assert not postgres.classify(b"H", b"").identified


def test_etcd_answers() -> None:
    opened = etcd.classify(200, b'{"header":{"revision":"2"},"count":"1"}')
    assert opened.auth is Auth.NONE and opened.facts == {"keys": 1}
    empty = etcd.classify(200, b'{"header":{"revision":"1"}}')
    assert empty.auth is Auth.NONE and empty.facts == {"keys": 0}
    locked = etcd.classify(400, b'{"error":"etcdserver: user name is empty","code":3}')
    assert locked.auth is Auth.REQUIRED
    assert not etcd.classify(200, b"<html>").identified
    assert not etcd.classify(404, b'{"message":"not found"}').identified


def _reply(status: int, body: bytes, **headers: str) -> HttpReply:
    return HttpReply(status, tuple((name.replace("_", "-"), value)
                                   for name, value in headers.items()), body, True, "/login")


@pytest.mark.parametrize(("reply", "login"), [
    (_reply(200, b'<form method="post"><input type="password" name="p"></form>'), True),
    (_reply(200, b"<form action='https://id.example/login'><input type=password></form>"), False),
    (_reply(200, b"<html><title>Welcome</title></html>"), False),
    (_reply(401, b"", www_authenticate='Basic realm="lab"'), True),
    (_reply(401, b"", www_authenticate='Bearer realm="registry"'), False),
    (_reply(200, b"<INPUT TYPE='PASSWORD'>"), True),
])
def test_plain_login_pages(reply: HttpReply, login: bool) -> None:
    assert (login_on_page(reply) is not None) == login


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=3000))
def test_parsers_take_anything(data: bytes) -> None:
    reply = ftp.parse_reply(data)
    assert reply is None or (100 <= reply.code <= 999 and len(reply.text) <= 310)
    ftp.features(reply)
    rsync.parse_greeting(data)
    modules, error = rsync.parse_listing(data)
    assert len(modules) <= rsync.MAX_MODULES and (error is None or len(error) <= 210)
    x11.parse_reply(data[:8], data[8:])
    mysql.classify(data)
    mysql.auth_plugin(data)
    postgres.classify(data[:1], data[1:])
    etcd.classify(200, data)
    login_on_page(_reply(200, data))
    login_on_page(_reply(401, data, www_authenticate=data[:50].decode("latin-1")))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([b"211-", b"211 ", b"220-", b"\r\n", b"\n", b" AUTH TLS",
                                 b"x" * 50, b"@RSYNCD: ", b"@ERROR", b"\t"]), max_size=60))
def test_structured_noise(parts: list[bytes]) -> None:
    data = b"".join(parts)
    ftp.features(ftp.parse_reply(data))
    rsync.parse_listing(data)
