"""The fleet's pure parts: how a scan is split and the rate shared, what a worker accepts from
the broker (hostile messages included), and how the results come back together."""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.api import ScanOptions
from scanner.checks.base import CheckOptions
from scanner.cli import main
from scanner.core.findings import Severity
from scanner.core.report import Note, ScanError, ScanReport
from scanner.discovery import ENGINE_NAMES, DiscoveryOptions
from scanner.fleet.codec import BadTask, ca_pem_of, options_from_message, options_to_message
from scanner.fleet.merge import merge_results
from scanner.fleet.spec import (
    PART_PORTS,
    TaskSpec,
    check_vantage,
    plan_tasks,
    port_parts,
    queue_for,
)
from scanner.fleet.vantage import VANTAGE_DIFFERENCE
from scanner.fleet.worker import WorkerSettings
from scanner.store.fleet import TaskRecord
from scanner.targets import ALL_PORTS, Target

TARGETS = [Target("home.example", ipaddress.ip_address("203.0.113.7"), "home.example"),
           Target("203.0.113.8", ipaddress.ip_address("203.0.113.8"))]


def options(**changes: Any) -> ScanOptions:
    return dataclasses.replace(
        ScanOptions(ports=(22, 80, 443), discovery=DiscoveryOptions(rate=1200)), **changes)


# --- splitting and sharing ----------------------------------------------------------------------


def test_one_task_per_address_and_vantage_each_with_its_share_of_the_rate() -> None:
    plan = plan_tasks("job", TARGETS, options(), ["eu", "us"])
    assert [(t.address, t.vantage, t.ports) for t in plan] == [
        ("203.0.113.7", "eu", "22,80,443"), ("203.0.113.7", "us", "22,80,443"),
        ("203.0.113.8", "eu", "22,80,443"), ("203.0.113.8", "us", "22,80,443")]
    # both vantages may hit one address at once: each gets half of the per-address rate
    assert {t.rate for t in plan} == {600}
    assert len({t.key for t in plan}) == 4
    assert plan[0].hostname == "home.example" and plan[0].input == "home.example"


def test_all_ports_are_split_into_ranges_and_the_rate_with_them() -> None:
    parts = port_parts(ALL_PORTS)
    assert len(parts) == 4 and all(len(part) <= PART_PORTS for part in parts)
    assert sorted(port for part in parts for port in part) == list(ALL_PORTS)
    plan = plan_tasks("job", TARGETS[:1], options(ports=ALL_PORTS), [])
    assert [t.part for t in plan] == [0, 1, 2, 3] and {t.rate for t in plan} == {300}
    assert plan[0].ports == "1-16384" and plan[3].ports == "49153-65535"
    assert {t.vantage for t in plan} == {""} and queue_for("") == "exposure"


def test_a_worker_runs_each_task_at_its_share_or_its_own_cap_whichever_is_lower() -> None:
    settings_ = WorkerSettings(db="postgresql://x@y/z", rate=1000, concurrency=8)
    assert settings_.rate_per_slot == 125  # eight tasks at once never exceed 1000 together
    assert settings_.queues == ["exposure"]
    assert WorkerSettings(db="", vantage="eu").queues == ["exposure", "exposure.vantage.eu"]


def test_vantage_names() -> None:
    assert check_vantage("eu-west.2") == "eu-west.2" and queue_for("us") == "exposure.vantage.us"
    for bad in ("", "EU", "a b", "x" * 40, "../x"):
        with pytest.raises(Exception, match="vantage"):
            check_vantage(bad)


# --- what a worker accepts ------------------------------------------------------------------------


