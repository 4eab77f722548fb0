"""A file exposure did not create is never changed; each unusable path gets a truthful message.

Every foreign file is checked byte for byte (sha256 before and after) and its directory listing
too: no -wal/-shm file appears, the journal mode is not switched (bytes 18-19 of the header).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from scanner.cli import main
from scanner.store import Store, StoreError
from scanner.store import migrations as m
from scanner.store.errors import NotOurDatabase
from scanner.store.ownership import APPLICATION_ID, Ownership, recognise

REPO = Path(__file__).resolve().parents[2]
EXPOSURE = [sys.executable, "-m", "scanner"]


def cli(*args: str, env: dict[str, str] | None = None, as_nobody: bool = False,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    prefix = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"] if as_nobody else []
    environment = {key: value for key, value in os.environ.items() if key != "EXPOSURE_DB"}
    return subprocess.run([*prefix, *EXPOSURE, *args], capture_output=True, text=True, cwd=REPO,
                          env={**environment, **(env or {})}, timeout=timeout, check=False)


def in_process(*args: str) -> subprocess.CompletedProcess[str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def snapshot(directory: Path) -> dict[str, str]:
    """Every file of a directory with its sha256 (directories as 'dir')."""
    result = {}
    for entry in sorted(directory.rglob("*")):
        key = str(entry.relative_to(directory))
        result[key] = "dir" if entry.is_dir() else hashlib.sha256(entry.read_bytes()).hexdigest()
    return result


# --- foreign files: each made the way another program would make it --------------------------


def _sqlite_rollback(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
    db.execute("INSERT INTO notes (text) VALUES ('my own data')")
    db.commit()
    db.close()


def _sqlite_other_application(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("PRAGMA application_id = 1179603785")  # another program's id ("FOSI")
    db.execute("CREATE TABLE scans (seq INTEGER, report TEXT)")  # even with a "scans" table
    db.commit()
    db.close()


def _sqlite_look_alike(path: Path) -> None:
    """Tables named like ours, other columns: not a history of an earlier exposure."""
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE scans (seq INTEGER PRIMARY KEY, target TEXT, result BLOB)")
    db.execute("CREATE TABLE schema_version (version INTEGER)")
    db.commit()
    db.close()


def _text_file(path: Path) -> None:
    path.write_text("host,port\n192.0.2.1,22\n")


def _empty_file(path: Path) -> None:
    path.touch()


FOREIGN: dict[str, Callable[[Path], None]] = {
    "sqlite-rollback-journal": _sqlite_rollback,
    "sqlite-other-application-id": _sqlite_other_application,
    "sqlite-look-alike-schema": _sqlite_look_alike,
    "text": _text_file,
    "empty": _empty_file,
}


@pytest.fixture(params=sorted(FOREIGN))
def foreign(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    directory = tmp_path / "theirs"
    directory.mkdir()
    path = directory / "data.db"
    FOREIGN[request.param](path)
    return path


def test_a_foreign_file_is_refused_and_left_byte_for_byte(foreign: Path) -> None:
    before = snapshot(foreign.parent)
    for args in (("history",), ("show", "1"), ("diff",)):
        run = in_process(*args, "--db", str(foreign))
        assert run.returncode == 2, (args, run.stderr)
        (line,) = run.stderr.strip().splitlines()
        assert str(foreign) in line and "Traceback" not in run.stderr
    scan = cli("scan", "127.0.0.1", "--ports", "9", "--no-identify", "--engine", "connect",
               "--db", str(foreign), "--format", "json")
    assert scan.returncode == 2 and scan.stdout == ""  # refused before a packet is sent
    (line,) = scan.stderr.strip().splitlines()
    assert str(foreign) in line
    assert snapshot(foreign.parent) == before  # same bytes, and no -wal, -shm or temp file


def test_messages_say_what_the_file_is(tmp_path: Path) -> None:
    expected = {
        "sqlite-rollback-journal": "is an SQLite database of another program (its tables",
        "sqlite-other-application-id": "another program (SQLite application id 0x464f5349)",
        "sqlite-look-alike-schema": "is an SQLite database of another program (its tables",
        "text": "is not an exposure history database (not an SQLite file",
        "empty": "is an empty file, not a database exposure created",
    }
    for name, make in FOREIGN.items():
        path = tmp_path / f"{name}.db"
        make(path)
        with pytest.raises(NotOurDatabase) as caught:
            Store.open(path)
        assert expected[name] in str(caught.value), name


def test_a_foreign_wal_database_in_use_keeps_its_files(tmp_path: Path) -> None:
    """Another program has its WAL database open, with commits only in the -wal file."""
    directory = tmp_path / "theirs"
    directory.mkdir()
    path = directory / "app.db"
    owner = sqlite3.connect(path, isolation_level=None)
    owner.execute("PRAGMA journal_mode = WAL")
    owner.execute("PRAGMA wal_autocheckpoint = 0")
    owner.execute("CREATE TABLE events (at TEXT)")
    owner.execute("INSERT INTO events VALUES ('now')")
    try:
        main_file, wal = path.read_bytes(), Path(f"{path}-wal").read_bytes()
        run = cli("history", "--db", str(path))
        assert run.returncode == 2 and "another program" in run.stderr
        # The -shm index may be read; the database and its log are what must not change.
        assert path.read_bytes() == main_file and Path(f"{path}-wal").read_bytes() == wal
        assert sorted(p.name for p in directory.iterdir()) == ["app.db", "app.db-shm",
                                                               "app.db-wal"]
    finally:
        owner.close()


def test_a_directory_gets_its_own_message(tmp_path: Path) -> None:
    before = snapshot(tmp_path)
    run = in_process("history", "--db", str(tmp_path))
    assert run.returncode == 2
    assert "is a directory, not a database file" in run.stderr
    assert f"such as {tmp_path / 'exposure.db'}" in run.stderr
    assert snapshot(tmp_path) == before


# --- ours: created complete, recognised, and the earlier release's databases adopted ----------


def test_a_new_database_carries_our_application_id_and_appears_complete(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "h.db"
    with Store.open(path) as store:
        store.begin_scan(["x"])
    header = path.read_bytes()[:100]
    assert int.from_bytes(header[68:72], "big") == APPLICATION_ID
    assert header[18:20] == b"\x02\x02"  # WAL
    assert recognise(path) is Ownership.OURS
    assert sorted(p.name for p in path.parent.iterdir()) == ["h.db"]  # no temporary left
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700


def _earlier_release_database(path: Path) -> dict:
    """Exactly what the release before the application id made: migrations 1-2, WAL, id 0."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    m.migrate(db, m.MIGRATIONS[:2])
    report = {"scan": {"id": "0123456789ab", "complete": True},
              "targets": [{"input": "home.example", "address": "198.51.100.7",
                           "ports": [{"port": 22, "state": "open"}], "findings": []}]}
    db.execute(
        "INSERT INTO scans (report_id, status, inputs, started_at, host, pid, tool_version,"
        " report) VALUES ('0123456789ab', 'complete', '[\"home.example\"]',"
        " '2026-01-01T00:00:00+00:00', 'h', 1, '0.0.9', ?)", (json.dumps(report),))
    db.close()
    return report


