"""Diff of two scans (the model is scanner.core.diff), a baseline of expected ports, a renderer."""

from scanner.core.diff import (
    DIFF_SCHEMA,
    BaselineViolation,
    Change,
    ChangeKind,
    ReportDiff,
    ScanRef,
)
from scanner.diff.baseline import PORT_UNEXPECTED, Baseline, apply_baseline, load_baseline
from scanner.diff.compute import Side, diff_reports

__all__ = [
    "DIFF_SCHEMA",
    "PORT_UNEXPECTED",
    "Baseline",
    "BaselineViolation",
    "Change",
    "ChangeKind",
    "ReportDiff",
    "ScanRef",
    "Side",
    "apply_baseline",
    "diff_reports",
    "load_baseline",
]
