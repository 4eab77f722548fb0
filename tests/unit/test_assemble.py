"""The merge step: each stage's own results side by side in one TargetReport."""

from __future__ import annotations

import ipaddress

from scanner import assemble
from scanner.checks.runner import PortChecks, _add
from scanner.core.catalogue import FINDING_SOURCES, finding_catalogue
from scanner.core.findings import Finding, Severity
from scanner.core.report import Note, ScanError
from scanner.discovery import ANSWERS_ALL_PORTS, HostDiscovery, PortState
from scanner.discovery.udp import UdpScan, UdpService
from scanner.identification import ServiceIdentity
from scanner.identification.internetdb import look_up, worth_asking
from scanner.targets import Target

ADDRESS = ipaddress.ip_address("198.51.100.7")
TARGET = Target("home.example", ADDRESS, "home.example")


def discovery(**states: PortState) -> HostDiscovery:
    return HostDiscovery(ADDRESS, "syn", {int(port[1:]): state for port, state in states.items()})


def test_port_states_and_filtered_count_come_from_discovery() -> None:
    report = assemble.target_report(TARGET, discovery(p22=PortState.OPEN, p23=PortState.CLOSED,
                                                      p24=PortState.FILTERED))
    assert [(port.port, port.state) for port in report.ports] == [(22, "open"), (23, "closed")]
    assert report.filtered_count == 1 and report.findings == [] and report.notes == []


def test_discovery_brings_its_own_answers_all_ports_finding_and_note() -> None:
    found = HostDiscovery(ADDRESS, "syn", answers_all_ports=True,
                          notes=[Note(None, "answered on every canary")],
                          findings=[ANSWERS_ALL_PORTS.finding(port=None, evidence="e",
                                                              remediation="r")])
    report = assemble.target_report(TARGET, found)
    assert report.answers_all_ports and report.notes == [Note(None, "answered on every canary")]
    assert [finding.id for finding in report.findings] == ["discovery.answers_all_ports"]
    assert "scanner.discovery" in FINDING_SOURCES
    assert finding_catalogue().get("discovery.answers_all_ports") is ANSWERS_ALL_PORTS


class _Failing:
    name = "ha"


def test_check_notes_and_errors_are_typed_and_get_the_address() -> None:
    checks = PortChecks()
    _add(checks, _Failing(), 8123, "ha check not run: the port's deadline passed")  # type: ignore[arg-type]
    _add(checks, _Failing(), 8123, TimeoutError("slow"))  # type: ignore[arg-type]
    checks.findings.append(Finding("ha.x", Severity.HIGH, "t", "e", "r", 8123))
    report = assemble.target_report(TARGET, discovery(p8123=PortState.OPEN))
    errors = assemble.add_port(report, 8123, ServiceIdentity(service="http", source="nmap"),
                               checks)
    assert report.notes == [Note(8123, "ha check not run: the port's deadline passed")]
    assert errors == [ScanError("check", "TimeoutError('slow')", "198.51.100.7", 8123,
                                check="ha")]
    assert errors[0].line() == "198.51.100.7: ha check on port 8123 failed: TimeoutError('slow')"
    (port,) = report.ports
    assert port.service == "http" and port.details["identified_by"] == "nmap"
    assert [finding.id for finding in report.findings] == ["ha.x"]


def test_a_crashed_port_is_an_error_of_stage_port() -> None:
    report = assemble.target_report(TARGET, discovery(p22=PortState.OPEN))
    error = assemble.port_failed(report, 22, RuntimeError("boom"))
    assert (error.stage, error.address, error.port) == ("port", "198.51.100.7", 22)


def test_udp_brings_its_ports_and_findings() -> None:
    report = assemble.target_report(TARGET, discovery())
    service = UdpService(53, "dns", "open")
    finding = Finding("dns.open_resolver", Severity.HIGH, "t", "e", "r", 53, protocol="udp")
    assemble.add_udp(report, UdpScan((service,), (finding,)))
    assert [(port.port, port.protocol) for port in report.ports] == [(53, "udp")]
    assert report.findings == [finding]


def test_internetdb_decides_what_it_covers() -> None:
    assert not worth_asking(ipaddress.ip_address("192.168.1.2"), "https://internetdb.shodan.io")
    assert not worth_asking(ipaddress.ip_address("2001:db8::1"), "http://127.0.0.1:9")
    assert worth_asking(ipaddress.ip_address("127.0.0.1"), "http://127.0.0.1:9")  # own server
    skipped = look_up(ipaddress.ip_address("10.0.0.1"), [22], "https://internetdb.shodan.io")
    assert skipped.details == {"skipped": "InternetDB covers public IPv4 addresses only"}
    report = assemble.target_report(TARGET, discovery())
    assemble.add_internetdb(report, skipped)
    assert report.internetdb == skipped.details and report.notes == []


def test_findings_end_worst_first_by_port() -> None:
    report = assemble.target_report(TARGET, discovery())
    report.findings = [Finding("a.b", Severity.LOW, "t", "e", "r", 1),
                       Finding("c.d", Severity.HIGH, "t", "e", "r", 9),
                       Finding("e.f", Severity.HIGH, "t", "e", "r", 2)]
    assemble.finish(report)
    assert [finding.id for finding in report.findings] == ["e.f", "c.d", "a.b"]
