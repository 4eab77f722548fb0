"""Issue 8's acceptance on the lab: scan, change the lab, scan again; `exposure diff` shows exactly
the changes made; `exposure watch` sends exactly one alert per change to each real receiver.

The changes: a port opened (a new nginx on 8080, through lab.add_service), a TLS protocol dropped
(TLSv1.3 off on 8443) and a certificate swapped (443 gets a renewed certificate that expires in
10 days). The receivers (http.server for webhook/ntfy/HA webhook, aiosmtpd, a real mosquitto
with a paho subscriber) run in the scan namespace next to the scanner, on its 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lab.daemons import NginxSite, start_mosquitto
from tests.lab.netns import Lab
from tests.lab.scanning import EXPOSURE, LAB_SPEED
from tests.lab.services import mosquitto, nginx, openssh
from tests.lab.support_monitor import read_jsonl, replace_service, tls_site, wait_until

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
PORTS = "22,23,443,1883,8080,8443"
HTTP_PORT, SMTP_PORT, MQTT_PORT = 18080, 18025, 18883  # in the scan namespace, on its loopback
BOTH = (Lab.HOME_V4, Lab.HOME_V6)


@pytest.fixture(scope="module")
def monitor_lab() -> Iterator[Lab]:
    services = [
        openssh(22),
        tls_site(443, lambda lab: lab.home_cert),  # type: ignore[arg-type,return-value]
        tls_site(8443, lambda lab: lab.home_cert,  # type: ignore[arg-type,return-value]
                 protocols="TLSv1.2 TLSv1.3"),
        mosquitto(1883),
    ]
    with Lab(services=services) as lab:
        yield lab


@pytest.fixture(scope="module")
def receivers(monitor_lab: Lab) -> Iterator[Path]:
    directory = monitor_lab.tmpdir / "receivers"
    directory.mkdir()
    broker = start_mosquitto(monitor_lab.scan_ns, MQTT_PORT, addresses=["127.0.0.1"],
                             workdir=monitor_lab.tmpdir / "scan-side", name="mosquitto-alerts")
    process = monitor_lab.popen_in_scan(
        [sys.executable, "-m", "tests.lab.support_monitor", "receivers", str(directory),
         str(HTTP_PORT), str(SMTP_PORT), str(MQTT_PORT)],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=(directory / "receivers.log").open("w"),
    )
    try:
        assert wait_until(lambda: (directory / "ready").exists(), 15), (
            (directory / "receivers.log").read_text())
        yield directory
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        broker.stop()


def exposure(lab: Lab, *args: str, env: dict[str, str] | None = None,
             timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return lab.run_in_scan([*EXPOSURE, *args], capture_output=True, text=True, timeout=timeout,
                           check=False, cwd=REPO, env={**os.environ, **(env or {})})


def scan(lab: Lab, db: Path) -> dict[str, Any]:
    run = exposure(lab, "scan", Lab.HOSTNAME, "--ports", PORTS, "--ca-file", str(lab.ca_pem),
                   "--db", str(db), "--format", "json", "--fail-on", "never", *LAB_SPEED)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def change_the_lab(lab: Lab) -> None:
    daemons = {daemon.name: daemon for daemon in lab.daemons}
    assert lab.ca is not None
    renewed = lab.ca.issue(Lab.HOSTNAME, valid_days=10, filename="home-renewed")
    # 1. a port opened: a new web server forwarded on 8080
    lab.add_service(nginx(lambda _: [NginxSite(8080)], {8080: "nginx HTTP (new)"},
                          name="nginx-new"))
    # 2. a TLS protocol dropped on 8443
    replace_service(lab, [daemons["nginx-tls-8443"]],
                    tls_site(8443, lambda lab: lab.home_cert, protocols="TLSv1.2",  # type: ignore
                             name="nginx-tls-8443-v2"))
    # 3. a certificate swapped on 443: renewed, but only 10 days left
    replace_service(lab, [daemons["nginx-tls-443"]],
                    tls_site(443, lambda _: renewed, name="nginx-tls-443-v2"))


# Per port: the kinds of change that must appear, and the only others allowed (consequences
# other checks may add: a finding about the new port, the grade that follows the protocols...).
REQUIRED = {
    8080: {"port.opened"},
    8443: {"tls.protocols_changed"},
    443: {"tls.certificate_changed", "tls.certificate_expiring"},
}
ALLOWED = {
    8080: {"finding.new"},
    8443: {"tls.grade_changed", "finding.new", "finding.resolved", "finding.severity_changed"},
    443: {"finding.new", "finding.severity_changed", "tls.grade_changed"},
}


def check_changes(changes: list[dict[str, Any]]) -> None:
    by_port: dict[int | None, set[str]] = {}
    for change in changes:
        by_port.setdefault(change["port"], set()).add(change["kind"])
    assert set(by_port) == set(REQUIRED), f"changes on other ports: {changes}"
    for port, required in REQUIRED.items():
        assert required <= by_port[port], (port, by_port[port])
        assert by_port[port] - required <= ALLOWED[port], (port, by_port[port])
    for change in changes:
        assert change["target"] == Lab.HOSTNAME
        if change["kind"] in REQUIRED[change["port"]]:
            assert tuple(change["addresses"]) == BOTH, change  # IPv4 and IPv6, said once
    protocols = next(c for c in changes if c["kind"] == "tls.protocols_changed")
    assert protocols["before"] == ["TLSv1.2", "TLSv1.3"] and protocols["after"] == ["TLSv1.2"]
    expiring = next(c for c in changes if c["kind"] == "tls.certificate_expiring")
    assert expiring["after"] in (9, 10)
    swapped = next(c for c in changes if c["kind"] == "tls.certificate_changed")
    assert swapped["before"]["sha256"] != swapped["after"]["sha256"]


def identity(changes: list[dict[str, Any]]) -> set[tuple[str, int | None, str | None]]:
    return {(c["kind"], c["port"], c["subject"]) for c in changes}


def test_diff_and_watch_see_exactly_the_changes(
    monitor_lab: Lab, receivers: Path, tmp_path: Path
) -> None:
    lab = monitor_lab
    db = tmp_path / "history.db"
    started = time.monotonic()
    first = scan(lab, db)
    watch_db = tmp_path / "watch.db"  # the history as it was before the change, for watch
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{db}{suffix}").exists():
            shutil.copy(f"{db}{suffix}", f"{watch_db}{suffix}")
    change_the_lab(lab)
    second = scan(lab, db)
    assert first["scan"]["complete"] and second["scan"]["complete"]

    run = exposure(lab, "diff", "--db", str(db), "--format", "json")
    assert run.returncode == 0, run.stderr
    diff = json.loads(run.stdout)
    assert diff["before"]["id"] == first["scan"]["id"]
    assert diff["after"]["id"] == second["scan"]["id"]
    check_changes(diff["changes"])
    table = exposure(lab, "diff", "--db", str(db))
    assert "port 8080/tcp opened" in table.stdout and "expires in" in table.stdout

    env = {
        "EXPOSURE_ALERTS_CONFIG": str(tmp_path / "no-config.toml"),
        "EXPOSURE_WEBHOOK_URL": f"http://127.0.0.1:{HTTP_PORT}/hook",
        "EXPOSURE_NTFY_URL": f"http://127.0.0.1:{HTTP_PORT}",
        "EXPOSURE_NTFY_TOPIC": "exposure-lab",
        "EXPOSURE_HOMEASSISTANT_URL": f"http://127.0.0.1:{HTTP_PORT}/api/webhook/exposure-lab",
        "EXPOSURE_EMAIL_HOST": "127.0.0.1", "EXPOSURE_EMAIL_PORT": str(SMTP_PORT),
        "EXPOSURE_EMAIL_SECURITY": "none", "EXPOSURE_EMAIL_FROM": "exposure@lab.invalid",
        "EXPOSURE_EMAIL_TO": "me@lab.invalid",
        "EXPOSURE_MQTT_HOST": "127.0.0.1", "EXPOSURE_MQTT_PORT": str(MQTT_PORT),
    }
    watch = exposure(lab, "watch", Lab.HOSTNAME, "--every", "1s", "--jitter", "0",
                     "--max-iterations", "2", "--ports", PORTS, "--ca-file", str(lab.ca_pem),
                     "--db", str(watch_db), *LAB_SPEED, env=env)
    assert watch.returncode == 0, watch.stderr
    assert "webhook, ntfy, homeassistant, email, mqtt" in watch.stderr

    http = read_jsonl(receivers / "http.jsonl")
    hooks = [r["json"] for r in http if r["path"] == "/hook"]
    count = len(hooks)
    watched = [hook["change"] for hook in hooks]
    check_changes(watched)  # the watch saw the same changes...
    assert identity(watched) == identity(diff["changes"])  # ...exactly those of the diff
    assert len([r for r in http if r["path"] == "/"]) == count  # ntfy
    # Home Assistant's webhook: one POST per target and scan, with the summary and its alerts
    ha = [r["json"] for r in http if r["path"] == "/api/webhook/exposure-lab"]
    assert [len(post["alerts"]) for post in ha] == [count, 0]
    assert all(post["summary"]["target"] == Lab.HOSTNAME for post in ha)
    assert len(read_jsonl(receivers / "smtp.jsonl")) == count
    assert wait_until(lambda: len(_mqtt(receivers, "/change")) == count, 5)
    # iteration 2 saw no change: no second alert anywhere, and it said so
    assert "0 change(s), 0 alert(s) sent" in watch.stderr
    states = _mqtt(receivers, "exposure/home_lab/state")
    assert len(states) == 2 and states[-1]["payload"]["open_ports"] == 5
    configs = {m["topic"] for m in _mqtt(receivers, "/config")}
    assert {f"homeassistant/sensor/exposure_home_lab/{name}/config"
            for name in ("open_ports", "worst_severity", "tls_grade")} <= configs
    # and `exposure diff` of those two watch scans (same lab, two scans) is empty: no noise
    quiet = exposure(lab, "diff", "--db", str(watch_db), "--format", "json")
    assert quiet.returncode == 0 and json.loads(quiet.stdout)["changes"] == []
    print(table.stdout)
    print(f"acceptance: {count} changes, 4 scans, {time.monotonic() - started:.1f} s")


def _mqtt(receivers: Path, suffix: str) -> list[dict[str, Any]]:
    return [m for m in read_jsonl(receivers / "mqtt.jsonl") if m["topic"].endswith(suffix)]
