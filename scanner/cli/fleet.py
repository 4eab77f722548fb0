"""`exposure worker`, and the --broker/--vantage options `scan` and `watch` share.

Celery and the PostgreSQL driver are imported only here, and only when a fleet option is
used: a single-machine user needs neither (`pip install 'exposure[fleet]'` brings them).
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Annotated

import typer

from scanner.cli import app
from scanner.errors import BadInput, ScanFailed

if TYPE_CHECKING:
    from scanner.fleet.coordinator import FleetScanner
    from scanner.store.location import DbLocation

BrokerOption = Annotated[
    str | None,
    typer.Option("--broker",
                 help="Run the scan on a fleet of workers: redis://HOST:6379/0 (needs --db "
                      "postgresql://...)."),
]
VantageOption = Annotated[
    list[str] | None,
    typer.Option("--vantage", help="With --broker: scan from the workers of this vantage "
                                   "(repeatable: each address from each vantage, compared)."),
]
FleetTimeoutOption = Annotated[
    float | None,
    typer.Option("--fleet-timeout", help="With --broker: stop waiting for the workers after "
                                         "this many seconds (the report is then incomplete)."),
]


def fleet_scanner(
    broker: str | None, db: str | None, vantages: list[str] | None, timeout_s: float | None,
) -> FleetScanner | None:
    """The scan function of a fleet scan, or None for a scan on this machine."""
    if broker is None:
        if vantages:
            raise BadInput("--vantage needs --broker (vantages are where fleet workers stand)")
        return None
    location = _fleet_db(db)
    names = _vantages(vantages or [])
    if timeout_s is not None and timeout_s <= 0:
        raise BadInput("--fleet-timeout must be positive")
    coordinator = _import_fleet("scanner.fleet.coordinator")
    scanner: FleetScanner = coordinator.FleetScanner(
        broker, location, tuple(names), timeout_s=timeout_s)
    return scanner


def _fleet_db(db: str | None) -> str:
    from scanner.store.location import default_location, describe, is_postgres, parse_location

    location: DbLocation = parse_location(db) if db is not None else default_location()
    if not is_postgres(location):
        raise BadInput(
            f"--broker needs --db postgresql://USER@HOST/DB (not {describe(location)}): the "
            "workers store their results where the coordinator reads them"
        )
    return str(location)


def _vantages(names: list[str]) -> list[str]:
    from scanner.fleet.spec import check_vantage

    checked = [check_vantage(name.strip().lower()) for name in names]
    if len(set(checked)) != len(checked):
        raise BadInput("--vantage: each vantage once")
    return checked


def _import_fleet(module: str) -> ModuleType:
    import importlib

    from scanner.store.location import FLEET_EXTRA

    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ScanFailed(f"fleet scans need Celery and psycopg ({error.name} is missing): "
                         f"{FLEET_EXTRA}") from error


@app.command("worker")
def worker_command(
    broker: Annotated[str, typer.Option("--broker", envvar="EXPOSURE_BROKER",
                                        help="The broker: redis://HOST:6379/0.")],
    db: Annotated[str, typer.Option("--db", envvar="EXPOSURE_DB",
                                    help="Where results go: postgresql://USER@HOST/DB.")],
    vantage: Annotated[
        str | None, typer.Option(help="Where this worker stands (a name): it takes the tasks "
                                      "of scans asking for this vantage, and any others.")
    ] = None,
    rate: Annotated[
        int, typer.Option(help="Packets (or connection attempts) per second this worker "
                               "sends, all its tasks together, never exceeded.")
    ] = 2000,
    concurrency: Annotated[int, typer.Option(help="Tasks (addresses) scanned at once.")] = 8,
    redelivery_after: Annotated[
        float, typer.Option(help="Seconds after which the broker hands the task of a worker "
                                 "that died to another one; longer than a task lasts.")
    ] = 600.0,
    lease: Annotated[
        float, typer.Option(help="Seconds a task stays claimed by a worker that stopped "
                                 "renewing it (it renews every third of that).")
    ] = 30.0,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
) -> int:
    """Scan the addresses a fleet scan hands out (until SIGTERM: running tasks finish)."""
    if rate < 1 or not 1 <= concurrency <= 256:
        raise BadInput("--rate must be >= 1 and --concurrency between 1 and 256")
    if redelivery_after < 5 or lease < 3:
        raise BadInput("--redelivery-after must be >= 5 s and --lease >= 3 s")
    location = _fleet_db(db)
    worker = _import_fleet("scanner.fleet.worker")
    settings = worker.WorkerSettings(
        db=location, vantage=_vantages([vantage])[0] if vantage else "", rate=rate,
        concurrency=concurrency, lease_s=lease,
    )
    return int(worker.run_worker(
        broker, settings, redelivery_after_s=redelivery_after, loglevel=loglevel.upper()))