def test_an_earlier_release_database_is_recognised_by_its_schema_and_adopted(
    tmp_path: Path,
) -> None:
    path = tmp_path / "h.db"
    report = _earlier_release_database(path)
    assert int.from_bytes(path.read_bytes()[68:72], "big") == 0
    assert recognise(path) is Ownership.EARLIER_RELEASE
    with Store.open(path) as store:
        assert store.schema_version() == m.LATEST_VERSION
        (row,) = store.list_scans()
        assert store.load_report(row) == report
    assert recognise(path) is Ownership.OURS  # the id is set from now on


KILLED_EARLIER_RELEASE = textwrap.dedent("""
    import os, signal, socket, sqlite3, sys
    from scanner.store import migrations as m
    db = sqlite3.connect(sys.argv[1], isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    m.migrate(db, m.MIGRATIONS[:2])
    db.execute("INSERT INTO scans (status, inputs, started_at, host, pid, tool_version)"
               " VALUES ('running', '[\\"x\\"]', '2026-01-01T00:00:00+00:00', ?, ?, '0.0.9')",
               (socket.gethostname(), os.getpid()))
    os.kill(os.getpid(), signal.SIGKILL)  # before any checkpoint: the tables are in -wal only
""")


def test_an_earlier_release_database_killed_before_its_first_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    run = subprocess.run([sys.executable, "-c", KILLED_EARLIER_RELEASE, str(path)], cwd=REPO,
                         check=False, timeout=30)
    assert run.returncode == -signal.SIGKILL
    assert Path(f"{path}-wal").stat().st_size > 0
    assert recognise(path) is Ownership.EARLIER_RELEASE
    with Store.open(path) as store:
        (row,) = store.list_scans()
        assert row.status == "interrupted"  # its process is gone


