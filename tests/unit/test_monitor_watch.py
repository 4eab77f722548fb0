"""The watch loop with real scans of loopback ports and a real HTTP receiver."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from scanner.alerts.http import NtfyNotifier, WebhookNotifier
from scanner.api import ScanOptions, scan
from scanner.core.diff import ReportDiff
from scanner.core.report import ScanError, ScanReport
from scanner.diff.baseline import parse_baseline
from scanner.discovery import DiscoveryOptions
from scanner.monitor import Watcher, WatchOptions
from scanner.store import Store
from tests.lab.support_monitor import HttpReceiver

REPO = Path(__file__).resolve().parents[2]


class Ports:
    """Loopback listeners a test opens and closes between two scans."""

    def __init__(self) -> None:
        self.sockets: dict[int, socket.socket] = {}

    def open(self) -> int:
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        port = server.getsockname()[1]
        self.sockets[port] = server
        return port

    def close(self, port: int) -> None:
        self.sockets.pop(port).close()

    def close_all(self) -> None:
        for port in list(self.sockets):
            self.close(port)


@pytest.fixture
def ports() -> Iterator[Ports]:
    listeners = Ports()
    try:
        yield listeners
    finally:
        listeners.close_all()


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    http = HttpReceiver().start()
    try:
        yield http
    finally:
        http.stop()


def scan_options(*watched: int) -> ScanOptions:
    return ScanOptions(ports=tuple(sorted(watched)), engine="connect", identify=False,
                       discovery=DiscoveryOptions(timeout=0.3, retries=0))


def watcher(
    tmp_path: Path, receiver: HttpReceiver, options: ScanOptions, **extra: object
) -> Watcher:
    watch = WatchOptions(inputs=("127.0.0.1",), every_s=1, jitter=0, db=tmp_path / "h.db",
                         **extra)  # type: ignore[arg-type]
    notifiers = [WebhookNotifier(f"{receiver.url}/hook"), NtfyNotifier(receiver.url, "t")]
    return Watcher(watch, options, notifiers, scan, render_html=render_html_report)


def render_html_report(report: ScanReport, diff: ReportDiff) -> str:
    from scanner.report.html import render_html

    return render_html(report, diff)


def test_alerts_once_per_change_and_only_on_change(
    tmp_path: Path, receiver: HttpReceiver, ports: Ports
) -> None:
    first, second = ports.open(), ports.open()
    watch = watcher(tmp_path, receiver, scan_options(first, second))
    assert watch.iteration(1).alerts_sent == {"webhook": 0, "ntfy": 0}  # the reference
    ports.close(second)
    result = watch.iteration(2)
    assert [str(c.kind) for c in result.diff.changes] == ["port.closed"]  # type: ignore[union-attr]
    assert result.alerts_sent == {"webhook": 1, "ntfy": 1}
    assert watch.iteration(3).alerts_sent == {"webhook": 0, "ntfy": 0}  # nothing new
    (hook,) = receiver.on("/hook")
    assert hook["json"]["change"]["port"] == second
    assert len(receiver.on("/")) == 1
    with Store.open(tmp_path / "h.db") as store:
        assert [row.status for row in store.list_scans()] == ["complete"] * 3


def test_a_failed_scan_is_logged_stored_and_retried(
    tmp_path: Path, receiver: HttpReceiver, ports: Ports, caplog: pytest.LogCaptureFixture
) -> None:
    port = ports.open()
    calls = []

    def flaky(inputs: Sequence[str], options: ScanOptions) -> ScanReport:
        calls.append(1)
        if len(calls) == 2:
            raise OSError("network is unreachable")
        return scan(inputs, options)

    watch = watcher(tmp_path, receiver, scan_options(port))
    watch.scan = flaky
    watch.iteration(1)
    ports.close(port)
    failed = watch.iteration(2)
    assert failed.error and "network is unreachable" in failed.error
    assert "scan failed" in caplog.text and "retrying" in caplog.text
    recovered = watch.iteration(3)  # compared with iteration 1: the failure is not a reference
    assert [str(c.kind) for c in recovered.diff.changes] == ["port.closed"]  # type: ignore[union-attr]
    with Store.open(tmp_path / "h.db") as store:
        assert [row.status for row in store.list_scans()] == ["complete", "failed", "complete"]


def test_an_incomplete_scan_is_never_the_reference(
    tmp_path: Path, receiver: HttpReceiver, ports: Ports
) -> None:
    port = ports.open()
    calls = []

    def half(inputs: Sequence[str], options: ScanOptions) -> ScanReport:
        report = scan(inputs, options)
        calls.append(1)
        if len(calls) == 2:
            report.complete, report.targets = False, []
            report.errors.append(ScanError("discovery", "simulated"))
        return report

    watch = watcher(tmp_path, receiver, scan_options(port))
    watch.scan = half
    watch.iteration(1)
    assert watch.iteration(2).diff is None
    assert watch.iteration(3).diff.empty  # type: ignore[union-attr]
    assert receiver.requests == []


def test_a_restarted_watch_compares_with_the_history(
    tmp_path: Path, receiver: HttpReceiver, ports: Ports
) -> None:
    port, extra = ports.open(), ports.open()
    options = scan_options(port, extra)
    watcher(tmp_path, receiver, options).iteration(1)
    ports.close(extra)  # changed while no watch was running
    result = watcher(tmp_path, receiver, options).iteration(1)
    assert [str(c.kind) for c in result.diff.changes] == ["port.closed"]  # type: ignore[union-attr]
    assert result.alerts_sent == {"webhook": 1, "ntfy": 1}


def test_first_scan_alerts_only_ports_outside_the_baseline(
    tmp_path: Path, receiver: HttpReceiver, ports: Ports
) -> None:
    allowed, unexpected = ports.open(), ports.open()
    baseline = parse_baseline(f"ports = [{allowed}]".encode(), "expected.toml")
    watch = watcher(tmp_path, receiver, scan_options(allowed, unexpected), baseline=baseline)
    result = watch.iteration(1)
    assert result.alerts_sent == {"webhook": 1, "ntfy": 1}
    (hook,) = receiver.on("/hook")
    assert hook["json"]["change"]["kind"] == "port.unexpected"
    assert hook["json"]["change"]["port"] == unexpected
    stored = result.report["targets"][0]["findings"]  # type: ignore[index]
    assert [f["id"] for f in stored] == ["port.unexpected"]
    assert watch.iteration(2).alerts_sent == {"webhook": 0, "ntfy": 0}  # still open: said once


def test_run_waits_with_jitter_and_stops_on_request(
    tmp_path: Path, receiver: HttpReceiver, ports: Ports
) -> None:
    watch = watcher(tmp_path, receiver, scan_options(ports.open()))
    watch.options = WatchOptions(inputs=("127.0.0.1",), every_s=3600, db=tmp_path / "h.db")
    results: list[int] = []
    thread = threading.Thread(target=lambda: results.extend(r.number for r in watch.run()))
    thread.start()
    time.sleep(1.0)  # first scan done, now waiting ~an hour
    started = time.monotonic()
    watch.stop_event.set()
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - started < 2 and results == [1]


def test_cli_watch_max_iterations_with_a_receiver_from_the_environment(
    tmp_path: Path, receiver: HttpReceiver, ports: Ports
) -> None:
    stays, goes = ports.open(), ports.open()
    env = {**os.environ, "EXPOSURE_WEBHOOK_URL": f"{receiver.url}/hook",
           "EXPOSURE_ALERTS_CONFIG": str(tmp_path / "none.toml")}
    argv = [sys.executable, "-m", "scanner", "watch", "127.0.0.1", "--every", "2s",
            "--jitter", "0", "--max-iterations", "2", "--ports", f"{stays},{goes}",
            "--engine", "connect", "--timeout", "0.3", "--no-identify",
            "--db", str(tmp_path / "h.db")]
    process = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not _complete_scans(tmp_path / "h.db"):
        time.sleep(0.05)
    ports.close(goes)  # between the two iterations
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "alerts: webhook" in err and "1 change(s), 1 alert(s) sent" in err
    (hook,) = receiver.on("/hook")
    assert hook["json"]["change"]["kind"] == "port.closed"
    assert f"port {goes}/tcp is no longer open" in out


def _complete_scans(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        run = subprocess.run([sys.executable, "-m", "scanner", "history", "--db", str(db),
                              "--format", "json"], capture_output=True, text=True, cwd=REPO,
                             check=False)
        return sum(1 for row in json.loads(run.stdout or "[]") if row["status"] == "complete")
    except ValueError:
        return 0


def test_the_html_report_is_rewritten_and_a_foreign_file_is_never_overwritten(
    tmp_path: Path, receiver: HttpReceiver, ports: Ports, caplog: pytest.LogCaptureFixture
) -> None:
    report = tmp_path / "exposure.html"
    watch = watcher(tmp_path, receiver, scan_options(ports.open()), html_report=report)
    watch.iteration(1)
    first = report.read_text()
    assert "<title>Exposure report: 127.0.0.1</title>" in first
    watch.iteration(2)
    assert report.read_text() != first  # the next scan's report replaced it
    assert [p.name for p in tmp_path.glob(".exposure-*")] == []  # no temporary file left

    notes = tmp_path / "notes.html"
    notes.write_text("<html>my own notes</html>")
    other = watcher(tmp_path / "other", receiver, scan_options(ports.open()), html_report=notes)
    other.iteration(1)
    assert notes.read_text() == "<html>my own notes</html>"
    assert "is not an exposure HTML report: not overwritten" in caplog.text


@pytest.mark.parametrize(("option", "message"), [
    (["--report-link", "ftp://ha.example/x.html"], "--report-link must be an http"),
    (["--remind", "sometimes"], "bad interval"),
    (["--html-report", "/nonexistent-dir/x.html"], "no such directory"),
])
def test_cli_watch_refuses_bad_new_options(tmp_path: Path, option: list[str], message: str) -> None:
    argv = [sys.executable, "-m", "scanner", "watch", "127.0.0.1", "--once", "--no-identify",
            "--db", str(tmp_path / "h.db"), *option]
    env = {**os.environ, "EXPOSURE_ALERTS_CONFIG": str(tmp_path / "none.toml")}
    run = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and message in run.stderr
