"""`exposure worker`: a Celery worker that scans the addresses handed to it.

Each task is one address (or one port range of it) from one vantage. The worker claims it in
the ledger (a lease it renews while it scans), runs the single-machine pipeline on it
(scanner.api.scan_targets) with its own budget, stores the result and returns. What makes a
task safe to run twice: a task already done is not scanned again, one another worker holds
is retried later, and of two runs that both finish only the first is stored.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celery import Celery

from scanner.api import scan_targets
from scanner.errors import BadInput, ScanFailed
from scanner.fleet.app import DEFAULT_REDELIVERY_S, TASK_NAME, make_app
from scanner.fleet.codec import BadTask, ca_pem_of, options_from_message
from scanner.fleet.spec import DEFAULT_QUEUE, TaskSpec, queue_for
from scanner.store import StoreError
from scanner.store.fleet import Claim, FleetLedger
from scanner.store.location import DbLocation, open_store
from scanner.store.store import Store
from scanner.targets import parse_port_spec

log = logging.getLogger("exposure.fleet.worker")

DEFAULT_LEASE_S = 30.0
DEFAULT_CONCURRENCY = 8
STORE_RETRY_S = 5.0
STORE_RETRIES = 12  # a database that stays unreachable for a minute fails the task


@dataclass(frozen=True)
class WorkerSettings:
    db: DbLocation
    vantage: str = ""  # where this worker stands ('' : not said)
    rate: int = 2000  # this worker's own cap, all its tasks together
    concurrency: int = DEFAULT_CONCURRENCY
    lease_s: float = DEFAULT_LEASE_S
    identity: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")

    @property
    def rate_per_slot(self) -> int:
        return max(1, self.rate // self.concurrency)

    @property
    def queues(self) -> list[str]:
        return [DEFAULT_QUEUE, *([queue_for(self.vantage)] if self.vantage else [])]


class TaskBusy(Exception):
    """Another run of this task holds its lease: try again once it may have run out."""


class LeaseKeeper:
    """One thread renews the lease of every task this worker is running."""

    def __init__(self, settings: WorkerSettings) -> None:
        self._settings = settings
        self._held: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @contextmanager
    def keep(self, job: str, task: str) -> Iterator[None]:
        with self._lock:
            self._held.add((job, task))
            if self._thread is None:
                self._thread = threading.Thread(target=self._renew_forever, name="leases",
                                                daemon=True)
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._held.discard((job, task))

    def _renew_forever(self) -> None:
        store: Store | None = None
        while True:
            time.sleep(self._settings.lease_s / 3)
            with self._lock:
                held = sorted(self._held)
            if not held:
                continue
            try:
                store = store or open_store(self._settings.db)
                ledger = FleetLedger(store)
                for job, task in held:
                    ledger.renew(job, task, self._settings.identity, self._settings.lease_s)
            except StoreError as error:  # the next round tries again with a new connection
                log.warning("leases not renewed: %s", error)
                if store is not None:
                    store.close()
                store = None


class PartRunner:
    """What one task does, without Celery around it (the tests call it directly too)."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.leases = LeaseKeeper(settings)
        self._running: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._local = threading.local()

    def run(self, message: object) -> dict[str, Any]:
        spec = TaskSpec.from_message(message)
        key = (spec.job, spec.key)
        with self._lock:  # the same task redelivered to this worker while it scans it
            if key in self._running:
                raise TaskBusy(spec.key)
            self._running.add(key)
        try:
            return self._run(spec)
        finally:
            with self._lock:
                self._running.discard(key)

    def _run(self, spec: TaskSpec) -> dict[str, Any]:
        settings = self.settings
        claim = self._ledger_call(lambda ledger: ledger.claim(
            spec.job, spec.key, spec.vantage, spec.address, settings.identity, settings.lease_s))
        if claim is Claim.BUSY:
            raise TaskBusy(spec.key)
        summary: dict[str, Any] = {"task": spec.key, "worker": settings.identity,
                                   "seen_from": settings.vantage, "claim": str(claim)}
        if claim is not Claim.CLAIMED:
            return {**summary, "stored": False}
        started = time.monotonic()
        with self.leases.keep(spec.job, spec.key):
            report, error = self._scan(spec)
        if report is not None:
            stored = self._ledger_call(lambda ledger: ledger.finish(
                spec.job, spec.key, settings.identity, settings.vantage, report))
        else:
            stored = self._ledger_call(lambda ledger: ledger.fail(
                spec.job, spec.key, settings.identity, settings.vantage, error or "failed"))
        log.info("%s %s in %.2f s%s", spec.key, "stored" if stored else "already stored",
                 time.monotonic() - started, f": {error}" if error else "")
        return {**summary, "stored": stored, "seconds": round(time.monotonic() - started, 3)}

    def _scan(self, spec: TaskSpec) -> tuple[dict[str, Any] | None, str | None]:
        """The task's report, or why the scan could not run there (said once, for good)."""
        rate = min(spec.rate, self.settings.rate_per_slot)
        try:
            ca_pem = ca_pem_of(spec.options)
            with tempfile.TemporaryDirectory(prefix="exposure-task-") as scratch:
                ca_file = None
                if ca_pem is not None:
                    ca_file = Path(scratch) / "ca.pem"
                    ca_file.write_text(ca_pem, encoding="ascii", errors="replace")
                options = options_from_message(
                    spec.options, ports=parse_port_spec(spec.ports), rate=rate, ca_file=ca_file)
                if spec.part:  # UDP and InternetDB once per address, with its first range
                    options = dataclasses.replace(options, udp=False, internetdb_url=None)
                report = scan_targets([spec.target], options)
        except (BadTask, BadInput, ScanFailed) as error:
            return None, f"{type(error).__name__}: {error}"
        return report.to_dict(), None

    def _ledger_call(self, action: Any) -> Any:
        """`action(ledger)` on this thread's own connection; a broken one is opened again."""
        store = getattr(self._local, "store", None)
        try:
            if store is None:
                store = self._local.store = open_store(self.settings.db)
            return action(FleetLedger(store))
        except StoreError:
            if store is not None:
                store.close()
            self._local.store = None
            raise


