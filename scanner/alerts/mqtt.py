"""MQTT: each change as an event message, and Home Assistant sensors through MQTT discovery.

Per target (slug of what the user typed), retained:
    homeassistant/sensor/exposure_<slug>/{open_ports,worst_severity,tls_grade}/config
    exposure/<slug>/state      {"open_ports": 3, "ports": [...], "worst_severity": ..., ...}
and for each change, not retained:
    exposure/<slug>/change     the alert (schema exposure-alert/1)
HA builds one device "Exposure <target>" with three sensors from the config messages
(https://www.home-assistant.io/integrations/sensor.mqtt/ and .../mqtt/#mqtt-discovery).
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as paho

from scanner import __version__
from scanner.alerts.base import Alert, AlertError, TargetState

TIMEOUT_S = 10.0
SLUG_LIMIT = 60

# (object id, name, value key, icon, extra config): the three sensors of a target's device.
SENSORS: tuple[tuple[str, str, str, str, dict[str, Any]], ...] = (
    ("open_ports", "Open ports", "open_ports", "mdi:lan-connect",
     {"unit_of_measurement": "ports", "state_class": "measurement"}),
    ("worst_severity", "Worst severity", "worst_severity", "mdi:shield-alert", {}),
    ("tls_grade", "TLS grade", "tls_grade", "mdi:certificate", {}),
)


def slug(target: str) -> str:
    """A topic- and entity-id-safe name: lowercase letters, digits and underscores."""
    text = re.sub(r"[^a-z0-9]+", "_", target.lower()).strip("_")
    return text[:SLUG_LIMIT] or "target"


class MqttNotifier:
    name = "mqtt"

    def __init__(
        self,
        host: str,
        port: int = 1883,
        *,
        username: str | None = None,
        password: str | None = None,
        tls: bool = False,
        ca_file: str | None = None,
        base_topic: str = "exposure",
        discovery_prefix: str = "homeassistant",
        timeout: float = TIMEOUT_S,
    ) -> None:
        self.host, self.port = host, port
        self.username, self.password = username, password
        self.tls, self.ca_file = tls, ca_file
        self.base_topic = base_topic.strip("/")
        self.discovery_prefix = discovery_prefix.strip("/")
        self.timeout = timeout

    # --- what is published ---------------------------------------------------------------

    def state_topic(self, target: str) -> str:
        return f"{self.base_topic}/{slug(target)}/state"

    def change_topic(self, target: str) -> str:
        return f"{self.base_topic}/{slug(target)}/change"

    def discovery_messages(self, target: str) -> list[tuple[str, dict[str, Any]]]:
        node = f"exposure_{slug(target)}"
        device = {
            "identifiers": [node],
            "name": f"Exposure {target}",
            "manufacturer": "exposure",
            "model": "external exposure scan",
            "sw_version": __version__,
        }
        messages = []
        for object_id, name, key, icon, extra in SENSORS:
            config = {
                "name": name,
                "unique_id": f"{node}_{object_id}",
                "object_id": f"{node}_{object_id}",
                "state_topic": self.state_topic(target),
                "value_template": f"{{{{ value_json.{key} }}}}",
                "icon": icon,
                "device": device,
                **extra,
            }
            if object_id == "open_ports":
                config["json_attributes_topic"] = self.state_topic(target)
                config["json_attributes_template"] = (
                    "{{ {'ports': value_json.ports, 'addresses': value_json.addresses,"
                    " 'scan_id': value_json.scan_id} | tojson }}"
                )
            messages.append((f"{self.discovery_prefix}/sensor/{node}/{object_id}/config", config))
        return messages

    # --- notifier interface --------------------------------------------------------------

    def send(self, alert: Alert) -> None:
        self._publish([(self.change_topic(alert.change.target), alert.to_dict(), False)])

    def update_states(self, states: Sequence[TargetState]) -> None:
        messages: list[tuple[str, dict[str, Any], bool]] = []
        for state in states:
            messages += [(topic, config, True) for topic, config in
                         self.discovery_messages(state.target)]
            messages.append((self.state_topic(state.target), state.to_dict(), True))
        self._publish(messages)

    # --- connection ----------------------------------------------------------------------

    def _publish(self, messages: Sequence[tuple[str, dict[str, Any], bool]]) -> None:
        client = self._client()
        connected = threading.Event()
        outcome: dict[str, str] = {}

        def on_connect(client: paho.Client, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
            if reason.is_failure:
                outcome["error"] = str(reason)
            connected.set()

        client.on_connect = on_connect
        where = f"mqtt {self.host}:{self.port}"
        try:
            client.connect(self.host, self.port, keepalive=30)
        except (OSError, ValueError) as error:
            raise AlertError(f"{where}: {type(error).__name__}: {error}") from error
        client.loop_start()
        try:
            if not connected.wait(self.timeout):
                raise AlertError(f"{where}: no CONNACK within {self.timeout:.0f} s")
            if "error" in outcome:
                raise AlertError(f"{where}: connection refused: {outcome['error']}")
            pending = [
                client.publish(topic, json.dumps(payload, ensure_ascii=True), qos=1, retain=retain)
                for topic, payload, retain in messages
            ]
            for info in pending:
                try:
                    info.wait_for_publish(self.timeout)
                except (RuntimeError, ValueError) as error:
                    raise AlertError(f"{where}: publish failed: {error}") from error
                if not info.is_published():
                    raise AlertError(f"{where}: a message was not acknowledged in time")
        finally:
            client.disconnect()
            client.loop_stop()

    def _client(self) -> paho.Client:
        client = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id=f"exposure-{secrets.token_hex(4)}",
            protocol=paho.MQTTv311,
        )
        client.connect_timeout = self.timeout
        if self.username:
            client.username_pw_set(self.username, self.password)
        if self.tls:
            client.tls_set(ca_certs=self.ca_file)
        return client
