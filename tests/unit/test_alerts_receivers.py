"""Every notifier against a real receiver on loopback: http.server, aiosmtpd, mosquitto."""

from __future__ import annotations

import json
import re
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scanner import __version__
from scanner.alerts import Alert, AlertError, deliver, states_for
from scanner.alerts.base import MAX_STATE_BYTES
from scanner.alerts.email import EmailNotifier
from scanner.alerts.http import HomeAssistantWebhookNotifier, NtfyNotifier, WebhookNotifier
from scanner.alerts.mqtt import MqttNotifier, slug
from scanner.core.findings import Severity
from scanner.diff import Change, ChangeKind, ScanRef
from tests.lab.daemons import pick_free_port, start_mosquitto
from tests.lab.pki import LabCA
from tests.lab.support_monitor import HttpReceiver, MqttRecorder, SmtpReceiver, wait_until

SCAN = ScanRef("0123456789ab", "2026-11-23T10:00:00+00:00", 7)
OPENED = Change(ChangeKind.PORT_OPENED, Severity.HIGH, "home.example", ("198.51.100.7",),
                "port 8123/tcp opened (http, Home Assistant)", port=8123,
                after={"service": "http"})
GRADE = Change(ChangeKind.TLS_GRADE, Severity.MEDIUM, "home.example", ("198.51.100.7",),
               "TLS grade on port 443/tcp: A -> B", port=443, before="A", after="B")
REPORT = {
    "scan": {"id": "0123456789ab", "finished_at": "2026-11-23T10:00:05+00:00"},
    "targets": [
        {"input": "home.example", "address": "198.51.100.7",
         "ports": [{"port": 443, "protocol": "tcp", "state": "open",
                    "details": {"tls": {"grade": "B"}}},
                   {"port": 8123, "protocol": "tcp", "state": "open", "details": {}},
                   {"port": 23, "protocol": "tcp", "state": "closed", "details": {}}],
         "findings": [{"id": "tls.grade", "severity": "medium", "port": 443}]},
        {"input": "home.example", "address": "2001:db8::7",
         "ports": [{"port": 443, "protocol": "tcp", "state": "open",
                    "details": {"tls": {"grade": "A"}}}],
         "findings": []},
    ],
}


@pytest.fixture
def http() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver().start()
    try:
        yield receiver
    finally:
        receiver.stop()


def test_webhook_posts_the_alert_json_with_bearer_token(http: HttpReceiver) -> None:
    WebhookNotifier(f"{http.url}/hook", token="s3cret").send(Alert(OPENED, SCAN))
    (request,) = http.on("/hook")
    assert request["headers"]["Authorization"] == "Bearer s3cret"
    body = request["json"]
    assert body["schema"] == "exposure-alert/1" and body["severity"] == "high"
    assert body["change"]["kind"] == "port.opened" and body["change"]["port"] == 8123
    assert body["scan"] == {"id": "0123456789ab", "started_at": SCAN.started_at, "seq": 7}


def test_ntfy_json_publish(http: HttpReceiver) -> None:
    NtfyNotifier(http.url, "my-topic", token="tk_abc").send(Alert(OPENED, SCAN))
    (request,) = http.on("/")
    assert request["headers"]["Authorization"] == "Bearer tk_abc"
    body = request["json"]
    assert body["topic"] == "my-topic" and body["priority"] == 4
    assert body["title"].startswith("exposure: home.example: port 8123/tcp opened")
    assert "warning" in body["tags"]


