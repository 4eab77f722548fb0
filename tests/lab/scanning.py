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


CLI_AT_ONCE = 2  # scans run side by side in a test: one per core of the CI machine


def run_many(
    lab: Lab, variants: dict[str, tuple[list[str], dict[str, str]]], timeout: float = 180
) -> dict[str, CliRun]:
    """Run each (argv, extra environment) in the scan namespace, CLI_AT_ONCE at a time.

    More at once would starve each of CPU, and a scan whose reads wait out --timeout because
    its process is not scheduled finds less: a test comparing runs would compare load, not
    the scanner."""
    import os
    import time

    results: dict[str, CliRun] = {}
    names = list(variants)
    for start in range(0, len(names), CLI_AT_ONCE):
        batch = names[start : start + CLI_AT_ONCE]
        started = time.monotonic()
        processes = {
            name: lab.popen_in_scan(variants[name][0], stdout=-1, stderr=-1, text=True,
                                    env={**os.environ, **variants[name][1]})
            for name in batch
        }
        for name, process in processes.items():
            out, err = process.communicate(timeout=timeout)
            results[name] = CliRun(process.returncode, out, err, time.monotonic() - started)
    return results


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
