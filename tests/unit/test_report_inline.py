"""Code spans, terminal wrapping and the one-line crawler record: parsers of text that may
come from a server, so each also gets whatever hypothesis can think of."""

from __future__ import annotations

import itertools
import re

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.cells import cell_len
from rich.text import Text

from scanner.checks.http_details import HttpDetails
from scanner.checks.services.details import MqttDetails
from scanner.checks.tls.details import TlsCertificate, TlsDetails
from scanner.core.details import load_port_details
from scanner.core.text import safe_text
from scanner.identification.shodan_view import ShodanDetails
from scanner.report.inline import Piece, plain, split_code_spans
from scanner.report.shodan import compact_record, looks_binary
from scanner.report.wrap import wrap


def test_code_spans_pair_in_order_whatever_their_length() -> None:
    long = "x" * 300
    assert split_code_spans(f"a `{long}` b `c` d") == [
        Piece("a ", False), Piece(long, True), Piece(" b ", False), Piece("c", True),
        Piece(" d", False)]


def test_runs_of_backticks_close_only_an_equal_run() -> None:
    assert split_code_spans("``a ` b`` c") == [Piece("a ` b", True), Piece(" c", False)]
    assert split_code_spans("`` x ``") == [Piece("x", True)]


def test_a_lonely_backtick_is_text_and_spans_stop_at_blank_lines() -> None:
    assert split_code_spans("it`s fine") == [Piece("it`s fine", False)]
    assert split_code_spans("a `b\n\nc` d") == [Piece("a `b\n\nc` d", False)]
    assert plain("run `make` now") == "run make now"


@settings(max_examples=300)
@given(st.text(alphabet=st.sampled_from(list("`ab \n:;")), max_size=60))
def test_spans_lose_nothing_but_their_backticks(text: str) -> None:
    pieces = split_code_spans(text)
    kept = "".join(piece.text for piece in pieces)
    assert re.sub("[` ]", "", kept) == re.sub("[` ]", "", text)  # only ticks and padding go
    assert all(piece.text or piece.code for piece in pieces)
    assert not any(not a.code and not b.code for a, b in itertools.pairwise(pieces))


def test_wrap_hangs_and_breaks_after_separators() -> None:
    ciphers = ":".join(["ECDHE-RSA-AES128-GCM-SHA256"] * 6)
    lines = wrap([("use ", ""), (ciphers, "cyan"), (" now", "")], 50,
                 prefix=Text("fix: "), indent="     ")
    texts = [line.plain for line in lines]
    assert texts[0] == "fix: use"
    assert all(text.startswith("     ") and len(text) <= 50 for text in texts[1:])
    assert all(text.rstrip().endswith((":", "now")) for text in texts[1:])
    assert "".join(text.strip() for text in texts[1:]).replace(" now", "") == ciphers


def test_wrap_keeps_glued_pieces_together_and_newlines() -> None:
    lines = wrap([("see ", ""), ("x", "cyan"), (", then\nnext", "")], 80, indent="  ")
    assert [line.plain for line in lines] == ["see x, then", "  next"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=80), st.sampled_from(["", "cyan", "bold"])),
                max_size=6),
       st.integers(min_value=1, max_value=140), st.text(alphabet=" ", max_size=12))
def test_wrap_never_exceeds_the_width(segments: list[tuple[str, str]], width: int,
                                      indent: str) -> None:
    # What the renderers wrap has been through safe_text (no control characters).
    segments = [(safe_text(text, 200, keep_newlines=True), style) for text, style in segments]
    lines = wrap(segments, width, indent=indent)
    limit = max(width, len(indent) + 24)
    assert all(cell_len(line.plain) <= limit + 1 for line in lines)  # +1: a wide char's cell
    words = "".join(text for text, _ in segments).split()
    assert "".join("".join(line.plain.split()) for line in lines) == "".join(words)


def test_compact_record_keeps_what_identifies_the_service() -> None:
    banner = ("HTTP/1.1 401 Unauthorized\nServer: nginx\nDate: Tue, 02 Jan 2024 10:00:00 GMT\n"
              'ETag: "1"\nLast-Modified: x\nSet-Cookie: sid=secret\nWWW-Authenticate: Basic '
              'realm="NAS"\n\nSSL Certificate\nIssued By: CN=R3\nIssued To: CN=nas.example')
    record = compact_record(ShodanDetails(banner), [HttpDetails(title="Login")])
    assert record == ('HTTP/1.1 401 Unauthorized · Server: nginx · WWW-Authenticate: Basic '
                      'realm="NAS" · title "Login" · certificate for CN=nas.example')
    assert "Date" not in record and "secret" not in record


def test_mqtt_records_come_from_the_check() -> None:
    assert compact_record(ShodanDetails("MQTT broker (answers an MQTT CONNECT)"),
                          [MqttDetails(anonymous=False)]) == \
        "MQTT broker that asks clients for a password"
    assert compact_record(ShodanDetails("MQTT Connection Code: 1"), []) == "MQTT broker"
    tls = TlsDetails(certificate=TlsCertificate(subject_cn="mqtt.example"))
    assert compact_record(ShodanDetails("MQTT broker (answers an MQTT CONNECT)"),
                          [MqttDetails(anonymous=True), tls]) == \
        "MQTT broker that lets clients in without a password · certificate for mqtt.example"


def test_binary_is_told_apart_from_text() -> None:
    assert looks_binary("\ufffd\ufffdAB") and looks_binary("\\e[2J")
    assert not looks_binary("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3")
    assert compact_record(ShodanDetails("\x00\x01\x02" * 30), []) == "binary data (not text)"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300), st.dictionaries(st.sampled_from(["http", "tls", "mqtt"]),
                                              st.one_of(st.none(), st.text(max_size=20),
                                                        st.dictionaries(st.text(max_size=8),
                                                                        st.text(max_size=20)))))
def test_compact_record_of_anything_is_one_clean_line(banner: str, details: dict) -> None:
    record = compact_record(ShodanDetails(banner), load_port_details(details).values())
    assert "\n" not in record and "\x1b" not in record and len(record) <= 220
