"""Home Assistant sees its own exposure: `exposure watch` against a lab home, read back from a
REAL Home Assistant (2024.1.6, .lab-cache/ha-venv) through HA's own REST and websocket APIs.

The home forwards a VNC desktop without a password (service.unauthenticated, critical), nginx TLS
on 443 and Home Assistant itself on 8123. HA's MQTT integration uses the lab's mosquitto, the
same the watcher publishes to; the blueprint and template sensors of contrib/homeassistant are
loaded.
HA starts once for the module (it is the slow part) and is stopped by pid.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scanner import __version__
from tests.lab.netns import Lab
from tests.lab.scanning import EXPOSURE, LAB_SPEED
from tests.lab.support_ha_monitor import (
    HA_PORT,
    MQTT_PORT,
    VNC_PORT,
    WATCHED_PORTS,
    HaHome,
    fixed_vnc,
    ha_home,
    monitored_services,
    wait_for,
)
from tests.lab.support_monitor import replace_service

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
NODE = "exposure_home_lab"
PROBLEM = f"binary_sensor.{NODE}_problem"
EVENT = f"event.{NODE}_changes"


@pytest.fixture(scope="module")
def home() -> Iterator[HaHome]:
    with Lab(services=monitored_services()) as lab, ha_home(lab) as started:
        print(f"lab HA up in {started.startup_s:.1f} s")
        yield started


def watch(home: HaHome, db: Path, *alerts: str, minimum: str = "critical") -> dict[str, Any]:
    """One `exposure watch --once` from the scan namespace; returns the report it stored."""
    lab = home.lab
    env = {**os.environ, "EXPOSURE_ALERTS_CONFIG": str(db.parent / "no-alerts.toml"),
           "EXPOSURE_MQTT_HOST": lab.SCAN_V4, "EXPOSURE_MQTT_PORT": str(MQTT_PORT),
           "EXPOSURE_HOMEASSISTANT_URL": home.webhook_url}
    argv = [*EXPOSURE, "watch", Lab.HOSTNAME, "--once", "--every", "6h", "--ports", WATCHED_PORTS,
            "--ca-file", str(lab.ca_pem), "--db", str(db), "--alert-min-severity", minimum,
            *(f"--alert={name}" for name in alerts), *LAB_SPEED]
    run = lab.run_in_scan(argv, capture_output=True, text=True, timeout=300, cwd=REPO, env=env,
                          check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    listed = subprocess.run([*EXPOSURE, "history", "--db", str(db), "--format", "json"],
                            capture_output=True, text=True, cwd=REPO, check=True)
    newest = json.loads(listed.stdout)[0]["seq"]
    shown = subprocess.run([*EXPOSURE, "show", str(newest), "--db", str(db), "--format", "json"],
                           capture_output=True, text=True, cwd=REPO, check=True)
    return dict(json.loads(shown.stdout))


def entity(home: HaHome, entity_id: str, state: str | None = None) -> dict[str, Any]:
    """The entity's state object once HA has it (and, if given, in that state)."""
    def current() -> dict[str, Any] | None:
        found = home.owner.state(entity_id)
        return found if found and (state is None or found["state"] == state) else None

    return dict(wait_for(current, 30, f"{entity_id} = {state}"))


def distinct(report: dict[str, Any], key: str) -> set[tuple[Any, ...]]:
    if key == "ports":
        return {(p["port"], p["protocol"]) for t in report["targets"] for p in t["ports"]
                if p["state"] == "open"}
    return {(f["id"], f.get("port"), f.get("protocol", "tcp")) for t in report["targets"]
            for f in t["findings"]}


