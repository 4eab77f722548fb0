"""The store's API: scans in, scans out, references, default path, and the report codec."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.core.findings import Finding, Severity
from scanner.core.report import Note, PortReport, ScanError, ScanReport, TargetReport
from scanner.diff import Side, diff_reports
from scanner.store import NoDatabase, ScanNotFound, Store, default_db_path, report_from_dict

REPO = Path(__file__).resolve().parents[2]


def report(report_id: str, *ports: int, complete: bool = True) -> dict:
    target = TargetReport(input="home.example", address="198.51.100.7")
    target.ports = [PortReport(port=p, protocol="tcp", state="open") for p in ports]
    target.findings = [Finding("ssh.password_auth", Severity.MEDIUM, "t", "e", "r", port=22)]
    scan = ScanReport(report_id, "2026-01-01T00:00:00+00:00", "2026-01-01T00:00:01+00:00", 1.0,
                      "connect", 3, complete=complete, targets=[target])
    return scan.to_dict()


def test_running_then_complete(tmp_path: Path) -> None:
    with Store.open(tmp_path / "h.db") as store:
        seq = store.begin_scan(["home.example"], "22,443")
        (row,) = store.list_scans()
        assert row.status == "running" and row.report_id is None and not row.has_report
        store.finish_scan(seq, report("0123456789ab", 22, 443))
        (row,) = store.list_scans()
        assert row.status == "complete" and row.report_id == "0123456789ab"
        assert row.worst_severity == "medium" and row.open_ports == 2 and row.ports == "22,443"


def test_incomplete_report_is_stored_as_incomplete(tmp_path: Path) -> None:
    with Store.open(tmp_path / "h.db") as store:
        store.save_report(report("0123456789ab", 22, complete=False), ["home.example"])
        assert store.list_scans()[0].status == "incomplete"
        assert store.latest_complete(inputs=["home.example"]) is None


def test_references_by_number_id_and_prefix(tmp_path: Path) -> None:
    with Store.open(tmp_path / "h.db") as store:
        store.save_report(report("abcd00000001"), ["a"])
        store.save_report(report("abcd00000002"), ["a"])
        assert store.get_scan("1").report_id == "abcd00000001"
        assert store.get_scan("#2").report_id == "abcd00000002"
        assert store.get_scan("abcd00000002").seq == 2
        with pytest.raises(ScanNotFound, match="several"):
            store.get_scan("abcd")
        with pytest.raises(ScanNotFound, match="no stored scan"):
            store.get_scan("ffff")
        with pytest.raises(ScanNotFound):
            store.get_scan("a%")  # LIKE wildcards are not wildcards here


def test_history_by_target_input_or_address(tmp_path: Path) -> None:
    with Store.open(tmp_path / "h.db") as store:
        store.save_report(report("000000000001", 22), ["home.example"])
        store.save_report({"scan": {"id": "000000000002"}, "targets": []}, ["other.example"])
        assert [r.seq for r in store.list_scans("home.example")] == [1]
        assert [r.seq for r in store.list_scans("198.51.100.7")] == [1]
        assert [r.seq for r in store.list_scans("other.example")] == [2]  # by input, no target
        assert [r.seq for r in store.list_scans()] == [2, 1]


def test_inputs_are_a_set(tmp_path: Path) -> None:
    with Store.open(tmp_path / "h.db") as store:
        store.save_report(report("000000000001"), ["b", "a", "b"])
        assert store.latest_complete(inputs=["a", "b"]) is not None
        assert store.list_scans()[0].inputs == ("a", "b")


def test_read_commands_do_not_create_a_database(tmp_path: Path) -> None:
    with pytest.raises(NoDatabase):
        Store.open(tmp_path / "none.db", create=False)
    assert not (tmp_path / "none.db").exists()


def test_new_database_is_private(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "dir" / "h.db"
    Store.open(path).close()
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700


def test_running_row_of_a_dead_process_becomes_interrupted(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    code = ("import os, sys; from pathlib import Path; from scanner.store import Store; "
            "s = Store.open(Path(sys.argv[1])); s.begin_scan(['x']); os._exit(0)")
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, cwd=REPO)
    with Store.open(path) as store:
        (row,) = store.list_scans()
        assert row.status == "interrupted" and "ended before" in (row.error or "")


def test_a_live_process_keeps_its_running_row(tmp_path: Path) -> None:
    with Store.open(tmp_path / "h.db") as store:
        store.begin_scan(["x"])
        with Store.open(tmp_path / "h.db") as other:  # this process is alive: not interrupted
            assert other.list_scans()[0].status == "running"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"EXPOSURE_DB": "/data/x.db", "XDG_DATA_HOME": "/xdg"}, "/data/x.db"),
        ({"XDG_DATA_HOME": "/xdg"}, "/xdg/exposure/exposure.db"),
        ({"XDG_DATA_HOME": "relative/ignored"}, "/home/u/.local/share/exposure/exposure.db"),
        ({}, "/home/u/.local/share/exposure/exposure.db"),
    ],
)
def test_default_path(env: dict[str, str], expected: str) -> None:
    assert default_db_path(env, home=Path("/home/u")) == Path(expected)


def test_codec_round_trip_of_a_full_report() -> None:
    data = report("0123456789ab", 22, 443)
    data["targets"][0]["ports"][0]["details"] = {"tls": {"grade": "A", "caps": [{"x": 1}]}}
    data["targets"][0]["notes"] = [{"port": 22, "text": "a note"}]
    data["scan"]["errors"] = [{"stage": "check", "message": "TimeoutError()",
                               "address": "198.51.100.7", "port": 22, "check": "ssh",
                               "vantage": None}]
    assert report_from_dict(data).to_dict() == data


def test_a_report_stored_as_exposure_report_1_loads_typed() -> None:
    """/1 wrote notes and errors as sentences: the one legacy loader reads their fields."""
    data = report("0123456789ab", 22)
    data["schema"] = "exposure-report/1"
    data["targets"][0]["notes"] = ["port 22: PermitRootLogin cannot be seen", "a tarpit"]
    data["scan"]["errors"] = ["198.51.100.7: ssh check on port 22 failed: TimeoutError()",
                              "198.51.100.7: port 443 failed: OSError()",
                              "discovery failed: no route", "interrupted by SIGTERM"]
    loaded = report_from_dict(data)
    assert loaded.targets[0].notes == [Note(22, "PermitRootLogin cannot be seen"),
                                       Note(None, "a tarpit")]
    assert loaded.errors == [
        ScanError("check", "TimeoutError()", "198.51.100.7", 22, check="ssh"),
        ScanError("port", "OSError()", "198.51.100.7", 443),
        ScanError("discovery", "no route"),
        ScanError("scan", "interrupted by SIGTERM")]
    assert [error.line() for error in loaded.errors] == data["scan"]["errors"]
    assert loaded.to_dict()["schema"] == "exposure-report/2"


_text = st.text(max_size=20)
_finding = st.builds(
    lambda i, s, p: {"id": i, "severity": s, "port": p, "protocol": "tcp", "title": "t",
                     "evidence": "e", "remediation": "r", "references": ["u"]},
    _text, st.sampled_from([str(s) for s in Severity]), st.none() | st.integers(1, 65535),
)
_port = st.builds(
    lambda n, s, v: {"port": n, "protocol": "tcp", "state": s, "service": v, "product": None,
                     "version": None, "tls": False, "banner": None, "details": {"k": v}},
    st.integers(1, 65535), st.sampled_from(["open", "closed"]), st.none() | _text,
)


@settings(max_examples=50, deadline=None)
@given(ports=st.lists(_port, max_size=5), findings=st.lists(_finding, max_size=5))
def test_codec_round_trip_property(ports: list, findings: list) -> None:
    data = report("0123456789ab")
    data["targets"][0]["ports"] = ports
    data["targets"][0]["findings"] = findings
    assert report_from_dict(json.loads(json.dumps(data))).to_dict() == data


def test_schema_version_row_per_migration_is_visible_to_users(tmp_path: Path) -> None:
    with Store.open(tmp_path / "h.db") as store:
        assert store.integrity_ok()
    assert os.path.getsize(tmp_path / "h.db") > 0


def test_cli_scan_with_refused_input_leaves_no_row(tmp_path: Path) -> None:
    from scanner.cli import main

    db = tmp_path / "h.db"
    assert main(["scan", "10.0.0.0/8", "--db", str(db)]) == 2
    with Store.open(db) as store:
        assert store.list_scans() == []


def test_cli_scan_saves_and_show_renders_every_format(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    from scanner.cli import main

    db = tmp_path / "h.db"
    for _ in range(2):
        assert main(["scan", "127.0.0.1", "--ports", "1", "--engine", "connect", "--no-identify",
                     "--timeout", "0.2", "--db", str(db), "--format", "json"]) == 0
    saved = json.loads(capsys.readouterr().out.split("\n}\n")[1] + "\n}")
    for output_format in ("table", "json", "markdown", "html", "sarif"):
        assert main(["show", "2", "--db", str(db), "--format", output_format]) == 0
        shown = capsys.readouterr().out
        assert shown.strip()
        if output_format == "json":
            assert json.loads(shown)["scan"] == saved["scan"]
    assert main(["history", "--db", str(db)]) == 0
    assert saved["scan"]["id"] in capsys.readouterr().out


def test_a_history_row_of_exposure_report_1_loads_and_diffs(tmp_path: Path) -> None:
    """A row an earlier version wrote (/1: sentences) against one of today (/2: objects)."""
    old = report("0123456789ab", 22, 8123)
    old["schema"] = "exposure-report/1"
    old["targets"][0]["findings"].append({
        "id": "ha.onboarding_open", "severity": "critical", "port": 8123, "protocol": "tcp",
        "title": "t", "evidence": "e", "remediation": "r", "references": []})
    old["targets"][0]["notes"] = ["port 22: PermitRootLogin cannot be seen"]
    new = report("0123456789ac", 22, 8123)
    new["scan"]["errors"] = [ScanError("check", "TimeoutError()", "198.51.100.7", 8123,
                                       check="ha").to_dict()]
    with Store.open(tmp_path / "h.db") as store:
        for data in (old, new):
            store.finish_scan(store.begin_scan(["home.example"], "22,8123"), data)
        first, second = sorted(store.list_scans(), key=lambda row: row.seq)
        loaded = store.load_report(first)
        assert loaded["schema"] == "exposure-report/2"
        assert loaded["targets"][0]["notes"] == [
            {"port": 22, "text": "PermitRootLogin cannot be seen"}]
        assert report_from_dict(loaded).targets[0].notes == [
            Note(22, "PermitRootLogin cannot be seen")]
        diff = diff_reports(Side(loaded, seq=first.seq),
                            Side(store.load_report(second), seq=second.seq))
    # The ha check failed on 8123 in the later scan: its finding is not called resolved.
    assert diff.changes == () and "is not reported as resolved" in diff.notes[0]
