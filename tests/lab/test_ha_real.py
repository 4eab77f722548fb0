"""The HA check against a REAL Home Assistant in the lab's home namespace (part of `make lab`).

The HA is the lab's own venv (.lab-cache/ha-venv, built by `make lab-deps` from
tests/lab/ha-requirements.txt: homeassistant 2024.1.6, the last release for Python 3.11).
EXPOSURE_REAL_HA=/path/to/venv/bin/hass runs the same test against another venv (another
release; never the project's own venv). HA runs with --skip-pip and no route out of the lab.
Besides the findings, HA's own log is the witness: it must not show one failed login ("Login
attempt or request with invalid authentication"), nor a ban, nor a websocket client that never
authenticated, from any request of the scanner.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab.netns import Lab
from tests.lab.scanning import LAB_SPEED, scan_json
from tests.lab.support_ha import in_scan, lab_hass, start_real_ha, write_ha_config
from tests.lab.support_ha_monitor import FAILED_LOGIN_MARKS

pytestmark = pytest.mark.lab

PORT = 8123


@pytest.fixture(scope="module")
def hass() -> Path:
    chosen = os.environ.get("EXPOSURE_REAL_HA", "")
    return Path(chosen) if chosen else lab_hass()


@pytest.fixture(scope="module")
def real_lab() -> Iterator[Lab]:
    with Lab(profile="bare") as lab:
        lab.open_port(PORT, "real Home Assistant")
        yield lab


def ha_log_complaints(config_dir: Path) -> list[str]:
    text = (config_dir / "home-assistant.log").read_text(errors="replace")
    return [line for line in text.splitlines() if any(m in line for m in FAILED_LOGIN_MARKS)]


def findings(report: dict) -> dict[str, dict]:
    (target,) = report["targets"]
    return {f["id"]: f for f in target["findings"] if f["port"] == PORT}


def test_real_ha_fresh_then_trusted_networks(real_lab: Lab, hass: Path) -> None:
    config_dir = real_lab.tmpdir / "ha-config"
    hosts = [real_lab.HOME_V4, real_lab.HOME_V6]
    write_ha_config(config_dir, hosts=hosts, port=PORT)
    daemon = start_real_ha(real_lab, hass, config_dir, PORT)
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
    daemon = start_real_ha(real_lab, hass, config_dir, PORT)
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
    assert not (config_dir / "ip_bans.yaml").exists()  # HA banned nobody


LOG_LEVELS_THAT_COMPLAIN = (" WARNING ", " ERROR ", " CRITICAL ", "Traceback")


@pytest.mark.parametrize("https", [False, True], ids=["http", "https"])
def test_real_ha_log_has_no_warning_from_a_scan(real_lab: Lab, hass: Path, https: bool) -> None:
    """A full default scan of HA's port (identification, the HA check, TLS grading on HTTPS)
    leaves no WARNING, ERROR or traceback in HA's log."""
    config_dir = real_lab.tmpdir / f"ha-config-log-{'https' if https else 'http'}"
    tls = None
    if https:
        assert real_lab.home_cert is not None
        tls = (real_lab.home_cert.chain_path, real_lab.home_cert.key_path)
    write_ha_config(config_dir, hosts=[real_lab.HOME_V4, real_lab.HOME_V6], port=PORT, tls=tls)
    daemon = start_real_ha(real_lab, hass, config_dir, PORT, https=https)
    try:
        log = config_dir / "home-assistant.log"
        before = len(log.read_text(errors="replace").splitlines())
        report = scan_json(real_lab, Lab.HOME_V4, "--ports", str(PORT), *LAB_SPEED,
                           "--ca-file", str(real_lab.ca_pem))
        after = log.read_text(errors="replace").splitlines()[before:]
    finally:
        daemon.stop(timeout=30)
    (target,) = report["targets"]
    (port,) = [entry for entry in target["ports"] if entry["port"] == PORT]
    assert port["product"] == "Home Assistant" and port["tls"] is https  # the scan did its work
    assert [line for line in after if any(mark in line for mark in LOG_LEVELS_THAT_COMPLAIN)] == []
