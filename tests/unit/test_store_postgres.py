"""The history on a real PostgreSQL (Debian's postgresql-15, over a Unix socket): the same
Store as on SQLite, the same migrations, concurrent writers, a schema that is not ours left
alone. Every behaviour test runs on both backends."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from scanner.store import FindingAlert, NoDatabase, StoreError
from scanner.store import migrations as m
from scanner.store.fleet import Claim, FleetLedger
from scanner.store.location import (
    default_location,
    describe,
    is_postgres,
    open_store,
    parse_location,
    redact,
)
from scanner.store.postgres import SCHEMA, to_pyformat
from scanner.store.store import Store
from tests.pgserver import PostgresServer

_names = itertools.count()


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    instance = PostgresServer().start()
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def pg_url(server: PostgresServer) -> str:
    return server.create_database(f"t{next(_names)}")


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    if request.param == "sqlite":
        return tmp_path / "history.db"
    return request.getfixturevalue("pg_url")


def report(report_id: str, address: str = "203.0.113.7", typed: str = "home.example") -> dict:
    return {
        "scan": {"id": report_id, "complete": True, "finished_at": "2026-01-01T00:00:00+00:00"},
        "targets": [{"input": typed, "address": address,
                     "ports": [{"port": 22, "state": "open"}, {"port": 23, "state": "closed"}],
                     "findings": [{"id": "ssh.password_auth", "severity": "medium"}]}],
    }


# --- the same store on both ------------------------------------------------------------------


def test_save_list_and_find(location: str | Path) -> None:
    with open_store(location) as store:
        first = store.save_report(report("aaaa00000001"), ["home.example"], "22,23")
        second = store.save_report(report("bbbb00000002", "203.0.113.8", "other.example"),
                                   ["other.example"])
        assert second > first
        assert [row.seq for row in store.list_scans()] == [second, first]
        (row,) = store.list_scans("home.example")
        assert row.report_id == "aaaa00000001" and row.addresses == ("203.0.113.7",)
        assert row.open_ports == 1 and row.worst_severity == "medium" and row.ports == "22,23"
        assert [r.seq for r in store.list_scans("203.0.113.8")] == [second]
        assert store.get_scan("bbbb").seq == second and store.get_scan(f"#{first}").seq == first
        assert store.latest_complete(inputs=["home.example"]).seq == first
        assert store.latest_complete(target="203.0.113.7", before=first) is None
        assert store.load_report(row)["scan"]["id"] == "aaaa00000001"
        assert store.schema_version() == m.LATEST_VERSION and store.integrity_ok()


def test_results_kept_per_address_and_the_partial_report(location: str | Path) -> None:
    target = report("ffff00000006")["targets"][0]
    with open_store(location) as store:
        seq = store.begin_scan(["home.example"], "22,23", {"targets": ["home.example"]})
        store.record_start(seq, {"id": "ffff00000006", "started_at": "2026-01-01T00:00:00+00:00",
                                 "errors": []}, 2)
        store.save_progress(seq, 0, target, "ports")
        store.save_progress(seq, 0, target, "done")
        store.save_progress(seq, 0, target, "ports")  # never replaces a finished address
        (stored,) = store.progress(seq)
        assert (stored.address, stored.stage) == ("203.0.113.7", "done")
        store.end_scan_without_report(seq, "interrupted", "killed")
        row = store.get_scan(str(seq))
        assert row.addresses_done == 1 and row.addresses_planned == 2 and row.has_partial
        partial = store.partial_report(row)
        assert not partial["scan"]["complete"] and partial["targets"] == [target]
        assert store.load_settings(seq) == {"targets": ["home.example"]}


def test_finding_alerts_are_kept_per_target(location: str | Path) -> None:
    alert = FindingAlert("home.example", ("ssh.password_auth", 22, "tcp"), "medium",
                         "2026-01-01T00:00:00+00:00")
    with open_store(location) as store:
        store.save_finding_alerts(["home.example"], [alert, alert])
        assert store.finding_alerts(["home.example"]) == [alert]
        store.save_finding_alerts(["home.example"], [])
        assert store.finding_alerts(["home.example"]) == []


def test_a_running_scan_of_a_dead_process_is_interrupted(location: str | Path) -> None:
    with open_store(location) as store:
        seq = store.begin_scan(["home.example"])
        store._write(lambda db: db.execute("UPDATE scans SET pid = 0 WHERE seq = ?", (seq,)))
    with open_store(location) as store:
        assert store.get_scan(str(seq)).status == "interrupted"


def test_read_commands_never_create_a_history(location: str | Path) -> None:
    with pytest.raises(NoDatabase):
        open_store(location, create=False)


def test_concurrent_writers_each_get_their_scan(location: str | Path) -> None:
    open_store(location).close()
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            with open_store(location) as store:
                for number in range(5):
                    store.save_report(report(f"{worker:04x}{number:08x}"), [f"w{worker}"])
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=write, args=(worker,)) for worker in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    with open_store(location) as store:
        rows = store.list_scans(limit=None)
    assert len(rows) == 30 and len({row.seq for row in rows}) == 30


def test_the_migrations_are_the_same_on_both(pg_url: str, tmp_path: Path) -> None:
    open_store(tmp_path / "history.db").close()
    open_store(pg_url).close()
    with open_store(tmp_path / "history.db") as sqlite_store:
        on_sqlite = sqlite_store._read(lambda db: db.execute(
            "SELECT version, description FROM schema_version ORDER BY version").fetchall())
    with open_store(pg_url) as pg_store:
        on_postgres = pg_store._read(lambda db: db.execute(
            "SELECT version, description FROM schema_version ORDER BY version").fetchall())
    assert [tuple(row) for row in on_postgres] == [tuple(row) for row in on_sqlite]
    assert [version for version, _ in on_sqlite] == [mig.version for mig in m.MIGRATIONS]


# --- PostgreSQL only ---------------------------------------------------------------------------


def test_our_tables_live_in_our_schema_only(pg_url: str) -> None:
    with psycopg.connect(pg_url) as connection:
        connection.execute("CREATE TABLE public.scans (theirs TEXT)")
        connection.execute("INSERT INTO public.scans VALUES ('keep me')")
    with open_store(pg_url) as store:
        store.save_report(report("cccc00000003"), ["home.example"])
    with psycopg.connect(pg_url) as connection:
        assert connection.execute("SELECT theirs FROM public.scans").fetchall() == [("keep me",)]
        tables = connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (SCHEMA,)).fetchall()
    assert {name for (name,) in tables} >= {"scans", "scan_targets", "schema_version"}


def test_a_schema_of_that_name_we_did_not_make_is_refused_unchanged(pg_url: str) -> None:
    with psycopg.connect(pg_url) as connection:
        connection.execute(f"CREATE SCHEMA {SCHEMA}")
        connection.execute(f"CREATE TABLE {SCHEMA}.scans (theirs TEXT)")
    with pytest.raises(StoreError, match="exposure did not make"):
        open_store(pg_url)
    with psycopg.connect(pg_url) as connection:
        columns = connection.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s",
            (SCHEMA,)).fetchall()
    assert columns == [("theirs",)]


def test_two_processes_creating_one_database_make_it_once(pg_url: str) -> None:
    errors: list[BaseException] = []

    def create() -> None:
        try:
            open_store(pg_url).close()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=create) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    with open_store(pg_url) as store:
        assert store.schema_version() == m.LATEST_VERSION


def test_an_unreachable_server_is_one_line_that_says_so(server: PostgresServer) -> None:
    url = f"postgresql://exposure:secret@/nowhere?host={server.socket_dir}&port=1"
    with pytest.raises(StoreError) as caught:
        open_store(url)
    message = str(caught.value)
    assert "cannot be reached" in message and "secret" not in message and "\n" not in message


def test_a_missing_database_says_so(server: PostgresServer) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        open_store(server.url("no_such_database"))


# --- locations and SQL --------------------------------------------------------------------------


def test_locations() -> None:
    url = "postgresql://scanner:hunter2@db.example:5432/exposure"
    assert is_postgres(parse_location(url)) and parse_location(url) == url
    assert parse_location("~/x.db") == Path("~/x.db").expanduser()
    assert redact(url) == "postgresql://scanner:***@db.example:5432/exposure"
    assert describe("postgres://u@h/db?password=hunter2") == "postgres://u@h/db?password=***"
    assert default_location({"EXPOSURE_DB": url}) == url
    assert isinstance(default_location({"EXPOSURE_DB": "/tmp/a.db"}), Path)


def test_placeholders_become_psycopg_ones_outside_quotes() -> None:
    assert to_pyformat("SELECT ? WHERE a LIKE ? ESCAPE '\\'") == (
        "SELECT %s WHERE a LIKE %s ESCAPE '\\'")
    assert to_pyformat("SELECT '?', \"x?\", 5 % 2, ?") == "SELECT '?', \"x?\", 5 %% 2, %s"


# --- the fleet ledger, on both -------------------------------------------------------------------


def test_a_task_is_claimed_once_and_stored_once(location: str | Path) -> None:
    with open_store(location) as store:
        ledger = FleetLedger(store)
        ledger.begin_job("job1", ["home.example"], 1)
        take = lambda worker, lease=30.0: ledger.claim(  # noqa: E731
            "job1", "a|203.0.113.7|0", "a", "203.0.113.7", worker, lease)
        assert take("w1") is Claim.CLAIMED
        assert take("w2") is Claim.BUSY  # w1's lease is alive
        assert take("w1") is Claim.CLAIMED  # its own task, redelivered to it
        assert ledger.renew("job1", "a|203.0.113.7|0", "w1", 30.0)
        assert not ledger.renew("job1", "a|203.0.113.7|0", "w2", 30.0)
        assert ledger.finish("job1", "a|203.0.113.7|0", "w1", "a", report("dddd00000004"))
        assert not ledger.finish("job1", "a|203.0.113.7|0", "w2", "b", report("eeee00000005"))
        assert take("w2") is Claim.DONE
        (record,) = ledger.tasks("job1")
        assert (record.status, record.worker, record.attempts) == ("done", "w1", 2)
        assert record.result is not None and record.result["scan"]["id"] == "dddd00000004"
        assert ledger.finished_tasks("job1") == {"a|203.0.113.7|0"}


def test_a_dead_workers_task_is_taken_over_once_its_lease_ran_out(location: str | Path) -> None:
    with open_store(location) as store:
        ledger = FleetLedger(store)
        ledger.begin_job("job2", ["home.example"], 1)
        assert ledger.claim("job2", "t", "", "203.0.113.7", "dead", -1.0) is Claim.CLAIMED
        assert ledger.claim("job2", "t", "", "203.0.113.7", "alive", 30.0) is Claim.CLAIMED
        assert ledger.fail("job2", "t", "alive", "", "ScanFailed: no raw sockets")
        (record,) = ledger.tasks("job2")
        assert record.status == "failed" and record.error == "ScanFailed: no raw sockets"


def test_tasks_no_worker_holds_are_found(location: str | Path) -> None:
    with open_store(location) as store:
        ledger = FleetLedger(store)
        ledger.begin_job("job4", ["home.example"], 3)
        ledger.claim("job4", "dead", "", "203.0.113.7", "w1", -60.0)
        ledger.claim("job4", "alive", "", "203.0.113.8", "w2", 30.0)
        assert ledger.unheld_tasks("job4", 10.0) == ({"dead", "alive"}, {"dead"})
        assert ledger.unheld_tasks("job4", 120.0) == ({"dead", "alive"}, set())


def test_tasks_of_a_cancelled_scan_are_not_run(location: str | Path) -> None:
    with open_store(location) as store:
        ledger = FleetLedger(store)
        ledger.begin_job("job3", ["home.example"], 2)
        ledger.end_job("job3", "cancelled")
        assert ledger.claim("job3", "t", "", "203.0.113.7", "w", 30.0) is Claim.ENDED
        assert ledger.claim("nojob", "t", "", "203.0.113.7", "w", 30.0) is Claim.ENDED
        ledger.begin_job("job5", ["home.example"], 1)  # its coordinator was killed long ago
        store._write(lambda db: db.execute(
            "UPDATE fleet_jobs SET alive_until = 0 WHERE job = 'job5'"))
        assert ledger.claim("job5", "t", "", "203.0.113.7", "w", 30.0) is Claim.ENDED
        ledger.keep_job("job5")  # ... or it is waiting after all
        assert ledger.claim("job5", "t", "", "203.0.113.7", "w", 30.0) is Claim.CLAIMED


def test_the_sqlite_store_is_still_the_plain_one(tmp_path: Path) -> None:
    store = open_store(tmp_path / "x.db")
    assert type(store) is Store
    store.close()
