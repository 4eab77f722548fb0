"""`exposure scan --broker ...`: send the tasks of a scan to the fleet, wait, merge the report.

A FleetScanner is called like scanner.api.scan (inputs, options) and returns the same
ScanReport, so the CLI's scan and watch use it in its place: they store, render and exit
exactly as for a single-machine scan.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from kombu.exceptions import OperationalError

from scanner.api import ScanOptions
from scanner.errors import ScanFailed
from scanner.fleet.app import TASK_NAME, describe_broker, make_app
from scanner.fleet.codec import read_ca_pem
from scanner.fleet.merge import merge_results
from scanner.fleet.spec import TaskSpec, plan_tasks, queue_for
from scanner.report.model import ScanReport
from scanner.store import StoreError
from scanner.store.fleet import FleetLedger, TaskRecord
from scanner.store.location import DbLocation, open_store
from scanner.targets import parse_targets

log = logging.getLogger("exposure.fleet")

FleetProgress = Callable[[int, int], None]  # (tasks finished, tasks in all)
POLL_S = 0.25
FAILURE_CHECK_S = 2.0
SEND_RETRY_POLICY = {"max_retries": 3, "interval_start": 0.5, "interval_step": 1.0,
                     "interval_max": 3.0}


@dataclass(frozen=True)
class FleetScanner:
    broker: str
    db: DbLocation
    vantages: tuple[str, ...] = ()
    result_backend: str | None = None
    timeout_s: float | None = None  # give up waiting (the report is then incomplete)

    def __call__(
        self, inputs: Sequence[str], options: ScanOptions, progress: FleetProgress | None = None,
    ) -> ScanReport:
        targets = parse_targets(list(inputs), allow_large_range=options.allow_large_range)
        try:
            ca_pem = read_ca_pem(options.checks.ca_file)
        except (OSError, ValueError) as error:
            raise ScanFailed(f"--ca-file cannot be sent to the workers: {error}") from error
        job = uuid.uuid4().hex[:12]
        plan = plan_tasks(job, targets, options, self.vantages, ca_pem)
        header = ScanReport(
            id=job, started_at=_now(), finished_at=_now(), duration_s=0.0,
            engine=options.engine, ports_requested=len(options.ports),
        )
        started = time.monotonic()
        app = make_app(self.broker, self.result_backend)
        try:
            records = self._run(app, job, inputs, plan, progress)
        finally:
            app.close()
        report = merge_results(header, plan, records, options.ports, self.vantages)
        report.budget = self._budget(options, plan, records)
        report.finished_at = _now()
        report.duration_s = time.monotonic() - started
        return report

    # --- sending and waiting ---------------------------------------------------------------

    def _run(
        self, app: Any, job: str, inputs: Sequence[str], plan: Sequence[TaskSpec],
        progress: FleetProgress | None,
    ) -> list[TaskRecord]:
        with open_store(self.db) as store:
            ledger = FleetLedger(store)
            ledger.begin_job(job, inputs, len(plan))
            ids = {f"{job}-{index}": spec.key for index, spec in enumerate(plan)}
            try:
                self._send(app, plan, list(ids))
                failures = self._wait(app, ledger, job, ids, progress)
            except BaseException:
                # Workers skip the tasks of a cancelled job; revoking saves them the look-up.
                with contextlib.suppress(StoreError):
                    ledger.end_job(job, "cancelled")
                with contextlib.suppress(Exception):
                    app.control.revoke(list(ids))
                raise
            ledger.end_job(job, "finished")
            records = ledger.tasks(job)
        stored = {record.task for record in records}
        return records + [
            TaskRecord(key, "", "", "failed", "", 0, None, None, why)
            for key, why in failures.items() if key not in stored
        ]

    def _send(self, app: Any, plan: Sequence[TaskSpec], ids: Sequence[str]) -> None:
        try:
            with app.producer_or_acquire() as producer:
                for task_id, spec in zip(ids, plan, strict=True):
                    app.send_task(
                        TASK_NAME, args=[spec.to_message()], task_id=task_id,
                        queue=queue_for(spec.vantage), producer=producer, retry=True,
                        retry_policy=SEND_RETRY_POLICY,
                    )
        except (OperationalError, OSError) as error:
            raise ScanFailed(
                f"the broker {describe_broker(self.broker)} cannot be reached: {error}"
            ) from error

    def _wait(
        self, app: Any, ledger: FleetLedger, job: str, ids: dict[str, str],
        progress: FleetProgress | None,
    ) -> dict[str, str]:
        """Until every task is stored or failed (or the timeout); the failures, by task key."""
        deadline = None if self.timeout_s is None else time.monotonic() + self.timeout_s
        failures: dict[str, str] = {}
        next_check = time.monotonic() + FAILURE_CHECK_S
        total = len(ids)
        while True:
            finished = ledger.finished_tasks(job)
            if progress is not None:
                progress(len(finished | set(failures)), total)
            if len(finished | set(failures)) >= total:
                return failures
            if deadline is not None and time.monotonic() >= deadline:
                log.warning("fleet timeout: %d of %d tasks unfinished", total - len(finished),
                            total)
                return failures
            if time.monotonic() >= next_check:
                failures.update(_failed(app, ids, finished | set(failures)))
                next_check = time.monotonic() + FAILURE_CHECK_S
            time.sleep(POLL_S)

    def _budget(
        self, options: ScanOptions, plan: Sequence[TaskSpec], records: Sequence[TaskRecord],
    ) -> dict[str, Any]:
        workers = sorted({record.worker for record in records if record.worker})
        return {
            "rate": options.discovery.rate,
            "timeout_s": options.discovery.timeout,
            "fleet": {
                "rate_is": "per address, across the fleet",
                "rate_per_task": plan[0].rate if plan else options.discovery.rate,
                "tasks": len(plan),
                "vantages": list(self.vantages),
                "workers": workers,
            },
        }


def _failed(app: Any, ids: dict[str, str], finished: set[str]) -> dict[str, str]:
    """Tasks Celery reports as failed for good (an error the worker could not retry away)."""
    failed = {}
    for task_id, key in ids.items():
        if key in finished:
            continue
        try:
            result = app.AsyncResult(task_id)
            if result.state == "FAILURE":
                failed[key] = f"the task failed: {result.result!r}"[:300]
        except Exception as error:  # the result backend is down: the ledger still counts
            log.warning("task states not readable: %s", error)
            break
    return failed


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
