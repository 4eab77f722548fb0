"""Findings are data: what a check concluded, with evidence and a fix, independent of output."""

from scanner.findings.model import Finding, Severity

__all__ = ["Finding", "Severity"]
