"""Fleet scans against the lab: real redis-server and PostgreSQL, workers in two internets.

One fleet lab for the module (tests/lab/fleet.py): 32 home addresses, a control namespace
with Redis and PostgreSQL, worker a in the lab's scan namespace, worker b in a second
internet that reaches home by its own link, where port 80 of home's main address is dropped.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.lab import Lab
from tests.lab.fleet import FENCED_PORT, PORTS, TARGETS, FleetLab, open_ports_of
from tests.lab.nsutil import list_netns, netns_argv
from tests.lab.scanning import EXPOSURE

pytestmark = pytest.mark.lab

ADDRESSES = TARGETS[:32]
DATABASE = "fleet"
SPEED = ["--rate", "20000", "--timeout", "0.5"]
# Short enough for the kill test to end in seconds, longer than any task here lasts.
WORKER_FLAGS = ["--redelivery-after", "12", "--lease", "4", "--concurrency", "8"]


@pytest.fixture(scope="module")
def fleet() -> Iterator[FleetLab]:
    lab = FleetLab(ADDRESSES)
    lab.start()
    try:
        lab.create_database(DATABASE)
        lab.start_worker("a", DATABASE, vantage="a", extra=WORKER_FLAGS)
        lab.start_worker("b", DATABASE, vantage="b", extra=WORKER_FLAGS)
        yield lab
    finally:
        lab.stop()


@pytest.fixture(scope="module")
def single_machine(fleet: FleetLab) -> dict[str, Any]:
    """The 32 addresses scanned by one process from internet a, as without a fleet."""
    completed = fleet.lab.run_in_scan(
        [*EXPOSURE, "scan", *ADDRESSES, "--ports", PORTS, *SPEED, "--format", "json",
         "--fail-on", "never", "--no-store"],
        capture_output=True, text=True, timeout=300, check=False)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def fleet_scan(fleet: FleetLab, *args: str, fail_on: str = "never") -> tuple[int, dict[str, Any]]:
    completed = fleet.run_coordinator(
        "scan", *args, "--broker", fleet.broker(None), "--db", fleet.db(DATABASE, None),
        *SPEED, "--format", "json", "--fail-on", fail_on, "--fleet-timeout", "240")
    assert completed.returncode in (0, 1), completed.stderr
    return completed.returncode, json.loads(completed.stdout)


def per_address(report: dict[str, Any]) -> dict[str, Any]:
    """What a scan found at each address: ports with what runs there, and finding ids."""
    return {
        target["address"]: {
            "ports": sorted((port["port"], port["state"], port["service"], port["product"],
                             port["version"]) for port in target["ports"]),
            "filtered": target["filtered_count"],
            "findings": sorted((f["id"], f["port"]) for f in target["findings"]),
        }
        for target in report["targets"]
    }


def ledger_rows(fleet: FleetLab, job: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(fleet.postgres.url(DATABASE)) as connection:  # type: ignore[attr-defined]
        return connection.execute(
            "SELECT address, status, attempts, worker FROM exposure.fleet_tasks WHERE job = %s",
            (job,)).fetchall()


def test_two_workers_give_the_single_machine_results(
    fleet: FleetLab, single_machine: dict[str, Any]
) -> None:
    _, report = fleet_scan(fleet, *ADDRESSES, "--ports", PORTS)
    assert report["scan"]["complete"], report["scan"]["errors"]
    assert [t["address"] for t in report["targets"]] == list(ADDRESSES)
    assert per_address(report) == per_address(single_machine)
    # the lab's pattern, not just "the same": every address has its own open ports
    for index, target in enumerate(report["targets"]):
        opened = {port["port"] for port in target["ports"] if port["state"] == "open"}
        assert opened == set(open_ports_of(index)), target["address"]
    # both workers took part, and PostgreSQL holds each address once
    assert len(report["scan"]["budget"]["fleet"]["workers"]) == 2
    rows = ledger_rows(fleet, report["scan"]["id"])
    assert sorted(address for address, *_ in rows) == sorted(ADDRESSES)
    assert {status for _, status, *_ in rows} == {"done"}


def test_a_worker_killed_mid_run_loses_nothing_and_stores_nothing_twice(
    fleet: FleetLab, single_machine: dict[str, Any]
) -> None:
    doomed = fleet.start_worker("a", DATABASE, vantage="a", extra=WORKER_FLAGS)
    identity_suffix = f":{doomed.pid}"
    coordinator = fleet.popen_coordinator(
        "scan", *ADDRESSES, "--ports", PORTS, "--broker", fleet.broker(None),
        "--db", fleet.db(DATABASE, None), *SPEED, "--format", "json", "--fail-on", "never",
        "--fleet-timeout", "240")
    held = wait_until_running_on(fleet, identity_suffix)
    doomed.kill()  # SIGKILL while it scans: its messages are never acknowledged
    out, err = coordinator.communicate(timeout=300)
    assert coordinator.returncode == 0, err
    report = json.loads(out)
    assert report["scan"]["complete"], (report["scan"], ledger_rows(fleet, report["scan"]["id"]),
                                        [w.log_tail(60) for w in fleet.workers], err)
    assert per_address(report) == per_address(single_machine)
    rows = ledger_rows(fleet, report["scan"]["id"])
    assert sorted(address for address, *_ in rows) == sorted(ADDRESSES)  # each exactly once
    assert {status for _, status, *_ in rows} == {"done"}
    taken_over = {address: (attempts, worker) for address, _, attempts, worker in rows
                  if address in held}
    # what the killed worker held was run again, by another worker, and stored once
    assert taken_over and all(attempts >= 2 and not worker.endswith(identity_suffix)
                              for attempts, worker in taken_over.values()), taken_over


def test_a_killed_coordinator_keeps_every_address_that_came_back(fleet: FleetLab) -> None:
    coordinator = fleet.popen_coordinator(
        "scan", *ADDRESSES, "--ports", PORTS, "--broker", fleet.broker(None),
        "--db", fleet.db(DATABASE, None), *SPEED, "--format", "json", "--fail-on", "never")
    deadline = time.monotonic() + 60
    with psycopg.connect(fleet.postgres.url(DATABASE), autocommit=True) as connection:  # type: ignore[attr-defined]
        while connection.execute(
                "SELECT COUNT(*) FROM exposure.scan_progress WHERE stage = 'done' AND scan_seq ="
                " (SELECT MAX(seq) FROM exposure.scans)").fetchone()[0] < 4:
            assert time.monotonic() < deadline, "no address came back"
            time.sleep(0.02)
    coordinator.kill()  # SIGKILL: no chance to write anything more
    coordinator.communicate()
    db = ["--db", fleet.db(DATABASE, None)]
    history = fleet.run_coordinator("history", *db, "--format", "json", "--limit", "1")
    (row,) = json.loads(history.stdout)
    assert row["status"] == "interrupted"
    assert row["progress"]["addresses_planned"] == len(ADDRESSES)
    kept = row["progress"]["addresses_done"]
    assert 4 <= kept < len(ADDRESSES)
    shown = fleet.run_coordinator("show", str(row["seq"]), *db, "--format", "json")
    assert shown.returncode == 0, shown.stderr
    partial = json.loads(shown.stdout)
    assert not partial["scan"]["complete"] and len(partial["targets"]) == kept
    expected = {address: set(open_ports_of(index)) for index, address in enumerate(ADDRESSES)}
    for target in partial["targets"]:
        opened = {port["port"] for port in target["ports"] if port["state"] == "open"}
        assert opened == expected[target["address"]]
    # the workers finish what was sent (the job's lease has not run out yet): let them, so the
    # next test has the fleet to itself
    deadline = time.monotonic() + 60
    while len([r for r in ledger_rows(fleet, row["id"]) if r[1] != "running"]) < len(ADDRESSES):
        assert time.monotonic() < deadline, "the workers never finished the sent tasks"
        time.sleep(0.1)


def test_a_message_lost_by_the_broker_is_sent_again(fleet: FleetLab) -> None:
    """kombu's Redis transport loses a message when a worker dies between taking it off the
    queue and recording it as unacknowledged: the coordinator sees a task no worker started
    while its queue is empty, and sends it again."""
    coordinator = fleet.popen_coordinator(
        "scan", Lab.HOME_V4, "--ports", "22,80", "--broker", fleet.broker(None),
        "--db", fleet.db(DATABASE, None), "--vantage", "lost", *SPEED, "--format", "json",
        "--fail-on", "never", "--fleet-timeout", "120")
    queue = "exposure.vantage.lost"
    deadline = time.monotonic() + 30
    while redis_cli(fleet, "LLEN", queue) != "1":
        assert time.monotonic() < deadline, "the task never reached its queue"
        time.sleep(0.05)
    assert redis_cli(fleet, "DEL", queue) == "1"  # the message is gone, as in that instant
    worker = fleet.start_worker("b", DATABASE, vantage="lost", extra=WORKER_FLAGS)
    try:
        out, err = coordinator.communicate(timeout=150)
    finally:
        worker.stop()
    assert coordinator.returncode == 0, err
    report = json.loads(out)
    assert report["scan"]["complete"], report["scan"]["errors"]
    assert report["scan"]["budget"]["fleet"]["tasks_sent_again"] == 1
    (target,) = report["targets"]
    assert {port["port"] for port in target["ports"] if port["state"] == "open"} == {22}


def redis_cli(fleet: FleetLab, *args: str) -> str:
    completed = subprocess.run(
        netns_argv(fleet.ctl_ns, ["redis-cli", "-h", "127.0.0.1", "-p",
                                  str(fleet.REDIS_PORT), *args]),
        capture_output=True, text=True, timeout=10, check=True)
    return completed.stdout.strip()


def wait_until_running_on(fleet: FleetLab, identity_suffix: str, timeout: float = 60) -> set[str]:
    """The addresses the worker is scanning, once it is scanning some."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(fleet.postgres.url(DATABASE), autocommit=True) as connection:  # type: ignore[attr-defined]
        while time.monotonic() < deadline:
            rows = connection.execute(
                "SELECT address FROM exposure.fleet_tasks t JOIN exposure.fleet_jobs j"
                " USING (job) WHERE j.status = 'running' AND t.status = 'running'"
                " AND t.worker LIKE %s", (f"%{identity_suffix}",)).fetchall()
            if rows:
                return {address for (address,) in rows}
            time.sleep(0.02)
    raise AssertionError("the worker to kill never got a task")


