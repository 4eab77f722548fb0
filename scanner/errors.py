"""Errors that map to the CLI's exit codes (SPEC: 2 = bad input, 3 = scan could not run)."""


class BadInput(ValueError):
    """The user's input cannot be scanned as given (exit code 2)."""


class ScanFailed(RuntimeError):
    """The scan itself could not run, e.g. no privileges for the requested engine (exit code 3)."""
