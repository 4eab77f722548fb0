"""`exposure watch`: the scan loop with jitter, history and alerts on change."""

from scanner.monitor.schedule import next_delay, parse_interval
from scanner.monitor.watch import IterationResult, Watcher, WatchOptions

__all__ = ["IterationResult", "WatchOptions", "Watcher", "next_delay", "parse_interval"]