def register_task(app: Celery, runner: PartRunner) -> Any:
    @app.task(name=TASK_NAME, bind=True, acks_late=True, reject_on_worker_lost=True,
              max_retries=None)
    def scan_part(self: Any, message: dict[str, Any]) -> dict[str, Any]:
        try:
            return runner.run(message)
        except BadTask as error:  # not a task of ours: acknowledged, never retried
            log.error("refused a task message: %s", error)
            return {"refused": str(error)}
        except TaskBusy:
            raise self.retry(countdown=runner.settings.lease_s / 2, max_retries=None) from None
        except StoreError as error:
            log.warning("database: %s; retrying in %.0f s", error, STORE_RETRY_S)
            raise self.retry(countdown=STORE_RETRY_S, max_retries=STORE_RETRIES,
                             exc=error) from None

    return scan_part


def run_worker(
    broker: str, settings: WorkerSettings, *, result_backend: str | None = None,
    redelivery_after_s: float = DEFAULT_REDELIVERY_S, loglevel: str = "INFO",
) -> int:
    """Serve the default queue (and the vantage's) until SIGTERM (warm: running tasks end)."""
    open_store(settings.db).close()  # fail now, with the store's message, not at each task
    app = make_app(broker, result_backend, redelivery_after_s=redelivery_after_s)
    register_task(app, PartRunner(settings))
    worker = app.Worker(
        pool="threads", concurrency=settings.concurrency, queues=settings.queues,
        hostname=f"{settings.vantage or 'any'}@{socket.gethostname()}-{os.getpid()}",
        loglevel=loglevel, without_gossip=True, without_mingle=True, without_heartbeat=True,
        optimization="fair", quiet=True,
    )
    worker.start()
    return int(worker.exitcode or 0)
