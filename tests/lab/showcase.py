"""The answer first, shown on a lab home with a critical and several high findings.

    python -m tests.lab.showcase OUTDIR        (as root; `make showcase OUT=OUTDIR`)

starts a lab whose home runs the default servers plus a never-onboarded Home Assistant
(replayed from a recording of a real one) and an open Node-RED, scans it from the scan
namespace with `-oA`, and writes to OUTDIR:

- terminal-100cols.txt / .ansi: the terminal report as tmux shows it at 100 columns (first 15
  lines in terminal-first-15-lines.txt), captured from a real pseudo-terminal;
- html-top.png: the top of the HTML report in headless Chromium (unshare -n: no network);
- summary.json: the JSON report's `summary`;
- bad-inputs.md: every bad input of tests/unit/test_cli_bad_input.py with its exit code and
  message, run through the real CLI against a loopback listener;
- home.{txt,json,md,html,sarif}: the reports themselves.

The same home is the one tests/lab/test_report_lab.py checks every format on.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.lab.netns import Lab
from tests.lab.nsutil import netns_argv
from tests.lab.scanning import EXPOSURE, LAB_SPEED
from tests.lab.services import Service, default_services
from tests.lab.support_ha import ha_replay
from tests.lab.support_hostile import chromium
from tests.lab.support_services import node_red, node_red_installed

REPO = Path(__file__).resolve().parents[2]
WIDTH, HEIGHT = 100, 60
FIRST_LINES = 15
HA_PORT, NODE_RED_PORT = 8123, 1880


def showcase_services() -> list[Service]:
    """The default home (two OpenSSH, nginx with the lab CA, anonymous mosquitto), plus a
    Home Assistant nobody onboarded (plain HTTP) and Node-RED without adminAuth."""
    services = [*default_services(), ha_replay("2024.1.6-fresh", HA_PORT)]
    if node_red_installed():
        services.append(node_red(NODE_RED_PORT))
    return services


def scan_args(lab: Lab, *extra: str) -> list[str]:
    return ["scan", Lab.HOSTNAME, "--ports", "top,2222", *LAB_SPEED, "--ca-file",
            str(lab.ca_pem), "--no-store", "--fail-on", "never", *extra]


def capture_in_tmux(lab: Lab, args: list[str], width: int = WIDTH) -> tuple[str, str]:
    """(plain text, with colours) of the command's screen in a tmux pane `width` columns wide:
    a real terminal, so the report is laid out and coloured as a user sees it."""
    socket_name = f"exposure-showcase-{os.getpid()}-{secrets.token_hex(2)}"
    session = "showcase"
    tmux = ["tmux", "-L", socket_name]
    command = shlex.join(netns_argv(lab.scan_ns, [*EXPOSURE, *args]))
    shell = f"cd {shlex.quote(str(REPO))} && {command}; tmux wait-for -S done; sleep 600"
    subprocess.run([*tmux, "-f", "/dev/null", "new-session", "-d", "-s", session, "-x",
                    str(width), "-y", str(HEIGHT), "env", "COLUMNS=", "LINES=", "sh", "-c",
                    shell], check=True, timeout=30)
    try:
        subprocess.run([*tmux, "set-option", "-t", session, "history-limit", "20000"],
                       check=True, timeout=10)
        subprocess.run([*tmux, "wait-for", "done"], check=True, timeout=300)
        plain = _capture(tmux, session, colours=False)
        coloured = _capture(tmux, session, colours=True)
    finally:
        subprocess.run([*tmux, "kill-server"], check=False, timeout=30)  # our socket only
    return plain, coloured


def _capture(tmux: list[str], session: str, *, colours: bool) -> str:
    argv = [*tmux, "capture-pane", "-p", "-J", "-S", "-", "-t", session]
    text = subprocess.run(argv + (["-e"] if colours else []), capture_output=True, text=True,
                          check=True, timeout=30).stdout
    return text.rstrip("\n") + "\n"


def screenshot_top(html: Path, width: int = 1200, height: int = 1100) -> bytes:
    with chromium() as browser:
        visit = browser.visit(html, screenshot_width=width, screenshot_height=height)
    assert visit.requests == [visit.url], visit.requests  # the page asked for nothing
    assert visit.screenshot is not None
    return visit.screenshot


def bad_input_rows() -> list[tuple[str, int, str]]:
    """(command, exit code, the line on stderr) for each bad input of the unit test's table."""
    from tests.unit.test_cli_bad_input import BAD_INPUTS, expand, make_files

    rows = []
    with tempfile.TemporaryDirectory(prefix="exposure-bad-input-") as scratch:
        for case in BAD_INPUTS:
            directory = Path(tempfile.mkdtemp(dir=scratch))
            make_files(directory)
            with socket.socket() as server:
                server.bind(("127.0.0.1", 0))
                server.listen(8)
                port = server.getsockname()[1]
                argv = expand(case.argv, directory, port)
                run = subprocess.run([*EXPOSURE, *argv], capture_output=True, text=True,
                                     timeout=60, cwd=REPO, check=False,
                                     env={**os.environ, "XDG_DATA_HOME": str(directory)})
            shown = ["exposure", *(part.replace(str(port), "$PORT") if part == str(port)
                                   else part for part in argv)]
            command = shlex.join(shown).replace(str(directory), "$TMP").replace("'$PORT'",
                                                                                  "$PORT")
            message = run.stderr.strip().replace(str(directory), "$TMP")
            rows.append((command, run.returncode, message))
    return rows


def bad_input_table(rows: list[tuple[str, int, str]]) -> str:
    lines = ["| command | exit | message (stderr) |", "|---|---|---|"]
    for command, code, message in rows:
        cell = message.replace("|", "\\|").replace("\n", "<br>")
        lines.append(f"| `{command}` | {code} | {cell} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    if shutil.which("tmux") is None:
        print("tmux is needed (tools/install-system-deps.sh installs it)", file=sys.stderr)
        return 1
    out = Path(argv[0]).resolve()
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with Lab(services=showcase_services()) as lab:
        base = out / "home"
        run = lab.run_in_scan([*EXPOSURE, *scan_args(lab, "-oA", str(base))], cwd=REPO,
                              capture_output=True, text=True, timeout=300, check=False)
        if run.returncode != 0:
            print(run.stderr, file=sys.stderr)
            return run.returncode
        plain, coloured = capture_in_tmux(lab, scan_args(lab))
    (out / "terminal-100cols.txt").write_text(plain)
    (out / "terminal-100cols.ansi").write_text(coloured)
    first = "\n".join(plain.splitlines()[:FIRST_LINES]) + "\n"
    (out / "terminal-first-15-lines.txt").write_text(first)
    (out / "html-top.png").write_bytes(screenshot_top(base.with_suffix(".html")))
    summary = json.loads(base.with_suffix(".json").read_text())["summary"]
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    rows = bad_input_rows()
    (out / "bad-inputs.md").write_text(bad_input_table(rows))
    print(first, end="")
    print(f"\n{len(rows)} bad inputs, exit codes {sorted({code for _, code, _ in rows})}; "
          f"written to {out} in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
