"""Discovery engines against the lab's home host: open, closed (REJECT) and filtered (DROP)."""

from __future__ import annotations

import pytest

from tests.lab.netns import Lab
from tests.lab.scanning import LAB_SPEED, port_states, run_as_nobody, run_exposure, scan_json

pytestmark = pytest.mark.lab

# The lab's open ports plus the closed one and a few dropped ones, in one list.
PORTS = "top,2222,23,1-1024"


@pytest.mark.parametrize("engine", ["syn", "connect", "nmap"])
def test_engine_finds_open_closed_and_filtered(lab: Lab, engine: str) -> None:
    report = scan_json(lab, Lab.HOME_V4, "--engine", engine, "--ports", PORTS, *LAB_SPEED)
    assert report["scan"]["engine"] == engine and report["scan"]["complete"]
    (target,) = report["targets"]
    assert port_states(target, "open") == set(lab.open_ports)
    assert port_states(target, "closed") == {lab.closed_port}
    requested = report["scan"]["ports_requested"]
    assert target["filtered_count"] == requested - len(lab.open_ports) - 1
    assert not target["answers_all_ports"]


@pytest.mark.parametrize("engine", ["syn", "connect"])
def test_ipv6_target(lab: Lab, engine: str) -> None:
    report = scan_json(lab, Lab.HOME_V6, "--engine", engine, "--ports", PORTS, *LAB_SPEED)
    (target,) = report["targets"]
    assert target["address"] == Lab.HOME_V6
    assert port_states(target, "open") == set(lab.open_ports)
    assert port_states(target, "closed") == {lab.closed_port}


def test_hostname_is_scanned_on_every_address(lab: Lab) -> None:
    report = scan_json(lab, Lab.HOSTNAME, "--ports", "22,23,81", *LAB_SPEED)
    addresses = [target["address"] for target in report["targets"]]
    assert addresses == [Lab.HOME_V4, Lab.HOME_V6]
    for target in report["targets"]:
        assert target["input"] == Lab.HOSTNAME
        assert port_states(target, "open") == {22} and port_states(target, "closed") == {23}
        assert target["filtered_count"] == 1


def test_auto_uses_syn_with_privileges(lab: Lab) -> None:
    report = scan_json(lab, Lab.HOME_V4, "--ports", "22", *LAB_SPEED)
    assert report["scan"]["engine"] == "syn"


def test_auto_falls_back_to_connect_without_privileges(lab: Lab) -> None:
    run = run_as_nobody(lab, "scan", Lab.HOME_V4, "--ports", "22,23", "--format", "json",
                        *LAB_SPEED)
    assert run.returncode == 0, run.stderr
    assert '"engine": "connect"' in run.stdout
    assert "exposure: note: no raw-socket privilege (root or CAP_NET_RAW), so the connect " \
           "engine runs" in run.stderr  # said, not silent


def test_syn_without_privileges_exits_3(lab: Lab) -> None:
    run = run_as_nobody(lab, "scan", Lab.HOME_V4, "--engine", "syn", "--ports", "22")
    assert run.returncode == 3
    assert run.stderr.count("\n") == 1 and "raw sockets" in run.stderr


@pytest.mark.parametrize("engine", ["syn", "connect"])
def test_blackholed_host_finishes_and_reports_filtered(lab: Lab, engine: str) -> None:
    run = run_exposure(lab, "scan", Lab.BLACKHOLE_V4, "--engine", engine, "--ports", "top",
                       "--format", "json", *LAB_SPEED, timeout=60)
    assert run.code == 0, run.stderr
    (target,) = run.json()["targets"]
    assert target["ports"] == []
    assert target["filtered_count"] == run.json()["scan"]["ports_requested"]
    # two passes of 0.5 s waits plus sending at 20k pps; generous bound for a loaded machine
    assert run.seconds < 15


@pytest.mark.parametrize("engine", ["syn", "connect"])
def test_tarpit_is_reported_as_answering_everything(lab: Lab, engine: str) -> None:
    report = scan_json(lab, Lab.TARPIT_V4, "--engine", engine, "--ports", "1-200", *LAB_SPEED)
    (target,) = report["targets"]
    assert target["answers_all_ports"]
    assert target["ports"] == []
    assert [f["id"] for f in target["findings"]] == ["discovery.answers_all_ports"]


def test_unresolvable_name_exits_2_with_one_line(lab: Lab) -> None:
    # Inside the scan namespace the resolver is 127.0.0.1: the lookup fails locally.
    run = run_exposure(lab, "scan", "no-such-host.lab")
    assert run.code == 2
    assert run.stderr.strip().splitlines() == [
        run.stderr.strip()
    ] and "cannot resolve 'no-such-host.lab'" in run.stderr
    assert run.stdout == ""


def test_table_report_of_the_lab(lab: Lab) -> None:
    run = run_exposure(lab, "scan", Lab.HOSTNAME, "--ports", PORTS, "--fail-on", "never",
                       *LAB_SPEED)
    assert run.code == 0, run.stderr
    for port in lab.open_ports:
        assert f"{port}/tcp" in run.stdout
    assert f"{lab.closed_port}/tcp" in run.stdout and "closed" in run.stdout
    assert Lab.HOME_V6 in run.stdout
