"""What Home Assistant shows of exposure, saved for people: `python -m tests.lab.ha_snapshot DIR`.

As root (it builds a lab): starts the home of tests/lab/test_ha_monitor.py (a VNC desktop without
a password, nginx TLS, a real HA 2024.1.6 onboarded by its owner, MQTT on a lab mosquitto), runs
`exposure watch --once` with the MQTT and webhook notifiers and the HTML report in HA's www/,
then writes to DIR:

    ha-states-<target>.json     HA's /api/states entries of the target's entities
    ha-device-<target>.png      the HA device page, in headless Chromium logged in as the owner
    ha-notifications.json       the persistent notifications the blueprint created

Chromium runs under `unshare --net` (a namespace with only its loopback); a forwarder inside
this process joins that loopback's 127.0.0.1:8123 to HA in the lab, so the browser reaches HA
and nothing else. It logs in through HA's own login flow with the owner's password (the code is
handed to the frontend's auth callback, as HA's login page does).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

from tests.lab.netns import Lab
from tests.lab.scanning import EXPOSURE, LAB_SPEED
from tests.lab.support_ha_monitor import (
    HA_PORT,
    MQTT_PORT,
    WATCHED_PORTS,
    HaHome,
    NetnsForwarder,
    ha_home,
    monitored_services,
    wait_for,
)
from tests.lab.support_hostile import PageVisit, chromium

REPO = Path(__file__).resolve().parents[2]
BROWSER_ORIGIN = f"http://127.0.0.1:{HA_PORT}"
PAGE_WIDTH = 1280


def run_watch(home: HaHome, workdir: Path) -> None:
    lab = home.lab
    report = home.config_dir / "www" / "exposure-home-lab.html"
    env = {**os.environ, "EXPOSURE_ALERTS_CONFIG": str(workdir / "no-alerts.toml"),
           "EXPOSURE_MQTT_HOST": lab.SCAN_V4, "EXPOSURE_MQTT_PORT": str(MQTT_PORT),
           "EXPOSURE_HOMEASSISTANT_URL": home.webhook_url}
    argv = [*EXPOSURE, "watch", Lab.HOSTNAME, "--once", "--every", "6h",
            "--ports", WATCHED_PORTS, "--ca-file", str(lab.ca_pem),
            "--db", str(workdir / "watch.db"), "--alert-min-severity", "high",
            "--html-report", str(report),
            "--report-link", f"{BROWSER_ORIGIN}/local/{report.name}", *LAB_SPEED]
    run = lab.run_in_scan(argv, capture_output=True, text=True, timeout=300, cwd=REPO, env=env,
                          check=False)
    if run.returncode != 0:
        raise SystemExit(f"watch failed ({run.returncode}): {run.stderr[-2000:]}")


def save_states(home: HaHome, out: Path) -> Path:
    problem = "binary_sensor.exposure_home_lab_problem"
    wait_for(lambda: (home.owner.state(problem) or {}).get("state") == "on", 30, problem)
    time.sleep(1)
    states = [s for s in home.owner.states() if "exposure_home_lab" in s["entity_id"]]
    path = out / f"ha-states-{Lab.HOSTNAME}.json"
    path.write_text(json.dumps(sorted(states, key=lambda s: s["entity_id"]), indent=2) + "\n")
    (out / "ha-notifications.json").write_text(json.dumps(home.notifications(), indent=2) + "\n")
    return path


def screenshot_device_page(home: HaHome, out: Path) -> Path:
    device = home.device("binary_sensor.exposure_home_lab_problem")
    device_path = f"/config/devices/device/{device['id']}"
    # Chromium starts before its namespace's loopback is up; now and then it then shows its
    # "no internet" page instead of loading HA. That page is never saved: try again (with a new
    # login code: one is good for one exchange).
    for _attempt in range(3):
        visit = _visit(home, f"{BROWSER_ORIGIN}{device_path}?{_login_query(home)}")
        if visit.screenshot and visit.evaluations.get("path") == device_path:
            break
        print(f"got {visit.evaluations.get('path')!r}, not the device page: again",
              file=sys.stderr)
    else:
        raise SystemExit("the device page did not load in three tries")
    path = out / f"ha-device-{Lab.HOSTNAME}.png"
    path.write_bytes(visit.screenshot)
    print(f"device page {visit.evaluations.get('path')}: {len(visit.requests)} requests, "
          f"{len(visit.exceptions)} exceptions", file=sys.stderr)
    return path


def _login_query(home: HaHome) -> str:
    client_id = f"{BROWSER_ORIGIN}/"
    code = home.owner.login_code(home.password, client_id=client_id,
                                 redirect_uri=f"{client_id}?auth_callback=1")
    state = base64.b64encode(json.dumps({"hassUrl": BROWSER_ORIGIN,
                                         "clientId": client_id}).encode()).decode()
    return urlencode({"auth_callback": "1", "code": code, "state": state})


def _visit(home: HaHome, url: str) -> PageVisit:
    with chromium(timeout=60) as browser:
        netns = f"/proc/{browser.pid}/ns/net"
        subprocess.run(["nsenter", f"--net={netns}", "ip", "link", "set", "lo", "up"],
                       check=True)
        forwarder = NetnsForwarder(netns, HA_PORT, home.lab.scan_ns, home.lab.HOME_V4,
                                   HA_PORT)
        try:
            return browser.visit_url(url, screenshot_width=PAGE_WIDTH, settle_s=12,
                                     evaluate={"path": "location.pathname"})
        finally:
            forwarder.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.lab.ha_snapshot")
    parser.add_argument("out", type=Path, help="where the JSON and the PNG go")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with Lab(services=monitored_services()) as lab, ha_home(lab) as home:
        run_watch(home, lab.tmpdir)
        print(save_states(home, args.out))
        print(screenshot_device_page(home, args.out))


if __name__ == "__main__":
    main()
