"""Where notifiers and their secrets come from: a TOML file and environment variables.

Never from command-line arguments: those end up in shell history, `ps` and cron logs.

    # ~/.config/exposure/alerts.toml   (chmod 600: it holds secrets; refused otherwise)
    [webhook]
    url = "https://example.org/hooks/exposure"
    token = "..."                                   # sent as Authorization: Bearer

    [ntfy]
    url = "https://ntfy.sh"
    topic = "my-exposure-alerts"
    token = "tk_..."

    [homeassistant]
    url = "https://ha.example.org/api/webhook/exposure-3b8f..."   # the id is the secret

    [email]
    host = "smtp.example.org"
    port = 587
    security = "starttls"                           # or "tls" (465), "none" (local relay)
    username = "me@example.org"
    password = "..."
    from = "exposure@example.org"
    to = ["me@example.org"]

    [mqtt]
    host = "homeassistant.local"
    port = 1883
    username = "exposure"
    password = "..."
    base_topic = "exposure"                         # one per watcher that shares the broker

Every key can also come from the environment as EXPOSURE_<SECTION>_<KEY>, e.g.
EXPOSURE_NTFY_TOKEN, EXPOSURE_MQTT_PASSWORD, EXPOSURE_EMAIL_TO="a@x,b@y" (environment wins).
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scanner.alerts.base import Notifier
from scanner.alerts.email import SECURITY_MODES, EmailNotifier
from scanner.alerts.http import HomeAssistantWebhookNotifier, NtfyNotifier, WebhookNotifier
from scanner.alerts.mqtt import MqttNotifier
from scanner.errors import BadInput

CONFIG_ENV = "EXPOSURE_ALERTS_CONFIG"
MAX_CONFIG_BYTES = 256 * 1024


@dataclass(frozen=True)
class Section:
    """A notifier's settings: required and optional keys, and how to build it."""

    required: tuple[str, ...]
    optional: Mapping[str, type]
    build: Callable[[Mapping[str, Any]], Notifier]


def _webhook(c: Mapping[str, Any]) -> Notifier:
    return WebhookNotifier(c["url"], c.get("token"), c.get("headers"))


def _ntfy(c: Mapping[str, Any]) -> Notifier:
    return NtfyNotifier(c["url"], c["topic"], c.get("token"))


def _homeassistant(c: Mapping[str, Any]) -> Notifier:
    return HomeAssistantWebhookNotifier(c["url"])


def _email(c: Mapping[str, Any]) -> Notifier:
    security = c.get("security", "starttls")
    if security not in SECURITY_MODES:
        raise BadInput(f"alerts: email security must be one of {', '.join(SECURITY_MODES)}")
    default_port = {"starttls": 587, "tls": 465, "none": 25}[security]
    return EmailNotifier(
        c["host"], c["from"], c["to"], port=c.get("port", default_port), security=security,
        username=c.get("username"), password=c.get("password"), ca_file=c.get("ca_file"),
    )


def _mqtt(c: Mapping[str, Any]) -> Notifier:
    return MqttNotifier(
        c["host"], c.get("port", 8883 if c.get("tls") else 1883),
        username=c.get("username"), password=c.get("password"), tls=c.get("tls", False),
        ca_file=c.get("ca_file"), base_topic=c.get("base_topic", "exposure"),
        discovery_prefix=c.get("discovery_prefix", "homeassistant"),
    )


SECTIONS: dict[str, Section] = {
    "webhook": Section(("url",), {"url": str, "token": str, "headers": dict}, _webhook),
    "ntfy": Section(("url", "topic"), {"url": str, "topic": str, "token": str}, _ntfy),
    "homeassistant": Section(("url",), {"url": str}, _homeassistant),
    "email": Section(
        ("host", "from", "to"),
        {"host": str, "port": int, "security": str, "username": str, "password": str,
         "from": str, "to": list, "ca_file": str},
        _email,
    ),
    "mqtt": Section(
        ("host",),
        {"host": str, "port": int, "username": str, "password": str, "tls": bool,
         "ca_file": str, "base_topic": str, "discovery_prefix": str},
        _mqtt,
    ),
}