def test_a_task_survives_the_broker_and_gives_back_its_options(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    scan_options = options(checks=CheckOptions(active=True, ca_file=ca, ssh_host_keys=True),
                           udp=True)
    (spec,) = plan_tasks("job", TARGETS[:1], scan_options, [], ca_pem="-----BEGIN X-----")
    again = TaskSpec.from_message(spec.to_message())
    assert again == spec and again.target == TARGETS[0]
    assert ca_pem_of(again.options) == "-----BEGIN X-----"
    rebuilt = options_from_message(again.options, ports=(22,), rate=77, ca_file=ca)
    assert rebuilt.discovery.rate == 77 and rebuilt.ports == (22,)
    assert rebuilt.checks == scan_options.checks and rebuilt.udp
    assert rebuilt.discovery.timeout == scan_options.discovery.timeout


@pytest.mark.parametrize("change", [
    {"address": "home.example"}, {"ports": "1-2-3"}, {"rate": 0}, {"rate": True},
    {"vantage": "../../etc"}, {"hostname": "x" * 300}, {"extra": 1}, {"options": []},
])
def test_a_message_that_is_not_a_task_is_refused(change: dict[str, Any]) -> None:
    message = plan_tasks("job", TARGETS[:1], options(), [])[0].to_message()
    message.update(change)
    with pytest.raises(BadTask):
        TaskSpec.from_message(message)


@pytest.mark.parametrize("change", [
    {"engine": "rm -rf"}, {"discovery": {"rate": 1, "timeout": 999, "retries": 1,
                                         "max_concurrency": 1}},
    {"identify": "yes"}, {"checks": {"active": False}}, {"host_connections": 10**9},
    {"unknown": 1},
])
def test_options_out_of_range_are_refused(change: dict[str, Any]) -> None:
    message = options_to_message(options(), None)
    message.update(change)
    with pytest.raises(BadTask):
        options_from_message(message, ports=(22,), rate=1, ca_file=None)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(plan_tasks("j", TARGETS[:1], options(), [])[0]
                                              .to_message())) | st.text(max_size=8),
                       json_values, max_size=12))
def test_any_message_is_a_task_or_refused(message: dict[str, Any]) -> None:
    try:
        spec = TaskSpec.from_message(message)
    except BadTask:
        return
    assert ipaddress.ip_address(spec.address) and spec.rate >= 1  # accepted: well formed
    with contextlib.suppress(BadTask):
        assert_sane(options_from_message(spec.options, ports=(22,), rate=spec.rate,
                                         ca_file=None))


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_any_options_are_options_or_refused(message: Any) -> None:
    if not isinstance(message, dict):
        return
    base = options_to_message(options(), None)
    with contextlib.suppress(BadTask):
        assert_sane(options_from_message({**base, **message}, ports=(22,), rate=1, ca_file=None))


def assert_sane(scan_options: ScanOptions) -> None:
    """What a worker runs with: the limits it may be given, never anything else."""
    assert scan_options.engine in ENGINE_NAMES
    assert 0.05 <= scan_options.discovery.timeout <= 60
    assert 0 <= scan_options.discovery.retries <= 10
    assert 1 <= scan_options.host_connections <= 4096
    assert scan_options.checks.ca_file is None


# --- merging --------------------------------------------------------------------------------------


def part_report(address: str, ports: list[tuple[int, str]], findings: list[str] = (),
                notes: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "scan": {"id": "p", "engine": "syn", "complete": True, "errors": []},
        "targets": [{
            "input": address, "address": address, "hostname": None,
            "ports": [{"port": p, "protocol": "tcp", "state": s, "service": "http" if s == "open"
                       else None, "details": {}} for p, s in ports],
            "filtered_count": 3 - len(ports),
            "findings": [{"id": f, "severity": "high", "port": 80, "title": f, "evidence": "e",
                          "remediation": "r"} for f in findings],
            "notes": list(notes),
        }],
    }


def record(spec: TaskSpec, result: dict[str, Any] | None, seen_from: str = "") -> TaskRecord:
    status = "done" if result is not None else "failed"
    return TaskRecord(spec.key, spec.vantage, spec.address, status, "w", 1, seen_from, result,
                      None if result else "ScanFailed: no raw sockets")


def header() -> ScanReport:
    return ScanReport(id="job", started_at="2026-01-01T00:00:00+00:00",
                      finished_at="2026-01-01T00:00:00+00:00", duration_s=0.0, engine="auto",
                      ports_requested=3)