def test_vantage_difference_is_a_finding(fleet: FleetLab) -> None:
    code, report = fleet_scan(fleet, Lab.HOME_V4, "--ports", "22,23,80", "--vantage", "a",
                              "--vantage", "b", fail_on="medium")
    assert code == 1  # the difference is medium: --fail-on medium fails on it
    (target,) = report["targets"]
    ports = {port["port"]: port for port in target["ports"]}
    assert ports[22]["details"]["vantages"]["open"] == ["a", "b"]
    assert ports[FENCED_PORT]["state"] == "open"
    assert ports[FENCED_PORT]["details"]["vantages"] == {
        "open": ["a"], "closed": [], "filtered": ["b"]}
    differences = [f for f in target["findings"] if f["id"] == "vantage.difference"]
    assert [(f["port"], f["evidence"]) for f in differences] == [
        (FENCED_PORT, f"port {FENCED_PORT}/tcp: open from a; filtered from b")]
    assert {"port": None, "text": "scanned from 2 vantage points: a, b"} in target["notes"]
    # the same report, stored in PostgreSQL, in every format
    shown = {fmt: fleet.run_coordinator("show", report["scan"]["id"], "--db",
                                        fleet.db(DATABASE, None), "--format", fmt)
             for fmt in ("table", "markdown", "html", "sarif", "json")}
    for fmt, completed in shown.items():
        assert completed.returncode == 0, (fmt, completed.stderr)
        assert "vantage.difference" in completed.stdout, fmt
    assert "open from a; filtered from b" in shown["table"].stdout


