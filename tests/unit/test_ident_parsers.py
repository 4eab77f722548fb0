"""Property tests: every parser of remote data takes anything, never raises, stays bounded."""

from __future__ import annotations

import gzip
import time
import zlib

from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.core.text import TRUNCATION_MARK
from scanner.identification.banner import (
    BANNER_CHARS,
    classify_greeting,
    classify_reply_to_http,
    normalise_text,
    parse_ssh_identification,
)
from scanner.identification.mqtt import parse_connack
from scanner.identification.nmap_fallback import FIELD_CHARS, parse_nmap_services
from scanner.identification.products import (
    GREETING_RULES,
    HTTP_SERVER_RULES,
    HTTP_TITLE_RULES,
    MAX_FIELD_CHARS,
    SSH_SOFTWARE_RULES,
    match_product,
)
from scanner.identification.shodan_view import BANNER_CHARS as SHODAN_BANNER_CHARS
from scanner.identification.shodan_view import ShodanEvidence, shodan_view
from scanner.identification.tls import looks_like_tls, parse_certificate
from scanner.net.http_parse import (
    BODY_CAP,
    HEADER_VALUE_CHARS,
    MAX_HEADERS,
    MAX_ICON_LINKS,
    MAX_TAG_CHARS,
    TITLE_CHARS,
    ChunkedDecoder,
    Origin,
    data_uri_bytes,
    dechunk,
    decode_content,
    extract_icon_links,
    extract_title,
    find_head_end,
    head_text,
    header_summary,
    html_text,
    looks_like_http,
    missing_security_headers,
    parse_head,
    resolve_same_origin,
)

MARK = len(TRUNCATION_MARK)
# Text that looks like what servers send, with the characters that break naive parsers.
protocol_text = st.lists(
    st.sampled_from(
        [
            *"SH-20.OpenSSH_9p1 Debian+deb12u3\r\n\t\x1b[]\x00\x07<>/=\"'&#;:aAtitlelinkrelicon",
            *["<title>", "</title>", "<link ", "rel=icon", "href=", "HTTP/1.1 ", "220 ", "\u202e"],
        ]
    ),
    max_size=200,
).map("".join)
any_text = st.one_of(st.text(max_size=2000), protocol_text)
any_bytes = st.one_of(st.binary(max_size=4000), protocol_text.map(lambda t: t.encode("utf-8")))


def _no_controls(text: str, allowed: str = "") -> bool:
    return not any((ord(char) < 0x20 or 0x7F <= ord(char) <= 0x9F) and char not in allowed
                   for char in text)


# --- banners and products ---------------------------------------------------------------


@given(any_bytes)
def test_classify_greeting_is_total_and_bounded(data: bytes) -> None:
    found = classify_greeting(data)
    assert len(found.banner) <= BANNER_CHARS + MARK
    assert _no_controls(found.banner)
    for value in (found.product, found.version):
        assert value is None or (len(value) <= MAX_FIELD_CHARS + MARK and _no_controls(value))
    for value in found.details.get("ssh", {}).values():
        assert len(value) <= 2 * MAX_FIELD_CHARS + MARK and _no_controls(value)


@given(any_bytes)
def test_classify_reply_to_http_is_total(data: bytes) -> None:
    found = classify_reply_to_http(data)
    assert found is None or len(found.banner) <= BANNER_CHARS + MARK


@given(any_text)
def test_ssh_identification_parser(text: str) -> None:
    found = parse_ssh_identification(text)
    if found is not None:
        assert found.line.startswith("SSH-")
        assert len(found.software) <= 201 and " " not in found.software


@given(st.text(alphabet="0123456789.", min_size=1, max_size=10), any_text)
def test_ssh_identification_roundtrip(protocol: str, comment: str) -> None:
    comment = comment.replace("\n", " ").replace("\r", " ")[:150]
    found = parse_ssh_identification(f"SSH-{protocol}-OpenSSH_9.2p1 {comment}")
    assert found is not None and found.software == "OpenSSH_9.2p1"


@given(any_text)
def test_product_rules_never_raise(text: str) -> None:
    tables = [SSH_SOFTWARE_RULES, HTTP_SERVER_RULES, HTTP_TITLE_RULES, *GREETING_RULES.values()]
    for rules in tables:
        match = match_product(rules, text)
        if match is not None and match.version is not None:
            assert len(match.version) <= MAX_FIELD_CHARS + MARK


@given(any_bytes)
def test_normalise_text_has_no_carriage_returns(data: bytes) -> None:
    assert "\r" not in normalise_text(data)


# --- HTTP -------------------------------------------------------------------------------


