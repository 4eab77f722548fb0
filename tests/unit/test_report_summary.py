"""The summary: one verdict, problems grouped by id with where they apply, one count of open
ports and one grade order, whatever the output."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.alerts.base import states_for
from scanner.core.findings import Finding, Severity
from scanner.core.grades import Grade, grade_of, grade_rank, worst_grade
from scanner.core.report import PortReport, ScanReport, TargetReport
from scanner.core.summary import (
    IPV6_NOTE,
    Place,
    open_port_count,
    summarize,
    where_text,
)
from scanner.diff import tls_facts
from scanner.report.html import render_html
from scanner.report.json_report import report_document
from scanner.report.sarif import sarif_log
from tests.unit.test_report_samples import ADDRESS, ADDRESS6, HOME, sample_report

V4, V6 = ADDRESS, ADDRESS6


def _finding(finding_id: str, severity: Severity, port: int | None, fix: str = "Fix it.",
             title: str = "") -> Finding:
    return Finding(finding_id, severity, title or finding_id, "seen", fix, port)


def _report(*targets: TargetReport) -> ScanReport:
    return ScanReport("s1", "2024-05-01T08:00:00+00:00", "2024-05-01T08:00:01+00:00", 1.0,
                      "syn", 100, targets=list(targets))


def _target(address: str, ports: list[int], findings: list[Finding], name: str = HOME,
            ) -> TargetReport:
    return TargetReport(name, address, name if name != address else None,
                        [PortReport(port, "tcp", "open") for port in ports], findings=findings)


def test_a_problem_is_grouped_across_ports_and_addresses() -> None:
    outdated = [_finding("ha.outdated", Severity.HIGH, port) for port in (443, 8123)]
    report = _report(_target(V4, [443, 8123], list(outdated)),
                     _target(V6, [443, 8123], list(outdated)))
    summary = summarize(report)
    (problem,) = summary.problems
    assert problem.id == "ha.outdated" and problem.instances == 4
    assert problem.where == "443 and 8123 on IPv4 and IPv6" and problem.fixes == ("Fix it.",)
    assert summary.counts == {Severity.HIGH: 1} and summary.finding_counts == {Severity.HIGH: 4}


def test_several_fixes_are_kept_and_the_worst_severity_wins() -> None:
    report = _report(_target(V4, [1880, 6379], [
        _finding("service.unauthenticated", Severity.CRITICAL, 1880, "Set adminAuth.", "Node-RED"),
        _finding("service.unauthenticated", Severity.HIGH, 6379, "Set requirepass.", "Redis"),
    ]))
    (problem,) = summarize(report).problems
    assert problem.severity is Severity.CRITICAL
    assert problem.fixes == ("Set adminAuth.", "Set requirepass.")
    assert problem.title == "Node-RED; Redis" and problem.where == "1880 and 6379"


def test_where_names_the_address_family_and_hosts() -> None:
    hosts = {HOME: (V4, V6), "198.51.100.9": ("198.51.100.9",)}
    places = [Place(HOME, 22, "tcp", (V4, V6)), Place(HOME, 2222, "tcp", (V6,)),
              Place(HOME, None, "tcp", (V4,)), Place("198.51.100.9", 53, "udp", ("198.51.100.9",))]
    assert where_text(places, hosts) == (
        "home.example: the whole host on IPv4 only; 22 on IPv4 and IPv6; 2222 on IPv6 only; "
        "198.51.100.9: 53/udp")
    many = [Place(HOME, port, "tcp", (V4,)) for port in range(1, 12)]
    assert where_text(many, {HOME: (V4,)}) == "1, 2, 3, 4, 5, 6, 7, 8 and 3 more"


def test_one_count_of_open_ports() -> None:
    """A name's IPv4 and IPv6 are one host: 443 open on both is one open port."""
    report = _report(_target(V4, [22, 443, 8123], []), _target(V6, [443], []),
                     _target("198.51.100.9", [443], [], name="198.51.100.9"))
    report.targets[0].ports.append(PortReport(23, "tcp", "closed"))
    assert open_port_count(report) == summarize(report).open_ports == 4
    document = report_document(report)
    assert document["summary"]["open_ports"] == 4
    assert sarif_log(report, [])["runs"][0]["properties"]["summary"]["open_ports"] == 4
    assert "4 open ports on 2 hosts" in render_html(report)


def test_a_network_is_one_host_per_address() -> None:
    report = _report(*[TargetReport("198.51.100.0/30", address, None,
                                    [PortReport(22, "tcp", "open")])
                       for address in ("198.51.100.1", "198.51.100.2")])
    assert summarize(report).open_ports == 2


def test_a_host_answering_every_port_has_no_open_port_to_count() -> None:
    tarpit = TargetReport("203.0.113.20", "203.0.113.20", None,
                          [PortReport(port, "tcp", "open") for port in range(1, 100)],
                          answers_all_ports=True)
    summary = summarize(_report(tarpit))
    assert summary.open_ports == 0 and summary.status == "unknown"
    assert summary.verdict.startswith("Cannot tell: 203.0.113.20 answers on every port")


