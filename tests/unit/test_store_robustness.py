"""The history database under stress: two writers, kill -9, a full disk, a read-only mount and
a corrupted file. Each time: no earlier scan lost, the report still printed, a clear error."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import io
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scanner.cli import main
from scanner.core.report import PortReport, ScanReport, TargetReport
from scanner.store import Store, StoreError

REPO = Path(__file__).resolve().parents[2]
EXPOSURE = [sys.executable, "-m", "scanner"]
QUICK_SCAN = ["--engine", "connect", "--timeout", "0.5", "--format", "json"]


def exposure(*args: str, env: dict[str, str] | None = None,
             timeout: float = 60) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, **(env or {})}
    environment.pop("EXPOSURE_DB", None) if env is None or "EXPOSURE_DB" not in env else None
    return subprocess.run([*EXPOSURE, *args], capture_output=True, text=True, cwd=REPO,
                          env=environment, timeout=timeout, check=False)


def in_process(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI's main() in this process (no interpreter start-up: ~50x faster)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def history(db: Path) -> list[dict]:
    run = in_process("history", "--db", str(db), "--format", "json")
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts and never says anything: identification waits on it."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


def scan_into(db: Path, port: int, *extra: str) -> subprocess.CompletedProcess[str]:
    return exposure("scan", "127.0.0.1", "--ports", str(port), "--no-identify", "--db", str(db),
                    *QUICK_SCAN, *extra)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- two writers ------------------------------------------------------------------------------

WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from scanner.store import Store
    path, name = Path(sys.argv[1]), sys.argv[2]
    with Store.open(path) as store:
        for i in range(25):
            seq = store.begin_scan([name])
            report = {"scan": {"id": f"{name}{i:08d}", "complete": True},
                      "targets": [{"input": name, "address": "192.0.2.1",
                                   "ports": [{"port": 22, "state": "open"}], "findings": []}]}
            store.finish_scan(seq, report)
""")


def test_four_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(db), f"w{n}"], cwd=REPO,
                         stderr=subprocess.PIPE, text=True)
        for n in range(4)
    ]
    for writer in writers:
        _, err = writer.communicate(timeout=60)
        assert writer.returncode == 0, err
    with Store.open(db) as store:
        rows = store.list_scans(limit=None)
        assert len(rows) == 100 and {row.status for row in rows} == {"complete"}
        assert len({row.report_id for row in rows}) == 100
        assert store.integrity_ok()


