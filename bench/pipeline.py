"""How a scan runs, on the lab, side by side with nmap (and masscan) in one run.

    .venv/bin/python -m bench.pipeline       (as root: it starts its own labs)

Measured, each contender a process of its own in the lab's scan namespace under /usr/bin/time
(wall time and peak RSS):

1. the whole lab home (two OpenSSH, nginx 80/443/8443, mosquitto) plus three hostile ports on
   IPv4 and IPv6: one that accepts and never speaks, one that greets with a banner no probe
   knows, one that streams garbage; `exposure scan home.lab`, all checks, default --timeout,
   next to `nmap -sV` on the same open ports of both addresses (target: <= 10 s and <= 1/10);
2. one open port, full identification and checks (target: <= 1.5 s);
3. ten silent ports against one (target: <= 1.3 x);
4. a /28 with 4 live hosts (clones of home by DNAT) against one live host (target: <= 1.5 x);
5. full-range discovery of home: the syn engine next to masscan at the same rate (target:
   within 20 %), and nmap --min-rate 20000.

Every peak RSS must stay under 200 MB. Writes bench/results/pipeline.json; exit 1 on a miss.
`--only one-port` (repeatable) runs only the measures named, into pipeline-one-port.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from tests.lab import Lab
from tests.lab.daemons import Daemon, Place, _launch, _private_dir, start_tarpit
from tests.lab.services import Service, default_services

EXPOSURE = [sys.executable, "-m", "scanner"]
RESULTS = Path(__file__).parent / "results"
SLOWPOKE = Path(__file__).resolve().parent.parent / "tests" / "lab" / "slowpoke.py"
SILENT, ODD_BANNER, GARBAGE = 9100, 9101, 9102
SILENT_RANGE = tuple(range(9200, 9210))
CLONE_NET = "203.0.113.64/28"  # 16 addresses: the first 4 answer like home, 12 do not
CLONES = tuple(f"203.0.113.{64 + index}" for index in range(4))
MEMORY_LIMIT_MB = 200.0
# measured here: masscan at 150k pps took 26 s on the lab veth, at 100k 3.2 s; compare at 100k
RATE = 100_000


@dataclass
class Run:
    name: str
    wall_s: float
    peak_rss_mb: float
    exit_code: int


@dataclass
class Comparison:
    name: str
    ours: Run
    peer: Run | None
    target: str
    passed: bool


def timed(lab: Lab, name: str, argv: Sequence[str], scratch: Path) -> Run:
    timing = scratch / f"{name.replace(' ', '_').replace('/', '_')}.time"
    completed = lab.run_in_scan(["/usr/bin/time", "-f", "%e %M", "-o", str(timing), *argv],
                                capture_output=True, text=True, timeout=900, check=False)
    wall, peak_kb = timing.read_text().split()[-2:]
    run = Run(name, float(wall), int(peak_kb) / 1024, completed.returncode)
    print(f"  {name}: {run.wall_s:.2f} s, {run.peak_rss_mb:.0f} MB", flush=True)
    return run


def scan_argv(*args: str) -> list[str]:
    return [*EXPOSURE, "scan", *args, "--format", "json", "--fail-on", "never", "--no-store"]


# --- lab extras ------------------------------------------------------------------------------


def both_addresses(name: str, port: int, argv_for: callable) -> Service:  # type: ignore[valid-type]
    def start(lab: Lab) -> list[Daemon]:
        daemons = []
        for address in (lab.HOME_V4, lab.HOME_V6):
            place = Place(lab.home_ns, (address,), lab.tmpdir)
            directory = _private_dir(place, f"{name}-{port}")
            daemons.append(_launch(place, f"{name}-{port}", argv_for(address), [port], directory))
        return daemons

    return Service(f"{name}-{port}", {port: name}, start)


def slowpoke(mode: str, port: int) -> Service:
    return both_addresses(mode, port,
                          lambda address: [sys.executable, str(SLOWPOKE), mode, address, str(port)])


def silent(port: int, *, v6: bool = True) -> Service:
    def start(lab: Lab) -> list[Daemon]:
        addresses = (lab.HOME_V4, lab.HOME_V6) if v6 else (lab.HOME_V4,)
        return [start_tarpit(Place(lab.home_ns, (address,), lab.tmpdir), address, port,
                             name=f"silent-{port}-{index}")
                for index, address in enumerate(addresses)]

    return Service(f"silent-{port}", {port: "accepts, never speaks"}, start)


def add_clones(lab: Lab) -> None:
    """16 more addresses on home: the first 4 answer as home does (DNAT), 12 stay silent."""
    for index in range(16):
        lab.run_in_home(["ip", "addr", "add", f"203.0.113.{64 + index}/32", "dev", lab.HOME_IF],
                        check=True)
    rules = ["*nat", *(f"-A PREROUTING -d {clone}/32 -p tcp -j DNAT --to-destination "
                       f"{lab.HOME_V4}" for clone in CLONES), "COMMIT"]
    backend = getattr(lab, "_iptables", None) or ("iptables-restore",)  # the lab's own backend
    lab.run_in_home([backend[0], "--noflush"], input="\n".join(rules) + "\n", text=True,
                    check=True)


# --- the measurements ------------------------------------------------------------------------


def whole_home(lab: Lab, scratch: Path) -> Comparison:
    ports = sorted(lab.open_ports)
    ours = timed(lab, "exposure whole home + hostile ports (v4+v6)", scan_argv(
        Lab.HOSTNAME, "--ports", f"top,2222,{SILENT},{ODD_BANNER},{GARBAGE}",
        "--ca-file", str(lab.ca_pem), "-o", str(scratch / "home.json")), scratch)
    port_list = ",".join(map(str, ports))
    nmap = (f"nmap -sV -Pn -n -p {port_list} {Lab.HOME_V4} -oX {scratch}/v4.xml >/dev/null & "
            f"nmap -6 -sV -Pn -n -p {port_list} {Lab.HOME_V6} -oX {scratch}/v6.xml >/dev/null & "
            "wait")
    peer = timed(lab, "nmap -sV on the same open ports (v4 and v6 at once)",
                 ["bash", "-c", nmap], scratch)
    passed = ours.wall_s <= 10.0 and ours.wall_s <= peer.wall_s / 10
    return Comparison("whole home with hostile ports", ours, peer, "<= 10 s and <= 1/10 nmap -sV",
                      passed)


def one_port(lab: Lab, scratch: Path) -> Comparison:
    ours = timed(lab, "exposure one open port (22)", scan_argv(Lab.HOME_V4, "--ports", "22"),
                 scratch)
    return Comparison("one open port", ours, None, "<= 1.5 s", ours.wall_s <= 1.5)


def ten_silent(lab: Lab, scratch: Path) -> Comparison:
    one = timed(lab, "exposure one silent port", scan_argv(
        Lab.HOME_V4, "--ports", str(SILENT_RANGE[0])), scratch)
    ten = timed(lab, "exposure ten silent ports", scan_argv(
        Lab.HOME_V4, "--ports", ",".join(map(str, SILENT_RANGE))), scratch)
    return Comparison("ten silent ports vs one", ten, one, "<= 1.3 x one",
                      ten.wall_s <= 1.3 * one.wall_s)


def sixteen_addresses(lab: Lab, scratch: Path) -> Comparison:
    ports = ",".join(map(str, [*sorted(lab.open_ports), Lab.CLOSED_PORT]))
    common = ["--ports", ports, "--ca-file", str(lab.ca_pem)]
    one = timed(lab, "exposure one live host", scan_argv(CLONES[0], *common), scratch)
    many = timed(lab, f"exposure {CLONE_NET} (4 live)", scan_argv(CLONE_NET, *common), scratch)
    return Comparison("16 addresses, 4 live, vs one live host", many, one, "<= 1.5 x one",
                      many.wall_s <= 1.5 * one.wall_s)


def full_range(lab: Lab, scratch: Path) -> list[Comparison]:
    ours = timed(lab, f"exposure syn -p all at {RATE} pps", scan_argv(
        Lab.HOME_V4, "--ports", "all", "--engine", "syn", "--rate", str(RATE), "--timeout", "0.5",
        "--no-identify"), scratch)
    masscan = timed(lab, f"masscan -p1-65535 at {RATE} pps", [
        "masscan", Lab.HOME_V4, "-p1-65535", "--rate", str(RATE), "--wait", "1",
        "--adapter", Lab.SCAN_IF, "--adapter-ip", Lab.SCAN_V4, "--router-mac", home_mac(lab),
        "-oJ", str(scratch / "masscan.json")], scratch)
    nmap = timed(lab, "nmap -sS -p- --min-rate 20000", [
        "nmap", "-sS", "-p-", "--min-rate", "20000", "-Pn", "-n", "-oX",
        str(scratch / "nmap-rate.xml"), Lab.HOME_V4], scratch)
    return [
        Comparison("full range vs masscan", ours, masscan, "<= 1.2 x masscan",
                   ours.wall_s <= 1.2 * masscan.wall_s),
        Comparison("full range vs nmap --min-rate 20000", ours, nmap, "baseline", True),
    ]


MEASURES: dict[str, Callable[[Lab, Path], Comparison | list[Comparison]]] = {
    "whole-home": whole_home,
    "one-port": one_port,
    "ten-silent": ten_silent,
    "sixteen-addresses": sixteen_addresses,
    "full-range": full_range,
}


def home_mac(lab: Lab) -> str:
    done = lab.run_in_home(["cat", f"/sys/class/net/{lab.HOME_IF}/address"],
                           capture_output=True, text=True, check=True)
    return done.stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", choices=sorted(MEASURES), action="append",
                        help="Run only this measure (repeatable); default: all of them.")
    chosen = parser.parse_args().only or list(MEASURES)
    RESULTS.mkdir(exist_ok=True)
    results: list[Comparison] = []
    extras = [silent(SILENT), slowpoke("odd-banner", ODD_BANNER), slowpoke("garbage", GARBAGE),
              *(silent(port, v6=False) for port in SILENT_RANGE)]
    with tempfile.TemporaryDirectory() as scratch_dir, Lab(
        services=[*default_services(), *extras]
    ) as lab:
        scratch = Path(scratch_dir)
        add_clones(lab)
        print(f"lab home {Lab.HOME_V4} / {Lab.HOME_V6}: {sorted(lab.open_ports)}", flush=True)
        for name in chosen:
            measured = MEASURES[name](lab, scratch)
            results += measured if isinstance(measured, list) else [measured]
    print()
    print(f"{'measure':42} {'exposure':>9} {'peer':>9} {'peak MB':>8}  target                   ")
    for item in results:
        peer = f"{item.peer.wall_s:8.2f}s" if item.peer else " " * 9
        print(f"{item.name:42} {item.ours.wall_s:8.2f}s {peer} {item.ours.peak_rss_mb:8.0f}  "
              f"{item.target:24} {'PASS' if item.passed else 'FAIL'}")
    memory_ok = all(item.ours.peak_rss_mb < MEMORY_LIMIT_MB for item in results)
    print(f"peak memory of every exposure run < {MEMORY_LIMIT_MB:g} MB: "
          f"{'PASS' if memory_ok else 'FAIL'}")
    # A partial run (--only) keeps the full run's file as it was.
    name = "pipeline" if chosen == list(MEASURES) else "pipeline-" + "+".join(chosen)
    (RESULTS / f"{name}.json").write_text(json.dumps([asdict(item) for item in results],
                                                      indent=2))
    return 0 if memory_ok and all(item.passed for item in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
