"""MQTT: Home Assistant entities through MQTT discovery, and each change as an event.

Per target (slug of what the user typed; node = exposure_<slug>), retained unless said:

    homeassistant/binary_sensor/<node>/problem/config     "Problem" (device class problem)
    homeassistant/sensor/<node>/worst_severity/config     enum: none, info, ..., critical
    homeassistant/sensor/<node>/open_ports/config         count, attributes: the services
    homeassistant/sensor/<node>/findings/config           count
    homeassistant/sensor/<node>/tls_grade/config          worst grade, or "none"
    homeassistant/sensor/<node>/last_scan/config          timestamp of the scan
    homeassistant/event/<node>/changes/config             event types: see EVENT_TYPES
    exposure/<slug>/state      the TargetState (findings and services bounded in size)
    exposure/<slug>/event      not retained: {"event_type": ..., title, message, severity, ...}
    exposure/<slug>/change     not retained: the alert (schema exposure-alert/1), as before
    exposure/status            availability: online / offline (the will of a long-lived watch)
    exposure/discovery         what this publisher has announced: removes targets that left

One device per target. The keys are the ones both HA 2024.1 and the current release accept:
full names (no abbreviations), no `object_id` (deprecated in 2025.10, ignored from 2026.4), but
`default_entity_id`, which newer releases read and older ones drop (their discovery schemas
remove unknown keys); without it HA 2024.1 names the entity from the device and entity names,
which gives the same entity id. See docs/monitoring.md.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho

from scanner import __version__
from scanner.alerts.base import Alert, AlertError, TargetState
from scanner.core.diff import ChangeKind
from scanner.diff.tls_facts import grade_rank

log = logging.getLogger(__name__)

TIMEOUT_S = 10.0
SLUG_LIMIT = 60
_SLUG = re.compile(rf"[a-z0-9_]{{1,{SLUG_LIMIT}}}")
# After announcing new or changed entities, HA needs a moment to create them and subscribe to
# their topics; an event published before that is lost (events are never retained).
DISCOVERY_SETTLE_S = 2.0
MAX_INDEX_BYTES = 256 * 1024
ONLINE, OFFLINE = "online", "offline"
SEVERITY_OPTIONS = ("none", "info", "low", "medium", "high", "critical")
INDEX_SCHEMA = "exposure-mqtt-index/1"

# What the event entity says for each kind of change (HA triggers on event_type).
EVENT_TYPES = (
    "port_opened", "port_closed", "service_changed", "finding_new", "finding_resolved",
    "finding_severity_changed", "finding_still_open", "grade_dropped", "grade_improved",
    "tls_protocols_changed", "certificate_changed", "certificate_expiring", "address_added",
    "address_removed",
)
_EVENT_OF_KIND = {
    ChangeKind.PORT_OPENED: "port_opened",
    ChangeKind.PORT_UNEXPECTED: "port_opened",
    ChangeKind.PORT_CLOSED: "port_closed",
    ChangeKind.SERVICE_CHANGED: "service_changed",
    ChangeKind.FINDING_NEW: "finding_new",
    ChangeKind.FINDING_RESOLVED: "finding_resolved",
    ChangeKind.FINDING_SEVERITY: "finding_severity_changed",
    ChangeKind.FINDING_OPEN: "finding_still_open",
    ChangeKind.TLS_PROTOCOLS: "tls_protocols_changed",
    ChangeKind.TLS_CERTIFICATE: "certificate_changed",
    ChangeKind.TLS_EXPIRY: "certificate_expiring",
    ChangeKind.TARGET_ADDED: "address_added",
    ChangeKind.TARGET_REMOVED: "address_removed",
}

# topic, payload (None: empty, which clears a retained message), retain
Message = tuple[str, str | None, bool]


def parse_index(payload: bytes | None) -> dict[str, Any] | None:
    """The retained index as a dict with a `targets` dict, or None when it is not one of ours
    (absent, too large, not JSON, another schema)."""
    if payload is None or len(payload) > MAX_INDEX_BYTES:
        return None
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or data.get("schema") != INDEX_SCHEMA or not isinstance(
        data.get("targets"), dict
    ):
        return None
    return data


def slug(target: str) -> str:
    """A topic- and entity-id-safe name: lowercase letters, digits and underscores."""
    text = re.sub(r"[^a-z0-9]+", "_", target.lower()).strip("_")
    return text[:SLUG_LIMIT] or "target"


def event_type(alert: Alert) -> str:
    kind = alert.change.kind
    if kind == ChangeKind.TLS_GRADE:
        before, after = str(alert.change.before), str(alert.change.after)
        return "grade_dropped" if grade_rank(after) > grade_rank(before) else "grade_improved"
    return _EVENT_OF_KIND.get(kind, "finding_new")


@dataclass(frozen=True)
class Entity:
    """One entity of a target's device: its platform, key, name and what it shows."""

    component: str
    key: str
    name: str
    icon: str
    config: Mapping[str, Any]
    attributes: str | None = None  # a json_attributes_template over the state
    expires: bool = True  # expire_after applies (not to the event entity)