def test_home_assistant_webhook_carries_the_summary_and_the_changes(http: HttpReceiver) -> None:
    (state,) = states_for(REPORT, problem_minimum=Severity.MEDIUM, valid_for_s=600)
    notifier = HomeAssistantWebhookNotifier(f"{http.url}/api/webhook/exposure-abc123")
    notifier.send_round([Alert(GRADE, SCAN), Alert(OPENED, SCAN)], [state])
    notifier.send_round([], [state])  # nothing new: the summary still comes, for sensors
    first, second = (r["json"] for r in http.on("/api/webhook/exposure-abc123"))
    assert first["schema"] == "exposure-ha-webhook/1" and first["target"] == "home.example"
    assert first["severity"] == "high" and first["problem"] is True
    assert [a["change"]["kind"] for a in first["alerts"]] == ["tls.grade_changed", "port.opened"]
    assert first["title"] == "exposure: home.example: 2 alert(s), worst high"
    assert "TLS grade on port 443/tcp: A -> B" in first["message"]
    summary = first["summary"]
    assert summary["open_ports"] == 2 and summary["worst_severity"] == "medium"
    assert summary["findings_count"] == 1 and summary["tls_grade"] == "B"
    assert summary["findings"][0]["id"] == "tls.grade"
    assert second["alerts"] == [] and second["severity"] == "none"
    assert second["summary"] == summary


def test_home_assistant_webhook_payload_is_bounded() -> None:
    from scanner.alerts.http import MAX_WEBHOOK_BYTES, ha_webhook_payload

    big = Change(ChangeKind.FINDING_NEW, Severity.HIGH, "home.example", ("198.51.100.7",),
                 "x" * 2000, port=1, subject="a" * 60, after="high")
    payload = ha_webhook_payload("home.example", [Alert(big, SCAN)] * 200, None)
    assert len(json.dumps(payload)) <= MAX_WEBHOOK_BYTES
    assert len(payload["alerts"]) + payload["alerts_not_listed"] == 200
    assert payload["message"].count("\n") == 10  # ten lines, then "... and 190 more"


def test_http_error_status_is_an_alert_error_without_the_secret(http: HttpReceiver) -> None:
    http.status = 500
    with pytest.raises(AlertError) as caught:
        HomeAssistantWebhookNotifier(f"{http.url}/api/webhook/secret-id").send(Alert(GRADE, SCAN))
    assert "HTTP 500" in str(caught.value) and "secret-id" not in str(caught.value)


def test_deliver_sends_a_round_notifier_everything_at_once(http: HttpReceiver) -> None:
    notifier = HomeAssistantWebhookNotifier(f"{http.url}/api/webhook/round")
    result = deliver([notifier], [Alert(OPENED, SCAN), Alert(GRADE, SCAN)], states_for(REPORT))
    assert result.ok and result.sent == {"homeassistant": 2}
    (request,) = http.on("/api/webhook/round")
    assert len(request["json"]["alerts"]) == 2


def test_unreachable_receiver_is_an_alert_error() -> None:
    port = pick_free_port()
    with pytest.raises(AlertError, match="ConnectionError"):
        WebhookNotifier(f"http://127.0.0.1:{port}/x").send(Alert(GRADE, SCAN))


def test_deliver_retries_then_reports_and_goes_on(http: HttpReceiver) -> None:
    dead = WebhookNotifier(f"http://127.0.0.1:{pick_free_port()}/x")
    alive = NtfyNotifier(http.url, "t")
    waits: list[float] = []
    result = deliver([dead, alive], [Alert(OPENED, SCAN), Alert(GRADE, SCAN)], sleep=waits.append)
    assert result.sent == {"webhook": 0, "ntfy": 2} and len(result.failed["webhook"]) == 2
    assert waits == [1.0, 2.0, 1.0, 2.0]  # 3 attempts per alert, exponential backoff
    assert len(http.on("/")) == 2


# --- e-mail -----------------------------------------------------------------------------------


def test_email_plain_relay() -> None:
    smtp = SmtpReceiver().start()
    try:
        EmailNotifier("127.0.0.1", "exposure@home.example", ["me@home.example"], port=smtp.port,
                      security="none").send(Alert(OPENED, SCAN))
    finally:
        smtp.stop()
    (message,) = smtp.messages
    assert message["to"] == ["me@home.example"] and message["change"] == "port.opened"
    assert message["subject"].startswith("exposure: home.example: port 8123/tcp opened")


