"""Run the exposure CLI inside the lab's scan namespace, as a user on the internet would."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from tests.lab.netns import Lab

EXPOSURE = [sys.executable, "-m", "scanner"]
LAB_SPEED = ["--rate", "20000", "--timeout", "0.5"]  # the lab is a veth away: microseconds


@dataclass
class CliRun:
    code: int
    stdout: str
    stderr: str
    seconds: float

    def json(self) -> dict[str, Any]:
        return json.loads(self.stdout)


def run_exposure(lab: Lab, *args: str, timeout: float = 120) -> CliRun:
    import time

    started = time.monotonic()
    completed = lab.run_in_scan(
        [*EXPOSURE, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    return CliRun(completed.returncode, completed.stdout, completed.stderr,
                  time.monotonic() - started)


def scan_json(lab: Lab, *args: str, timeout: float = 120) -> dict[str, Any]:
    run = run_exposure(lab, "scan", *args, "--format", "json", "--fail-on", "never",
                       timeout=timeout)
    assert run.code == 0, f"exit {run.code}: {run.stderr}"
    return run.json()


def port_states(target: dict[str, Any], state: str) -> set[int]:
    return {port["port"] for port in target["ports"] if port["state"] == state}


def run_as_nobody(lab: Lab, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """The CLI without privileges (no raw sockets), inside the scan namespace."""
    argv = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *EXPOSURE, *args]
    return lab.run_in_scan(argv, capture_output=True, text=True, timeout=timeout, check=False)