@given(any_bytes)
def test_parse_head_is_total_and_bounded(raw: bytes) -> None:
    head = parse_head(raw)
    if head is not None:
        assert 0 <= head.status <= 999
        assert len(head.headers) <= MAX_HEADERS
        summary = header_summary(head)
        assert all(len(value) <= HEADER_VALUE_CHARS + MARK for value in summary.values())
        assert all(_no_controls(value) for value in summary.values())
        missing_security_headers(head, "https")


@given(st.integers(100, 599), st.lists(st.tuples(st.text(
    alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=20), st.text(
    alphabet="abc 123/;=.", max_size=40)), max_size=20))
def test_parse_head_roundtrip(status: int, headers: list[tuple[str, str]]) -> None:
    raw = f"HTTP/1.1 {status} Reason\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    head = parse_head(raw.encode())
    assert head is not None and head.status == status
    assert [name for name, _ in head.headers] == [name for name, _ in headers]
    assert find_head_end(raw.encode()) == len(raw)


@given(any_bytes, st.integers(0, 100))
def test_find_head_end_in_range(raw: bytes, start: int) -> None:
    end = find_head_end(raw, start)
    assert end is None or 0 < end <= len(raw)


@given(st.binary(max_size=10))
def test_looks_like_http_prefixes(prefix: bytes) -> None:
    assert looks_like_http(prefix) == (b"HTTP/"[: len(prefix)] == prefix[:5])


@given(st.lists(st.binary(min_size=1, max_size=300), max_size=30), st.data())
def test_chunked_decoding_any_split_same_result(chunks: list[bytes], data: st.DataObject) -> None:
    encoded = b"".join(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" for chunk in chunks)
    encoded += b"0\r\n\r\n"
    assert dechunk(encoded) == (b"".join(chunks), True)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(encoded)), max_size=20)))
    decoder = ChunkedDecoder()
    for start, end in zip([0, *cuts], [*cuts, len(encoded)], strict=True):
        decoder.feed(encoded[start:end])
    assert (bytes(decoder.body), decoder.done) == (b"".join(chunks), True)


@given(any_bytes, st.integers(1, 5000))
def test_dechunk_of_junk_is_bounded(raw: bytes, cap: int) -> None:
    body, _ = dechunk(raw, cap)
    assert len(body) <= cap


@given(any_bytes, st.sampled_from([None, "", "gzip", "deflate", "x-gzip", "br", "gzip, br"]),
       st.integers(1, 10_000))
def test_decode_content_never_exceeds_cap(body: bytes, coding: str | None, cap: int) -> None:
    decoded, _ = decode_content(body, coding, cap)
    assert len(decoded) <= cap


@given(st.binary(max_size=3000), st.integers(1, 5000))
def test_decode_content_gzip_roundtrip_up_to_cap(body: bytes, cap: int) -> None:
    decoded, complete = decode_content(gzip.compress(body), "gzip", cap)
    assert decoded == body[:cap]
    assert complete == (len(body) < cap or (len(body) == cap and complete))


@given(any_bytes, st.one_of(st.none(), any_text))
def test_html_text_is_total(body: bytes, content_type: str | None) -> None:
    assert isinstance(html_text(body, content_type), str)


@given(any_text)
def test_extract_title_bounded_and_clean(text: str) -> None:
    title = extract_title(text)
    assert title is None or (0 < len(title) <= TITLE_CHARS + MARK and _no_controls(title))


@given(any_text, any_text)
def test_extract_title_finds_a_plain_title(before: str, title: str) -> None:
    clean = "".join(char for char in title if char.isalnum())[:50]
    before = before.replace("<", "")
    found = extract_title(f"{before}<title>{clean}</title>")
    assert found == (clean or None)


@given(any_text)
def test_extract_icon_links_bounded(text: str) -> None:
    links = extract_icon_links(text)
    assert len(links) <= MAX_ICON_LINKS
    assert all(len(link) <= MAX_TAG_CHARS for link in links)


@given(any_text, any_text)
def test_resolve_same_origin_stays_on_origin(path: str, reference: str) -> None:
    origin = Origin("http", "127.0.0.1", 8123)
    target = resolve_same_origin(origin, "/" + path, reference)
    if target is not None:
        assert target.startswith("/")
        assert not any(char.isspace() or ord(char) < 0x21 or ord(char) > 0x7E for char in target)


@given(st.sampled_from(["http", "https"]), st.text(alphabet="abc.-", min_size=1, max_size=20),
       st.integers(1, 65535), st.text(alphabet="abc/", max_size=20))
def test_resolve_same_origin_absolute(scheme: str, host: str, port: int, path: str) -> None:
    origin = Origin("http", "home.example", 8123)
    target = resolve_same_origin(origin, "/", f"{scheme}://{host}:{port}/{path}")
    same = (scheme, host.lower(), port) == ("http", "home.example", 8123)
    assert (target is not None) == same