def test_email_starttls_and_login(tmp_path: Path) -> None:
    ca = LabCA(tmp_path / "pki")
    issued = ca.issue("localhost", sans=["localhost", "127.0.0.1"])
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(issued.chain_path, issued.key_path)
    smtp = SmtpReceiver(tls_context=context, credentials=("me", "pw")).start()
    try:
        notifier = EmailNotifier("127.0.0.1", "x@home.example", ["me@home.example"],
                                 port=smtp.port, security="starttls", username="me",
                                 password="pw", ca_file=str(ca.cert_path))
        notifier.send(Alert(GRADE, SCAN))
        wrong = EmailNotifier("127.0.0.1", "x@home.example", ["me@home.example"],
                              port=smtp.port, security="starttls", username="me",
                              password="wrong", ca_file=str(ca.cert_path))
        with pytest.raises(AlertError, match="SMTPAuthenticationError"):
            wrong.send(Alert(GRADE, SCAN))
        untrusted = EmailNotifier("127.0.0.1", "x@home.example", ["me@home.example"],
                                  port=smtp.port, security="starttls")
        with pytest.raises(AlertError, match="SSL"):
            untrusted.send(Alert(GRADE, SCAN))
    finally:
        smtp.stop()
    (message,) = smtp.messages
    assert message["tls"] and message["severity"] == "medium"


# --- MQTT -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    directory = tmp_path_factory.mktemp("mosquitto")
    passwords = directory / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "exposure", "pw"], check=True,
                   capture_output=True)
    passwords.chmod(0o600)
    port = pick_free_port()
    daemon = start_mosquitto(None, port, allow_anonymous=False, password_file=passwords,
                             workdir=directory)
    try:
        yield port
    finally:
        daemon.stop()


@pytest.fixture
def recorder(broker: int) -> Iterator[MqttRecorder]:
    rec = MqttRecorder(port=broker, credentials=("exposure", "pw")).start()
    try:
        yield rec
    finally:
        rec.stop()


def test_mqtt_discovery_state_and_events(broker: int, recorder: MqttRecorder) -> None:
    notifier = MqttNotifier("127.0.0.1", broker, username="exposure", password="pw", settle_s=0)
    (state,) = states_for(REPORT, problem_minimum=Severity.MEDIUM, valid_for_s=43800)
    notifier.send_round([Alert(OPENED, SCAN), Alert(GRADE, SCAN)], [state])
    node = f"exposure_{slug('home.example')}"
    assert wait_until(lambda: len(recorder.on("/event")) == 2 and recorder.on("/state"))
    configs = {m["topic"]: m["payload"] for m in recorder.messages
               if m["topic"].endswith("/config")}
    assert set(configs) == {
        f"homeassistant/{component}/{node}/{key}/config" for component, key in (
            ("binary_sensor", "problem"), ("sensor", "worst_severity"), ("sensor", "open_ports"),
            ("sensor", "findings"), ("sensor", "tls_grade"), ("sensor", "last_scan"),
            ("event", "changes"))}
    for topic, config in configs.items():
        component, key = topic.split("/")[1], topic.split("/")[3]
        assert config["unique_id"] == f"{node}_{key}"  # stable: HA keeps the entity
        assert config["default_entity_id"] == f"{component}.{node}_{key}"
        assert "object_id" not in config  # deprecated since HA 2025.10
        assert config["device"] == {"identifiers": [node], "name": "Exposure home.example",
                                    "manufacturer": "exposure", "model": "exposure",
                                    "sw_version": __version__}
        assert config["availability_topic"] == "exposure/status"
        assert config.get("expire_after") == (None if component == "event" else 43800)
    problem = configs[f"homeassistant/binary_sensor/{node}/problem/config"]
    assert problem["device_class"] == "problem"
    severity = configs[f"homeassistant/sensor/{node}/worst_severity/config"]
    assert severity["device_class"] == "enum"
    assert severity["options"] == ["none", "info", "low", "medium", "high", "critical"]
    assert configs[f"homeassistant/sensor/{node}/last_scan/config"]["device_class"] == (
        "timestamp")
    event = configs[f"homeassistant/event/{node}/changes/config"]
    assert event["state_topic"] == "exposure/home_example/event"
    assert {"port_opened", "finding_new", "finding_resolved", "grade_dropped",
            "certificate_expiring"} <= set(event["event_types"])
    (published,) = recorder.on("/state")
    payload = published["payload"]
    assert payload["open_ports"] == 2 and payload["ports"] == ["443/tcp", "8123/tcp"]
    assert payload["worst_severity"] == "medium" and payload["problem"] is True
    assert payload["tls_grade"] == "B"  # the worse of A (IPv6) and B (IPv4)
    assert payload["scanned_at"] == "2026-11-23T10:00:05+00:00"
    assert payload["findings"] == [{"id": "tls.grade", "severity": "medium", "port": 443,
                                    "protocol": "tcp", "title": ""}]
    assert [s["port"] for s in payload["services"]] == [443, 8123]
    events = [m["payload"] for m in recorder.on("/event")]
    assert [e["event_type"] for e in events] == ["port_opened", "grade_dropped"]
    assert events[0]["title"].startswith("exposure: home.example: port 8123/tcp opened")
    assert all(not m["retain"] for m in recorder.on("/event") + recorder.on("/change"))
    # What HA finds when it (re)connects later: configs, state, availability and the index
    # retained; events and changes not.
    late = MqttRecorder(port=broker, credentials=("exposure", "pw")).start()
    try:
        assert wait_until(lambda: len(late.messages) >= 10)
        time.sleep(0.2)
        assert {m["topic"] for m in late.messages} == {
            *configs, "exposure/home_example/state", "exposure/status", "exposure/discovery"}
        assert all(m["retain"] for m in late.messages)
        assert next(m for m in late.messages if m["topic"] == "exposure/status")["payload"] == (
            "online")
    finally:
        late.stop()