def test_history_and_diff_read_postgresql(fleet: FleetLab) -> None:
    ports = ["--ports", "22,23,80,1883"]
    _, before = fleet_scan(fleet, Lab.HOME_V4, *ports)
    opening = f"EXP-OPEN -d {Lab.HOME_V4} -p tcp --dport 1883 -j ACCEPT"
    fleet.lab.home_rules([f"-A {opening}"])
    try:
        _, after = fleet_scan(fleet, Lab.HOME_V4, *ports)
    finally:
        fleet.lab.home_rules([f"-D {opening}"])
    db = ["--db", fleet.db(DATABASE, None)]
    history = fleet.run_coordinator("history", Lab.HOME_V4, *db, "--format", "json")
    assert history.returncode == 0, history.stderr
    ids = [row["id"] for row in json.loads(history.stdout)]
    assert ids.index(after["scan"]["id"]) < ids.index(before["scan"]["id"])  # newest first
    diff = fleet.run_coordinator("diff", before["scan"]["id"], after["scan"]["id"], *db,
                                 "--format", "json")
    assert diff.returncode == 1, diff.stderr  # like diff(1): 1 when something changed
    changes = json.loads(diff.stdout)["changes"]
    assert any(change.get("port") == 1883 and "open" in json.dumps(change)
               for change in changes), changes


