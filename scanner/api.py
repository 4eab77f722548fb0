"""The library API: what the CLI calls, and what a user can call from Python.

    from scanner.api import ScanOptions, scan
    report = scan(["home.example"], ScanOptions(ports=(22, 443, 8123)))
    print(report.to_dict())

A scan is one streaming pipeline under one budget (scanner.net.ScanBudget): every address is
discovered in one pass, each open port is identified the moment discovery finds it, its checks
start as soon as it is identified, and every packet and connection of all of it takes from the
same rate bucket and connection caps (see scanner/pipeline.py).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Collection, Sequence

from scanner.core.report import ScanReport
from scanner.discovery import choose_engine
from scanner.net import ScanBudget
from scanner.options import ScanOptions
from scanner.pipeline import Pipeline, ScanObserver, ScanProgress
from scanner.targets import Target, parse_targets

__all__ = [
    "ScanObserver",
    "ScanOptions",
    "ScanProgress",
    "scan",
    "scan_targets",
]


def scan(
    inputs: Sequence[str],
    options: ScanOptions | None = None,
    progress: ScanProgress | None = None,
    observer: ScanObserver | None = None,
    skip_addresses: Collection[str] = (),
) -> ScanReport:
    """Resolve the inputs, then run the pipeline on every address at once.

    Raises BadInput for input that cannot be scanned and ScanFailed when the scan cannot
    run at all (e.g. the chosen engine is unavailable). A failure on one address is
    recorded in the report's errors and the scan goes on with the others. `progress` hears
    of each stage's advance (see ScanProgress); `observer` hears of each address's results as
    they complete (the history store writes them then); addresses in `skip_addresses` (a
    resumed scan has them already) are not scanned and not in the report.
    """
    options = options or ScanOptions()
    targets = parse_targets(
        list(inputs), allow_large_range=options.allow_large_range, family=options.family
    )
    return scan_targets(targets, options, progress, observer, skip_addresses)


def scan_targets(
    targets: Sequence[Target],
    options: ScanOptions,
    progress: ScanProgress | None = None,
    observer: ScanObserver | None = None,
    skip_addresses: Collection[str] = (),
) -> ScanReport:
    """scan() for addresses already resolved (a fleet worker gets one address and its name)."""
    engine = choose_engine(options.engine)
    budget = ScanBudget(options.limits())
    started_wall = _now()
    started = time.monotonic()
    report = ScanReport(
        id=uuid.uuid4().hex[:12],
        started_at=started_wall,
        finished_at=started_wall,
        duration_s=0.0,
        engine=engine.name,
        ports_requested=len(options.ports),
        budget=budget.describe(),
    )
    if observer:
        observer.scan_started(report, list(targets))
    to_scan = [target for target in targets if str(target.address) not in skip_addresses]
    Pipeline(to_scan, options, engine, budget, report, progress, observer).run()
    report.finished_at = _now()
    report.duration_s = time.monotonic() - started
    return report


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")

