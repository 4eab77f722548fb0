"""Command line for the lab.

python -m tests.lab run [--profile default|bare] -- CMD ARGS...
    start a lab, print its layout to stderr, run CMD inside the scan namespace, tear down,
    exit with CMD's exit code. CMD sees EXPOSURE_LAB_HOST, EXPOSURE_LAB_CA and
    EXPOSURE_LAB_ID in its environment.
python -m tests.lab cleanup [--force]
    delete namespaces left by crashed runs (--force: also those of labs still running).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from types import FrameType

from .netns import Lab, cleanup_stale_labs
from .nsutil import LabError
from .services import PROFILES


def _exit_on_signal(signum: int, _frame: FrameType | None) -> None:
    # SystemExit unwinds through the finally blocks, so the lab is torn down on SIGTERM/SIGHUP.
    raise SystemExit(128 + signum)


def _run(profile: str, command: list[str]) -> int:
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        print("usage: python -m tests.lab run [--profile P] -- CMD ARGS...", file=sys.stderr)
        return 2
    lab = Lab(profile=profile)
    try:
        lab.start()
        print(lab.describe(), file=sys.stderr)
        print(
            f"  started in {lab.start_seconds:.2f} s; running: {' '.join(command)}",
            file=sys.stderr,
            flush=True,
        )
        env = dict(
            os.environ,
            EXPOSURE_LAB_HOST=Lab.HOSTNAME,
            EXPOSURE_LAB_CA=str(lab.ca_pem),
            EXPOSURE_LAB_ID=lab.id,
        )
        proc = lab.popen_in_scan(command, env=env)
        try:
            return proc.wait()
        except BaseException:
            # Ctrl-C already reached CMD (same process group); give it a moment, then end it.
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            raise
    finally:
        lab.stop()
        print(f"lab {lab.id} torn down in {lab.stop_seconds or 0:.2f} s", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.lab",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="action", required=True)
    run = sub.add_parser("run", help="run a command in the scan namespace of a fresh lab")
    run.add_argument("--profile", choices=sorted(PROFILES), default="default")
    run.add_argument("command", nargs=argparse.REMAINDER)
    cleanup = sub.add_parser("cleanup", help="delete namespaces left by crashed runs")
    cleanup.add_argument("--force", action="store_true", help="also labs whose owner still runs")
    args = parser.parse_args(argv)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit_on_signal)
    try:
        if args.action == "cleanup":
            removed = cleanup_stale_labs(force=args.force)
            print("\n".join(removed) if removed else "no stale lab namespaces", file=sys.stderr)
            return 0
        return _run(args.profile, args.command)
    except LabError as exc:
        print(f"lab error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
