"""The fleet's ledger: which task of a fleet scan is running where, and what each one found.

One row per task (fleet_tasks, migration 3), keyed by (job, task): the worker that starts a
task claims it with a lease it keeps renewing; the first worker to finish it stores its result,
and any later run of the same task (a redelivered message, a retry) finds it done and stores
nothing. A worker killed mid-task stops renewing: once its lease has run out, the redelivered
task may be claimed by another worker. Leases are compared with the database's clock.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from scanner.store.store import Store

ERROR_CHARS = 500
# The coordinator renews its job while it waits; a job whose coordinator stopped renewing (it
# was killed) for this long is over: workers do not scan for a report nobody will make.
JOB_LEASE_S = 60.0


class Claim(enum.StrEnum):
    CLAIMED = "claimed"  # the caller runs the task now
    DONE = "done"  # already finished (or failed for good): nothing to do
    BUSY = "busy"  # another worker holds a live lease: try again later
    ENDED = "ended"  # the fleet scan is over (finished or cancelled): do not scan


@dataclass(frozen=True)
class TaskRecord:
    task: str
    vantage: str
    address: str
    status: str
    worker: str
    attempts: int
    seen_from: str | None
    result: dict[str, Any] | None
    error: str | None


class FleetLedger:
    """Fleet tasks in a Store (PostgreSQL for a real fleet; SQLite works on one machine)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # --- the coordinator ---------------------------------------------------------------------

    def begin_job(self, job: str, inputs: Sequence[str], tasks: int) -> None:
        now = self.store.dialect.epoch_now
        self.store._write(lambda db: db.execute(
            "INSERT INTO fleet_jobs (job, status, inputs, tasks, alive_until, started_at)"
            f" VALUES (?, 'running', ?, ?, {now} + ?, ?)",
            (job, json.dumps(list(inputs), ensure_ascii=True), tasks, JOB_LEASE_S, _now())))

    def keep_job(self, job: str) -> None:
        """The coordinator is still waiting for this job."""
        now = self.store.dialect.epoch_now
        self.store._write(lambda db: db.execute(
            f"UPDATE fleet_jobs SET alive_until = {now} + ? WHERE job = ?", (JOB_LEASE_S, job)))

    def end_job(self, job: str, status: str) -> None:
        if status not in ("finished", "cancelled"):
            raise ValueError(f"not an end of a fleet job: {status}")
        self.store._write(lambda db: db.execute(
            "UPDATE fleet_jobs SET status = ?, finished_at = ?"
            " WHERE job = ? AND status = 'running'",
            (status, _now(), job)))

    def tasks(self, job: str, only: Sequence[str] | None = None) -> list[TaskRecord]:
        """The job's task rows (`only` these tasks, when given), with their results."""
        query = ("SELECT task, vantage, address, status, worker, attempts, seen_from, result,"
                 " error FROM fleet_tasks WHERE job = ?")
        chunks: list[list[str] | None] = [None]
        if only is not None:
            keys = list(only)
            chunks = [keys[start:start + 500] for start in range(0, len(keys), 500)]
        rows: list[Any] = []
        for chunk in chunks:
            where = "" if chunk is None else f" AND task IN ({', '.join('?' * len(chunk))})"
            rows += self._select(query + where + " ORDER BY task", (job, *(chunk or ())))
        return [
            TaskRecord(task, vantage, address, status, worker, attempts, seen_from,
                       json.loads(result) if result else None, error)
            for task, vantage, address, status, worker, attempts, seen_from, result, error in rows
        ]

    def _select(self, query: str, parameters: Sequence[Any]) -> list[Any]:
        return list(self.store._read(lambda db: db.execute(query, parameters).fetchall()))

    def finished_count(self, job: str) -> int:
        (count,) = self.store._read(lambda db: db.execute(
            "SELECT COUNT(*) FROM fleet_tasks WHERE job = ? AND status <> 'running'",
            (job,)).fetchone())
        return int(count)

    def finished_tasks(self, job: str) -> set[str]:
        """The tasks of `job` done or failed for good."""
        rows = self.store._read(lambda db: db.execute(
            "SELECT task FROM fleet_tasks WHERE job = ? AND status <> 'running'",
            (job,)).fetchall())
        return {task for (task,) in rows}

    def unheld_tasks(self, job: str, grace_s: float) -> tuple[set[str], set[str]]:
        """(tasks some worker started, tasks whose lease ran out more than grace_s ago): the
        second are held by no one, their worker gone and their message perhaps with it."""
        now = self.store.dialect.epoch_now
        rows = self.store._read(lambda db: db.execute(
            f"SELECT task, status = 'running' AND lease_until < {now} - ? FROM fleet_tasks"
            " WHERE job = ?", (grace_s, job)).fetchall())
        return {task for task, _ in rows}, {task for task, stale in rows if stale}

    # --- a worker ----------------------------------------------------------------------------

    def claim(
        self, job: str, task: str, vantage: str, address: str, worker: str, lease_s: float,
    ) -> Claim:
        """Take the task for `lease_s` seconds, unless it is done, held, or its scan is over."""
        now = self.store.dialect.epoch_now

        def take(db: Any) -> Claim:
            alive = db.execute(
                "SELECT 1 FROM fleet_jobs WHERE job = ? AND status = 'running'"
                f" AND (alive_until IS NULL OR alive_until >= {now})", (job,)).fetchone()
            if alive is None:
                return Claim.ENDED
            inserted = db.execute(
                "INSERT INTO fleet_tasks (job, task, vantage, address, status, worker,"
                f" lease_until, attempts) VALUES (?, ?, ?, ?, 'running', ?, {now} + ?, 1)"
                " ON CONFLICT (job, task) DO NOTHING",
                (job, task, vantage, address, worker, lease_s)).rowcount
            if inserted:
                return Claim.CLAIMED
            taken = db.execute(
                f"UPDATE fleet_tasks SET worker = ?, lease_until = {now} + ?,"
                " attempts = attempts + 1 WHERE job = ? AND task = ? AND status = 'running'"
                f" AND (lease_until < {now} OR worker = ?)",
                (worker, lease_s, job, task, worker)).rowcount
            if taken:
                return Claim.CLAIMED
            row = db.execute("SELECT status FROM fleet_tasks WHERE job = ? AND task = ?",
                             (job, task)).fetchone()
            return Claim.BUSY if row is not None and row[0] == "running" else Claim.DONE

        return self.store._write(take)

    def renew(self, job: str, task: str, worker: str, lease_s: float) -> bool:
        """Keep the lease; False when the task is no longer ours (lease lost, or done)."""
        now = self.store.dialect.epoch_now
        return bool(self.store._write(lambda db: db.execute(
            f"UPDATE fleet_tasks SET lease_until = {now} + ? WHERE job = ? AND task = ?"
            " AND worker = ? AND status = 'running'", (lease_s, job, task, worker)).rowcount))

    def finish(
        self, job: str, task: str, worker: str, seen_from: str, result: dict[str, Any],
    ) -> bool:
        """Store the task's report; False when another run of it stored one first."""
        text = json.dumps(result, ensure_ascii=True)
        return self._end(job, task, worker, seen_from, "done", text, None)

    def fail(self, job: str, task: str, worker: str, seen_from: str, error: str) -> bool:
        """The task cannot be done (the scan could not run there): said once, for good."""
        return self._end(job, task, worker, seen_from, "failed", None, error[:ERROR_CHARS])

    def _end(
        self, job: str, task: str, worker: str, seen_from: str, status: str,
        result: str | None, error: str | None,
    ) -> bool:
        # Whoever finishes first wins, lease or not: the work is done, and a lease that ran out
        # while a slow worker went on does not make its result wrong.
        return bool(self.store._write(lambda db: db.execute(
            "UPDATE fleet_tasks SET status = ?, worker = ?, seen_from = ?, result = ?,"
            " error = ?, finished_at = ?, lease_until = NULL"
            " WHERE job = ? AND task = ? AND status = 'running'",
            (status, worker, seen_from, result, error, _now(), job, task)).rowcount))


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
