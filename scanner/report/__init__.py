"""Report stage: render a ScanReport as a table, JSON, ..."""

from scanner.report.model import PortReport, ScanReport, TargetReport

__all__ = ["PortReport", "ScanReport", "TargetReport"]
