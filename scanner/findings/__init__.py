"""Findings are data: what a check concluded, with evidence and a fix, independent of output."""

from scanner.findings.model import Finding, FindingSpec, Severity, worst

__all__ = ["Finding", "FindingSpec", "Severity", "worst"]
