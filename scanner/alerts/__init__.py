"""Alerts: one message per change through webhook, ntfy, HA webhook, e-mail or MQTT (+ HA
discovery). Settings and secrets from ~/.config/exposure/alerts.toml or the environment."""

from scanner.alerts.base import (
    Alert,
    AlertError,
    AlertReason,
    Delivery,
    Notifier,
    TargetState,
    alerts_for,
    deliver,
    states_for,
)
from scanner.alerts.config import SECTIONS, default_config_path, load_settings, notifiers_from

__all__ = [
    "SECTIONS",
    "Alert",
    "AlertError",
    "AlertReason",
    "Delivery",
    "Notifier",
    "TargetState",
    "alerts_for",
    "default_config_path",
    "deliver",
    "load_settings",
    "notifiers_from",
    "states_for",
]
