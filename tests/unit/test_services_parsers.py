"""The service probes' parsers: exact answers on known inputs, and never a crash on any bytes."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.checks.services import memcached, mongodb, mqtt, redis, rtsp, smb, telnet, vnc
from scanner.checks.services.markers import (
    json_value,
    opening_matches,
    parse_json,
    reply_matches,
    reply_value,
)
from scanner.checks.services.model import Auth, JsonMarker, JsonTest, Match
from scanner.net import HttpReply
from scanner.net.codecs.mqtt import Connack
from scanner.net.websocket import Frame, FrameHeader, Opening, parse_frame_header

ANY_BYTES = st.binary(max_size=4096)


def _reply(body: bytes, status: int = 200, **headers: str) -> HttpReply:
    return HttpReply(status, tuple((k.lower(), v) for k, v in headers.items()), body, True, "/")


def _frame(opcode: int, payload: bytes) -> Frame:
    return Frame(FrameHeader(True, opcode, False, len(payload), 2), payload)


# --- markers -----------------------------------------------------------------------------


def test_json_markers() -> None:
    document = parse_json(b'{"session": {"valid": true, "totp": false}, "list": [1]}')
    assert json_value(document, "session.valid") is True
    assert json_value(document, "list.0") == 1
    match = Match(json=(JsonMarker("session.valid", test=JsonTest.TRUE),
                        JsonMarker("session.totp", pattern=r"^(true|false)$")))
    assert reply_matches(_reply(b'{"session": {"valid": true, "totp": false}}'), match)
    assert not reply_matches(_reply(b'{"session": {"valid": false, "totp": false}}'), match)
    assert not reply_matches(_reply(b"<html>{}</html>"), match)


def test_empty_object_marker_needs_exactly_empty_json() -> None:
    match = Match(json=(JsonMarker("", test=JsonTest.EMPTY_OBJECT),))
    assert reply_matches(_reply(b"{}"), match)
    assert not reply_matches(_reply(b'{"type": "credentials"}'), match)
    assert not reply_matches(_reply(b"<!doctype html><title>{}</title>"), match)


def test_status_is_only_ever_an_extra_condition() -> None:
    match = Match(status=frozenset({401}), body=(r"security_exception",))
    assert not reply_matches(_reply(b"Unauthorized", 401), match)
    assert reply_matches(_reply(b'{"type":"security_exception"}', 401), match)


def test_header_marker_and_value() -> None:
    reply = _reply(b"", 204, **{"X-Influxdb-Version": "1.6.7~rc0"})
    assert reply_matches(reply, Match(headers=(("x-influxdb-version", r"."),)))
    assert reply_value(reply, "header:X-Influxdb-Version") == "1.6.7~rc0"


def test_websocket_markers() -> None:
    closed = Opening(101, True, True, None, _frame(8, struct.pack("!H", 4401) + b"Unauthorized"))
    assert opening_matches(closed, Match(ws_close_code=4401))
    streaming = Opening(101, True, True, None, _frame(1, b'{"topic":"bridge/state"}'))
    assert opening_matches(streaming, Match(ws_text=(r'"topic"\s*:\s*"bridge/',)))
    assert not opening_matches(Opening(404, False, False, None, None), Match(ws_close_code=4401))


@given(ANY_BYTES, st.text(max_size=30))
@settings(max_examples=300)
def test_markers_never_raise(body: bytes, path: str) -> None:
    document = parse_json(body)
    json_value(document, path)
    reply = _reply(body)
    marker = JsonMarker(path or "a", test=JsonTest.PRESENT)
    reply_matches(reply, Match(body=(r"x",), json=(marker,)))
    assert len(reply_value(reply, path or "a") or "") <= 64 + 20


@given(ANY_BYTES)
def test_frame_header_never_raises(data: bytes) -> None:
    parsed = parse_frame_header(data)
    if parsed is not None:
        assert parsed.header_size <= 14


# --- MQTT --------------------------------------------------------------------------------


def test_connect_packet_has_no_credentials() -> None:
    packet = mqtt.connect_packet("exposure-0001")
    assert packet[0] == 0x10 and packet[2:8] == b"\x00\x04MQTT"
    assert packet[8] == 4 and packet[9] == 0x02  # v3.1.1, clean session, no user/password flags
    assert packet.endswith(b"\x00\x0dexposure-0001")


def test_connack_verdicts() -> None:
    assert mqtt.parse_connack(b"\x20\x02\x00\x00") == Connack(0, "accepted")
    assert mqtt.parse_connack(b"\x20\x02\x00\x05") == Connack(5, "not authorized")
    assert mqtt.verdict(0, "tcp", "x").auth is Auth.NONE
    assert mqtt.verdict(5, "tcp", "x").auth is Auth.REQUIRED
    assert mqtt.verdict(4, "tls", "x").auth is Auth.REQUIRED
    assert mqtt.verdict(2, "tcp", "x").auth is Auth.UNKNOWN


@given(ANY_BYTES)
def test_connack_parser_never_raises(data: bytes) -> None:
    mqtt.parse_connack(data)


# --- Redis, memcached --------------------------------------------------------------------


def test_redis_replies() -> None:
    info = b"$60\r\n# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n\r\n"
    opened = redis.classify(info)
    assert opened.auth is Auth.NONE and opened.version == "7.0.15"
    assert redis.classify(b"-NOAUTH Authentication required.\r\n").auth is Auth.REQUIRED
    denied = redis.classify(b"-DENIED Redis is running in protected mode\r\n")
    assert denied.auth is Auth.REQUIRED and denied.facts["protected_mode"]
    assert not redis.classify(b"HTTP/1.1 400 Bad Request\r\n").identified


def test_memcached_replies() -> None:
    stats = b"STAT pid 12\r\nSTAT uptime 5\r\nSTAT version 1.6.18\r\nEND\r\n"
    assert memcached.classify(stats).auth is Auth.NONE
    assert memcached.classify(stats).version == "1.6.18"
    assert memcached.classify(b"CLIENT_ERROR unauthenticated\r\n").auth is Auth.REQUIRED
    assert not memcached.classify(b"ERROR\r\n").identified


@given(ANY_BYTES)
def test_text_protocol_classifiers_never_raise(data: bytes) -> None:
    for outcome in (redis.classify(data), memcached.classify(data)):
        assert len(outcome.evidence) <= 400


# --- VNC ---------------------------------------------------------------------------------


def test_vnc_security_types() -> None:
    assert vnc.parse_version(b"RFB 003.008\n") == (3, 8)
    assert vnc.client_version((3, 8)) == (3, 8) and vnc.client_version((3, 5)) == (3, 3)
    assert vnc.parse_type_list(b"\x02\x01\x02") == ([1, 2], None)
    assert vnc.judge([1, 2], None) is Auth.NONE
    assert vnc.judge([2], None) is Auth.REQUIRED
    assert vnc.judge([19], [258, 261]) is Auth.REQUIRED
    assert vnc.judge([19], [257, 258]) is Auth.NONE  # TLSNone
    assert vnc.judge([16], None) is Auth.UNKNOWN
    refused = vnc.parse_type_list(b"\x00\x00\x00\x00\x0btoo many at")
    assert refused is not None and refused[1] == "too many at"


@given(ANY_BYTES)
def test_vnc_parsers_never_raise(data: bytes) -> None:
    vnc.parse_version(data)
    vnc.parse_type_list(data)
    vnc.parse_vencrypt_subtypes(data)


# --- Telnet ------------------------------------------------------------------------------


def test_telnet_negotiation_is_refused() -> None:
    text, negotiations = telnet.split_telnet(b"\xff\xfd\x18\xff\xfb\x01Debian\r\nlogin: ")
    assert negotiations == [(telnet.DO, 0x18), (telnet.WILL, 0x01)]
    assert telnet.refusals(negotiations) == b"\xff\xfc\x18\xff\xfe\x01"
    assert telnet.classify(text.decode()).auth is Auth.REQUIRED


def test_telnet_prompts() -> None:
    assert telnet.classify("BusyBox v1.35\r\n/ # ").auth is Auth.NONE
    assert telnet.classify("lab$ ").auth is Auth.NONE
    assert telnet.classify("Router>").auth is Auth.NONE
    assert telnet.classify("User Name:").auth is Auth.REQUIRED
    assert telnet.classify("Password: ").auth is Auth.REQUIRED
    assert telnet.classify("Welcome to the service").auth is Auth.UNKNOWN


@given(ANY_BYTES)
def test_telnet_parsers_never_raise(data: bytes) -> None:
    text, negotiations = telnet.split_telnet(data)
    assert len(text) <= len(data)
    telnet.refusals(negotiations)
    assert len(telnet.classify(text.decode("utf-8", "replace")).evidence) <= 300


# --- RTSP --------------------------------------------------------------------------------


def test_rtsp_describe_verdicts() -> None:
    options = rtsp.parse_response(
        b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nPublic: OPTIONS, DESCRIBE\r\n\r\n"
    )
    sdp = b"RTSP/1.0 200 OK\r\nContent-Type: application/sdp\r\n\r\nv=0\r\nm=video 0 RTP/AVP 96\r\n"
    assert rtsp.classify(options, rtsp.parse_response(sdp), "rtsp://x/").auth is Auth.NONE
    locked = b'RTSP/1.0 401 Unauthorized\r\nWWW-Authenticate: Digest realm="cam"\r\n\r\n'
    assert rtsp.classify(options, rtsp.parse_response(locked), "rtsp://x/").auth is Auth.REQUIRED
    unknown = rtsp.classify(options, rtsp.parse_response(b"RTSP/1.0 404 Not Found\r\n\r\n"), "u")
    assert unknown.auth is Auth.UNKNOWN and unknown.notes
    assert rtsp.parse_response(b"HTTP/1.1 200 OK\r\n\r\n") is None


@given(ANY_BYTES, ANY_BYTES)
def test_rtsp_parsers_never_raise(first: bytes, second: bytes) -> None:
    rtsp.response_complete(first)
    rtsp.classify(rtsp.parse_response(first), rtsp.parse_response(second), "rtsp://x/")


# --- SMB ---------------------------------------------------------------------------------


def test_smb_negotiate_request_and_answer() -> None:
    request = smb.negotiate_request()
    assert struct.unpack(">I", request[:4])[0] == len(request) - 4
    assert request[4:8] == b"\xfeSMB" and len(request) == 4 + 64 + 36 + 2 * len(smb.DIALECTS)
    header = b"\xfeSMB" + struct.pack("<HHI", 64, 0, 0) + bytes(52)
    body = struct.pack("<HHH", 65, 0x01, 0x0302) + bytes(58)
    answer = smb.parse_negotiate(struct.pack(">I", len(header + body)) + header + body)
    assert answer.identified and answer.facts["dialect"] == "3.0.2"
    assert answer.facts["signing_required"] is False


@given(ANY_BYTES)
def test_smb_parser_never_raises(data: bytes) -> None:
    smb.parse_negotiate(data)


# --- MongoDB -----------------------------------------------------------------------------


def test_bson_round_trip_and_op_msg() -> None:
    document = {"isMaster": 1, "$db": "admin", "nameOnly": True}
    assert mongodb.decode_document(mongodb.encode_document(document)) == document
    message = mongodb.op_msg({"ok": 1})
    assert mongodb.parse_op_msg(message) == {"ok": 1}


def test_mongodb_verdicts() -> None:
    hello = {"ismaster": True, "maxWireVersion": 17, "ok": 1.0}
    listing = {"databases": [{"name": "admin"}, {"name": "local"}], "ok": 1.0}
    assert mongodb.classify(hello, listing).auth is Auth.NONE
    refused = {"ok": 0.0, "errmsg": "command listDatabases requires authentication", "code": 13}
    assert mongodb.classify(hello, refused).auth is Auth.REQUIRED
    assert not mongodb.classify(None, None).identified


@given(ANY_BYTES)
@settings(max_examples=300)
def test_bson_and_op_msg_parsers_never_raise(data: bytes) -> None:
    mongodb.parse_op_msg(data)
    try:
        mongodb.decode_document(data)
    except mongodb.BsonError:
        pass
    except struct.error:
        raise AssertionError("struct.error escaped") from None
