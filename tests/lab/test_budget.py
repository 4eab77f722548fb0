"""One budget for the whole scan, seen from the scanned host (issue: one network layer).

- Every SYN the home host receives during a full scan (discovery, identification, SSH, TLS
  grading, HA and service checks) is counted by a raw capture in the home namespace: the most
  in any 1-second window never exceeds --rate, and no 100 ms window holds more than its share
  plus the burst the report states.
- --timeout reaches identification and the checks: a server that answers after 1.5 s is read
  with --timeout 2 and abandoned with --timeout 1.
- A port that accepts and never speaks, one that drips a byte a second and one that streams
  garbage are each abandoned at the port's deadline; ten silent ports cost about one.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lab.daemons import Daemon, Place, _launch, _private_dir, start_tarpit
from tests.lab.netns import Lab
from tests.lab.scanning import run_exposure, scan_json
from tests.lab.services import Service, mosquitto, nginx_web, openssh
from tests.lab.syn_capture import SynCapture, most_in_any_window

pytestmark = pytest.mark.lab

SLOWPOKE = Path(__file__).with_name("slowpoke.py")
SLOW_HTTP, SLOW_MQTT, DRIP, GARBAGE, TLS_GARBAGE = 18080, 18830, 18900, 18901, 18902
TARPITS = tuple(range(19000, 19010))
ANSWER_DELAY = 1.5


def slowpoke(mode: str, port: int, seconds: float = 0.0) -> Service:
    def start(lab: Lab) -> list[Daemon]:
        place = Place(lab.home_ns, (lab.HOME_V4,), lab.tmpdir)
        directory = _private_dir(place, f"{mode}-{port}")
        argv = [sys.executable, str(SLOWPOKE), mode, lab.HOME_V4, str(port), str(seconds)]
        if lab.home_cert is not None:
            argv += [str(lab.home_cert.chain_path), str(lab.home_cert.key_path)]
        return [_launch(place, f"{mode}-{port}", argv, [port], directory)]

    return Service(f"{mode}-{port}", {port: mode}, start)


def tarpit(port: int) -> Service:
    def start(lab: Lab) -> list[Daemon]:
        place = Place(lab.home_ns, (lab.HOME_V4,), lab.tmpdir)
        return [start_tarpit(place, lab.HOME_V4, port, name=f"silent-{port}")]

    return Service(f"silent-{port}", {port: "accepts, never speaks"}, start)


@pytest.fixture(scope="module")
def budget_lab() -> Iterator[Lab]:
    services = [
        openssh(22), openssh(2222), nginx_web(), mosquitto(1883),
        slowpoke("slow-http", SLOW_HTTP, ANSWER_DELAY),
        slowpoke("slow-mqtt", SLOW_MQTT, ANSWER_DELAY),
        slowpoke("drip", DRIP), slowpoke("garbage", GARBAGE),
        slowpoke("tls-garbage", TLS_GARBAGE),
        *(tarpit(port) for port in TARPITS),
    ]
    with Lab(services=services) as lab:
        yield lab


def _target(report: dict[str, Any]) -> dict[str, Any]:
    (target,) = report["targets"]
    return target


def _port(report: dict[str, Any], number: int) -> dict[str, Any]:
    return next(port for port in _target(report)["ports"] if port["port"] == number)


# --- the rate cap holds for every connection of the scan -------------------------------------


@pytest.mark.parametrize("rate", [50, 200])
def test_rate_cap_holds_for_every_packet_and_connection(budget_lab: Lab, rate: int) -> None:
    ports = "top,2222"  # the open ones (every check runs), the closed one, 168 filtered
    with SynCapture(budget_lab) as capture:
        report = scan_json(budget_lab, Lab.HOME_V4, "--ports", ports, "--rate", str(rate),
                           "--timeout", "2", "--ca-file", str(budget_lab.ca_pem), "--no-store",
                           timeout=300)
    times = [at for at, _ in capture.syns]
    target = _target(report)
    # the scan did what the test is about: services identified, SSH audited, TLS graded
    assert _port(report, 22)["service"] == "ssh" and _port(report, 1883)["service"] == "mqtt"
    assert _port(report, 443)["details"]["tls"].get("grade")
    assert any(f["id"] == "mqtt.anonymous" for f in target["findings"])
    assert len(times) > 2 * rate, "the capture saw too few SYNs to judge the rate"
    burst = report["scan"]["budget"]["burst"]
    assert report["scan"]["budget"]["rate"] == rate
    assert most_in_any_window(times, 1.0) <= rate
    assert most_in_any_window(times, 0.1) <= rate * 0.1 + burst


# --- --timeout reaches identification and checks ----------------------------------------------


@pytest.mark.parametrize(("timeout", "answered"), [("2", True), ("1", False)])
def test_timeout_reaches_identification(budget_lab: Lab, timeout: str, answered: bool) -> None:
    report = scan_json(budget_lab, Lab.HOME_V4, "--ports", str(SLOW_HTTP), "--timeout", timeout,
                       "--no-store")
    port = _port(report, SLOW_HTTP)
    title = (port["details"].get("http") or {}).get("title")
    assert (title == "Slow but sure") is answered, port


@pytest.mark.parametrize(("timeout", "answered"), [("2", True), ("1", False)])
def test_timeout_reaches_the_checks(budget_lab: Lab, timeout: str, answered: bool) -> None:
    """Identification's refused CONNECT is answered at once; the check's real one late."""
    report = scan_json(budget_lab, Lab.HOME_V4, "--ports", str(SLOW_MQTT), "--timeout", timeout,
                       "--no-store")
    assert _port(report, SLOW_MQTT)["service"] == "mqtt"
    flagged = {f["id"] for f in _target(report)["findings"] if f["port"] == SLOW_MQTT}
    assert ("mqtt.anonymous" in flagged) is answered, flagged


# --- hostile ports cost their deadline, not more ---------------------------------------------


def _timed_scan(lab: Lab, ports: str) -> tuple[dict[str, Any], float]:
    run = run_exposure(lab, "scan", Lab.HOME_V4, "--ports", ports, "--timeout", "0.5",
                       "--rate", "20000", "--format", "json", "--fail-on", "never", "--no-store",
                       timeout=120)
    assert run.code == 0, run.stderr
    return run.json(), run.json()["scan"]["duration_s"]


def test_silent_dripping_and_garbage_ports_end_at_their_deadline(budget_lab: Lab) -> None:
    report, seconds = _timed_scan(budget_lab, f"{TARPITS[0]},{DRIP},{GARBAGE}")
    deadline = report["scan"]["budget"]["port_deadline_s"]
    assert seconds <= deadline + 2.0, seconds  # plus discovery and start-up, never their sum
    for port in (TARPITS[0], DRIP, GARBAGE):
        assert _port(report, port)["state"] == "open"


def _nmap_processes() -> list[str]:
    """Every nmap running on this machine (their command lines), read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                argv = (entry / "cmdline").read_bytes().split(b"\0")
                if argv and Path(argv[0].decode(errors="replace")).name == "nmap":
                    found.append(" ".join(part.decode(errors="replace") for part in argv))
    return found


def test_the_nmap_fallback_ends_at_the_port_deadline(budget_lab: Lab) -> None:
    """TLS, then garbage inside it: nothing names the port, nmap -sV would run long past its
    own --host-timeout; it is killed with its process group at the port's deadline."""
    before = {line for line in _nmap_processes() if str(TLS_GARBAGE) in line}
    report, _ = _timed_scan(budget_lab, str(TLS_GARBAGE))
    port = _port(report, TLS_GARBAGE)
    assert port["tls"] is True and port["service"] is None
    assert "killed" in port["details"]["probe"]["nmap"], port["details"]["probe"]
    leftovers = {line for line in _nmap_processes() if str(TLS_GARBAGE) in line} - before
    assert leftovers == set()


def test_ten_silent_ports_cost_about_one(budget_lab: Lab) -> None:
    _, one = _timed_scan(budget_lab, str(TARPITS[0]))
    _, ten = _timed_scan(budget_lab, ",".join(map(str, TARPITS)))
    assert ten <= one * 1.3 + 0.5, (one, ten)
