"""The habits of nmap and nuclei, through the real CLI against servers on loopback:
-h, -V, -p, -iL / -, host:port, -v, --no-color / NO_COLOR, several -o, -oA, --exclude-ports,
--severity, and `diff` exiting 1 when something changed."""

from __future__ import annotations

import gc
import io
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from scanner import __version__
from scanner.cli import main
from scanner.cli.outputs import OutputFormat, plan_outputs
from scanner.cli.scan import render_outputs
from scanner.core.findings import Severity
from scanner.core.summary import summarize
from scanner.report.schema import validate_report
from scanner.store import Store
from tests.unit.test_report_samples import sample_report
from tests.unit.test_report_sarif import assert_valid_sarif

REPO = Path(__file__).resolve().parents[2]
# An SGR sequence that sets a colour (foreground/background, 16, 256 or true colour).
COLOUR = re.compile(r"\x1b\[(?:[0-9]+;)*(?:3[0-9]|4[0-9]|9[0-7]|10[0-7])(?:;[0-9]+)*m")


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<html><head><title>Loopback</title></head><body>hi</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass


@pytest.fixture(scope="module")
def web() -> Iterator[int]:
    server = _QuietServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _scan(*args: str) -> list[str]:
    return ["scan", *args, "--engine", "connect", "--timeout", "0.5", "--fail-on", "never",
            "--no-store"]


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["-h"], ["--help"], ["scan", "-h"]):
        assert main(argv) == 0
        assert capsys.readouterr().out.startswith("Usage: exposure")
    for argv in (["--version"], ["-V"], ["version"]):
        assert main(argv) == 0
        assert capsys.readouterr().out == f"exposure {__version__}\n"
    assert main(["scan", "-h"]) == 0
    usage = capsys.readouterr().out
    for option in ("-p, --ports", "-iL, --input-list", "-oA, --output-all", "-4", "-6",
                   "--exclude-ports", "--severity", "--shodan", "-v, --verbose", "--no-color"):
        assert option in usage


def test_host_port_adds_the_port_and_p_sets_the_rest(
    web: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_scan(f"127.0.0.1:{web}", "-p", "1", "-f", "json")) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["scan"]["ports_requested"] == 2
    (target,) = report["targets"]
    assert target["input"] == "127.0.0.1"
    assert {port["port"]: port["state"] for port in target["ports"]}[web] == "open"


def test_exclude_ports(web: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_scan("127.0.0.1", "-p", f"1-3,{web}", "--exclude-ports", "2-3", "-f",
                      "json")) == 0
    assert json.loads(capsys.readouterr().out)["scan"]["ports_requested"] == 2


def test_targets_from_a_list_and_from_stdin(
    web: int, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    targets = tmp_path / "targets.txt"
    targets.write_text(f"# my home\n127.0.0.1:{web}   # the web server\n\n127.0.0.2\n")
    assert main(_scan("-iL", str(targets), "-p", "1", "-f", "json", "--no-identify")) == 0
    report = json.loads(capsys.readouterr().out)
    assert [t["address"] for t in report["targets"]] == ["127.0.0.1", "127.0.0.2"]
    assert report["scan"]["ports_requested"] == 2
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"127.0.0.1:{web}\n"))
    assert main(_scan("-", "-p", "1", "-f", "json", "--no-identify")) == 0
    assert json.loads(capsys.readouterr().out)["targets"][0]["address"] == "127.0.0.1"
    monkeypatch.setattr(sys, "stdin", io.StringIO("127.0.0.1\n"))
    assert main(_scan("-iL", "-", "-p", str(web), "-f", "json", "--no-identify")) == 0
    assert json.loads(capsys.readouterr().out)["targets"][0]["address"] == "127.0.0.1"