def test_two_vantages_that_disagree_make_a_finding_and_say_who_saw_what() -> None:
    plan = plan_tasks("job", TARGETS[:1], options(), ["eu", "us"])
    address = plan[0].address
    records = [
        record(plan[0], part_report(address, [(22, "open"), (80, "open")], ["http.x"],
                                    ("port 80: a note",))),
        record(plan[1], part_report(address, [(22, "open"), (443, "closed")], [],
                                    ("port 80: a note",))),
    ]
    merged = merge_results(header(), plan, records, (22, 80, 443), ["eu", "us"])
    assert merged.complete and merged.engine == "syn"
    (target,) = merged.targets
    ports = {port.port: port for port in target.ports}
    assert ports[80].state == "open" and ports[80].details["vantages"] == {
        "open": ["eu"], "closed": [], "filtered": ["us"]}
    assert ports[443].state == "closed" and ports[22].details["vantages"]["open"] == ["eu", "us"]
    assert target.filtered_count == 0
    differences = [f for f in target.findings if f.id == VANTAGE_DIFFERENCE.id]
    assert [(f.port, f.evidence, f.severity) for f in differences] == [
        (80, "port 80/tcp: open from eu; filtered from us", Severity.MEDIUM)]
    http = next(f for f in target.findings if f.id == "http.x")
    assert http.evidence == "e"  # only eu saw port 80 open: nothing to add
    assert Note(80, "a note") in target.notes  # said by both (as /1 words): once, as it was
    assert any(note.port == 443 and "closed from us, filtered from eu" in note.text
               for note in target.notes)
    assert target.findings[0].severity is Severity.HIGH  # worst first, as a single scan


def test_an_unfinished_task_makes_the_report_incomplete_and_says_where() -> None:
    plan = plan_tasks("job", TARGETS, options(), [])
    records = [record(plan[0], part_report(plan[0].address, [(22, "open")])),
               record(plan[1], None)]
    merged = merge_results(header(), plan, records, (22, 80, 443), [])
    assert not merged.complete
    assert [t.address for t in merged.targets] == ["203.0.113.7"]
    assert merged.targets[0].input == "home.example"
    assert merged.errors == [ScanError("task", "ScanFailed: no raw sockets", "203.0.113.8")]
    assert merged.errors[0].line() == "203.0.113.8: task failed: ScanFailed: no raw sockets"
    merged = merge_results(header(), plan, records[:1], (22, 80, 443), [])
    assert merged.errors == [ScanError("task", "no worker finished it", "203.0.113.8")]


def test_port_ranges_of_one_address_are_put_back_together() -> None:
    plan = plan_tasks("job", TARGETS[:1], options(ports=ALL_PORTS), [])
    address = plan[0].address
    records = [record(spec, part_report(address, [(spec.part * PART_PORTS + 22, "open")]))
               for spec in plan]
    merged = merge_results(header(), plan, records, ALL_PORTS, [])
    (target,) = merged.targets
    assert [port.port for port in target.ports] == [22 + n * PART_PORTS for n in range(4)]


# --- the command line -------------------------------------------------------------------------


def test_fleet_flags_are_checked_before_anything_runs(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", "203.0.113.7", "--vantage", "eu", "--db", str(tmp_path / "a.db")]) == 2
    assert "--vantage needs --broker" in capsys.readouterr().err
    assert main(["scan", "203.0.113.7", "--broker", "redis://127.0.0.1:1/0",
                 "--db", str(tmp_path / "a.db")]) == 2
    assert "--broker needs --db postgresql://" in capsys.readouterr().err
    assert main(["worker", "--broker", "redis://127.0.0.1:1/0", "--db",
                 str(tmp_path / "a.db")]) == 2
    assert main(["watch", "203.0.113.7", "--once", "--vantage", "a b", "--broker",
                 "redis://127.0.0.1:1/0", "--db", "postgresql://x@127.0.0.1:1/y"]) == 2
    assert "--vantage 'a b'" in capsys.readouterr().err
