"""Nothing found is lost: kill -9 and SIGTERM of a real `exposure scan` of several lab addresses,
the partial results checked in the store and in `show`, then `scan --resume`.

The scan covers four addresses at once (one discovery pass, then each address's ports): the
home host over IPv4 (real sshd, nginx, mosquitto: identified and checked in a few seconds), the
home host over IPv6 with one more port where a listener bound to the IPv6 address only accepts
and never speaks (that port holds IPv6 until its deadline: the moment to interrupt), the tarpit
(every port answers: done at once) and the blackhole (nothing answers: done at once). The scan
is interrupted once the store holds every address finished but IPv6, of which it has the port
states: "3 of 4 addresses; port states only for 2001:db8:1::10".
"""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lab.daemons import start_tarpit
from tests.lab.netns import Lab
from tests.lab.nsutil import run_checked
from tests.lab.scanning import EXPOSURE, LAB_SPEED, run_exposure

pytestmark = pytest.mark.lab

SLOW_PORT = 47001  # silent on IPv6 only; closed on IPv4
ADDRESSES = (Lab.HOME_V4, Lab.HOME_V6, Lab.TARPIT_V4, Lab.BLACKHOLE_V4)
KEPT = f"3 of 4 addresses; port states only for {Lab.HOME_V6}"


@pytest.fixture(scope="module")
def slow_lab(lab: Lab) -> Iterator[Lab]:
    """The session lab plus the IPv6-only silent port; removed again after this module."""
    daemon = start_tarpit(lab, Lab.HOME_V6, SLOW_PORT, name="silent-v6")
    try:
        lab.open_port(SLOW_PORT, "silent listener on the IPv6 address only")
        yield lab
    finally:
        with contextlib.suppress(Exception):
            lab.close_port(SLOW_PORT)
        daemon.stop()


def scan_argv(lab: Lab, db: Path) -> list[str]:
    return [*EXPOSURE, "scan", *ADDRESSES, "--ports", f"top,2222,{SLOW_PORT}", *LAB_SPEED,
            "--ca-file", str(lab.ca_pem), "--db", str(db), "--format", "json",
            "--fail-on", "never"]


def stages(db: Path) -> dict[str, str]:
    if not db.exists():
        return {}
    try:
        with sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=5) as connection:
            return dict(connection.execute("SELECT address, stage FROM scan_progress"))
    except sqlite3.Error:
        return {}


