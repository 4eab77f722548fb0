"""contrib/systemd: units systemd accepts, running a command line exposure accepts."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import typer

from scanner.cli import _register_commands, app

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "contrib" / "systemd"
INSTALLED_AT = "/usr/local/bin/exposure"


def _exec_start() -> list[str]:
    service = (UNITS / "exposure-check@.service").read_text()
    (line,) = [line for line in service.splitlines() if line.startswith("ExecStart=")]
    return shlex.split(line.removeprefix("ExecStart="))


def test_the_service_runs_a_command_line_the_cli_accepts() -> None:
    argv = _exec_start()
    assert argv[0] == INSTALLED_AT
    args = [part.replace("%i", "home.example.org") for part in argv[1:]]
    _register_commands()
    group = typer.main.get_command(app)
    assert args[0] == "watch"
    command = group.get_command(group.make_context("exposure", ["watch"]), "watch")
    assert command is not None
    parsed = command.make_context("watch", args[1:])  # raises on an option watch does not know
    assert parsed.params["once"] and parsed.params["targets"] == ["home.example.org"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    """systemd-analyze verify on an instance of the units, its ExecStart pointed at a real
    executable (the unit's own path exists only once the tool is installed there)."""
    executable = shutil.which("true") or "/bin/true"
    for name in ("exposure-check@.service", "exposure-check@.timer"):
        text = (UNITS / name).read_text().replace(INSTALLED_AT, executable)
        (tmp_path / name.replace("@.", "@home.example.org.")).write_text(text)
    units = sorted(str(path) for path in tmp_path.iterdir())
    run = subprocess.run(["systemd-analyze", "verify", *units], capture_output=True, text=True,
                         timeout=60, check=False)
    assert run.returncode == 0 and run.stderr.strip() == "", run.stderr
