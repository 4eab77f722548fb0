"""JSON-over-HTTP notifiers: a generic webhook, ntfy, and a Home Assistant webhook trigger."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import requests

from scanner import __version__
from scanner.alerts.base import Alert, AlertError, StatelessNotifier, TargetState
from scanner.core.findings import Severity

TIMEOUT_S = 10.0
USER_AGENT = "exposure-alerts"
# ntfy priorities 1 (min) .. 5 (max): a new critical problem may wake the phone, info never.
NTFY_PRIORITY = {
    Severity.CRITICAL: 5,
    Severity.HIGH: 4,
    Severity.MEDIUM: 3,
    Severity.LOW: 2,
    Severity.INFO: 2,
}
NTFY_TAGS = {
    Severity.CRITICAL: "rotating_light",
    Severity.HIGH: "warning",
    Severity.MEDIUM: "warning",
    Severity.LOW: "information_source",
    Severity.INFO: "information_source",
}


def redacted(url: str) -> str:
    """scheme://host[:port] only: paths and queries of webhook URLs are often the secret."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}" + (f":{parts.port}" if parts.port else "")


def post_json(
    url: str, payload: Mapping[str, Any], headers: Mapping[str, str] | None = None,
    timeout: float = TIMEOUT_S,
) -> None:
    """POST one JSON object; AlertError unless the answer is 2xx. Redirects are not followed
    (a redirect could carry the Authorization header elsewhere); the answer body is not read."""
    body = json.dumps(payload, ensure_ascii=True).encode()
    all_headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **(headers or {})}
    try:
        response = requests.post(
            url, data=body, headers=all_headers, timeout=timeout, allow_redirects=False,
            stream=True,
        )
    except requests.RequestException as error:
        raise AlertError(f"{redacted(url)}: {type(error).__name__}") from error
    with response:
        if not 200 <= response.status_code < 300:
            raise AlertError(f"{redacted(url)} answered HTTP {response.status_code}")


class WebhookNotifier(StatelessNotifier):
    """POSTs the alert as JSON (schema exposure-alert/1) to any URL."""

    name = "webhook"

    def __init__(self, url: str, token: str | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        self.url = url
        self.headers = dict(headers or {})
        if token:
            self.headers["Authorization"] = f"Bearer {token}"

    def send(self, alert: Alert) -> None:
        post_json(self.url, alert.to_dict(), self.headers)


class NtfyNotifier(StatelessNotifier):
    """ntfy's JSON publishing: POST {topic, title, message, priority, tags} to the server root."""

    name = "ntfy"

    def __init__(self, url: str, topic: str, token: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.topic = topic
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def send(self, alert: Alert) -> None:
        payload = {
            "topic": self.topic,
            "title": alert.title,
            "message": alert.message,
            "priority": NTFY_PRIORITY[alert.severity],
            "tags": [NTFY_TAGS[alert.severity], "exposure"],
        }
        post_json(self.url + "/", payload, self.headers)


class HomeAssistantWebhookNotifier(StatelessNotifier):
    """Triggers an HA automation (`platform: webhook`); the URL's webhook id is the secret.

    One POST per target and scan (schema exposure-ha-webhook/1), also when nothing changed, so
    a template sensor fed by it stays current: `summary` is the target's state now (what the
    MQTT entities show), `alerts` the changes, first-scan findings and reminders of this scan.
    The automation reads trigger.json.title / .message / .severity / .summary / .alerts;
    contrib/homeassistant/ has a blueprint and a template sensor for it.
    """

    name = "homeassistant"

    def __init__(self, url: str) -> None:
        self.url = url

    def send(self, alert: Alert) -> None:
        self.send_round([alert], [])

    def send_round(self, alerts: Sequence[Alert], states: Sequence[TargetState]) -> None:
        by_target: dict[str, list[Alert]] = {state.target: [] for state in states}
        for alert in alerts:
            by_target.setdefault(alert.change.target, []).append(alert)
        summaries = {state.target: state for state in states}
        for target, chosen in by_target.items():
            post_json(self.url, ha_webhook_payload(target, chosen, summaries.get(target)))


HA_WEBHOOK_SCHEMA = "exposure-ha-webhook/1"
MAX_WEBHOOK_ALERTS = 30
MAX_WEBHOOK_BYTES = 64 * 1024  # well inside what Home Assistant Cloud relays to a webhook
MESSAGE_LINES = 10


def ha_webhook_payload(
    target: str, alerts: Sequence[Alert], state: TargetState | None
) -> dict[str, Any]:
    """What one POST carries: the summary now and this scan's alerts, bounded in size."""
    worst = max((a.severity for a in alerts), key=lambda s: s.rank, default=None)
    if alerts:
        title = f"exposure: {target}: {len(alerts)} alert(s), worst {worst}"
        lines = [alert.title.removeprefix("exposure: ") for alert in alerts[:MESSAGE_LINES]]
        if len(alerts) > MESSAGE_LINES:
            lines.append(f"... and {len(alerts) - MESSAGE_LINES} more")
        message = "\n".join(lines)
    else:
        title = f"exposure: {target}: nothing new"
        message = (f"{target}: {len(state.open_ports)} open port(s), worst finding "
                   f"{state.worst_severity}") if state else f"{target}: nothing new"
    limit = MAX_WEBHOOK_ALERTS
    while True:
        payload = {
            "schema": HA_WEBHOOK_SCHEMA,
            "tool": {"name": "exposure", "version": __version__},
            "target": target,
            "title": title,
            "message": message,
            "severity": str(worst) if worst else "none",
            "problem": bool(state and state.problem),
            "alerts": [alert.to_dict() for alert in alerts[:limit]],
            "alerts_not_listed": max(0, len(alerts) - limit),
            "summary": state.to_dict() if state else None,
            "scan": alerts[0].scan.to_dict() if alerts else (
                {"id": state.scan_id, "finished_at": state.scanned_at} if state else None),
        }
        if limit == 0 or len(json.dumps(payload, ensure_ascii=True)) <= MAX_WEBHOOK_BYTES:
            return payload
        limit //= 2
