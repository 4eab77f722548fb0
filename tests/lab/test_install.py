"""The tool alone: installed into a fresh virtualenv without the dev extra, offline, run as
an unprivileged user against the lab (as the README's "Install the tool" says).

- `pip install --no-index` from the wheels `make lab-deps` keeps (.lab-cache/wheels): the
  runtime dependencies of pyproject.toml are enough, nothing of the dev extra is there;
- as `nobody` (setpriv) inside the scan namespace: the connect engine, and the note saying so;
- as `nobody` with CAP_NET_RAW on the venv's own copy of its interpreter (the README's setcap
  lines): the syn engine, no note;
- systemd accepts the contrib units pointed at the installed command.

The source is copied first (pyproject.toml, README.md, LICENSE, scanner/), so the build never
writes into the repository. Everything lives in one temporary directory, removed at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab.netns import Lab
from tests.lab.scanning import LAB_SPEED

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
WHEELS = REPO / ".lab-cache" / "wheels"
SOURCE_FILES = ("pyproject.toml", "README.md", "LICENSE")
# The dev extra (markdown-it-py is left out: rich needs it at run time anyway).
DEV_ONLY = ("pytest", "hypothesis", "ruff", "jsonschema", "aiosmtpd", "zeroconf", "mypy")
# The fleet extra: a single-machine install pulls none of it.
FLEET_ONLY = ("celery", "kombu", "redis", "psycopg")
NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
PORTS = "22,80,443,1883,2222"


def _python() -> str:
    """Debian's interpreter when there is one (what pipx uses there), else this one."""
    system = Path("/usr/bin/python3")
    return str(system) if system.exists() else sys.executable


@pytest.fixture(scope="module")
def installed() -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.fail("lab tests need root (namespaces, setpriv, setcap)", pytrace=False)
    if not (WHEELS / ".complete").exists():
        pytest.fail(f"no wheelhouse at {WHEELS}: run make lab-deps", pytrace=False)
    # Not under pytest's tmp_path: its parents are private to root, and nobody must read this.
    root = Path(tempfile.mkdtemp(prefix="exposure-install-"))
    try:
        root.chmod(0o755)
        source = root / "src"
        source.mkdir()
        for name in SOURCE_FILES:
            shutil.copy(REPO / name, source / name)
        shutil.copytree(REPO / "scanner", source / "scanner",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        venv = root / "venv"
        subprocess.run([_python(), "-m", "venv", str(venv)], check=True, timeout=120)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-index",
               "--find-links", str(WHEELS), "--no-cache-dir", str(source)]
        # Only the wheelhouse: no pip configuration, no index, no other wheel directory.
        env = {key: value for key, value in os.environ.items() if not key.startswith("PIP_")}
        install = subprocess.run(pip, capture_output=True, text=True, timeout=600, check=False,
                                 env={**env, "PIP_CONFIG_FILE": os.devnull})
        assert install.returncode == 0, install.stderr[-3000:]
        for path in root.rglob("*"):  # readable by nobody, like a user's own install
            path.chmod(path.stat().st_mode | 0o005 if path.is_dir() else
                       path.stat().st_mode | 0o004)
        yield venv
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _scan_as_nobody(lab: Lab, venv: Path, ca: Path) -> subprocess.CompletedProcess[str]:
    argv = [*NOBODY, str(venv / "bin" / "exposure"), "scan", Lab.HOSTNAME, "-p", PORTS,
            *LAB_SPEED, "--ca-file", str(ca), "--no-store", "-f", "json", "--fail-on", "never"]
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "LANG": "C.UTF-8"}
    return lab.run_in_scan(argv, capture_output=True, text=True, timeout=180, check=False,
                           env=env)


def _readable_ca(lab: Lab, venv: Path) -> Path:
    """The lab CA where nobody can read it (the lab's own directory is root's)."""
    ca = venv.parent / "lab-ca.pem"
    shutil.copy(lab.ca_pem, ca)
    ca.chmod(0o644)
    return ca


def test_installed_without_the_dev_extra(installed: Path) -> None:
    listed = subprocess.run([str(installed / "bin" / "python"), "-m", "pip", "list",
                             "--format", "json"], capture_output=True, text=True, check=True,
                            timeout=60)
    names = {item["name"].lower() for item in json.loads(listed.stdout)}
    assert "home-exposure" in names and "exposure" not in names
    assert not names & set(DEV_ONLY)
    assert not names & set(FLEET_ONLY)
    version = subprocess.run([*NOBODY, str(installed / "bin" / "exposure"), "--version"],
                             capture_output=True, text=True, timeout=60, check=False)
    assert version.returncode == 0 and version.stdout.startswith("exposure ")


def test_as_nobody_the_connect_engine_runs_and_says_so(installed: Path, lab: Lab) -> None:
    run = _scan_as_nobody(lab, installed, _readable_ca(lab, installed))
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["scan"]["engine"] == "connect"
    assert "exposure: note: no raw-socket privilege (root or CAP_NET_RAW), so the connect " \
           "engine runs" in run.stderr
    assert "Traceback" not in run.stderr and "Warning" not in run.stderr
    v4 = next(t for t in report["targets"] if t["address"] == Lab.HOME_V4)
    opened = {p["port"] for p in v4["ports"] if p["state"] == "open"}
    assert {int(port) for port in PORTS.split(",")} <= opened
    assert report["summary"]["worst_severity"] == "high"  # the lab's anonymous mosquitto
    grades = {p["port"]: p["details"]["tls"]["grade"] for p in v4["ports"]
              if isinstance(p["details"].get("tls"), dict)}
    assert grades.get(443)  # the TLS check ran, trusting the CA file nobody could read


def test_with_cap_net_raw_the_syn_engine_runs(installed: Path, lab: Lab) -> None:
    """The README's three lines: the venv gets its own interpreter, and only it the capability."""
    python = installed / "bin" / "python"
    real = python.resolve()
    copy = installed.parent / "venv-raw"
    shutil.copytree(installed, copy, symlinks=True)
    raw_python = copy / "bin" / "python"
    raw_python.unlink()  # the link to the system's interpreter...
    shutil.copy2(real, raw_python)  # ...becomes the venv's own copy
    # pip wrote the venv's path into the script's first line: point the copy at its own.
    script = copy / "bin" / "exposure"
    text = script.read_text()
    script.write_text(text.replace(str(installed), str(copy)))
    subprocess.run(["setcap", "cap_net_raw+ep", str(raw_python)], check=True, timeout=30)
    try:
        run = _scan_as_nobody(lab, copy, _readable_ca(lab, installed))
    finally:
        shutil.rmtree(copy, ignore_errors=True)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["scan"]["engine"] == "syn"
    assert "connect engine" not in run.stderr
    # the system's interpreter itself never got the capability
    getcap = subprocess.run(["getcap", str(real)], capture_output=True, text=True, timeout=30,
                            check=False)
    assert "cap_net_raw" not in getcap.stdout


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_systemd_accepts_the_units_with_the_installed_command(installed: Path,
                                                              tmp_path: Path) -> None:
    units = REPO / "contrib" / "systemd"
    for name in ("exposure-check@.service", "exposure-check@.timer"):
        text = (units / name).read_text().replace("/usr/local/bin/exposure",
                                                  str(installed / "bin" / "exposure"))
        (tmp_path / name.replace("@.", "@home.lab.")).write_text(text)
    run = subprocess.run(["systemd-analyze", "verify", *map(str, sorted(tmp_path.iterdir()))],
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0 and run.stderr.strip() == "", run.stderr