def test_watch_runs_on_the_fleet_too(fleet: FleetLab) -> None:
    db = ["--db", fleet.db(DATABASE, None)]
    watched = fleet.run_coordinator(
        "watch", Lab.HOME_V4, "--once", "--ports", "22,80", "--broker", fleet.broker(None),
        "--vantage", "a", "--vantage", "b", *db, *SPEED)
    assert watched.returncode == 0, watched.stderr
    history = fleet.run_coordinator("history", Lab.HOME_V4, *db, "--format", "json",
                                    "--limit", "1")
    (row,) = json.loads(history.stdout)
    assert row["status"] == "complete" and row["inputs"] == [Lab.HOME_V4]
    shown = fleet.run_coordinator("show", str(row["seq"]), *db, "--format", "json")
    (target,) = json.loads(shown.stdout)["targets"]
    assert [f["port"] for f in target["findings"] if f["id"] == "vantage.difference"] == [
        FENCED_PORT]


def test_a_vantage_no_worker_serves_is_said_and_the_scan_fails(fleet: FleetLab) -> None:
    completed = fleet.run_coordinator(
        "scan", Lab.HOME_V4, "--ports", "22", "--broker", fleet.broker(None),
        "--db", fleet.db(DATABASE, None), "--vantage", "nowhere", "--fleet-timeout", "17",
        "--format", "json")
    assert completed.returncode == 3  # nothing came back: the scan could not run
    assert "no worker serves vantage nowhere" in completed.stderr
    report = json.loads(completed.stdout)
    assert not report["scan"]["complete"] and not report["targets"]
    assert report["scan"]["errors"] == [{
        "stage": "task", "message": "no worker finished it", "address": Lab.HOME_V4,
        "port": None, "check": None, "vantage": "nowhere"}]


def test_the_fleet_lab_stops_everything_by_pid() -> None:
    lab = FleetLab(TARGETS[:1])
    lab.start()
    try:
        lab.create_database("stop")
        worker = lab.start_worker("b", "stop")
        pids = [worker.pid, lab.redis.pid, lab.postgres.pid]  # type: ignore[union-attr]
        namespaces = lab.namespaces
    finally:
        lab.stop()
    assert not set(namespaces) & set(list_netns())
    for pid in pids:
        assert not _running(pid), pid


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
