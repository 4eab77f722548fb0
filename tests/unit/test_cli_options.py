"""One CLI: `watch` takes scan's options with the same meaning and help, one ScanOptions
builder serves both, `scan`, `show` and `watch` render through one function, and the CLI
starts without importing the stages a command does not use. Real scans of loopback ports."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

import scanner.cli.render as render_module
from scanner.cli import _register_commands, app, main
from scanner.cli.options import (
    ENGINE_NAMES,
    INTERNETDB_DEFAULT_URL,
    SHAPING_OPTIONS,
    scan_options,
    scan_settings,
)
from scanner.cli.outputs import OutputFormat

REPO = Path(__file__).resolve().parents[2]
# Every option of `scan` that shapes what is scanned, where it is kept and how loudly: what
# `watch` runs every interval. (Output, --fail-on, --severity, --quiet, --resume are scan's.)
SCAN_AND_WATCH = (*SHAPING_OPTIONS, "db", "no_store", "baseline", "verbose", "debug",
                  "no_color", "broker", "vantage", "fleet_timeout")


def _commands() -> dict[str, Any]:
    """Every command as typer builds it (typer ships its own click: its types stay Any)."""
    _register_commands()
    group: Any = typer.main.get_command(app)
    return dict(group.commands)


def _params(command: Any) -> dict[str, Any]:
    return {param.name: param for param in command.params if param.name}


def _described(param: Any) -> tuple[object, ...]:
    """What a user sees of an option: its flags, help, default, whether it takes a value."""
    return (tuple(param.opts), tuple(param.secondary_opts), getattr(param, "help", None),
            param.default, getattr(param, "is_flag", None), param.multiple,
            getattr(param, "envvar", None))


def test_watch_takes_every_scan_option_with_the_same_flags_help_and_default() -> None:
    commands = _commands()
    scan, watch = _params(commands["scan"]), _params(commands["watch"])
    for name in SCAN_AND_WATCH:
        assert name in scan, name
        assert name in watch, f"watch lacks scan's {scan[name].opts}"
        assert _described(watch[name]) == _described(scan[name]), name


def test_options_shared_with_preflight_and_show_say_the_same() -> None:
    commands = _commands()
    scan = _params(commands["scan"])
    preflight, show = _params(commands["preflight"]), _params(commands["show"])
    for name in ("ca_file", "timeout"):
        assert _described(preflight[name]) == _described(scan[name]), name
    for name in ("output_format", "output", "output_all", "shodan", "db"):
        assert _described(show[name]) == _described(scan[name]), name


def _built(command: str, argv: list[str]) -> Any:
    context = _commands()[command].make_context(command, list(argv))  # it consumes the list
    return scan_options(scan_settings(context.params))


def test_scan_and_watch_build_the_same_scan_from_the_same_options() -> None:
    pem = REPO / "scanner" / "checks" / "tls" / "intermediates.pem"  # certificates: a CA file
    argv = ["127.0.0.1:8443", "-p", "22,80-90", "--exclude-ports", "85", "-4", "--engine",
            "connect", "--rate", "300", "--timeout", "0.7", "--retries", "0", "--active",
            "--ssh-auth-probe", "--ssh-host-keys", "--udp", "--resolver-test-name", "x.test",
            "--internetdb", "--internetdb-url", "http://127.0.0.1:9/", "--allow-large-range",
            "--ca-file", str(pem)]
    scanned, watched = _built("scan", argv), _built("watch", argv)
    assert scanned == watched
    assert scanned.ports == (22, *range(80, 85), *range(86, 91), 8443)
    assert (scanned.discovery.rate, scanned.discovery.timeout, scanned.discovery.retries) == (
        300, 0.7, 0)
    assert scanned.family == 4 and scanned.udp and scanned.udp_dns_name == "x.test"
    assert scanned.checks.active and scanned.checks.ssh_auth_probe and scanned.checks.ssh_host_keys
    assert scanned.internetdb_url == "http://127.0.0.1:9/" and scanned.allow_large_range
    assert scanned.checks.ca_file == pem


def test_watch_checks_its_scan_options_as_scan_does(capsys: pytest.CaptureFixture[str]) -> None:
    for bad, message in ((["--retries", "11"], "--retries must be between 0 and 10"),
                         (["-4", "-6"], "-4 and -6 together"),
                         (["--rate", "0"], "--rate must be at least 1")):
        for command in ("scan", "watch"):
            assert main([command, "127.0.0.1", "--once" if command == "watch" else "-q",
                         "--no-store", *bad]) == 2
            assert message in capsys.readouterr().err, (command, bad)
    assert main(["watch", "--once", "--no-store"]) == 2
    assert "no target given to watch" in capsys.readouterr().err


def test_the_option_constants_match_the_stages() -> None:
    from scanner.discovery import ENGINE_NAMES as DISCOVERY_ENGINES
    from scanner.identification.internetdb import DEFAULT_BASE_URL

    assert ENGINE_NAMES == DISCOVERY_ENGINES
    assert INTERNETDB_DEFAULT_URL == DEFAULT_BASE_URL


def test_watch_runs_a_scan_with_options_only_scan_had(listener: int, tmp_path: Path) -> None:
    """-iL, --exclude-ports, -4, --retries: options watch did not take before."""
    targets = tmp_path / "targets.txt"
    targets.write_text("# the loopback\n127.0.0.1\n")
    argv = [sys.executable, "-m", "scanner", "watch", "--once", "-iL", str(targets),
            "-p", f"{listener},{listener + 1}", "--exclude-ports", str(listener + 1), "-4",
            "--retries", "0", "--engine", "connect", "--timeout", "0.5", "--no-identify",
            "--db", str(tmp_path / "h.db")]
    env = {**os.environ, "EXPOSURE_ALERTS_CONFIG": str(tmp_path / "none.toml")}
    run = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    shown = subprocess.run([sys.executable, "-m", "scanner", "show", "1", "--format", "json",
                            "--db", str(tmp_path / "h.db")], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=60)
    report = json.loads(shown.stdout)
    assert report["scan"]["ports_requested"] == 1
    (target,) = report["targets"]
    assert [p["port"] for p in target["ports"] if p["state"] == "open"] == [listener]


@pytest.fixture
def rendered(monkeypatch: pytest.MonkeyPatch) -> list[OutputFormat]:
    """The formats the one render function was asked for (it still renders them)."""
    formats: list[OutputFormat] = []
    real = render_module.render

    def recording(report: Any, output_format: OutputFormat, *args: Any, **kwargs: Any) -> str:
        formats.append(output_format)
        return real(report, output_format, *args, **kwargs)

    monkeypatch.setattr(render_module, "render", recording)
    return formats


def test_scan_show_and_watch_render_through_one_function(
    listener: int, tmp_path: Path, rendered: list[OutputFormat],
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    db = str(tmp_path / "h.db")
    common = ["127.0.0.1", "--engine", "connect", "-p", str(listener), "--timeout", "0.5",
              "--no-identify", "--db", db]
    assert main(["scan", *common, "-o", str(tmp_path / "r.md"), "-o", "-"]) == 0
    assert rendered == [OutputFormat.MARKDOWN, OutputFormat.TABLE]
    assert f"{listener}/tcp" in capsys.readouterr().out
    rendered.clear()
    assert main(["show", "1", "--db", db, "-f", "sarif"]) == 0
    assert rendered == [OutputFormat.SARIF]
    assert json.loads(capsys.readouterr().out)["version"] == "2.1.0"
    rendered.clear()
    monkeypatch.setenv("EXPOSURE_ALERTS_CONFIG", str(tmp_path / "none.toml"))
    page = tmp_path / "report.html"
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        assert main(["watch", *common, "--once", "--html-report", str(page)]) == 0
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        for name in ("exposure.watch", "scanner.alerts"):
            logging.getLogger(name).handlers.clear()
    assert rendered == [OutputFormat.HTML]
    assert "<title>Exposure report:" in page.read_text()


def test_starting_a_command_imports_no_stage_it_does_not_use() -> None:
    """`scan --help`, `version` and `history` start without the scan pipeline, the store,
    the monitor, the report renderers or their libraries (issue 12: start-up time)."""
    code = (
        "import sys\n"
        "from scanner.cli import main\n"
        "main(sys.argv[1:])\n"
        "print(' '.join(sorted(sys.modules)), file=sys.stderr)\n"
    )
    heavy = ("scanner.api", "scanner.pipeline", "scanner.identification", "scanner.checks",
             "scanner.discovery", "scanner.store", "scanner.monitor", "scanner.alerts",
             "scanner.fleet", "scanner.preflight", "scanner.report", "scanner.diff",
             "requests", "jinja2", "scapy", "paramiko", "sslyze", "cryptography")
    for argv in (["scan", "--help"], ["watch", "--help"], ["version"]):
        run = subprocess.run([sys.executable, "-c", code, *argv], cwd=REPO,
                             capture_output=True, text=True, timeout=60, check=True)
        loaded = run.stderr.split()
        assert "scanner.cli.scan" in loaded and "scanner.cli.monitor" in loaded
        assert not [m for m in loaded if m.split(".")[0] in heavy or
                    ".".join(m.split(".")[:2]) in heavy], argv