ENTITIES: tuple[Entity, ...] = (
    Entity("binary_sensor", "problem", "Problem", "mdi:shield-alert",
           {"device_class": "problem",
            "value_template": "{{ 'ON' if value_json.problem else 'OFF' }}"},
           "{{ {'problems': value_json.problems, 'problem_minimum': value_json.problem_minimum,"
           " 'worst_severity': value_json.worst_severity, 'findings': value_json.findings,"
           " 'findings_not_listed': value_json.findings_not_listed} | tojson }}"),
    Entity("sensor", "worst_severity", "Worst severity", "mdi:shield-half-full",
           {"device_class": "enum", "options": list(SEVERITY_OPTIONS),
            "value_template": "{{ value_json.worst_severity }}"}),
    Entity("sensor", "open_ports", "Open ports", "mdi:lan-connect",
           {"unit_of_measurement": "ports", "state_class": "measurement",
            "value_template": "{{ value_json.open_ports }}"},
           "{{ {'ports': value_json.ports, 'services': value_json.services,"
           " 'services_not_listed': value_json.services_not_listed,"
           " 'addresses': value_json.addresses} | tojson }}"),
    Entity("sensor", "findings", "Findings", "mdi:format-list-bulleted",
           {"unit_of_measurement": "findings", "state_class": "measurement",
            "value_template": "{{ value_json.findings_count }}"},
           "{{ {'findings': value_json.findings,"
           " 'findings_not_listed': value_json.findings_not_listed} | tojson }}"),
    Entity("sensor", "tls_grade", "TLS grade", "mdi:certificate",
           {"value_template": "{{ value_json.tls_grade }}"}),
    Entity("sensor", "last_scan", "Last scan", "mdi:radar",
           {"device_class": "timestamp", "entity_category": "diagnostic",
            "value_template": "{{ value_json.scanned_at }}"},
           "{{ {'scan_id': value_json.scan_id, 'report_url': value_json.report_url,"
           " 'addresses': value_json.addresses} | tojson }}"),
    Entity("event", "changes", "Changes", "mdi:bell-ring",
           {"event_types": list(EVENT_TYPES)}, expires=False),
)


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
        settle_s: float = DISCOVERY_SETTLE_S,
    ) -> None:
        self.host, self.port = host, port
        self.username, self.password = username, password
        self.tls, self.ca_file = tls, ca_file
        self.base_topic = base_topic.strip("/")
        self.discovery_prefix = discovery_prefix.strip("/")
        self.timeout = timeout
        self.settle_s = settle_s
        self._lasting: paho.Client | None = None  # the long-lived connection, once open()
        self._lasting_connected = threading.Event()

    # --- topics --------------------------------------------------------------------------

    @property
    def availability_topic(self) -> str:
        return f"{self.base_topic}/status"

    @property
    def index_topic(self) -> str:
        return f"{self.base_topic}/discovery"

    def state_topic(self, target: str) -> str:
        return f"{self.base_topic}/{slug(target)}/state"

    def event_topic(self, target: str) -> str:
        return f"{self.base_topic}/{slug(target)}/event"

    def change_topic(self, target: str) -> str:
        return f"{self.base_topic}/{slug(target)}/change"

    def config_topic(self, target: str, entity: Entity) -> str:
        node = f"exposure_{slug(target)}"
        return f"{self.discovery_prefix}/{entity.component}/{node}/{entity.key}/config"

    # --- what is published ---------------------------------------------------------------

    def discovery_messages(self, state: TargetState) -> list[tuple[str, dict[str, Any]]]:
        node = f"exposure_{slug(state.target)}"
        device: dict[str, Any] = {
            "identifiers": [node],
            "name": f"Exposure {state.target}",
            "manufacturer": "exposure",
            "model": "exposure",
            "sw_version": __version__,
        }
        if state.report_url:
            device["configuration_url"] = state.report_url
        messages = []
        for entity in ENTITIES:
            topic = self.event_topic(state.target) if entity.component == "event" else (
                self.state_topic(state.target))
            config: dict[str, Any] = {
                "name": entity.name,
                "unique_id": f"{node}_{entity.key}",
                "default_entity_id": f"{entity.component}.{node}_{entity.key}",
                "state_topic": topic,
                "availability_topic": self.availability_topic,
                "icon": entity.icon,
                "device": device,
                "origin": {"name": "exposure", "sw_version": __version__},
                "qos": 1,
                **entity.config,
            }
            if entity.attributes:
                config["json_attributes_topic"] = self.state_topic(state.target)
                config["json_attributes_template"] = entity.attributes
            if entity.expires and state.valid_for_s:
                config["expire_after"] = int(state.valid_for_s)
            messages.append((self.config_topic(state.target, entity), config))
        return messages

    def event_payload(self, alert: Alert) -> dict[str, Any]:
        change = alert.change
        return {
            "event_type": event_type(alert),
            "title": alert.title,
            "message": alert.message,
            "severity": str(alert.severity),
            "reason": str(alert.reason),
            "kind": str(change.kind),
            "port": change.port,
            "protocol": change.protocol,
            "finding": change.subject,
            "scan_id": alert.scan.id,
        }

    # --- notifier interface --------------------------------------------------------------

    def send(self, alert: Alert) -> None:
        self.send_round([alert], [])

    def update_states(self, states: Sequence[TargetState]) -> None:
        self.send_round([], states)

    def send_round(self, alerts: Sequence[Alert], states: Sequence[TargetState]) -> None:
        """Announce, publish the states, remove targets no longer watched, then the events."""
        with self._connection() as client:
            index = self._read_index(client) if states else None
            announced = self._announce(client, states, index)
            if announced and alerts:
                time.sleep(self.settle_s)
            messages: list[Message] = []
            for alert in alerts:
                target = alert.change.target
                messages.append((self.event_topic(target),
                                 json.dumps(self.event_payload(alert), ensure_ascii=True), False))
                messages.append((self.change_topic(target),
                                 json.dumps(alert.to_dict(), ensure_ascii=True), False))
            client.publish_all(messages)

    def _announce(self, client: _Connection, states: Sequence[TargetState],
                  index: dict[str, Any] | None) -> bool:
        """Publish discovery, states and the index; True when an entity is new or changed."""
        if not states:
            return False
        known = (index or {}).get("targets", {})
        current: dict[str, Any] = {}
        messages: list[Message] = [(self.availability_topic, ONLINE, True)]
        changed = False
        for state in states:
            configs = self.discovery_messages(state)
            texts = [(topic, json.dumps(config, ensure_ascii=True, sort_keys=True))
                     for topic, config in configs]
            digest = hashlib.sha256("".join(text for _, text in texts).encode()).hexdigest()
            entry = known.get(slug(state.target))
            changed = changed or not isinstance(entry, dict) or entry.get("digest") != digest
            messages += [(topic, text, True) for topic, text in texts]
            messages.append((self.state_topic(state.target),
                             json.dumps(state.to_dict(), ensure_ascii=True), True))
            current[slug(state.target)] = {"target": state.target, "digest": digest}
        messages += [(topic, None, True) for topic in self.removals(known, current)]
        index_text = json.dumps({"schema": INDEX_SCHEMA, "targets": current}, ensure_ascii=True)
        messages.append((self.index_topic, index_text, True))
        client.publish_all(messages)
        return changed

    def removals(self, known: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
        """The retained topics to clear for targets in the index but not watched now.

        The index is whatever the broker holds: only a well-formed slug names topics, and
        those are rebuilt here, so it can never make us clear anyone else's.
        """
        return [topic for gone in known
                if isinstance(gone, str) and _SLUG.fullmatch(gone) and gone not in current
                for topic in self._removal_topics(gone)]

    def _removal_topics(self, gone: str) -> list[str]:
        """The retained topics of a target (by its slug) no longer watched."""
        node = f"exposure_{gone}"
        return [*(f"{self.discovery_prefix}/{e.component}/{node}/{e.key}/config"
                  for e in ENTITIES), f"{self.base_topic}/{gone}/state"]

    # --- long-lived connection (watch loop) ----------------------------------------------

    def open(self) -> None:
        """Keep one connection until close(): its will marks the entities unavailable when the
        watch dies; on every (re)connect the watch says it is online."""
        if self._lasting is not None:
            return
        client = self._client()
        client.will_set(self.availability_topic, OFFLINE, qos=1, retain=True)

        def on_connect(client: paho.Client, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
            if not reason.is_failure:
                client.publish(self.availability_topic, ONLINE, qos=1, retain=True)
                self._lasting_connected.set()

        def on_disconnect(client: paho.Client, userdata: Any, flags: Any, reason: Any,
                          properties: Any) -> None:
            self._lasting_connected.clear()

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        client.reconnect_delay_set(1, 120)
        client.connect_async(self.host, self.port, keepalive=60)
        client.loop_start()
        self._lasting = client

    def close(self, *, stay_available: bool = True) -> None:
        client, self._lasting = self._lasting, None
        if client is None:
            return
        try:
            if not stay_available and self._lasting_connected.is_set():
                info = client.publish(self.availability_topic, OFFLINE, qos=1, retain=True)
                info.wait_for_publish(self.timeout)
        except (RuntimeError, ValueError):
            pass
        finally:
            client.disconnect()
            client.loop_stop()
            self._lasting_connected.clear()

    # --- connections ---------------------------------------------------------------------

    def _connection(self) -> _Connection:
        if self._lasting is not None:
            return _Connection(self, self._lasting, self._lasting_connected, owned=False)
        client = self._client()
        # A watch killed mid-round leaves its entities unavailable until the next round.
        client.will_set(self.availability_topic, OFFLINE, qos=1, retain=True)
        return _Connection(self, client, threading.Event(), owned=True)

    def _read_index(self, client: _Connection) -> dict[str, Any] | None:
        """The retained index, or None when there is none (or it is not ours/not readable):
        then nothing is removed this round, the rest is published all the same."""
        try:
            payload = client.read_retained(self.index_topic, f"{self.base_topic}/sync/"
                                           f"{secrets.token_hex(6)}")
        except AlertError as error:
            log.warning("%s: previous announcements not readable: %s", self.name, error)
            return None
        return parse_index(payload)

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


class _Connection:
    """One MQTT connection for a round: connect, publish with QoS 1 and wait for the acks."""

    def __init__(self, notifier: MqttNotifier, client: paho.Client, connected: threading.Event,
                 *, owned: bool) -> None:
        self.notifier = notifier
        self.client = client
        self.connected = connected
        self.owned = owned
        self.where = f"mqtt {notifier.host}:{notifier.port}"
        self.timeout = notifier.timeout

    def __enter__(self) -> _Connection:
        if self.owned:
            self._connect()
        elif not self.connected.wait(self.timeout):
            raise AlertError(f"{self.where}: not connected (the broker is unreachable)")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.owned:
            self.client.disconnect()
            self.client.loop_stop()

    def _connect(self) -> None:
        outcome: dict[str, str] = {}

        def on_connect(client: paho.Client, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
            if reason.is_failure:
                outcome["error"] = str(reason)
            self.connected.set()

        self.client.on_connect = on_connect
        try:
            self.client.connect(self.notifier.host, self.notifier.port, keepalive=30)
        except (OSError, ValueError) as error:
            raise AlertError(f"{self.where}: {type(error).__name__}: {error}") from error
        self.client.loop_start()
        if not self.connected.wait(self.timeout):
            self.__exit__()
            raise AlertError(f"{self.where}: no CONNACK within {self.timeout:.0f} s")
        if "error" in outcome:
            self.__exit__()
            raise AlertError(f"{self.where}: connection refused: {outcome['error']}")

    def publish_all(self, messages: Sequence[Message]) -> None:
        pending = [self.client.publish(topic, payload, qos=1, retain=retain)
                   for topic, payload, retain in messages]
        for info in pending:
            try:
                info.wait_for_publish(self.timeout)
            except (RuntimeError, ValueError) as error:
                raise AlertError(f"{self.where}: publish failed: {error}") from error
            if not info.is_published():
                raise AlertError(f"{self.where}: a message was not acknowledged in time")

    def read_retained(self, topic: str, sync_topic: str) -> bytes | None:
        """The retained payload of `topic`, if any. A message of our own on `sync_topic`, sent
        after the subscription was acknowledged, arrives after every retained one: then we know
        there is none left to wait for."""
        found: dict[str, bytes] = {}
        subscribed, synced, denied = threading.Event(), threading.Event(), threading.Event()

        def on_message(client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
            if message.topic == topic and message.retain:
                found["payload"] = bytes(message.payload)
            elif message.topic == sync_topic:
                synced.set()

        def on_subscribe(client: paho.Client, userdata: Any, mid: int, reasons: Any,
                         properties: Any) -> None:
            if any(reason.is_failure for reason in reasons):
                denied.set()  # the broker's ACL refuses us: nothing to read, do not wait
                synced.set()
            subscribed.set()

        self.client.on_message = on_message
        self.client.on_subscribe = on_subscribe
        try:
            self.client.subscribe([(topic, 1), (sync_topic, 1)])
            if not subscribed.wait(self.timeout):
                raise AlertError(f"{self.where}: no SUBACK within {self.timeout:.0f} s")
            if not denied.is_set():
                self.client.publish(sync_topic, "sync", qos=1, retain=False)
            if not synced.wait(self.timeout):
                raise AlertError(f"{self.where}: the broker did not echo our sync message")
        finally:
            self.client.unsubscribe([topic, sync_topic])
            self.client.on_message = None
        if denied.is_set():
            raise AlertError(f"{self.where}: subscribing to {topic} was refused")
        return found.get("payload")


__all__ = ["ENTITIES", "EVENT_TYPES", "MqttNotifier", "event_type", "slug"]
