"""`exposure preflight` against lab services: the verdict and its reasons, as the CLI gives them.

The lab's home host stands in for the LAN device here: preflight runs in the scan namespace
against HOME_V4:PORT, as it would run on a laptop against 192.168.1.20:8123.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from scanner.checks.registry import catalogue
from tests.lab.netns import Lab
from tests.lab.scanning import run_exposure
from tests.lab.services import mosquitto, openssh
from tests.lab.support_ha import ha_replay
from tests.lab.support_ssh import HARDENED

pytestmark = pytest.mark.lab

KNOWN_IDS = {spec.id for spec in catalogue()}


def needs(finding_id: str) -> None:
    if finding_id not in KNOWN_IDS:
        pytest.skip(f"the check that reports {finding_id} is not in this tree yet")


@pytest.fixture(scope="module")
def preflight_lab() -> Iterator[Lab]:
    services = [
        mosquitto(1883, allow_anonymous=True),
        openssh(2222, extra_config=HARDENED, name="openssh-hardened"),
        openssh(22, name="openssh-default"),  # password login on, as Debian ships it
        ha_replay("2025.4.4-fresh", 8123),  # recorded from a never-onboarded HA 2025.4.4
    ]
    with Lab(services=services) as lab:
        yield lab


def preflight(lab: Lab, port: int, *extra: str,
              table: bool = False) -> tuple[int, dict[str, Any], str]:
    """The JSON verdict, and with table=True also the text a person reads (same exit code)."""
    run = run_exposure(lab, "preflight", f"{Lab.HOME_V4}:{port}", "--format", "json",
                       "--timeout", "0.5", *extra)
    if not table:
        return run.code, run.json(), ""
    text = run_exposure(lab, "preflight", f"{Lab.HOME_V4}:{port}", "--timeout", "0.5", *extra)
    assert text.code == run.code, text.stderr
    print(text.stdout)
    return run.code, run.json(), text.stdout


def blocking_ids(verdict: dict[str, Any]) -> set[str]:
    return {reason["id"] for reason in verdict["blocking"]}


def test_anonymous_mqtt_is_not_safe(preflight_lab: Lab) -> None:
    needs("mqtt.anonymous")
    code, verdict, table = preflight(preflight_lab, 1883, table=True)
    assert code == 1 and verdict["verdict"] == "NOT SAFE"
    assert "mqtt.anonymous" in blocking_ids(verdict)
    assert "NOT SAFE" in table and "fix:" in table and "mqtt.anonymous" in table


def test_hardened_ssh_is_safe(preflight_lab: Lab) -> None:
    needs("ssh.password_auth")  # without the SSH check "safe" would prove nothing
    code, verdict, table = preflight(preflight_lab, 2222, "--as-port", "22", table=True)
    assert code == 0 and verdict["verdict"] == "SAFE TO FORWARD", verdict["blocking"]
    assert verdict["blocking"] == [] and verdict["service"].startswith("ssh")
    assert "SAFE TO FORWARD" in table and "forwarded as external port 22" in table
    assert "Seen from the LAN" in table and "IPv6" in table and "Reverse proxy" in table


def test_ssh_with_password_login_is_not_safe(preflight_lab: Lab) -> None:
    needs("ssh.password_auth")
    code, verdict, _ = preflight(preflight_lab, 22)
    assert code == 1 and "ssh.password_auth" in blocking_ids(verdict)
    reason = next(r for r in verdict["blocking"] if r["id"] == "ssh.password_auth")
    assert "brute-forced" in reason["why"] and reason["fix"]


def test_fresh_home_assistant_is_not_safe(preflight_lab: Lab) -> None:
    needs("ha.onboarding_open")
    code, verdict, table = preflight(preflight_lab, 8123, "--as-port", "443", table=True)
    assert code == 1 and verdict["verdict"] == "NOT SAFE"
    assert "ha.onboarding_open" in blocking_ids(verdict)
    assert "external port 443 goes to 203.0.113.10:8123" in " ".join(
        verdict["what_may_differ_from_outside"])
    first = verdict["blocking"][0]
    assert first["severity"] == "critical"  # the worst reason comes first
    assert "ha.onboarding_open" in table


def test_closed_port_cannot_tell(preflight_lab: Lab) -> None:
    code, verdict, _ = preflight(preflight_lab, Lab.CLOSED_PORT)
    assert code == 3 and verdict["verdict"] == "CANNOT TELL" and not verdict["reachable"]
