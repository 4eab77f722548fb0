"""--internetdb against a local server replaying fixtures/internetdb (inside the scan namespace)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab import Lab, Probe, pick_free_port
from tests.lab.scanning import LAB_SPEED, run_exposure, scan_json

pytestmark = pytest.mark.lab

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "internetdb"


@pytest.fixture
def replay_url(lab: Lab) -> Iterator[str]:
    port = pick_free_port()
    server = lab.popen_in_scan(
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory",
         str(FIXTURES), str(port)],
        stdout=open("/dev/null", "w"),  # noqa: SIM115 - owned by the child
        stderr=open("/dev/null", "w"),  # noqa: SIM115
    )
    try:
        deadline = time.monotonic() + 5
        while lab.probe("127.0.0.1", port, timeout=0.2) is not Probe.OPEN:
            assert time.monotonic() < deadline, "replay server did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=5)


def test_side_by_side_with_shodans_record(lab: Lab, replay_url: str) -> None:
    report = scan_json(lab, Lab.HOME_V4, "--ports", "top,2222", "--no-identify",
                       "--internetdb", "--internetdb-url", replay_url, *LAB_SPEED)
    (target,) = report["targets"]
    record = target["internetdb"]
    assert record["ports"] == [22, 443, 3389]
    assert record["indexed_but_closed_now"] == [3389]
    assert set(record["open_but_not_indexed"]) == set(lab.open_ports) - {22, 443}
    assert record["vulns"] == ["CVE-2023-48795"]


def test_unreachable_internetdb_is_a_note_not_a_failure(lab: Lab) -> None:
    nothing_listens = f"http://127.0.0.1:{pick_free_port()}"
    run = run_exposure(lab, "scan", Lab.HOME_V4, "--ports", "22", "--no-identify",
                       "--internetdb", "--internetdb-url", nothing_listens, "--format", "json",
                       *LAB_SPEED)
    assert run.code == 0, run.stderr
    (target,) = run.json()["targets"]
    assert "unreachable" in target["internetdb"]["warning"]
    assert any("InternetDB" in note["text"] for note in target["notes"])


def test_documentation_addresses_are_never_sent_to_shodan(lab: Lab) -> None:
    # Default URL: the lab address is not public, so nothing is fetched (nothing could be).
    report = scan_json(lab, Lab.HOME_V4, "--ports", "22", "--no-identify", "--internetdb",
                       *LAB_SPEED)
    assert "public IPv4" in report["targets"][0]["internetdb"]["skipped"]
