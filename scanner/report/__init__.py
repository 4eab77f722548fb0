"""Report stage: renders a ScanReport (scanner.core.report) as a terminal report, JSON, HTML,
Markdown or SARIF."""
