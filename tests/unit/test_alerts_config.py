"""Alert settings: config file (0600) and environment, never the command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from scanner.alerts import SECTIONS, load_settings, notifiers_from
from scanner.alerts.email import EmailNotifier
from scanner.alerts.http import NtfyNotifier, WebhookNotifier
from scanner.alerts.mqtt import MqttNotifier
from scanner.errors import BadInput

CONFIG = """
[ntfy]
url = "https://ntfy.example"
topic = "alerts"
token = "from-file"

[email]
host = "smtp.example"
from = "x@example"
to = ["me@example"]
security = "tls"

[mqtt]
host = "ha.local"
"""


def write(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "alerts.toml"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_file_and_environment_overlay(tmp_path: Path) -> None:
    path = write(tmp_path, CONFIG)
    env = {"EXPOSURE_NTFY_TOKEN": "from-env", "EXPOSURE_WEBHOOK_URL": "https://hook.example/x",
           "EXPOSURE_MQTT_PORT": "1884", "EXPOSURE_EMAIL_TO": "a@example, b@example"}
    settings = load_settings(path, env)
    assert settings["ntfy"]["token"] == "from-env"  # the environment wins
    assert settings["mqtt"]["port"] == 1884
    assert settings["email"]["to"] == ["a@example", "b@example"]
    notifiers = {n.name: n for n in notifiers_from(settings)}
    assert set(notifiers) == {"webhook", "ntfy", "email", "mqtt"}
    assert isinstance(notifiers["ntfy"], NtfyNotifier)
    assert notifiers["ntfy"].headers == {"Authorization": "Bearer from-env"}
    assert isinstance(notifiers["webhook"], WebhookNotifier)
    email = notifiers["email"]
    assert isinstance(email, EmailNotifier) and email.port == 465  # security "tls" default port
    mqtt = notifiers["mqtt"]
    assert isinstance(mqtt, MqttNotifier) and mqtt.port == 1884


def test_environment_alone(tmp_path: Path) -> None:
    env = {"EXPOSURE_HOMEASSISTANT_URL": "http://ha.local:8123/api/webhook/abc"}
    settings = load_settings(tmp_path / "missing.toml", env)
    assert [n.name for n in notifiers_from(settings)] == ["homeassistant"]


def test_a_config_file_others_can_read_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, CONFIG, 0o644)
    with pytest.raises(BadInput, match="chmod 600"):
        load_settings(path, {})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[slack]\nurl = 'x'\n", "unknown section"),
        ("[ntfy]\nurl = 'x'\ntopic = 't'\npasword = 'typo'\n", "unknown key 'pasword'"),
        ("[mqtt]\nhost = 'h'\nport = '1883'\n", "port must be a int"),
        ("[email]\nhost = 'h'\nfrom = 'f'\nto = 'single'\n", "to must be a list"),
        ("ntfy = 3\n", "must be a [table]"),
        ("[ntfy\n", "not valid TOML"),
    ],
)
def test_bad_config_is_bad_input(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(BadInput, match=message.replace("[", r"\[")):
        load_settings(write(tmp_path, text), {})


def test_a_chosen_notifier_without_settings_names_what_to_set(tmp_path: Path) -> None:
    settings = load_settings(tmp_path / "missing.toml", {})
    with pytest.raises(BadInput, match="EXPOSURE_NTFY_URL, EXPOSURE_NTFY_TOPIC"):
        notifiers_from(settings, ["ntfy"])
    with pytest.raises(BadInput, match="unknown alert 'pager'"):
        notifiers_from(settings, ["pager"])


def test_watch_has_no_option_that_takes_a_secret() -> None:
    import typer

    from scanner.cli import _register_commands, app

    _register_commands()
    group = typer.main.get_command(app)
    watch = group.commands["watch"]  # type: ignore[attr-defined]
    options = [name for param in watch.params for name in param.opts]
    assert "--alert" in options
    # scan's --internetdb-url, shared by watch, names a public mirror of InternetDB: no secret.
    for option in set(options) - {"--internetdb-url"}:
        for word in ("password", "token", "secret", "url", "user"):
            assert word not in option.lower()


def test_every_section_documents_its_environment_variables() -> None:
    from scanner.alerts import config

    for name, section in SECTIONS.items():
        assert f"[{name}]" in (config.__doc__ or "")
        assert set(section.required) <= set(section.optional)
