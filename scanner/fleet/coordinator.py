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

from kombu.exceptions import ChannelError, OperationalError

from scanner.core.report import ScanReport
from scanner.errors import ScanFailed
from scanner.fleet.app import TASK_NAME, describe_broker, make_app
from scanner.fleet.codec import read_ca_pem
from scanner.fleet.merge import merge_results
from scanner.fleet.spec import TaskSpec, plan_tasks, queue_for
from scanner.options import ScanOptions
from scanner.pipeline import ScanObserver
from scanner.store import StoreError
from scanner.store.fleet import FleetLedger, TaskRecord
from scanner.store.location import DbLocation, open_store
from scanner.targets import parse_targets

log = logging.getLogger("exposure.fleet")

FleetProgress = Callable[[int, int], None]  # (tasks finished, tasks in all)
POLL_S = 0.25
FAILURE_CHECK_S = 2.0
NO_PROGRESS_WARNING_S = 15.0  # nothing finished by then: say which vantages have no worker
# Sending again what no worker holds. Redis hands a dead worker's unacknowledged messages to
# another one after the visibility timeout; a message is lost outright when a worker dies in
# the instant between taking it off the queue and recording it as unacknowledged, and
# redelivery waits minutes when it dies holding the broker's restore lock. The ledger shows
# both: a task whose lease ran out (its worker died) or that no worker ever started while its
# queue is empty. Such a task is sent again; the ledger makes a second copy harmless.
SWEEP_S = 5.0
STALE_LEASE_GRACE_S = 10.0
UNSTARTED_GRACE_S = 20.0
RESEND_AFTER_S = 60.0  # a task sent again is not sent once more before this
JOB_RENEW_S = 10.0  # the job's lease (store.fleet.JOB_LEASE_S) renewed this often
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
        observer: ScanObserver | None = None,
    ) -> ScanReport:
        """The fleet scan; `observer` (the history's ProgressWriter) hears of each address once
        all its tasks are done, so a coordinator killed mid-scan keeps what came back."""
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
        feed = None
        if observer is not None:
            observer.scan_started(header, targets)
            feed = _AddressFeed(observer, plan, options.ports, self.vantages)
        app = make_app(self.broker, self.result_backend)
        try:
            records, resent = self._run(app, job, inputs, plan, progress, feed)
        finally:
            app.close()
        report = merge_results(header, plan, records, options.ports, self.vantages)
        report.budget = self._budget(options, plan, records, resent)
        report.finished_at = _now()
        report.duration_s = time.monotonic() - started
        return report

    # --- sending and waiting ---------------------------------------------------------------

    def _run(
        self, app: Any, job: str, inputs: Sequence[str], plan: Sequence[TaskSpec],
        progress: FleetProgress | None, feed: _AddressFeed | None,
    ) -> tuple[list[TaskRecord], int]:
        with open_store(self.db) as store:
            ledger = FleetLedger(store)
            ledger.begin_job(job, inputs, len(plan))
            ids = {f"{job}-{index}": spec.key for index, spec in enumerate(plan)}
            try:
                self._send(app, plan, list(ids))
                failures, resent = self._wait(app, ledger, job, ids, plan, progress, feed)
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
        ], resent

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
        plan: Sequence[TaskSpec], progress: FleetProgress | None, feed: _AddressFeed | None,
    ) -> tuple[dict[str, str], int]:
        """Until every task is stored or failed (or the timeout): the failures, by task key,
        and how many tasks were sent again."""
        deadline = None if self.timeout_s is None else time.monotonic() + self.timeout_s
        failures: dict[str, str] = {}
        next_check = time.monotonic() + FAILURE_CHECK_S
        warn_at: float | None = time.monotonic() + NO_PROGRESS_WARNING_S
        sweeper = _Sweeper(self, app, ledger, job, ids, plan)
        renew_at = time.monotonic() + JOB_RENEW_S
        total = len(ids)
        while True:
            finished = ledger.finished_tasks(job)
            if warn_at is not None and (finished or time.monotonic() >= warn_at):
                if not finished:
                    self._warn_idle_vantages(app)
                warn_at = None
            if progress is not None:
                progress(len(finished | set(failures)), total)
            if len(finished | set(failures)) >= total:
                return failures, sweeper.resent
            if deadline is not None and time.monotonic() >= deadline:
                log.warning("fleet timeout: %d of %d tasks unfinished", total - len(finished),
                            total)
                return failures, sweeper.resent
            if time.monotonic() >= next_check:
                failures.update(_failed(app, ids, finished | set(failures)))
                next_check = time.monotonic() + FAILURE_CHECK_S
            sweeper.maybe_sweep(finished | set(failures))
            if time.monotonic() >= renew_at:
                ledger.keep_job(job)
                renew_at = time.monotonic() + JOB_RENEW_S
            if feed is not None:
                feed.update(ledger, job, finished)
            time.sleep(POLL_S)

    def _warn_idle_vantages(self, app: Any) -> None:
        """Nothing finished for a while: perhaps no worker serves a queue these tasks are in."""
        try:
            replies = app.control.inspect(timeout=1.0).active_queues() or {}
        except Exception as error:  # remote control unavailable: only the waiting goes on
            log.warning("no task finished yet; workers cannot be asked (%s)", error)
            return
        served = {queue["name"] for queues in replies.values() for queue in queues}
        missing = [vantage or "(any)" for vantage in (self.vantages or ("",))
                   if queue_for(vantage) not in served]
        if not replies:
            log.warning("no task finished yet, and no worker answers: start `exposure worker`")
        elif missing:
            log.warning("no task finished yet; no worker serves vantage %s", ", ".join(missing))

    def _budget(
        self, options: ScanOptions, plan: Sequence[TaskSpec], records: Sequence[TaskRecord],
        resent: int,
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
                "tasks_sent_again": resent,
            },
        }