def default_config_path(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV]).expanduser()
    xdg = env.get("XDG_CONFIG_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".config"
    return base / "exposure" / "alerts.toml"


def load_settings(
    path: Path | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, dict[str, Any]]:
    """Settings per section: the file (if any) overlaid with EXPOSURE_<SECTION>_<KEY>."""
    env = os.environ if environ is None else environ
    config_path = path or default_config_path(env)
    settings = _read_file(config_path) if config_path.exists() else {}
    for name, section in SECTIONS.items():
        for key, kind in section.optional.items():
            value = env.get(f"EXPOSURE_{name.upper()}_{key.upper()}")
            if value:
                settings.setdefault(name, {})[key] = _from_env(value, kind, name, key)
    for name, values in settings.items():
        _check_section(name, values, str(config_path))
    return settings


def notifiers_from(
    settings: Mapping[str, Mapping[str, Any]], wanted: list[str] | None = None
) -> list[Notifier]:
    """The notifiers named in `wanted` (all configured ones when None); BadInput if one of them
    lacks settings, naming the keys/variables missing."""
    names = wanted if wanted is not None else [n for n in SECTIONS if n in settings]
    chosen = []
    for name in dict.fromkeys(names):
        if name not in SECTIONS:
            raise BadInput(f"unknown alert {name!r} (choose from {', '.join(SECTIONS)})")
        values = settings.get(name, {})
        missing = [key for key in SECTIONS[name].required if key not in values]
        if missing:
            variables = ", ".join(f"EXPOSURE_{name.upper()}_{key.upper()}" for key in missing)
            raise BadInput(f"alert {name!r} is not configured: set {variables} or the [{name}] "
                           f"keys {', '.join(missing)} in {default_config_path()}")
        chosen.append(SECTIONS[name].build(values))
    return chosen


def _read_file(path: Path) -> dict[str, dict[str, Any]]:
    try:
        info = path.stat()
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise BadInput(f"{path} holds secrets but others can read it: chmod 600 {path}")
        data = path.read_bytes()[: MAX_CONFIG_BYTES + 1]
    except OSError as error:
        raise BadInput(f"alerts config {path}: {error.strerror or error}") from error
    if len(data) > MAX_CONFIG_BYTES:
        raise BadInput(f"alerts config {path} is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        document = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise BadInput(f"alerts config {path} is not valid TOML: {error}") from error
    unknown = sorted(set(document) - set(SECTIONS))
    if unknown:
        raise BadInput(f"alerts config {path}: unknown section(s) {', '.join(unknown)} "
                       f"(known: {', '.join(SECTIONS)})")
    if not all(isinstance(values, dict) for values in document.values()):
        raise BadInput(f"alerts config {path}: every section must be a [table]")
    return {name: dict(values) for name, values in document.items()}


def _from_env(value: str, kind: type, section: str, key: str) -> Any:
    if kind is int:
        if not value.strip().isdigit():
            raise BadInput(f"EXPOSURE_{section.upper()}_{key.upper()} must be a number")
        return int(value)
    if kind is bool:
        return value.strip().lower() in ("1", "true", "yes", "on")
    if kind is list:
        return [item.strip() for item in value.split(",") if item.strip()]
    if kind is dict:
        raise BadInput(f"EXPOSURE_{section.upper()}_{key.upper()}: set it in the config file")
    return value


def _check_section(name: str, values: Mapping[str, Any], source: str) -> None:
    section = SECTIONS[name]
    for key, value in values.items():
        kind = section.optional.get(key)
        if kind is None:
            raise BadInput(f"alerts config {source}: unknown key {key!r} in [{name}] "
                           f"(known: {', '.join(section.optional)})")
        valid = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if kind is list:
            valid = valid and all(isinstance(item, str) for item in value)
        if kind is dict:
            valid = valid and all(isinstance(k, str) and isinstance(v, str)
                                  for k, v in value.items())
        if not valid:
            raise BadInput(f"alerts config {source}: [{name}] {key} must be a {kind.__name__}")