def test_mqtt_removes_the_entities_of_a_target_no_longer_watched(
    broker: int, recorder: MqttRecorder
) -> None:
    notifier = MqttNotifier("127.0.0.1", broker, username="exposure", password="pw",
                            base_topic="exposure-removal", settle_s=0)
    two = {**REPORT, "targets": [*REPORT["targets"],
                                 {"input": "cam.example", "address": "198.51.100.9",
                                  "ports": [], "findings": []}]}
    notifier.update_states(states_for(two))
    notifier.update_states(states_for(REPORT))  # cam.example left the watch
    def cleared() -> list[str]:  # empty payloads (live subscribers see retain=False)
        return [m["topic"] for m in list(recorder.messages) if m["payload"] == ""]

    assert wait_until(lambda: len(cleared()) >= 8)
    time.sleep(0.2)
    cleared = cleared()  # type: ignore[assignment]
    assert "homeassistant/binary_sensor/exposure_cam_example/problem/config" in cleared
    assert "exposure-removal/cam_example/state" in cleared
    assert len(cleared) == 8  # its seven entities and its state, nothing of home.example
    late = MqttRecorder(port=broker, credentials=("exposure", "pw")).start()
    try:
        assert wait_until(lambda: any(m["topic"] == "exposure-removal/discovery"
                                      for m in late.messages))
        time.sleep(0.2)
        topics = {m["topic"] for m in late.messages}
        assert not any("cam_example" in topic for topic in topics)
        assert "exposure-removal/home_example/state" in topics
    finally:
        late.stop()