class _AddressFeed:
    """Hands each address's merged report to the observer once all its tasks are done."""

    def __init__(self, observer: ScanObserver, plan: Sequence[TaskSpec], ports: Sequence[int],
                 vantages: Sequence[str]) -> None:
        self._observer = observer
        self._plan = plan
        self._ports = ports
        self._vantages = vantages
        self._pending: dict[str, set[str]] = {}
        for spec in plan:
            self._pending.setdefault(spec.address, set()).add(spec.key)

    def update(self, ledger: FleetLedger, job: str, finished: set[str]) -> None:
        done = [address for address, keys in self._pending.items() if keys <= finished]
        if not done:
            return
        keys = [key for address in done for key in self._pending.pop(address)]
        records = ledger.tasks(job, only=keys)
        plan = [spec for spec in self._plan if spec.address in done]
        scratch = ScanReport(id=job, started_at="", finished_at="", duration_s=0.0, engine="",
                             ports_requested=len(self._ports))
        for target in merge_results(scratch, plan, records, self._ports, self._vantages).targets:
            self._observer.target_done(target)


class _Sweeper:
    """Sends again the tasks no worker holds (see SWEEP_S)."""

    def __init__(self, scanner: FleetScanner, app: Any, ledger: FleetLedger, job: str,
                 ids: dict[str, str], plan: Sequence[TaskSpec]) -> None:
        self._scanner = scanner
        self._app = app
        self._ledger = ledger
        self._job = job
        self._by_key = {key: (task_id, spec) for (task_id, key), spec in zip(ids.items(), plan,
                                                                            strict=True)}
        self._next = time.monotonic() + SWEEP_S
        self._idle_since: float | None = None
        self._resent_at: dict[str, float] = {}

    def maybe_sweep(self, finished: set[str]) -> None:
        if time.monotonic() < self._next:
            return
        self._next = time.monotonic() + SWEEP_S
        started, stale = self._ledger.unheld_tasks(self._job, STALE_LEASE_GRACE_S)
        unstarted = set(self._by_key) - started - finished
        again = set(stale)
        if unstarted and self._queues_empty({self._by_key[key][1].vantage for key in unstarted}):
            self._idle_since = self._idle_since or time.monotonic()
            if time.monotonic() - self._idle_since >= UNSTARTED_GRACE_S:
                again |= unstarted
                self._idle_since = None
        else:
            self._idle_since = None
        now = time.monotonic()
        again = {key for key in again if now - self._resent_at.get(key, -RESEND_AFTER_S)
                 >= RESEND_AFTER_S}
        if again:
            log.info("sending %d task(s) again: no worker holds them", len(again))
            specs = [self._by_key[key] for key in sorted(again)]
            self._scanner._send(self._app, [spec for _, spec in specs],
                                [task_id for task_id, _ in specs])
            self._resent_at.update(dict.fromkeys(again, now))

    @property
    def resent(self) -> int:
        return len(self._resent_at)

    def _queues_empty(self, vantages: set[str]) -> bool:
        try:
            with self._app.connection_for_read() as connection:
                return all(_queue_length(connection, queue_for(vantage)) == 0
                           for vantage in vantages)
        except Exception as error:  # cannot tell: wait for the broker's own redelivery
            log.warning("queue lengths not readable: %s", error)
            return False


def _queue_length(connection: Any, queue: str) -> int:
    """Messages waiting in `queue`: 0 when the broker has no such queue (Redis keeps no
    empty list, so an empty queue does not exist there)."""
    channel = connection.channel()
    try:
        return int(channel.queue_declare(queue=queue, passive=True).message_count)
    except ChannelError as error:
        if getattr(error, "reply_code", None) == 404 or "NOT_FOUND" in str(error):
            return 0
        raise
    finally:
        with contextlib.suppress(Exception):
            channel.close()


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
