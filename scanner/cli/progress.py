"""Progress on stderr, fed by (stage, target, done, total) events.

The pipeline reports what it did as events; this turns them into a rich progress bar per
stage and address (only when stderr is a terminal) and into `-v` log lines when a stage
starts and ends. Anything that can say "stage X of target T: done of total" can feed it,
as often as it likes (per port, per probe):

    with ProgressDisplay(stderr_console()) as progress:
        progress.event("discovery", "203.0.113.10", 120, 1000)
        report = scan(targets, options, progress=progress.scan_callback)
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from scanner.core.text import safe_text
from scanner.targets import Target

log = logging.getLogger("exposure.progress")

# What the total of each stage counts, for the -v lines.
STAGE_UNITS = {
    "discovery": "probes",
    "identification": "open ports",
    "checks": "open ports",
    "udp": "UDP probe rounds",
}
# Stages that are a running count, not a part of a whole (total 0): "open" ports found so far.
COUNTS = {"open": "open ports found"}
WHOLE_SCAN = "all addresses"
# Discovery reports from its sending thread, as often as it sends: redraw at most this often
# (the first and the last event of a stage always pass), so progress never slows the scan.
MIN_INTERVAL_S = 0.1


@dataclass(frozen=True)
class ProgressEvent:
    stage: str  # discovery, identification, checks, udp (more may come)
    target: str  # the address (or name) the stage works on
    done: int
    total: int

    @property
    def key(self) -> tuple[str, str]:
        return (self.target, self.stage)


class ProgressDisplay:
    """Bars on a terminal (transient: gone when the scan ends), -v logs everywhere."""

    def __init__(self, console: Console, *, bars: bool | None = None) -> None:
        self.console = console
        self.bars = console.is_terminal if bars is None else bars
        self._progress: Progress | None = None
        self._tasks: dict[tuple[str, str], TaskID] = {}
        self._seen: dict[tuple[str, str], ProgressEvent] = {}  # the last event of each stage
        self._shown_at: dict[tuple[str | None, str], float] = {}

    def __enter__(self) -> ProgressDisplay:
        if self.bars:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),  # the ETA of a long discovery
                console=self.console,
                transient=True,
                # stdout is the report's alone: never route it through the live display
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        if kind is None:  # totals grow while a scan streams: only the end knows them
            for event in self._seen.values():
                unit = STAGE_UNITS.get(event.stage, "steps")
                log.info("%s: %s: %d of %d %s", event.target, event.stage, event.done,
                         event.total, unit)

    def event(self, stage: str, target: str, done: int, total: int) -> None:
        self.show(ProgressEvent(safe_text(stage, 32), safe_text(target, 128), max(done, 0),
                                max(total, 0)))

    def show(self, event: ProgressEvent) -> None:
        self._log(event)
        if self._progress is None:
            return
        counted = event.stage in COUNTS
        # A count shows as a full bar of what was found so far; a stage as done of total.
        total = event.done if counted else event.total
        task = self._tasks.get(event.key)
        if task is None:
            label = COUNTS.get(event.stage, event.stage)
            task = self._progress.add_task(f"{event.target}: {label}", total=total)
            self._tasks[event.key] = task
        self._progress.update(task, completed=event.done, total=total)

    @property
    def active(self) -> bool:
        """Whether anyone sees the events: bars on a terminal, or -v lines."""
        return self.bars or log.isEnabledFor(logging.INFO)

    def scan_callback(self, target: Target | None, stage: str, done: int, total: int) -> None:
        """scanner.api.ScanProgress: the library's callback (target None: the whole scan)."""
        key = (None if target is None else str(target.address), stage)
        now = time.monotonic()
        last = self._shown_at.get(key)
        if last is not None and now - last < MIN_INTERVAL_S and not (total and done >= total):
            return
        self._shown_at[key] = now
        self.event(stage, WHOLE_SCAN if key[0] is None else key[0], done, total)

    def _log(self, event: ProgressEvent) -> None:
        if event.stage in COUNTS:
            log.debug("%s: %s: %d", event.target, COUNTS[event.stage], event.done)
            return
        if event.key not in self._seen:
            log.info("%s: %s started", event.target, event.stage)
        else:
            log.debug("%s: %s %d/%d", event.target, event.stage, event.done, event.total)
        self._seen[event.key] = event
