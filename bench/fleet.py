"""The fleet next to the single-process scan: 64 lab addresses, 1 and 2 workers, one run.

    python -m bench.fleet

The fleet lab (tests/lab/fleet.py): real redis-server and PostgreSQL in a control namespace,
worker a in the lab's scan namespace, worker b in a second internet; 64 home addresses, each
with its own open ports. Each contender scans all 64 with the same options; its wall time is
the whole command (process start included, for all alike). Per-address results (ports, what
runs there, finding ids) are compared with the single-process scan's.

On 2 cores the point is correctness and overhead, not speed-up: the single process scans all
64 addresses in one pipeline (one discovery pass), a worker scans up to --concurrency of them
at once, each with its own discovery pass, and every task also goes through the broker and
PostgreSQL. The overhead is shown two ways: the wall-time difference per address, and the
time a task spends outside its scan (waiting for a slot excluded).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psycopg

from tests.lab.fleet import PORTS, TARGETS, FleetLab, Worker
from tests.lab.scanning import EXPOSURE

RESULTS = Path(__file__).parent / "results"
SPEED = ["--rate", "20000", "--timeout", "0.5"]
CONCURRENCY = 8


@dataclass
class Measurement:
    name: str
    workers: int
    wall_s: float
    addresses: int
    same_as_single: int  # addresses whose results equal the single-process scan's
    mean_task_scan_s: float | None = None  # one address's pipeline inside a worker
    task_overhead_ms: float | None = None  # per task, in the worker: claim, options, store
    coordinator_s: float | None = None  # wall time outside the workers' busy span

    @property
    def per_address_ms(self) -> float:
        return self.wall_s / self.addresses * 1000


def per_address(report: dict[str, Any]) -> dict[str, Any]:
    return {
        target["address"]: (
            sorted((p["port"], p["state"], p["service"], p["product"], p["version"])
                   for p in target["ports"]),
            sorted((f["id"], f["port"]) for f in target["findings"]),
        )
        for target in report["targets"]
    }


def single_process(lab: FleetLab, addresses: tuple[str, ...]) -> tuple[float, dict[str, Any]]:
    started = time.monotonic()
    completed = lab.lab.run_in_scan(
        [*EXPOSURE, "scan", *addresses, "--ports", PORTS, *SPEED, "--format", "json",
         "--fail-on", "never", "--no-store"], capture_output=True, text=True, timeout=600,
        check=False)
    wall = time.monotonic() - started
    if completed.returncode != 0:
        raise SystemExit(f"single-process scan failed: {completed.stderr}")
    return wall, json.loads(completed.stdout)


def fleet_run(lab: FleetLab, addresses: tuple[str, ...], database: str) -> tuple[float, dict]:
    started = time.monotonic()
    completed = lab.run_coordinator(
        "scan", *addresses, "--ports", PORTS, *SPEED, "--broker", lab.broker(None),
        "--db", lab.db(database, None), "--format", "json", "--fail-on", "never",
        "--fleet-timeout", "600", timeout=700)
    wall = time.monotonic() - started
    if completed.returncode != 0:
        raise SystemExit(f"fleet scan failed: {completed.stderr}")
    return wall, json.loads(completed.stdout)


def task_scan_seconds(lab: FleetLab, database: str, job: str) -> list[float]:
    """How long each task's own pipeline took (its one-address report's duration)."""
    with psycopg.connect(lab.postgres.url(database)) as connection:  # type: ignore[attr-defined]
        rows = connection.execute(
            "SELECT result FROM exposure.fleet_tasks WHERE job = %s AND status = 'done'",
            (job,)).fetchall()
    return [json.loads(result)["scan"]["duration_s"] for (result,) in rows]


_LOG_LINE = re.compile(
    r"^\[(?P<when>[\d-]+ [\d:]+,\d+): INFO/MainProcess\] Task exposure\.scan_part"
    r"\[(?P<id>[^\]]+)\] (?P<what>received|succeeded in (?P<seconds>[\d.]+)s)")


def worker_timings(workers: list[Worker], job: str) -> tuple[list[float], float]:
    """From the workers' logs: each task's run time, and the span from the first task received
    to the last one done (all workers)."""
    run_times, moments = [], []
    for worker in workers:
        for line in worker.log_text().splitlines():
            match = _LOG_LINE.match(line)
            if match is None or not match["id"].startswith(f"{job}-"):
                continue
            moments.append(dt.datetime.strptime(match["when"], "%Y-%m-%d %H:%M:%S,%f"))
            if match["seconds"]:
                run_times.append(float(match["seconds"]))
    span = (max(moments) - min(moments)).total_seconds() if moments else 0.0
    return run_times, span


def measure_fleet(
    lab: FleetLab, addresses: tuple[str, ...], workers: int, single: dict[str, Any],
) -> Measurement:
    database = f"bench{workers}"
    lab.create_database(database)
    started = [lab.start_worker(internet, database, extra=["--concurrency", str(CONCURRENCY)])
               for internet in ("a", "b")[:workers]]
    try:
        fleet_run(lab, addresses[:4], database)  # warm: first connections, imports
        wall, report = fleet_run(lab, addresses, database)
    finally:
        for worker in started:
            worker.stop()
    scans = task_scan_seconds(lab, database, report["scan"]["id"])
    mean = sum(scans) / len(scans) if scans else 0.0
    run_times, busy = worker_timings(started, report["scan"]["id"])
    overhead = (sum(run_times) / len(run_times) - mean) * 1000 if run_times else None
    expected = per_address(single)
    found = per_address(report)
    same = sum(1 for address in expected if found.get(address) == expected[address])
    return Measurement(f"fleet, {workers} worker{'s' if workers > 1 else ''} x{CONCURRENCY}",
                       workers, wall, len(addresses), same, mean, overhead, wall - busy)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--addresses", type=int, default=64)
    args = parser.parse_args()
    addresses = TARGETS[: args.addresses]
    RESULTS.mkdir(exist_ok=True)
    with FleetLab(addresses) as lab:
        print(f"fleet lab: {len(addresses)} home addresses, ports {PORTS}\n", flush=True)
        single_process(lab, addresses[:4])  # warm, as the fleet runs are
        wall, single = single_process(lab, addresses)
        results = [Measurement("single process", 0, wall, len(addresses),
                               len(per_address(single)))]
        print(f"  measured single process: {wall:.2f} s", flush=True)
        for workers in (1, 2):
            results.append(measure_fleet(lab, addresses, workers, single))
            print(f"  measured {results[-1].name}: {results[-1].wall_s:.2f} s", flush=True)
    print_table(results)
    (RESULTS / "fleet.json").write_text(json.dumps(
        [{**asdict(r), "per_address_ms": r.per_address_ms} for r in results], indent=2))
    return 0 if all(r.same_as_single == r.addresses for r in results) else 1


def print_table(results: list[Measurement]) -> None:
    single = results[0]
    print(f"\n{'contender':24} {'wall s':>7} {'ms/address':>11} {'same results':>13} "
          f"{'vs single, ms/address':>22} {'task scan s':>12} {'task overhead ms':>17} "
          f"{'coordinator s':>14}")
    for result in results:
        extra = (result.wall_s - single.wall_s) / result.addresses * 1000
        task = f"{result.mean_task_scan_s:.2f}" if result.mean_task_scan_s is not None else "-"
        overhead = f"{result.task_overhead_ms:.0f}" if result.task_overhead_ms is not None else "-"
        outside = f"{result.coordinator_s:.2f}" if result.coordinator_s is not None else "-"
        print(f"{result.name:24} {result.wall_s:7.2f} {result.per_address_ms:11.1f} "
              f"{result.same_as_single:>6}/{result.addresses:<6} "
              f"{'' if result is single else f'{extra:+.1f}':>22} {task:>12} {overhead:>17} "
              f"{outside:>14}")
    print("\ntask scan s: one address's pipeline in a worker (its report's duration); task "
          "overhead: a task's run time in the worker beyond that (claim, lease, options, "
          "storing); coordinator s: wall time outside the workers' busy span (start-up, "
          "sending, waiting for the last poll, merging, printing).")


if __name__ == "__main__":
    raise SystemExit(main())