@pytest.fixture
def web_port() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_two_cli_scans_at_once_are_both_saved(tmp_path: Path, web_port: int) -> None:
    db = tmp_path / "h.db"
    argv = [*EXPOSURE, "scan", "127.0.0.1", "--ports", str(web_port), "--db", str(db),
            *QUICK_SCAN]
    # Started together, both create the database, record 'running' and finish within
    # milliseconds of each other (the four-writer test above forces the overlap).
    scans = [subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outputs = [scan.communicate(timeout=90) for scan in scans]
    for scan, (out, err) in zip(scans, outputs, strict=True):
        assert scan.returncode == 0, err
        assert json.loads(out)["schema"] == "exposure-report/2"
    rows = history(db)
    assert sorted(row["status"] for row in rows) == ["complete", "complete"]
    assert {row["id"] for row in rows} == {json.loads(out)["scan"]["id"] for out, _ in outputs}


# --- kill -9 ----------------------------------------------------------------------------------


def test_kill_9_mid_scan_leaves_earlier_scans_and_keeps_what_it_found(
    tmp_path: Path, silent_port: int
) -> None:
    db = tmp_path / "h.db"
    for _ in range(2):
        assert scan_into(db, silent_port).returncode == 0
    before = history(db)
    victim = subprocess.Popen(
        [*EXPOSURE, "scan", "127.0.0.1", "--ports", str(silent_port), "--db", str(db),
         *QUICK_SCAN],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not _has_progress_row(db):
            time.sleep(0.05)
        assert _has_progress_row(db), "the scan never stored the port states it found"
        os.kill(victim.pid, signal.SIGKILL)  # mid-way: identification waits on the silent port
        victim.wait(timeout=10)
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()
    rows = history(db)
    assert rows[1:] == before  # earlier scans untouched
    assert rows[0]["status"] == "interrupted" and rows[0]["id"]
    assert "ended before the scan finished" in rows[0]["error"]
    assert rows[0]["progress"]["summary"] == (
        "interrupted after 0 of 1 addresses; port states only for 127.0.0.1")
    shown = in_process("show", str(rows[0]["seq"]), "--db", str(db), "--format", "json")
    assert shown.returncode == 0, shown.stderr
    partial = json.loads(shown.stdout)  # what discovery found survived the kill
    assert partial["scan"]["id"] == rows[0]["id"] and partial["scan"]["complete"] is False
    assert [(p["port"], p["state"]) for p in partial["targets"][0]["ports"]] == [
        (silent_port, "open")]
    with Store.open(db) as store:
        assert store.integrity_ok()


def _has_progress_row(db: Path) -> bool:
    return _query_one(db, "SELECT 1 FROM scan_progress") is not None


def _query_one(db: Path, query: str) -> tuple | None:
    if not db.exists():
        return None
    try:
        with sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=5) as connection:
            return connection.execute(query).fetchone()
    except sqlite3.Error:
        return None


# --- corrupted file ---------------------------------------------------------------------------


@pytest.fixture
def corrupted_db(tmp_path: Path) -> Path:
    db = tmp_path / "h.db"
    with Store.open(db) as store:
        store.save_report({"scan": {"id": "000000000001"}, "targets": []}, ["x"])
    data = bytearray(db.read_bytes())
    data[:100] = b"this is not SQLite anymore" * 3 + b"!!!!!!!!!!!!!!!!!!!!!!"
    db.write_bytes(bytes(data))
    return db


def test_corrupted_file_history_fails_with_one_clear_line(corrupted_db: Path) -> None:
    """Its header gone, the file cannot be told from another program's: refused, unchanged."""
    digest = sha256(corrupted_db)
    run = in_process("history", "--db", str(corrupted_db))
    assert run.returncode == 2
    (line,) = run.stderr.strip().splitlines()
    assert "is not an exposure history database" in line and ".recover" in line
    assert "Traceback" not in run.stderr
    assert sha256(corrupted_db) == digest


def test_corrupted_file_given_with_db_is_refused_before_the_scan(
    corrupted_db: Path, silent_port: int
) -> None:
    digest = sha256(corrupted_db)
    run = scan_into(corrupted_db, silent_port)
    assert run.returncode == 2 and run.stdout == ""  # --db named it: nothing scanned
    (line,) = run.stderr.strip().splitlines()
    assert "is not an exposure history database" in line
    assert sha256(corrupted_db) == digest  # never repaired, truncated or replaced


def test_default_path_unusable_is_only_a_warning(
    tmp_path: Path, corrupted_db: Path, silent_port: int
) -> None:
    data_home = tmp_path / "xdg"
    (data_home / "exposure").mkdir(parents=True)
    shutil.copy(corrupted_db, data_home / "exposure" / "exposure.db")
    run = exposure("scan", "127.0.0.1", "--ports", str(silent_port), "--no-identify",
                   *QUICK_SCAN, env={"XDG_DATA_HOME": str(data_home)})
    assert run.returncode == 0, run.stderr
    assert "exposure: warning: scan not saved" in run.stderr
    assert json.loads(run.stdout)["targets"]


def test_a_corrupted_page_loses_only_the_scans_on_it(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    with Store.open(db) as store:
        for number in range(10):  # ~60 KiB reports: each spans its own overflow pages
            store.save_report(_padded_report(f"{number:012d}"), ["h"])
    data = bytearray(db.read_bytes())
    middle = (len(data) // 4096 // 2) * 4096
    data[middle:middle + 4096] = b"\xff" * 4096
    db.write_bytes(bytes(data))
    listed = history(db)  # the index of scans is intact
    assert len(listed) == 10
    readable, damaged = 0, 0
    for row in listed:
        run = in_process("show", str(row["seq"]), "--db", str(db), "--format", "json")
        if run.returncode == 0:
            assert json.loads(run.stdout)["scan"]["id"] == row["id"]
            readable += 1
        else:
            assert run.returncode == 3 and "is corrupted" in run.stderr
            assert len(run.stderr.strip().splitlines()) == 1
            damaged += 1
    assert damaged >= 1 and readable >= 7


def _padded_report(report_id: str) -> dict:
    target = TargetReport(input="h", address="192.0.2.1", ports=[
        PortReport(port=p, protocol="tcp", state="closed", details={"pad": "x" * 200})
        for p in range(1, 250)
    ])
    return ScanReport(report_id, "2026-01-01T00:00:00+00:00", "2026-01-01T00:00:01+00:00", 1.0,
                      "connect", 250, targets=[target]).to_dict()


# --- full disk and read-only mount (a real tmpfs in a private mount namespace) ----------------

FULL_DISK_SCRIPT = """
set -u
D="$1"; PORT="$2"; OUT="$3"
mount -t tmpfs -o size=1m exposure-test-full "$D"
export EXPOSURE_DB="$D/h.db"
run() {{ name="$1"; shift; "$@" >"$OUT/$name.out" 2>"$OUT/$name.err"; echo $? >"$OUT/$name.rc"; }}
SCAN="{python} -m scanner scan 127.0.0.1 --no-identify --engine connect --format json --rate 100000"
run first  $SCAN --ports "$PORT"
# fill the disk completely: the next scan cannot even record that it started
dd if=/dev/zero of="$D/fill" bs=4k 2>/dev/null
run full   $SCAN --ports "$PORT"
run hist_full {python} -m scanner history --format json
# leave ~128 KiB: the 'running' row fits, a ~500 KB report does not
rm "$D/fill"; dd if=/dev/zero of="$D/fill" bs=4k count=$(( $(stat -f -c %a "$D") - 32 )) 2>/dev/null
run big    $SCAN --ports 1-2000
rm "$D/fill"
run hist_free {python} -m scanner history --format json
run check  {python} -c "{integrity}" "$D/h.db"
mount -o remount,ro "$D"
run ro     $SCAN --ports "$PORT"
run hist_ro {python} -m scanner history --format json
"""


def test_full_disk_and_read_only_mount(tmp_path: Path, silent_port: int) -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) to mount a tiny tmpfs in a private mount namespace")
    mountpoint, out = tmp_path / "mnt", tmp_path / "out"
    mountpoint.mkdir()
    out.mkdir()
    script = tmp_path / "full.sh"
    integrity = ("import sqlite3, sys; print(sqlite3.connect(sys.argv[1])"
                 ".execute('pragma integrity_check').fetchone()[0])")
    script.write_text(FULL_DISK_SCRIPT.format(python=sys.executable, integrity=integrity))
    # The tmpfs lives in the private mount namespace only: it disappears with the process,
    # even if the test dies, and the host's mount table never sees it.
    subprocess.run(["unshare", "--mount", "--propagation", "private", "bash", str(script),
                    str(mountpoint), str(silent_port), str(out)],
                   cwd=REPO, check=True, timeout=120)

    def result(name: str) -> tuple[int, str, str]:
        return (int((out / f"{name}.rc").read_text()), (out / f"{name}.out").read_text(),
                (out / f"{name}.err").read_text())

    code, stdout, _ = result("first")
    assert code == 0
    first_id = json.loads(stdout)["scan"]["id"]

    code, stdout, stderr = result("full")
    assert json.loads(stdout)["scan"]["id"]  # the report is printed anyway
    assert code == 3 and "disk is full" in stderr and "earlier scans are intact" in stderr
    assert len(stderr.strip().splitlines()) == 1

    code, stdout, _ = result("hist_full")  # reading works on a full disk
    assert code == 0 and [row["id"] for row in json.loads(stdout)] == [first_id]

    code, stdout, stderr = result("big")
    assert len(stdout) > 300_000 and json.loads(stdout)["scan"]["ports_requested"] == 2000
    assert code == 3 and "disk is full" in stderr

    code, stdout, _ = result("hist_free")
    rows = json.loads(stdout)
    assert [row["status"] for row in rows] == ["failed", "complete"]  # marked, not lost
    assert rows[1]["id"] == first_id and "could not be saved" in rows[0]["error"]
    assert result("check")[1].strip() == "ok"

    code, stdout, stderr = result("ro")
    assert json.loads(stdout)["scan"]["id"]
    assert code == 3 and "read-only file system" in stderr
    code, stdout, _ = result("hist_ro")
    assert code == 0 and [row["id"] for row in json.loads(stdout)][-1] == first_id


def test_sqlite_full_while_saving_keeps_earlier_scans(tmp_path: Path) -> None:
    """SQLITE_FULL from a page limit: the same error path without any mount (runs anywhere)."""
    db = tmp_path / "h.db"
    with Store.open(db) as store:
        store.save_report({"scan": {"id": "000000000001"}, "targets": []}, ["x"])
        seq = store.begin_scan(["x"])
        (pages,) = store._db.execute("PRAGMA page_count").fetchone()
        store._db.execute(f"PRAGMA max_page_count = {pages + 2}")
        big = {"scan": {"id": "000000000002"}, "targets": [], "pad": "x" * 200_000}
        with pytest.raises(StoreError, match="disk is full"):
            store.finish_scan(seq, big)
        store.end_scan_without_report(seq, "failed", "could not be saved")
    with Store.open(db) as store:
        statuses = [(row.report_id, row.status) for row in store.list_scans()]
        assert statuses == [(None, "failed"), ("000000000001", "complete")]
        assert store.integrity_ok()