def interrupt(lab: Lab, db: Path, signum: int) -> tuple[int, str, float]:
    """Start the scan, send `signum` at the moment described above; (exit, stderr, seconds)."""
    process = lab.popen_in_scan(scan_argv(lab, db), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        wanted = {Lab.HOME_V4: "done", Lab.HOME_V6: "ports", Lab.TARPIT_V4: "done",
                  Lab.BLACKHOLE_V4: "done"}
        while stages(db) != wanted:
            assert process.poll() is None, f"the scan ended first: {process.communicate()}"
            assert time.monotonic() < deadline, f"never stored {wanted}: {stages(db)}"
            time.sleep(0.05)
        sent = time.monotonic()
        process.send_signal(signum)
        out, err = process.communicate(timeout=30)
        took = time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert out == ""
    return process.returncode, err, took


def history(lab: Lab, db: Path) -> list[dict[str, Any]]:
    run = run_exposure(lab, "history", "--db", str(db), "--format", "json")
    assert run.code == 0, run.stderr
    return run.json()  # type: ignore[return-value]


def shown(lab: Lab, db: Path, seq: int) -> dict[str, Any]:
    run = run_exposure(lab, "show", str(seq), "--db", str(db), "--format", "json")
    assert run.code == 0, run.stderr
    return run.json()


def check_partial(report: dict[str, Any], lab: Lab) -> dict[str, Any]:
    """The partial report holds IPv4 (and the tarpit and blackhole) complete and IPv6's port
    states; returns IPv4's target."""
    assert report["scan"]["complete"] is False
    assert report["scan"]["errors"][0]["message"].endswith(KEPT)
    by_address = {target["address"]: target for target in report["targets"]}
    assert set(by_address) == set(ADDRESSES)
    v4, v6 = by_address[Lab.HOME_V4], by_address[Lab.HOME_V6]
    assert by_address[Lab.TARPIT_V4]["answers_all_ports"] is True
    services = {port["port"]: port["service"] for port in v4["ports"] if port["state"] == "open"}
    assert services[22] == "ssh" and services[2222] == "ssh" and services[1883] == "mqtt"
    assert {services[80], services[443]} <= {"http", "https"}
    assert v4["findings"], "the checks' findings on IPv4 were kept"
    open_v6 = {port["port"] for port in v6["ports"] if port["state"] == "open"}
    assert set(lab.open_ports) <= open_v6 and SLOW_PORT in open_v6
    assert all(port["service"] is None for port in v6["ports"])  # not identified yet
    return v4


@contextlib.contextmanager
def unreachable(lab: Lab, address: str) -> Iterator[None]:
    """Every packet to `address` dropped by the home firewall: a rescan would find nothing."""
    iptables = "iptables-legacy-restore" if "legacy" in str(lab._iptables) else "iptables-restore"
    rule = f"INPUT -d {address}/32 -j DROP"
    run_checked([iptables, "--noflush"], netns=lab.home_ns, stdin=f"*filter\n-I {rule}\nCOMMIT\n")
    try:
        yield
    finally:
        run_checked([iptables, "--noflush"], netns=lab.home_ns,
                    stdin=f"*filter\n-D {rule}\nCOMMIT\n")


def test_kill_9_keeps_what_was_found_and_resume_finishes_the_scan(
    slow_lab: Lab, tmp_path: Path
) -> None:
    db = tmp_path / "h.db"
    code, _, _ = interrupt(slow_lab, db, signal.SIGKILL)
    assert code == -signal.SIGKILL
    (row,) = history(slow_lab, db)  # opening the history marks the dead scan interrupted
    assert row["status"] == "interrupted"
    assert row["error"] == "the scanning process ended before the scan finished"
    assert row["progress"]["summary"] == f"interrupted after {KEPT}"
    kept_v4 = check_partial(shown(slow_lab, db, row["seq"]), slow_lab)
    with sqlite3.connect(db) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    # IPv4 is unreachable during the resume: had it been scanned again, its ports would be
    # filtered; the final report has it as the first run found it.
    with unreachable(slow_lab, Lab.HOME_V4):
        resumed = run_exposure(slow_lab, "scan", "--resume", str(row["seq"]), "--db", str(db),
                               "--format", "json", "--fail-on", "never", timeout=180)
    assert resumed.code == 0, resumed.stderr
    report = resumed.json()
    assert report["scan"]["id"] == row["id"] and report["scan"]["complete"] is True
    assert [target["address"] for target in report["targets"]] == list(ADDRESSES)
    v4, v6, tarpit, blackhole = report["targets"]
    assert v4 == kept_v4
    assert {port["port"]: port["service"] for port in v6["ports"]}[22] == "ssh"
    assert tarpit["answers_all_ports"] is True
    assert blackhole["ports"] == [] and blackhole["filtered_count"] > 0
    (final,) = history(slow_lab, db)
    assert final["status"] == "complete" and final["progress"] is None
    assert shown(slow_lab, db, row["seq"]) == report


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_saves_how_far_the_scan_got_and_exits(
    slow_lab: Lab, tmp_path: Path, signum: int, code: int
) -> None:
    db = tmp_path / "h.db"
    returncode, stderr, took = interrupt(slow_lab, db, signum)
    name = signal.Signals(signum).name
    assert returncode == code
    assert took < 5  # no waiting for the silent port's probes or the TLS workers
    (line,) = stderr.strip().splitlines()
    assert line == (f"exposure: interrupted by {name}: scan #1 kept {KEPT}; "
                    "`exposure scan --resume 1` scans the rest")
    (row,) = history(slow_lab, db)
    assert row["status"] == "interrupted" and row["error"] == f"interrupted by {name}"
    assert row["progress"]["summary"] == f"interrupted after {KEPT}"
    check_partial(shown(slow_lab, db, 1), slow_lab)