def test_mqtt_long_lived_watch_is_unavailable_when_it_dies(broker: int, tmp_path: Path) -> None:
    script = (
        "import sys, time\n"
        "from scanner.alerts.mqtt import MqttNotifier\n"
        f"n = MqttNotifier('127.0.0.1', {broker}, username='exposure', password='pw',"
        " base_topic='exposure-will')\n"
        "n.open()\n"
        "n.update_states([])\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                               text=True, cwd=Path(__file__).resolve().parents[2])
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        assert _retained(broker, "exposure-will/status") == "online"
        process.kill()  # no DISCONNECT: the broker publishes the will
        process.wait(5)
        assert wait_until(lambda: _retained(broker, "exposure-will/status") == "offline", 10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    notifier = MqttNotifier("127.0.0.1", broker, username="exposure", password="pw",
                            base_topic="exposure-will")
    notifier.open()
    assert wait_until(lambda: _retained(broker, "exposure-will/status") == "online", 10)
    notifier.close(stay_available=False)  # the watch was stopped: nobody keeps them current
    assert wait_until(lambda: _retained(broker, "exposure-will/status") == "offline", 10)


def _retained(broker: int, topic: str) -> str | None:
    late = MqttRecorder(port=broker, credentials=("exposure", "pw")).start()
    try:
        time.sleep(0.3)
        found = [m["payload"] for m in late.messages if m["topic"] == topic and m["retain"]]
    finally:
        late.stop()
    return found[-1] if found else None


def test_target_state_is_bounded_in_size() -> None:
    findings = [{"id": f"x.finding{i}", "severity": "high", "port": i, "title": "t" * 500}
                for i in range(300)]
    ports = [{"port": i, "protocol": "tcp", "state": "open", "product": "p" * 300}
             for i in range(1, 400)]
    report = {"scan": {"id": "s"}, "targets": [{"input": "h", "address": "198.51.100.7",
                                                "ports": ports, "findings": findings}]}
    (state,) = states_for(report)
    data = state.to_dict()
    assert len(json.dumps(data)) <= MAX_STATE_BYTES
    assert data["findings_count"] == 300 and data["open_ports"] == 399
    assert len(data["findings"]) + data["findings_not_listed"] == 300
    assert len(data["services"]) + data["services_not_listed"] == 399
    assert all(len(f["title"]) <= 140 for f in data["findings"])  # 120 + the cut mark


def test_mqtt_wrong_password_is_an_alert_error(broker: int) -> None:
    notifier = MqttNotifier("127.0.0.1", broker, username="exposure", password="nope",
                            timeout=5)
    with pytest.raises(AlertError, match="refused"):
        notifier.send(Alert(OPENED, SCAN))


def test_mqtt_no_broker_is_an_alert_error() -> None:
    notifier = MqttNotifier("127.0.0.1", pick_free_port(), timeout=2)
    with pytest.raises(AlertError, match="ConnectionRefused"):
        notifier.send(Alert(OPENED, SCAN))


@pytest.mark.parametrize(("target", "expected"), [
    ("home.example.org", "home_example_org"), ("2001:db8::7", "2001_db8_7"),
    ("../../#", "target"), ("A" * 100, "a" * 60),
])
def test_slug(target: str, expected: str) -> None:
    assert slug(target) == expected


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=80),
                     lambda inner: st.lists(inner, max_size=5)
                     | st.dictionaries(st.text(max_size=80), inner, max_size=5), max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.binary(max_size=300),
    _JSON.map(lambda value: json.dumps(value).encode()),
    st.dictionaries(st.text(max_size=80), _JSON, max_size=8).map(
        lambda targets: json.dumps({"schema": "exposure-mqtt-index/1",
                                    "targets": targets}).encode()),
))
def test_a_hostile_index_only_ever_clears_our_own_topics(payload: bytes) -> None:
    """The retained index comes from the broker: anyone who may publish there can write it."""
    from scanner.alerts.mqtt import ENTITIES, parse_index

    notifier = MqttNotifier("127.0.0.1", base_topic="exposure", discovery_prefix="homeassistant")
    index = parse_index(payload)
    known = index["targets"] if index else {}
    removed = notifier.removals(known, {"home_example": {}})
    components = "|".join(e.component for e in ENTITIES)
    allowed = re.compile(rf"homeassistant/({components})/exposure_[a-z0-9_]{{1,60}}/[a-z_]+/config"
                         r"|exposure/[a-z0-9_]{1,60}/state")
    assert all(allowed.fullmatch(topic) for topic in removed)
    assert not any("home_example/" in topic or topic.endswith("exposure_home_example")
                   for topic in removed)
