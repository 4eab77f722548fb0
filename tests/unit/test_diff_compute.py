"""The diff engine on reports built here: each kind of change, and no noise."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from scanner.core.findings import Severity
from scanner.core.report import ScanError
from scanner.diff import ChangeKind, ReportDiff, Side, diff_reports, tls_facts
from scanner.diff.baseline import parse_baseline
from scanner.diff.render import render_diff

V4, V6 = "198.51.100.7", "2001:db8::7"


def cert(sha: str = "aa", not_after: str = "2027-06-01T00:00:00+00:00") -> dict[str, Any]:
    return {"subject_cn": "home.example", "issuer_cn": "R11", "not_after": not_after,
            "serial": sha, "sha256": sha}


def port(number: int, *, service: str | None = "http", product: str | None = "nginx",
         version: str | None = "1.22.1", tls: bool = False, state: str = "open",
         details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"port": number, "protocol": "tcp", "state": state, "service": service,
            "product": product, "version": version, "tls": tls, "banner": "x",
            "details": details or {}}


def finding(finding_id: str, severity: str, number: int | None) -> dict[str, Any]:
    return {"id": finding_id, "severity": severity, "port": number, "protocol": "tcp",
            "title": f"{finding_id} title", "evidence": "some evidence", "remediation": "fix",
            "references": []}


def target(address: str = V4, ports: list | None = None, findings: list | None = None,
           name: str = "home.example") -> dict[str, Any]:
    return {"input": name, "address": address, "hostname": name, "ports": ports or [],
            "filtered_count": 10, "answers_all_ports": False, "findings": findings or [],
            "notes": []}


def report(*targets: dict[str, Any], scan_id: str = "a", when: str = "2026-11-01T00:00:00+00:00",
           complete: bool = True) -> dict[str, Any]:
    return {"schema": "exposure-report/1",
            "scan": {"id": scan_id, "started_at": when, "finished_at": when, "complete": complete,
                     "errors": [], "duration_s": 1.0, "engine": "syn", "ports_requested": 100},
            "targets": list(targets)}


def kinds(diff: Any) -> list[str]:
    return [str(change.kind) for change in diff.changes]


def tls_port(number: int, **tls: Any) -> dict[str, Any]:
    return port(number, tls=True, details={"tls": tls})


BASE = report(target(ports=[port(22, service="ssh", product="OpenSSH", version="9.2p1"),
                            tls_port(443, grade="A", protocols=["TLSv1.2", "TLSv1.3"],
                                     certificate=cert())],
                     findings=[finding("ssh.password_auth", "medium", 22)]))


def test_identical_reports_have_no_change() -> None:
    later = copy.deepcopy(BASE)
    later["scan"].update(id="b", started_at="2026-11-02T00:00:00+00:00", duration_s=9.0)
    later["targets"][0]["findings"][0]["evidence"] = "different wording, same finding"
    later["targets"][0]["ports"][0]["banner"] = "another banner"
    later["targets"][0]["ports"][1]["details"]["tls"]["cipher"] = "something volatile"
    diff = diff_reports(Side(BASE), Side(later))
    assert diff.empty and diff.changes == () and diff.notes == ()


def test_port_opened_and_closed() -> None:
    later = copy.deepcopy(BASE)
    later["targets"][0]["ports"][0]["state"] = "closed"
    later["targets"][0]["findings"] = []
    later["targets"][0]["ports"].append(port(8123, product="Home Assistant", version=None))
    diff = diff_reports(Side(BASE), Side(later))
    by_kind = {str(c.kind): c for c in diff.changes}
    assert by_kind["port.opened"].port == 8123 and by_kind["port.opened"].severity == "high"
    assert by_kind["port.closed"].port == 22 and by_kind["port.closed"].after == "closed"
    assert by_kind["finding.resolved"].subject == "ssh.password_auth"
    assert sorted(by_kind) == ["finding.resolved", "port.closed", "port.opened"]


def test_port_gone_from_the_list_is_filtered() -> None:
    later = copy.deepcopy(BASE)
    del later["targets"][0]["ports"][0]
    later["targets"][0]["findings"] = []
    (closed, resolved) = diff_reports(Side(BASE), Side(later)).changes
    assert closed.after == "filtered" and resolved.kind == ChangeKind.FINDING_RESOLVED


def test_service_version_change() -> None:
    later = copy.deepcopy(BASE)
    later["targets"][0]["ports"][0]["version"] = "9.6p1"
    (change,) = diff_reports(Side(BASE), Side(later)).changes
    assert change.kind == ChangeKind.SERVICE_CHANGED and change.port == 22
    assert change.before["version"] == "9.2p1" and change.after["version"] == "9.6p1"
    assert "OpenSSH 9.2p1 -> ssh, OpenSSH 9.6p1" in change.summary


def test_findings_new_and_severity_changes() -> None:
    later = copy.deepcopy(BASE)
    later["targets"][0]["findings"] = [finding("ssh.password_auth", "high", 22),
                                       finding("tls.no_hsts", "low", 443)]
    changes = diff_reports(Side(BASE), Side(later)).changes
    assert [(str(c.kind), c.subject, str(c.severity)) for c in changes] == [
        ("finding.new", "tls.no_hsts", "low"),
        ("finding.severity_changed", "ssh.password_auth", "high"),
    ]
    better = diff_reports(Side(later), Side(BASE)).changes
    assert {(str(c.kind), str(c.severity)) for c in better} == {
        ("finding.resolved", "info"), ("finding.severity_changed", "info")}


def test_tls_grade_protocols_and_certificate() -> None:
    later = copy.deepcopy(BASE)
    tls = later["targets"][0]["ports"][1]["details"]["tls"]
    tls.update(grade="B", protocols=["TLSv1.0", "TLSv1.2", "TLSv1.3"], certificate=cert("bb"))
    changes = {str(c.kind): c for c in diff_reports(Side(BASE), Side(later)).changes}
    assert sorted(changes) == ["tls.certificate_changed", "tls.grade_changed",
                               "tls.protocols_changed"]
    assert changes["tls.grade_changed"].severity == Severity.MEDIUM
    assert changes["tls.protocols_changed"].after == ["TLSv1.0", "TLSv1.2", "TLSv1.3"]
    assert changes["tls.certificate_changed"].before["sha256"] == "aa"


def test_negotiated_version_stands_in_without_the_tls_check() -> None:
    before = report(target(ports=[tls_port(443, negotiated_version="TLSv1.3")]))
    after = report(target(ports=[tls_port(443, negotiated_version="TLSv1.2")]))
    (change,) = diff_reports(Side(before), Side(after)).changes
    assert change.kind == ChangeKind.TLS_PROTOCOLS and "best TLS version" in change.summary


@pytest.mark.parametrize(
    ("before_days", "after_days", "expected"),
    [
        (60, 30, None),  # still far
        (30, 20, 20),  # crossed 21
        (20, 19, None),  # same bucket: already told
        (20, 13, 13),  # crossed 14
        (3, -1, -1),  # expired
    ],
)
def test_expiry_alerts_once_per_threshold(before_days: int, after_days: int,
                                          expected: int | None) -> None:
    not_after = "2026-12-01T00:00:00+00:00"

    def at(days: int) -> str:
        return (dt.datetime.fromisoformat(not_after) - dt.timedelta(days=days)).isoformat()

    before = report(target(ports=[tls_port(443, certificate=cert(not_after=not_after))]),
                    when=at(before_days))
    after = report(target(ports=[tls_port(443, certificate=cert(not_after=not_after))]),
                   when=at(after_days))
    changes = diff_reports(Side(before), Side(after)).changes
    if expected is None:
        assert changes == ()
    else:
        (change,) = changes
        assert change.kind == ChangeKind.TLS_EXPIRY and change.after == expected
        assert change.severity == (Severity.HIGH if expected <= 7 else Severity.MEDIUM)


def test_same_change_on_ipv4_and_ipv6_is_one_change() -> None:
    before = report(target(V4, [port(443)]), target(V6, [port(443)]))
    after = report(target(V4, [port(443), port(8080)]), target(V6, [port(443), port(8080)]))
    (change,) = diff_reports(Side(before), Side(after)).changes
    assert change.addresses == (V4, V6) and change.target == "home.example"


def test_ipv6_only_change_names_only_ipv6() -> None:
    before = report(target(V4, [port(443)]), target(V6, [port(443)]))
    after = report(target(V4, [port(443)]), target(V6, [port(443), port(22, service="ssh")]))
    (change,) = diff_reports(Side(before), Side(after)).changes
    assert change.addresses == (V6,)


def test_incomplete_scan_reports_no_closed_ports_for_missing_targets() -> None:
    before = report(target(V4, [port(443)]), target(V6, [port(443)]))
    after = report(target(V4, [port(443)]), complete=False)
    diff = diff_reports(Side(before), Side(after))
    assert diff.changes == () and "not scanned successfully" in diff.notes[0]
    complete = diff_reports(Side(before), Side(report(target(V4, [port(443)]))))
    assert kinds(complete) == ["target.removed"]


def test_new_address_is_added_with_its_ports() -> None:
    before = report(target(V4, [port(443)]))
    after = report(target(V4, [port(443)]), target(V6, [port(443)]))
    assert kinds(diff_reports(Side(before), Side(after))) == ["target.added", "port.opened"]


def test_ports_not_probed_by_both_scans_are_not_compared() -> None:
    before = report(target(ports=[port(22), port(443)]))
    after = report(target(ports=[port(443), port(8080)]))
    diff = diff_reports(Side(before, probed={22, 443}), Side(after, probed={443, 8080}))
    assert diff.changes == ()
    assert any("different port lists" in note for note in diff.notes)


def test_no_earlier_scan_makes_everything_new() -> None:
    diff = diff_reports(None, Side(BASE))
    assert diff.before is None
    assert kinds(diff) == ["port.opened", "port.opened", "finding.new"]


def test_baseline_turns_new_unexpected_ports_into_port_unexpected() -> None:
    baseline = parse_baseline(b'ports = [443]\n', "expected.toml")
    before = report(target(ports=[port(443), port(22)]))
    after = report(target(ports=[port(443), port(22), port(8080)]))
    diff = diff_reports(Side(before), Side(after), baseline=baseline)
    (change,) = diff.changes
    assert change.kind == ChangeKind.PORT_UNEXPECTED and change.port == 8080
    assert "not in the baseline expected.toml" in change.summary
    assert [(v.port, v.address) for v in diff.still_unexpected] == [(22, V4)]
    assert diff.to_dict()["baseline"] == "expected.toml"


def test_port_unexpected_findings_are_not_compared_as_findings() -> None:
    before = report(target(ports=[port(443)]))
    after = report(target(ports=[port(443), port(8080)],
                          findings=[finding("port.unexpected", "high", 8080)]))
    assert kinds(diff_reports(Side(before), Side(after))) == ["port.opened"]


def test_only_target_restricts_the_diff() -> None:
    before = report(target(V4, [port(443)]), target("192.0.2.9", [port(22)], name="other"))
    after = report(target(V4, [port(443), port(80)]), target("192.0.2.9", [], name="other"))
    diff = diff_reports(Side(before), Side(after), only_target="home.example")
    assert kinds(diff) == ["port.opened"]


def test_remote_text_in_summaries_is_sanitised() -> None:
    before = report(target(ports=[port(80)]))
    after = report(target(ports=[port(80, product="evil\x1b]0;pwned\x07", version="1")]))
    (change,) = diff_reports(Side(before), Side(after)).changes
    assert "\x1b" not in change.summary and "\x07" not in change.summary


def test_to_dict_is_json_and_renders(capsys: pytest.CaptureFixture[str]) -> None:
    later = copy.deepcopy(BASE)
    later["targets"][0]["ports"].append(port(8080))
    diff = diff_reports(Side(BASE, seq=1), Side(later, seq=2))
    data = json.loads(json.dumps(diff.to_dict()))
    assert data["schema"] == "exposure-diff/1" and data["changes"][0]["kind"] == "port.opened"
    render_diff(diff, Console(width=200, no_color=True))
    out = capsys.readouterr().out
    assert "scan #1" in out and "port 8080/tcp opened" in out
    assert ReportDiff.from_dict(data) == diff  # the one model, through JSON and back
    assert diff.count("added") == 1 and diff.changes[0].kind.direction == "added"


# --- properties ------------------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                 max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(value=_json)
def test_tls_readers_never_raise(value: Any) -> None:
    details = {"tls": value}
    tls_facts.grade(details)
    tls_facts.protocols(details)
    found = tls_facts.certificate(details)
    if found is not None:
        tls_facts.certificate_identity(found)
        tls_facts.certificate_summary(found)
        tls_facts.days_left(found, "2026-01-01T00:00:00+00:00")
    tls_facts.grade(value)


_ports = st.lists(
    st.builds(lambda n, s, v, g: tls_port(n, grade=g) if g else port(n, version=v, state=s),
              st.integers(1, 65535), st.sampled_from(["open", "closed"]),
              st.none() | st.text(max_size=8), st.none() | st.sampled_from(tls_facts.GRADE_ORDER)),
    max_size=6, unique_by=lambda p: p["port"],
)
_findings = st.lists(
    st.builds(finding, st.sampled_from(["a.x", "b.y", "c.z"]),
              st.sampled_from([str(s) for s in Severity]), st.none() | st.integers(1, 5)),
    max_size=5,
)


@settings(max_examples=100, deadline=None)
@given(ports=_ports, findings=_findings, other_ports=_ports)
def test_a_report_diffed_with_itself_is_empty_and_any_diff_serialises(
    ports: list, findings: list, other_ports: list
) -> None:
    first = report(target(ports=ports, findings=findings))
    assert diff_reports(Side(first), Side(copy.deepcopy(first))).empty
    second = report(target(ports=other_ports))
    diff = diff_reports(Side(first), Side(second))
    json.dumps(diff.to_dict())
    opened = {c.port for c in diff.changes if c.kind == ChangeKind.PORT_OPENED}
    assert opened == ({p["port"] for p in other_ports if p["state"] == "open"}
                      - {p["port"] for p in ports if p["state"] == "open"})


def test_a_failed_check_does_not_resolve_its_findings() -> None:
    before = report(target(ports=[port(8123)], findings=[finding("ha.onboarding_open",
                                                                  "critical", 8123)]))
    after = report(target(ports=[port(8123)]))
    after["scan"]["errors"] = [f"{V4}: ha check on port 8123 failed: AttributeError('x')"]
    diff = diff_reports(Side(before), Side(after))
    assert diff.changes == ()
    assert "is not reported as resolved" in diff.notes[0]
    after["scan"]["errors"] = [f"{V4}: ha check on port 8124 failed: AttributeError('x')"]
    assert kinds(diff_reports(Side(before), Side(after))) == ["finding.resolved"]


def test_a_failed_check_is_read_from_its_fields_in_a_report_2() -> None:
    before = report(target(ports=[port(8123)], findings=[finding("ha.onboarding_open",
                                                                  "critical", 8123)]))
    after = report(target(ports=[port(8123)]))
    after["schema"] = "exposure-report/2"
    failed = ScanError("check", "AttributeError('x')", V4, 8123, check="ha")
    after["scan"]["errors"] = [failed.to_dict()]
    assert diff_reports(Side(before), Side(after)).changes == ()
    after["scan"]["errors"] = [dataclasses.replace(failed, address="198.51.100.99").to_dict()]
    assert kinds(diff_reports(Side(before), Side(after))) == ["finding.resolved"]