def test_watch_makes_home_assistant_entities_and_the_fix_turns_the_problem_off(
    home: HaHome, tmp_path: Path
) -> None:
    db = tmp_path / "watch.db"
    report = watch(home, db, "mqtt")
    problem = entity(home, PROBLEM, "on")
    assert problem["attributes"]["device_class"] == "problem"
    assert problem["attributes"]["problem_minimum"] == "critical"
    listed = {f["id"]: f for f in problem["attributes"]["findings"]}
    assert listed["service.unauthenticated"]["severity"] == "critical"
    assert listed["service.unauthenticated"]["port"] == VNC_PORT

    severity = entity(home, f"sensor.{NODE}_worst_severity")
    assert severity["state"] == "critical"
    assert severity["attributes"]["device_class"] == "enum"
    # HA 2024.1's MQTT sensor drops `options` (newer releases keep it as a capability)
    capabilities = home.registry_entry(f"sensor.{NODE}_worst_severity")["capabilities"] or {}
    assert capabilities.get("options") in (None, ["none", "info", "low", "medium", "high",
                                                  "critical"])
    ports = entity(home, f"sensor.{NODE}_open_ports")
    assert int(ports["state"]) == len(distinct(report, "ports")) == 3
    assert {s["port"] for s in ports["attributes"]["services"]} == {443, VNC_PORT, HA_PORT}
    findings = entity(home, f"sensor.{NODE}_findings")
    assert int(findings["state"]) == len(distinct(report, "findings"))
    grade = entity(home, f"sensor.{NODE}_tls_grade")
    graded = [p["details"]["tls"]["grade"] for t in report["targets"] for p in t["ports"]
              if p["port"] == 443 and "grade" in p.get("details", {}).get("tls", {})]
    assert grade["state"] == graded[0]
    last = entity(home, f"sensor.{NODE}_last_scan")
    assert last["attributes"]["device_class"] == "timestamp"
    assert last["state"] == report["scan"]["finished_at"]

    fired = entity(home, EVENT)
    assert fired["state"] not in ("unknown", "unavailable")  # a timestamp: it fired
    assert fired["attributes"]["event_type"] == "finding_new"
    assert fired["attributes"]["finding"] == "service.unauthenticated"
    assert fired["attributes"]["reason"] == "first_scan"

    device = home.device(PROBLEM)
    assert device["name"] == f"Exposure {Lab.HOSTNAME}"
    assert (device["manufacturer"], device["model"], device["sw_version"]) == (
        "exposure", "exposure", __version__)
    # scanning HA on 8123 with the whole home: nothing HA counts as a failed login
    assert home.failed_logins() == []

    # The owner fixes it: the desktop gets a password. The next scan resolves the finding.
    daemons = [d for d in home.lab.daemons if d.name == f"xvnc-{VNC_PORT}"]
    replace_service(home.lab, daemons, fixed_vnc())
    fixed = watch(home, db, "mqtt")
    assert "service.unauthenticated" not in {f[0] for f in distinct(fixed, "findings")}
    entity(home, PROBLEM, "off")
    resolved = entity(home, EVENT)
    assert resolved["attributes"]["event_type"] == "finding_resolved"
    assert resolved["attributes"]["finding"] == "service.unauthenticated"
    assert entity(home, f"sensor.{NODE}_worst_severity")["state"] != "critical"
    assert home.failed_logins() == []
    assert not (home.config_dir / "ip_bans.yaml").exists()


def test_the_webhook_blueprint_notifies_and_feeds_the_template_sensors(
    home: HaHome, tmp_path: Path
) -> None:
    before = {n["notification_id"] for n in home.notifications()}
    report = watch(home, tmp_path / "webhook.db", "homeassistant", minimum="low")

    def ours() -> list[dict[str, Any]]:
        return [n for n in home.notifications() if n["notification_id"] not in before
                or n["notification_id"] == "exposure_home_lab"]

    notes = wait_for(lambda: len(ours()) >= 2 and ours(), 30, "the blueprint's notifications")
    by_id = {n["notification_id"]: n for n in notes}
    persistent = by_id["exposure_home_lab"]  # the blueprint's persistent notification
    assert persistent["title"].startswith(f"exposure: {Lab.HOSTNAME}: ")
    assert "alert(s), worst" in persistent["title"]
    worst = max((f["severity"] for t in report["targets"] for f in t["findings"]),
                key=["info", "low", "medium", "high", "critical"].index)
    assert persistent["title"].endswith(f"worst {worst}") or worst == "info"
    phone = [n for key, n in by_id.items() if key != "exposure_home_lab"]
    assert phone and phone[0]["title"] == persistent["title"]  # the notify-service branch

    sensor = entity(home, "sensor.exposure_home_lab_worst_severity_webhook", worst)
    assert int(sensor["attributes"]["open_ports"]) == len(distinct(report, "ports"))
    problem = entity(home, "binary_sensor.exposure_home_lab_problem_webhook")
    assert problem["state"] == "on"  # low and worse count as a problem at minimum "low"
    errors = [line for line in home.log_text().splitlines()
              if "ERROR" in line and ("automation" in line or "template" in line
                                      or "webhook" in line)]
    assert errors == []