@given(any_text)
def test_data_uri_bytes_bounded(reference: str) -> None:
    decoded = data_uri_bytes("data:image/png;base64," + reference)
    assert decoded is None or len(decoded) <= BODY_CAP
    data_uri_bytes(reference)


@given(any_bytes)
def test_head_text_keeps_only_newlines(raw: bytes) -> None:
    assert _no_controls(head_text(raw), allowed="\n\t")


def test_hostile_html_is_linear() -> None:
    """Inputs built to make tag scanners backtrack finish quickly."""
    hostile = [
        "<link" * 60_000,
        "<link " + "a" * 300_000 + ">",
        ("<link " + "x" * 3000) * 80 + ">",
        "<title" * 60_000,
        "<title>" + "a" * 300_000,
        "<meta charset=" * 30_000,
    ]
    for text in hostile:
        started = time.monotonic()
        extract_icon_links(text)
        extract_title(text)
        html_text(text.encode(), None)
        assert time.monotonic() - started < 1.0


def test_chunked_drip_is_linear() -> None:
    encoded = b"".join(b"1\r\na\r\n" for _ in range(40_000)) + b"0\r\n\r\n"
    decoder = ChunkedDecoder()
    started = time.monotonic()
    for index in range(len(encoded)):
        decoder.feed(encoded[index : index + 1])
    assert decoder.done and len(decoder.body) == 40_000
    assert time.monotonic() - started < 3.0


def test_gzip_bomb_inflates_only_to_the_cap() -> None:
    bomb = zlib.compressobj(9, zlib.DEFLATED, 31)
    body = b"".join(bomb.compress(bytes(1 << 20)) for _ in range(100)) + bomb.flush()
    decoded, complete = decode_content(body, "gzip", 1 << 16)
    assert len(decoded) == 1 << 16 and not complete


# --- TLS, MQTT, nmap, Shodan view -------------------------------------------------------


@given(st.binary(max_size=10))
def test_looks_like_tls_is_total(data: bytes) -> None:
    assert looks_like_tls(data) == (
        len(data) >= 3 and data[0] in (21, 22) and data[1] == 3 and data[2] <= 4
    )


@given(st.binary(max_size=3000))
def test_parse_certificate_of_junk(der: bytes) -> None:
    assert parse_certificate(der) is None or isinstance(parse_certificate(der), dict)


@given(st.binary(max_size=300))
def test_parse_connack_is_total(data: bytes) -> None:
    answer = parse_connack(data)
    if answer is not None:
        assert data[0] == 0x20 and 0 <= answer.return_code <= 255


# What can appear in nmap's XML: it escapes control bytes from the wire as \xNN itself.
_XML_VALUE = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff"),
    max_size=300,
)


@given(any_text)
def test_parse_nmap_services_of_junk(text: str) -> None:
    assert isinstance(parse_nmap_services(text, {22}), dict)


@given(_XML_VALUE, _XML_VALUE, st.sampled_from(["probed", "table"]))
def test_parse_nmap_services_hostile_fields(product: str, version: str, method: str) -> None:
    from xml.sax.saxutils import quoteattr

    xml = (
        '<nmaprun><host><ports><port protocol="tcp" portid="2222"><state state="open"/>'
        f'<service name="ssh" product={quoteattr(product)} version={quoteattr(version)}'
        f' method="{method}" conf="10"/></port></ports></host></nmaprun>'
    )
    found = parse_nmap_services(xml, {2222})
    if method == "table":
        assert found == {}
        return
    service = found[2222]
    assert service.service == "ssh"
    for value in (service.product, service.version):
        assert value is None or (len(value) <= FIELD_CHARS + MARK and _no_controls(value))


@settings(deadline=None)
@given(
    st.integers(1, 65535),
    st.one_of(st.none(), any_text),
    st.one_of(st.none(), any_text),
    st.one_of(st.none(), any_text),
    st.one_of(st.none(), st.integers(-(2**31), 2**31 - 1)),
    st.one_of(st.none(), st.fixed_dictionaries({
        "subject_cn": any_text, "sans": st.lists(any_text, max_size=5), "sha256": any_text,
    })),
)
def test_shodan_view_bounded(
    port: int, product: str | None, title: str | None, greeting: str | None,
    favicon: int | None, certificate: dict[str, object] | None,
) -> None:  # fmt: skip
    evidence = ShodanEvidence(
        port=port, service="ssh", product=product, version=product, greeting=greeting,
        http_head=None, title=title, favicon_mmh3=favicon, certificate=certificate,
    )  # fmt: skip
    view = shodan_view(evidence)
    assert len(view["banner"]) <= SHODAN_BANNER_CHARS + MARK
    assert _no_controls(view["banner"], allowed="\n\t")
    for query in view["queries"]:
        assert _no_controls(query)
        assert len(query) < 300
        assert query.count('"') % 2 == 0  # every quoted value closes