# --- truthful messages for paths that cannot be used -----------------------------------------


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory the `nobody` user can reach (pytest's tmp_path is private to root)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv(1) to run the CLI as an unprivileged user")
    path = Path(tempfile.mkdtemp(prefix="exposure-perm-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _history_db(path: Path) -> None:
    with Store.open(path) as store:
        store.save_report({"scan": {"id": "000000000001"}, "targets": []}, ["home.example"])
    path.chmod(0o644)


def test_read_only_file(shared_dir: Path) -> None:
    directory = shared_dir / "d"
    directory.mkdir(mode=0o777)
    directory.chmod(0o777)  # the directory is writable: only the file is not
    path = directory / "h.db"
    _history_db(path)  # root's file, 0644: read-only for nobody
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    run = cli("scan", "127.0.0.1", "--ports", "9", "--no-identify", "--engine", "connect",
              "--db", str(path), "--format", "json", as_nobody=True)
    assert run.returncode == 3 and json.loads(run.stdout)["targets"]  # report first
    (line,) = run.stderr.strip().splitlines()
    assert "is a read-only file (no write permission for this user)" in line
    history = cli("history", "--db", str(path), "--format", "json", as_nobody=True)
    assert history.returncode == 0 and [r["id"] for r in json.loads(history.stdout)] == [
        "000000000001"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


def test_read_only_directory(shared_dir: Path) -> None:
    path = shared_dir / "h.db"
    _history_db(path)
    os.chown(path, 65534, 65534)  # nobody may write the file, not the directory (root's 0755)
    run = cli("scan", "127.0.0.1", "--ports", "9", "--no-identify", "--engine", "connect",
              "--db", str(path), "--format", "json", as_nobody=True)
    assert run.returncode == 3
    (line,) = run.stderr.strip().splitlines()
    assert f"is in a directory this user cannot write ({shared_dir})" in line
    assert "h.db-wal and h.db-shm" in line


def test_a_directory_on_the_way_this_user_may_not_enter(shared_dir: Path) -> None:
    closed = shared_dir / "closed"
    (closed / "inner").mkdir(parents=True)
    closed.chmod(0o700)  # root's: nobody may not pass through it
    run = cli("history", "--db", str(closed / "inner" / "h.db"), as_nobody=True)
    assert run.returncode == 3
    (line,) = run.stderr.strip().splitlines()
    assert f"cannot be reached: this user may not enter {closed}" in line


def test_proc_is_not_a_full_disk() -> None:
    run = cli("scan", "127.0.0.1", "--ports", "9", "--no-identify", "--engine", "connect",
              "--db", "/proc/x.db", "--format", "json")
    assert run.returncode == 3 and json.loads(run.stdout)["targets"]
    (line,) = run.stderr.strip().splitlines()
    assert "cannot be created: /proc does not accept new files (a proc file system)" in line
    assert "full" not in line


def test_missing_parent_of_a_read_only_path(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="a part of its path is a file, not a directory"):
        Store.open(blocker / "h.db")


HOLD_LOCK = textwrap.dedent("""
    import sqlite3, sys, time
    db = sqlite3.connect(sys.argv[1], isolation_level=None)
    db.execute("BEGIN IMMEDIATE")
    db.execute("UPDATE scans SET error = 'held' WHERE seq = 1")
    print("locked", flush=True)
    time.sleep(60)
""")


def test_locked_database_names_the_holder_and_reading_still_works(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    _history_db(path)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(path)], cwd=REPO,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        history = in_process("history", "--db", str(path), "--format", "json")
        assert history.returncode == 0  # a reader is not held up by the writer
        started = time.monotonic()
        with Store.open(path, busy_timeout=0.3) as store, pytest.raises(StoreError) as caught:
            store.begin_scan(["home.example"])
        assert time.monotonic() - started < 5
        name = Path(f"/proc/{holder.pid}/comm").read_text().strip()
        assert f"is locked by another process ({name} pid {holder.pid})" in str(caught.value)
    finally:
        holder.kill()
        holder.wait()
