"""Every notifier against a real receiver on loopback: http.server, aiosmtpd, mosquitto."""

from __future__ import annotations

import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scanner.alerts import Alert, AlertError, deliver, states_for
from scanner.alerts.email import EmailNotifier
from scanner.alerts.http import HomeAssistantWebhookNotifier, NtfyNotifier, WebhookNotifier
from scanner.alerts.mqtt import MqttNotifier, slug
from scanner.diff import Change, ChangeKind, ScanRef
from scanner.findings import Severity
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


def test_home_assistant_webhook_trigger(http: HttpReceiver) -> None:
    HomeAssistantWebhookNotifier(f"{http.url}/api/webhook/exposure-abc123").send(
        Alert(GRADE, SCAN))
    (request,) = http.on("/api/webhook/exposure-abc123")
    assert request["json"]["change"]["kind"] == "tls.grade_changed"
    assert request["json"]["change"]["before"] == "A" and request["json"]["message"]


def test_http_error_status_is_an_alert_error_without_the_secret(http: HttpReceiver) -> None:
    http.status = 500
    with pytest.raises(AlertError) as caught:
        HomeAssistantWebhookNotifier(f"{http.url}/api/webhook/secret-id").send(Alert(GRADE, SCAN))
    assert "HTTP 500" in str(caught.value) and "secret-id" not in str(caught.value)


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


def test_mqtt_discovery_state_and_change_events(broker: int, recorder: MqttRecorder) -> None:
    notifier = MqttNotifier("127.0.0.1", broker, username="exposure", password="pw")
    notifier.update_states(states_for(REPORT))
    notifier.send(Alert(OPENED, SCAN))
    node = f"exposure_{slug('home.example')}"
    assert wait_until(lambda: len(recorder.on("/change")) == 1 and recorder.on("/state"))
    configs = {m["topic"]: m for m in recorder.messages if m["topic"].endswith("/config")}
    assert set(configs) == {f"homeassistant/sensor/{node}/{obj}/config"
                            for obj in ("open_ports", "worst_severity", "tls_grade")}
    for message in configs.values():
        config = message["payload"]
        assert config["state_topic"] == "exposure/home_example/state"
        assert config["device"]["identifiers"] == [node]
        assert config["unique_id"].startswith(node)
        assert config["value_template"].startswith("{{ value_json.")
    (state,) = recorder.on("/state")
    assert state["payload"]["open_ports"] == 2
    assert state["payload"]["ports"] == ["443/tcp", "8123/tcp"]
    assert state["payload"]["worst_severity"] == "medium"
    assert state["payload"]["tls_grade"] == "B"  # the worse of A (IPv6) and B (IPv4)
    (change,) = recorder.on("/change")
    assert change["payload"]["change"]["kind"] == "port.opened"
    # What HA finds when it (re)connects later: configs and state retained, changes not.
    late = MqttRecorder(port=broker, credentials=("exposure", "pw")).start()
    try:
        assert wait_until(lambda: len(late.messages) >= 4)
        time.sleep(0.2)
        assert {m["topic"] for m in late.messages} == {*configs, "exposure/home_example/state"}
        assert all(m["retain"] for m in late.messages)
    finally:
        late.stop()


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