def test_several_outputs_in_one_run(
    web: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    json_path, html_path = tmp_path / "r.json", tmp_path / "r.html"
    assert main(_scan("127.0.0.1", "-p", str(web), "-o", str(json_path), "-o",
                      str(html_path))) == 0
    assert capsys.readouterr().out == ""
    validate_report(json.loads(json_path.read_text()))
    assert html_path.read_text().startswith("<!DOCTYPE html>")
    base = tmp_path / "all" / "home"
    base.parent.mkdir()
    assert main(_scan("127.0.0.1", "-p", str(web), "-oA", str(base), "-o", "-")) == 0
    table = capsys.readouterr().out
    assert table.startswith("exposure ") and "Open ports of 127.0.0.1" in table
    files = sorted(path.name for path in base.parent.iterdir())
    assert files == ["home.html", "home.json", "home.md", "home.sarif", "home.txt"]  # no .part
    assert (base.parent / "home.txt").read_text().splitlines()[0] == table.splitlines()[0]
    assert json.loads((base.parent / "home.json").read_text())["summary"]["open_ports"] == 1
    assert_valid_sarif(json.loads((base.parent / "home.sarif").read_text()))
    assert (base.parent / "home.md").read_text().startswith("# Exposure report: 127.0.0.1")


def test_outputs_replace_a_file_atomically_and_keep_its_mode(tmp_path: Path) -> None:
    existing = tmp_path / "r.json"
    existing.write_text("old")
    existing.chmod(0o640)
    link = tmp_path / "latest.json"
    link.symlink_to(existing)
    plan = plan_outputs([str(link)], None, None)
    plan.prepare()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")]  # reserved early
    render_outputs(sample_report(), plan)
    assert link.is_symlink() and json.loads(existing.read_text())["schema"]
    assert existing.stat().st_mode & 0o777 == 0o640
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
    failed = plan_outputs([str(tmp_path / "never.json")], None, None)
    failed.prepare()
    failed.discard()  # the scan failed: nothing is left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.json", "r.json"]


def test_a_device_is_written_in_place(tmp_path: Path) -> None:
    plan = plan_outputs(["/dev/null"], None, OutputFormat.JSON)
    plan.prepare()
    render_outputs(sample_report(), plan)
    assert Path("/dev/null").is_char_device()


def test_severity_filters_what_is_shown_and_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    render_outputs(sample_report(), plan_outputs(None, None, OutputFormat.JSON),
                   shown=Severity.HIGH)
    report = json.loads(capsys.readouterr().out)
    severities = {f["severity"] for t in report["targets"] for f in t["findings"]}
    assert severities == {"critical", "high"}
    assert report["summary"]["hidden"] == 5 and report["summary"]["hidden_below"] == "high"
    assert "5 findings below high not shown (--severity)." in report["summary"]["verdict"]


def test_verbose_says_what_each_stage_does(web: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_scan("127.0.0.1", "-p", str(web))) == 0
    assert "discovery" not in capsys.readouterr().err
    assert main(_scan("127.0.0.1", "-p", str(web), "-v")) == 0
    err = capsys.readouterr().err
    for line in ("exposure: all addresses: discovery started",
                 "exposure: 127.0.0.1: identification started",
                 "exposure: 127.0.0.1: identification: 1 of 1 open ports",
                 "exposure: 127.0.0.1: checks: 1 of 1 open ports"):
        assert line in err, err
    assert main(["-v", *_scan("127.0.0.1", "-p", str(web))]) == 0  # before the command too
    assert "discovery started" in capsys.readouterr().err


def test_a_note_when_nmap_is_missing(web: int, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no nmap on this PATH
    assert main(_scan("127.0.0.1", "-p", str(web))) == 0
    err = capsys.readouterr().err
    assert err.startswith("exposure: note: nmap is not installed")


def test_no_color_and_NO_COLOR(web: int, capsys: pytest.CaptureFixture[str],
                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich: colour even on a pipe
    monkeypatch.setenv("COLORTERM", "truecolor")
    assert main(_scan("127.0.0.1", "-p", str(web), "-p", f"1,{web}")) == 0
    assert COLOUR.search(capsys.readouterr().out)  # the closed port is dim, notes coloured...
    assert main(_scan("127.0.0.1", "-p", f"1,{web}", "--no-color")) == 0
    assert not COLOUR.search(capsys.readouterr().out)  # bold may stay: it is not a colour
    monkeypatch.setenv("NO_COLOR", "1")
    assert main(_scan("127.0.0.1", "-p", f"1,{web}")) == 0
    assert not COLOUR.search(capsys.readouterr().out)


def test_diff_exits_1_when_something_changed(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "h.db"
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]
    scan = ["scan", "127.0.0.1", "-p", str(port), "--engine", "connect", "--no-identify",
            "--timeout", "0.3", "--db", str(db), "-f", "json"]
    assert main(scan) == 0 and main(scan) == 0
    assert main(["diff", "--db", str(db)]) == 0  # two identical scans
    server.close()
    assert main(scan) == 0
    capsys.readouterr()
    assert main(["diff", "--db", str(db)]) == 1
    assert f"port {port}/tcp" in capsys.readouterr().out


def test_history_counts_open_ports_like_the_reports(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """The store keeps per-address counts (5 on IPv4 + 1 on IPv6); a name's addresses are one
    host, so every output says 5."""
    report = sample_report()
    with Store.open(tmp_path / "h.db") as store:
        store.save_report(report.to_dict(), ["home.example"])
        assert store.list_scans()[0].open_ports == 6
    assert main(["history", "--db", str(tmp_path / "h.db"), "-f", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["open_ports"] == summarize(report).open_ports == 5
    assert main(["history", "--db", str(tmp_path / "h.db")]) == 0
    assert " 5 " in capsys.readouterr().out.splitlines()[1]


def test_show_writes_several_outputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with Store.open(tmp_path / "h.db") as store:
        store.save_report(sample_report().to_dict(), ["home.example"])
    out = tmp_path / "r.md"
    assert main(["show", "1", "--db", str(tmp_path / "h.db"), "-o", str(out), "-o", "-",
                 "--shodan"]) == 0
    assert "What internet crawlers" in capsys.readouterr().out
    assert out.read_text().startswith("# Exposure report: home.example")


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root and setpriv to run the CLI as nobody")
def test_without_raw_sockets_auto_says_it_uses_connect(web: int) -> None:
    argv = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable,
            "-m", "scanner", "scan", "127.0.0.1", "-p", str(web), "--no-store", "-f", "json"]
    run = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "HOME": "/nonexistent"}, check=False)
    assert run.returncode == 0, run.stderr
    assert "exposure: note: no raw-socket privilege (root or CAP_NET_RAW), so the connect " \
           "engine runs" in run.stderr
    assert json.loads(run.stdout)["scan"]["engine"] == "connect"
    assert "Warning" not in run.stderr and "Traceback" not in run.stderr


def test_no_python_warning_reaches_the_screen(web: int, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """What a library or an interrupted connection leaves (a warning, a coroutine never
    awaited, an asyncio error record) stays off stderr; --debug shows it."""
    import scanner.api as scan_module  # the CLI imports the library when a scan runs

    real_scan = scan_module.scan

    def noisy_scan(*args: object, **kwargs: object) -> object:
        warnings.warn("a library complains about a server's data", RuntimeWarning,
                      stacklevel=1)

        async def forgotten() -> None:
            return None

        forgotten()  # type: ignore[unused-coroutine]  # "never awaited" when collected
        gc.collect()
        logging.getLogger("asyncio").error("Task exception was never retrieved")
        return real_scan(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(scan_module, "scan", noisy_scan)
    assert main(_scan("127.0.0.1", "-p", str(web))) == 0
    err = capsys.readouterr().err
    assert err == "", err
    assert main(_scan("127.0.0.1", "-p", str(web), "--debug")) == 0
    err = capsys.readouterr().err
    assert "Task exception was never retrieved" in err