@pytest.mark.parametrize(("findings", "status", "start"), [
    ([_finding("a.b", Severity.CRITICAL, 22), _finding("c.d", Severity.HIGH, 22)], "not_safe",
     "Not safe to leave on the internet: 1 critical and 1 high problems on 1 open port"),
    ([_finding("a.b", Severity.MEDIUM, 22)], "needs_attention",
     "Not urgent, but not as safe as it should be: 1 medium-severity problem on 1 open port."),
    ([_finding("a.b", Severity.LOW, 22), _finding("c.d", Severity.INFO, 22)], "ok",
     "Safe to leave on the internet as far as a scan from outside can tell: 1 open port, only "
     "minor points (1 low and 1 info)."),
    ([], "ok", "Safe to leave on the internet as far as a scan from outside can tell: 1 open "
     "port, no problem found."),
])
def test_the_verdict_answers_the_question(findings: list[Finding], status: str,
                                          start: str) -> None:
    summary = summarize(_report(_target(V4, [22], findings)))
    assert summary.status == status and summary.verdict.startswith(start)


def test_the_verdict_of_nothing_open_and_of_nothing_scanned() -> None:
    closed = TargetReport(V4, V4, None, [PortReport(23, "tcp", "closed")], filtered_count=99)
    assert summarize(_report(closed)).verdict.startswith("Nothing answers from the internet")
    failed = dataclasses.replace(_report(), complete=False, errors=["x: discovery failed"])
    summary = summarize(failed)
    assert summary.status == "unknown" and summary.verdict.startswith("Nothing could be scanned")


def test_the_verdict_says_when_the_scan_was_incomplete_or_filtered() -> None:
    report = dataclasses.replace(_report(_target(V4, [22], [])), complete=False)
    assert "The scan was incomplete" in summarize(report).verdict
    hidden = summarize(_report(_target(V4, [22], [])), hidden_below=Severity.HIGH, hidden=3)
    assert "3 findings below high not shown (--severity)." in hidden.verdict


def test_the_ipv6_note_appears_when_ipv6_does() -> None:
    assert summarize(sample_report()).ipv6_note == IPV6_NOTE
    v4_only = _report(_target(V4, [22], []))
    assert summarize(v4_only).ipv6_note is None
    assert "ipv6_note" not in summarize(v4_only).to_dict()


def test_services_merge_addresses_and_carry_the_worst_problem() -> None:
    summary = summarize(sample_report())
    ssh = next(s for s in summary.services if s.port == 22)
    assert ssh.addresses == (V4, V6) and ssh.product_version == "OpenSSH 9.2p1"
    assert ssh.worst is Severity.MEDIUM
    assert next(s for s in summary.services if s.port == 8123).tls_grade == Grade("C")


# --- the grade order ---------------------------------------------------------------------


def test_f_is_the_worst_letter_and_t_m_rank_by_what_they_would_be() -> None:
    order = [Grade("A+"), Grade("A"), Grade("T", "A"), Grade("A-"), Grade("B"),
             Grade("M", "B"), Grade("C"), Grade("E"), Grade("T"), Grade("F")]
    assert sorted(order, key=lambda grade: grade.rank) == order
    assert worst_grade([Grade("T", "A"), Grade("F"), Grade("A")]) == Grade("F")
    assert Grade("T", "A").display == "T (A if trusted)"
    assert Grade("M", "B").display == "M (B if the name matched)"
    assert Grade("T").display == "T"
    assert grade_rank("Z?") > grade_rank("F")


def test_the_diff_and_alerts_use_the_same_order() -> None:
    assert tls_facts.grade_rank("T", "A") < tls_facts.grade_rank("F")
    assert tls_facts.full_grade({"tls": {"grade": "T", "grade_if_trust_ignored": "A"}}) == \
        Grade("T", "A")
    report = {"scan": {"id": "x"}, "targets": [
        {"input": HOME, "address": V4, "hostname": HOME, "ports": [
            {"port": 443, "protocol": "tcp", "state": "open",
             "details": {"tls": {"grade": "F"}}},
            {"port": 8123, "protocol": "tcp", "state": "open",
             "details": {"tls": {"grade": "T", "grade_if_trust_ignored": "A"}}}],
         "findings": []},
        {"input": HOME, "address": V6, "hostname": HOME, "ports": [
            {"port": 443, "protocol": "tcp", "state": "open", "details": {}}], "findings": []},
    ]}
    (state,) = states_for(report)
    assert state.tls_grade == "F"
    assert state.to_dict()["open_ports"] == 2 == len(state.open_ports)


def test_grade_of_reads_details_tls() -> None:
    assert grade_of({"grade": "A", "grade_if_trust_ignored": None}) == Grade("A")
    assert grade_of({"grade": None, "not_graded": "incomplete"}) is None
    assert grade_of("junk") is None


# --- hostile data --------------------------------------------------------------------------


TEXT = st.text(max_size=40)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a.b", "c.d", "x_y.z"]), st.sampled_from(list(Severity)),
                          st.one_of(st.none(), st.integers(1, 65535)), TEXT, TEXT),
                max_size=12),
       st.sampled_from([V4, V6]), TEXT)
def test_any_findings_summarize(findings: list[tuple], address: str, name: str) -> None:
    target = TargetReport(name or "x", address, name or None, [PortReport(1, "tcp", "open")],
                          findings=[Finding(fid, sev, title, "e", fix, port)
                                    for fid, sev, port, title, fix in findings])
    summary = summarize(_report(target))
    assert summary.verdict and sum(summary.finding_counts.values()) == len(findings)
    assert len(summary.problems) == len({finding[0] for finding in findings})
    for problem in summary.problems:
        assert "\x1b" not in problem.title + "".join(problem.fixes) + problem.where
