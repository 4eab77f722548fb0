"""HA's answers parsed from hostile bytes: the shapes HA sends, and never a crash on others."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.checks.ha import parse
from scanner.net import websocket

ANY_BYTES = st.binary(max_size=2048)
STATUSES = st.sampled_from([200, 400, 401, 404, 500])


def _frame(payload: bytes, opcode: int = 1, masked: bool = False) -> bytes:
    head = bytes([0x80 | opcode])
    mask_bit = 0x80 if masked else 0
    if len(payload) < 126:
        head += bytes([mask_bit | len(payload)])
    else:
        head += bytes([mask_bit | 126]) + len(payload).to_bytes(2, "big")
    return head + (b"\0\0\0\0" if masked else b"") + payload


def test_providers_bare_list_of_2024() -> None:
    body = b'[{"name":"Home Assistant Local","id":null,"type":"homeassistant"}]'
    providers = parse.parse_providers(200, body)
    assert providers is not None and providers.shape == "list"
    assert providers.types == ("homeassistant",) and not providers.onboarding_required


def test_providers_object_of_2025_with_trusted_networks() -> None:
    body = json.dumps({"providers": [
        {"name": "Home Assistant Local", "id": None, "type": "homeassistant"},
        {"name": "Trusted Networks", "id": None, "type": "trusted_networks"}],
        "preselect_remember_me": False}).encode()
    providers = parse.parse_providers(200, body)
    assert providers is not None and providers.shape == "object"
    assert providers.find("trusted_networks") is not None


def test_providers_onboarding_required() -> None:
    body = b'{"message":"Onboarding not finished","code":"onboarding_required"}'
    providers = parse.parse_providers(400, body)
    assert providers is not None and providers.onboarding_required


def test_providers_rejects_lookalikes() -> None:
    assert parse.parse_providers(200, b'[{"type":"oauth2"}]') is None  # no HA provider type
    assert parse.parse_providers(200, b"[]") is None
    assert parse.parse_providers(400, b'{"code":"bad_request"}') is None
    assert parse.parse_providers(404, b'[{"type":"homeassistant"}]') is None
    assert parse.parse_providers(200, b"<html>Home Assistant</html>") is None


def test_onboarding_steps() -> None:
    body = (b'[{"step":"user","done":false},{"step":"core_config","done":false},'
            b'{"step":"analytics","done":false},{"step":"integration","done":false}]')
    onboarding = parse.parse_onboarding(200, body)
    assert onboarding is not None and onboarding.user_done is False and onboarding.nothing_done
    assert parse.parse_onboarding(404, b"404: Not Found") is None
    assert parse.parse_onboarding(200, b'[{"step":"user","done":"no"}]') is None
    assert parse.parse_onboarding(200, b'[{"step":"x","done":true}]') is None


def test_manifest_needs_name_and_description() -> None:
    real = (b'{"name":"Home Assistant","short_name":"Assistant","description":'
            b'"Home automation platform that puts local control and privacy first."}')
    manifest = parse.parse_manifest(200, real)
    assert manifest is not None and manifest.names_home_assistant
    fake = parse.parse_manifest(200, b'{"name":"Home Assistant"}')
    assert fake is not None and not fake.names_home_assistant


def test_greeting() -> None:
    payload = b'{"type":"auth_required","ha_version":"2024.1.6"}'
    frame = _frame(payload)
    header = websocket.parse_frame_header(frame)
    assert header is not None and header.header_size == 2 and header.length == len(payload)
    assert parse.parse_greeting(header, payload) == "2024.1.6"
    masked = websocket.parse_frame_header(_frame(payload, masked=True))
    assert parse.parse_greeting(masked, payload) is None  # servers never mask
    binary = websocket.parse_frame_header(_frame(payload, opcode=2))
    assert parse.parse_greeting(binary, payload) is None
    bad = b'{"type":"auth_required","ha_version":"1.0; rm -rf /"}'
    assert parse.parse_greeting(websocket.parse_frame_header(_frame(bad)), bad) is None
    other = b'{"type":"auth_ok","ha_version":"2024.1.6"}'
    assert parse.parse_greeting(websocket.parse_frame_header(_frame(other)), other) is None


def test_websocket_accept_matches_rfc_6455_example() -> None:
    assert websocket.accept_value("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_close_frame_is_masked_1000() -> None:
    frame = websocket.close_frame(b"\x01\x02\x03\x04")
    assert frame[0] == 0x88 and frame[1] == 0x82
    status = bytes(b ^ frame[2 + i % 4] for i, b in enumerate(frame[6:]))
    assert int.from_bytes(status, "big") == 1000


def test_flow_start_never_keeps_the_code() -> None:
    body = b'{"type":"create_entry","flow_id":"x","result":"secret-authorization-code"}'
    flow = parse.parse_flow_start(200, body)
    assert flow == parse.FlowStart("logged_in")
    assert "secret" not in repr(flow)


def test_flow_start_user_picker_and_password_form() -> None:
    picker = json.dumps({"type": "form", "step_id": "init", "data_schema": [
        {"type": "select", "options": [["id1", "Owner"], ["id2", "Kid"]], "name": "user"}]})
    flow = parse.parse_flow_start(200, picker.encode())
    assert flow is not None and flow.kind == "user_picker" and flow.users_offered == 2
    password = json.dumps({"type": "form", "data_schema": [
        {"type": "string", "name": "username"}, {"type": "string", "name": "password"}]})
    flow = parse.parse_flow_start(200, password.encode())
    assert flow is not None and flow.kind == "other" and flow.password_asked
    aborted = parse.parse_flow_start(200, b'{"type":"abort","reason":"not_allowed"}')
    assert aborted == parse.FlowStart("aborted", abort_reason="not_allowed")


@settings(max_examples=300, deadline=None)
@given(STATUSES, ANY_BYTES)
def test_parsers_never_raise_and_stay_bounded(status: int, body: bytes) -> None:
    providers = parse.parse_providers(status, body)
    if providers:
        assert len(providers.providers) <= parse.MAX_PROVIDERS
        assert all(len(p.type) <= parse.NAME_CHARS + 20 for p in providers.providers)
    onboarding = parse.parse_onboarding(status, body)
    if onboarding:
        assert len(onboarding.steps) <= parse.MAX_STEPS
    parse.parse_manifest(status, body)
    parse.parse_installation_type(status, body)
    flow = parse.parse_flow_start(status, body)
    if flow:
        assert flow.users_offered <= 1000
    header = websocket.parse_frame_header(body)
    version = parse.parse_greeting(header, body[header.header_size:] if header else b"")
    assert version is None or len(version) <= 40


@settings(max_examples=200, deadline=None)
@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.sampled_from(["type", "step", "done", "providers", "name", "id",
                                      "data_schema", "options", "code", "ha_version"]),
                      children, max_size=5),
    max_leaves=30,
))
def test_json_shaped_junk_never_raises(value: object) -> None:
    body = json.dumps(value).encode()
    for status in (200, 400):
        parse.parse_providers(status, body)
        parse.parse_onboarding(status, body)
        parse.parse_manifest(status, body)
        parse.parse_flow_start(status, body)
    header = websocket.parse_frame_header(_frame(body[:4000]))
    parse.parse_greeting(header, body[:4000])


def test_deeply_nested_json_is_refused_not_crashed() -> None:
    body = b"[" * 100_000 + b"]" * 100_000
    assert parse.load_json(body) is None  # over the cap
    assert parse.load_json(b"[" * 20_000 + b"]" * 20_000) is None  # recursion
