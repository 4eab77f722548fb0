import json

import pytest

from scanner.cli import main


def test_version(capsys: pytest.CaptureFixture) -> None:
    assert main(["version"]) == 0
    assert capsys.readouterr().out.startswith("exposure ")


def test_json_report_contract_on_loopback(listener: int, capsys: pytest.CaptureFixture) -> None:
    code = main(["scan", "127.0.0.1", "--engine", "connect", "--ports", str(listener),
                 "--format", "json", "--timeout", "0.5", "--no-identify"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["schema"] == "exposure-report/2"
    assert report["tool"]["name"] == "exposure"
    scan = report["scan"]
    for key in ("id", "started_at", "finished_at", "duration_s", "engine", "ports_requested",
                "complete", "errors"):
        assert key in scan
    assert scan["engine"] == "connect" and scan["ports_requested"] == 1 and scan["complete"]
    (target,) = report["targets"]
    assert target["input"] == "127.0.0.1" and target["address"] == "127.0.0.1"
    assert target["ports"][0]["port"] == listener and target["ports"][0]["state"] == "open"
    assert target["filtered_count"] == 0 and target["findings"] == []


def test_table_goes_to_stdout_only(listener: int, capsys: pytest.CaptureFixture) -> None:
    argv = ["scan", "127.0.0.1", "--engine", "connect", "--ports", str(listener), "--no-identify"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert f"{listener}/tcp" in captured.out and "open" in captured.out
    assert "\x1b[" not in captured.out  # not a terminal: no colour codes
    assert captured.err == ""
