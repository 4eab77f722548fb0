"""Opt-in: the HA check against a REAL Home Assistant in the lab's home namespace.

    EXPOSURE_REAL_HA=/path/to/venv/bin/hass pytest -m lab tests/lab/test_ha_real.py

The venv must hold homeassistant and the requirements of the minimal configuration (see
fixtures/ha/README.md for the exact install); never the project's own venv. HA runs with
--skip-pip and no route out of the lab. Besides the findings, HA's own log is the witness:
it must not show one failed login ("Login attempt or request with invalid authentication")
nor a websocket client that never authenticated, from any request of the scanner.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab.netns import Lab
from tests.lab.scanning import LAB_SPEED, scan_json
from tests.lab.support_ha import in_scan, start_real_ha, write_ha_config

pytestmark = pytest.mark.lab

HASS = os.environ.get("EXPOSURE_REAL_HA", "")
PORT = 8123
FAILED_LOGIN_MARKS = ("Login attempt", "invalid authentication", "Banned IP",
                      "Did not receive auth message", "Auth message incorrectly formatted")


@pytest.fixture(scope="module")
def real_lab() -> Iterator[Lab]:
    if not HASS or not Path(HASS).exists():
        pytest.skip("set EXPOSURE_REAL_HA to the hass of a separate venv to run these")
    with Lab(profile="bare") as lab:
        lab.open_port(PORT, "real Home Assistant")
        yield lab


def ha_log_complaints(config_dir: Path) -> list[str]:
    text = (config_dir / "home-assistant.log").read_text(errors="replace")
    return [line for line in text.splitlines() if any(m in line for m in FAILED_LOGIN_MARKS)]


def findings(report: dict) -> dict[str, dict]:
    (target,) = report["targets"]
    return {f["id"]: f for f in target["findings"] if f["port"] == PORT}


def test_real_ha_fresh_then_trusted_networks(real_lab: Lab) -> None:
    config_dir = real_lab.tmpdir / "ha-config"
    hosts = [real_lab.HOME_V4, real_lab.HOME_V6]
    write_ha_config(config_dir, hosts=hosts, port=PORT)
    daemon = start_real_ha(real_lab, Path(HASS), config_dir, PORT)
    try:
        fresh = scan_json(real_lab, Lab.HOME_V4, "--ports", str(PORT), *LAB_SPEED)
        assert ha_log_complaints(config_dir) == []
        # the test author onboards his lab instance (HA's onboarding API), not the scanner
        in_scan(real_lab, ["--onboard", "--no-record", "--base", f"{Lab.HOME_V4}:{PORT}"])
    finally:
        daemon.stop(timeout=30)
    found = findings(fresh)
    assert found["ha.onboarding_open"]["severity"] == "critical"
    assert {"ha.plain_http", "ha.version_disclosed"} <= set(found)

    write_ha_config(config_dir, hosts=hosts, port=PORT, trusted_everywhere=True)
    (config_dir / "home-assistant.log").unlink(missing_ok=True)
    daemon = start_real_ha(real_lab, Path(HASS), config_dir, PORT)
    try:
        trusted = scan_json(real_lab, Lab.HOME_V4, "--ports", str(PORT), "--active",
                            *LAB_SPEED)
        complaints = ha_log_complaints(config_dir)
    finally:
        daemon.stop(timeout=30)
    found = findings(trusted)
    assert "ha.onboarding_open" not in found
    assert found["ha.trusted_networks_exposed"]["severity"] == "high"
    assert found["ha.trusted_networks_bypass"]["severity"] == "critical"
    assert complaints == []
