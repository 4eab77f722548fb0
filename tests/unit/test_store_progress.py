"""Nothing found is lost: results stored per address as they complete, SIGTERM/SIGINT saving
how far the scan got, `show` giving the partial report, `scan --resume` finishing the scan.

Real scans of loopback addresses: an HTTP server on 127.0.0.1 answers at once, a listener on
127.0.0.2 (same port) accepts and never speaks, so that address waits out its identification
budget: the moment to interrupt. tests/lab/test_interrupt.py does the same in the lab.
"""

from __future__ import annotations

import contextlib
import http.server
import io
import json
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from scanner.api import ScanOptions, scan
from scanner.cli import main
from scanner.core.report import ScanReport, TargetReport
from scanner.discovery import DiscoveryOptions
from scanner.store import Store
from scanner.targets import Target

REPO = Path(__file__).resolve().parents[2]
EXPOSURE = [sys.executable, "-m", "scanner"]
FAST, SLOW = "127.0.0.1", "127.0.0.2"


def in_process(*args: str) -> subprocess.CompletedProcess[str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def history(db: Path) -> list[dict]:
    run = in_process("history", "--db", str(db), "--format", "json")
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


class _QuietHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<html><title>progress test</title></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def web_server(address: str, port: int) -> Iterator[None]:
    server = http.server.ThreadingHTTPServer((address, port), _QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def silent_listener(address: str, port: int) -> Iterator[None]:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((address, port))
    server.listen(64)
    try:
        yield
    finally:
        server.close()


def shared_free_port() -> int:
    """A port free on both loopback addresses."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((FAST, 0))
            port = probe.getsockname()[1]
            with socket.socket() as other:
                try:
                    other.bind((SLOW, port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no port free on both loopback addresses")


@pytest.fixture
def port() -> int:
    return shared_free_port()


def scan_argv(db: Path, port: int) -> list[str]:
    return [*EXPOSURE, "scan", FAST, SLOW, "--ports", str(port), "--engine", "connect",
            "--timeout", "0.5", "--db", str(db), "--format", "json", "--fail-on", "never"]


def stages(db: Path) -> dict[str, str]:
    if not db.exists():
        return {}
    try:
        with sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=5) as connection:
            return dict(connection.execute("SELECT address, stage FROM scan_progress"))
    except sqlite3.Error:
        return {}


def wait_for_stages(db: Path, wanted: dict[str, str], process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        if stages(db) == wanted:
            return
        time.sleep(0.05)
    raise AssertionError(f"the scan never stored {wanted} (stored: {stages(db)})")


def interrupt_mid_scan(db: Path, port: int, signum: int) -> tuple[int, str, float]:
    """Scan FAST and SLOW; once FAST is done and SLOW has its port states, send `signum`.

    Returns (exit code, stderr, seconds from the signal to the exit)."""
    process = subprocess.Popen(scan_argv(db, port), cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        wait_for_stages(db, {FAST: "done", SLOW: "ports"}, process)
        sent = time.monotonic()
        process.send_signal(signum)
        out, err = process.communicate(timeout=20)
        took = time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert out == ""  # the scan did not finish: no report on stdout
    return process.returncode, err, took


# --- SIGTERM and SIGINT of a real scan --------------------------------------------------------


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_mid_scan_saves_how_far_it_got(
    tmp_path: Path, port: int, signum: int, code: int
) -> None:
    db = tmp_path / "h.db"
    name = signal.Signals(signum).name
    with web_server(FAST, port), silent_listener(SLOW, port):
        returncode, stderr, took = interrupt_mid_scan(db, port, signum)
    assert returncode == code
    assert took < 5  # it does not wait for the slow address's probes to end
    (line,) = stderr.strip().splitlines()
    assert line == (f"exposure: interrupted by {name}: scan #1 kept 1 of 2 addresses; port "
                    f"states only for {SLOW}; `exposure scan --resume 1` scans the rest")
    (row,) = history(db)
    assert row["status"] == "interrupted" and row["error"] == f"interrupted by {name}"
    assert row["progress"]["summary"] == (
        f"interrupted after 1 of 2 addresses; port states only for {SLOW}")
    table = in_process("history", "--db", str(db))
    assert "interrupted 1/2" in table.stdout
    assert (f"#1 interrupted after 1 of 2 addresses; port states only for {SLOW}; "
            "`exposure scan --resume 1` scans the rest") in table.stdout


def test_show_gives_the_partial_report(tmp_path: Path, port: int) -> None:
    db = tmp_path / "h.db"
    with web_server(FAST, port), silent_listener(SLOW, port):
        interrupt_mid_scan(db, port, signal.SIGTERM)
    shown = in_process("show", "1", "--db", str(db), "--format", "json")
    assert shown.returncode == 0
    assert shown.stderr.strip() == (
        f"exposure: scan #1 is unfinished (interrupted after 1 of 2 addresses; port states "
        f"only for {SLOW}): partial report; `exposure scan --resume 1` scans the rest")
    report = json.loads(shown.stdout)
    assert report["scan"]["complete"] is False
    assert [error["message"] for error in report["scan"]["errors"][:2]] == [
        f"interrupted after 1 of 2 addresses; port states only for {SLOW}",
        "interrupted by SIGTERM"]
    fast, slow = report["targets"]
    assert fast["address"] == FAST and slow["address"] == SLOW
    (web,) = fast["ports"]
    assert web["state"] == "open" and web["service"] == "http"  # identified before the signal
    assert [(p["port"], p["state"], p["service"]) for p in slow["ports"]] == [
        (port, "open", None)]  # port states only
    terminal = in_process("show", "1", "--db", str(db))
    assert "The scan is incomplete" in terminal.stdout
    assert f"interrupted after 1 of 2 addresses; port states only for {SLOW}" in terminal.stdout


def test_resume_scans_only_what_was_left_and_completes_the_row(tmp_path: Path, port: int) -> None:
    db = tmp_path / "h.db"
    with web_server(FAST, port), silent_listener(SLOW, port):
        interrupt_mid_scan(db, port, signal.SIGTERM)
    (interrupted,) = history(db)
    # Now FAST has nothing listening and SLOW serves HTTP: a rescan of FAST would find its
    # port closed, so the open port in the final report proves it was kept, not rescanned.
    with web_server(SLOW, port):
        run = subprocess.run([*EXPOSURE, "scan", "--resume", "1", "--db", str(db),
                              "--format", "json", "--fail-on", "never"],
                             cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["scan"]["id"] == interrupted["id"]
    assert report["scan"]["started_at"] == interrupted["started_at"]
    assert report["scan"]["complete"] is True and report["scan"]["errors"] == []
    fast, slow = report["targets"]
    assert (fast["address"], fast["ports"][0]["state"]) == (FAST, "open")  # the first run's
    assert (slow["address"], slow["ports"][0]["service"]) == (SLOW, "http")  # this run's
    (row,) = history(db)
    assert row["status"] == "complete" and row["id"] == interrupted["id"]
    assert row["progress"] is None and row["open_ports"] == 2
    assert stages(db) == {}  # the partial rows are gone: the report holds everything
    shown = in_process("show", "1", "--db", str(db), "--format", "json")
    assert shown.stderr == "" and json.loads(shown.stdout) == report


def test_resume_refuses_what_it_cannot_do(tmp_path: Path, port: int) -> None:
    db = tmp_path / "h.db"
    with web_server(FAST, port), silent_listener(SLOW, port):
        interrupt_mid_scan(db, port, signal.SIGTERM)
    refusals = {
        ("--resume", "1", FAST): "takes no targets",
        ("--resume", "1", "--rate", "5"): "leave out --rate",
        ("--resume", "1", "--no-identify"): "leave out --identify/--no-identify",
        ("--resume", "1", "--no-store"): "exclude each other",
    }
    for args, message in refusals.items():
        run = in_process("scan", *args, "--db", str(db))
        assert run.returncode == 2 and message in run.stderr, (args, run.stderr)
    with Store.open(db) as store:  # one complete scan, and one recorded by an older exposure
        store.save_report({"scan": {"id": "00000000000c"}, "targets": []}, ["x"])
        seq = store.begin_scan(["y"])
        store.end_scan_without_report(seq, "interrupted", "killed")
    run = in_process("scan", "--resume", "2", "--db", str(db))
    assert run.returncode == 2 and "scan #2 is complete: nothing to resume" in run.stderr
    run = in_process("scan", "--resume", "3", "--db", str(db))
    assert run.returncode == 2 and "was not recorded with its options" in run.stderr
    run = in_process("scan", "--resume", "1", "--db", str(tmp_path / "none.db"))
    assert run.returncode == 2 and "does not exist yet" in run.stderr
    assert history(db)[-1]["status"] == "interrupted"  # refusals changed nothing


# --- the write in progress is finished before the exit ----------------------------------------

SIGNAL_DURING_WRITE = textwrap.dedent("""
    import os, signal, sys, time
    from pathlib import Path
    from scanner.cli.signals import StopOnSignals
    from scanner.store import Store

    store = Store.open(Path(sys.argv[1]))
    seq = store.begin_scan(["home.example"])

    def on_stop(name):
        store.end_scan_without_report(seq, "interrupted", f"interrupted by {name}")
        return f"interrupted by {name}"

    with StopOnSignals(on_stop) as guard:
        with guard.deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.3)  # the handler has run by now: the signal waits for this block
            store.save_progress(seq, 0, {"address": "192.0.2.1", "ports": []}, "done")
            print("write finished", flush=True)
        print("not reached", flush=True)
""")


def test_a_signal_during_a_write_waits_for_it(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    run = subprocess.run([sys.executable, "-c", SIGNAL_DURING_WRITE, str(db)], cwd=REPO,
                         capture_output=True, text=True, timeout=30, check=False)
    assert run.returncode == 143
    assert run.stdout == "write finished\n"
    assert run.stderr == "exposure: interrupted by SIGTERM\n"
    with Store.open(db) as store:
        (row,) = store.list_scans()
        assert row.status == "interrupted" and row.addresses_done == 1


# --- the library hook -------------------------------------------------------------------------


@dataclass
class Recorded:
    calls: list[tuple[str, str]] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    done: list[TargetReport] = field(default_factory=list)
    report: ScanReport | None = None

    def scan_started(self, report: ScanReport, targets: list[Target]) -> None:
        self.report, self.targets = report, list(targets)
        self.calls.append(("scan_started", ""))

    def ports_found(self, target: TargetReport) -> None:
        self.calls.append(("ports_found", target.address))
        assert all(port.service is None for port in target.ports)  # before identification

    def target_done(self, target: TargetReport) -> None:
        self.calls.append(("target_done", target.address))
        self.done.append(target)


def test_the_observer_hears_each_address_as_it_completes(port: int) -> None:
    options = ScanOptions(ports=(port,), engine="connect",
                          discovery=DiscoveryOptions(timeout=0.5, rate=1000))
    observer = Recorded()
    with web_server(FAST, port):
        report = scan([FAST, SLOW], options, observer=observer)
    # addresses are scanned at once: both port states come first (one discovery pass), then
    # each address is done when its own work is (the one with nothing open at once)
    assert observer.calls[0] == ("scan_started", "")
    assert sorted(observer.calls[1:3]) == [("ports_found", FAST), ("ports_found", SLOW)]
    assert observer.calls[3:] == [("target_done", SLOW), ("target_done", FAST)]
    assert observer.report is report
    assert [str(target.address) for target in observer.targets] == [FAST, SLOW]
    # final: what target_done saw is what is returned
    assert sorted(observer.done, key=lambda t: t.address) == report.targets
    assert report.targets[0].ports[0].service == "http"


def test_skipped_addresses_are_not_scanned(port: int) -> None:
    options = ScanOptions(ports=(port,), engine="connect",
                          discovery=DiscoveryOptions(timeout=0.5, rate=1000))
    observer = Recorded()
    report = scan([FAST, SLOW], options, observer=observer, skip_addresses={FAST})
    assert [str(target.address) for target in observer.targets] == [FAST, SLOW]  # all planned
    assert [target.address for target in report.targets] == [SLOW]
    assert ("ports_found", FAST) not in observer.calls


# --- the store's side -------------------------------------------------------------------------


def _target(address: str, *ports: int) -> dict:
    return {"input": "home.example", "address": address, "hostname": None,
            "ports": [{"port": p, "protocol": "tcp", "state": "open"} for p in ports],
            "filtered_count": 0, "answers_all_ports": False, "findings": [], "notes": []}


def test_progress_rows_never_go_back_and_give_way_to_the_report(tmp_path: Path) -> None:
    with Store.open(tmp_path / "h.db") as store:
        seq = store.begin_scan(["home.example"], "22,80", {"targets": ["home.example"]})
        header = {"id": "abcdef012345", "started_at": "2026-01-01T00:00:00+00:00",
                  "finished_at": "2026-01-01T00:00:00+00:00", "duration_s": 0.0,
                  "engine": "connect", "ports_requested": 2, "complete": True, "errors": []}
        store.record_start(seq, header, 2)
        store.save_progress(seq, 1, _target("192.0.2.2", 80), "ports")
        store.save_progress(seq, 0, _target("192.0.2.1", 22), "ports")
        store.save_progress(seq, 0, _target("192.0.2.1", 22, 80), "done")
        store.save_progress(seq, 0, _target("192.0.2.1"), "ports")  # late: must not undo 'done'
        (row,) = store.list_scans()
        assert row.report_id == "abcdef012345" and row.status == "running"
        assert (row.addresses_done, row.ports_only) == (1, ("192.0.2.2",))
        assert row.summary == (
            "still running: 1 of 2 addresses; port states only for 192.0.2.2 so far")
        assert [r.seq for r in store.list_scans("192.0.2.2")] == [seq]  # findable by address
        partial = store.partial_report(row)
        assert [t["address"] for t in partial["targets"]] == ["192.0.2.1", "192.0.2.2"]
        assert len(partial["targets"][0]["ports"]) == 2
        store.finish_scan(seq, {"scan": {**header, "complete": True},
                                "targets": [_target("192.0.2.1", 22, 80)]})
        (row,) = store.list_scans()
        assert row.status == "complete" and row.progress is None
        assert store.progress(seq) == [] and row.addresses == ("192.0.2.1",)
        assert store.load_settings(seq) == {"targets": ["home.example"]}

