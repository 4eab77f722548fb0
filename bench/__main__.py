"""Full-range discovery on the lab's home host: exposure's engines next to nmap, in one run.

Each contender runs as its own process inside the lab's scan namespace under /usr/bin/time,
so wall time and peak RSS are measured the same way for all. Recall is open ports found over
open ports that exist; a "false open" is a port reported open where nothing listens.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from scanner.discovery.base import PortState
from scanner.discovery.nmap_engine import parse_nmap_xml
from tests.lab import Lab

EXPOSURE = [sys.executable, "-m", "scanner"]
RESULTS = Path(__file__).parent / "results"


@dataclass
class Contender:
    name: str
    argv: list[str]
    open_ports: Callable[[Path], set[int]]  # reads the contender's output file
    target_s: float | None = None  # the SPEC/issue target, when there is one


@dataclass
class Measurement:
    name: str
    wall_s: float
    peak_rss_mb: float
    found: int
    expected: int
    false_open: int
    exit_code: int
    target_s: float | None

    @property
    def recall(self) -> float:
        return self.found / self.expected if self.expected else 1.0

    @property
    def verdict(self) -> str:
        accurate = self.recall == 1.0 and self.false_open == 0
        in_time = self.target_s is None or self.wall_s <= self.target_s
        if self.target_s is None:
            return "baseline"
        return "PASS" if accurate and in_time else "FAIL"


def exposure_open_ports(report_path: Path) -> set[int]:
    report = json.loads(report_path.read_text())
    return {
        port["port"]
        for target in report["targets"]
        for port in target["ports"]
        if port["state"] == "open"
    }


def nmap_open_ports(xml_path: Path) -> set[int]:
    states = parse_nmap_xml(xml_path.read_text(), Lab.HOME_V4)
    return {port for port, state in states.items() if state is PortState.OPEN}


def contenders(out: Path, syn_rate: int, connect_rate: int) -> list[Contender]:
    target = Lab.HOME_V4
    # Discovery only, like nmap -sS (no -sV): the full pipeline is timed by measure_whole_home.
    timeout = ["--timeout", "0.5", "--format", "json", "--fail-on", "never", "--no-identify",
               "--no-store"]
    return [
        Contender(
            "exposure syn",
            [*EXPOSURE, "scan", target, "--ports", "all", "--engine", "syn",
             "--rate", str(syn_rate), *timeout, "-o", str(out / "syn.json")],
            lambda _: exposure_open_ports(out / "syn.json"),
            target_s=3.0,
        ),
        Contender(
            "exposure connect",
            [*EXPOSURE, "scan", target, "--ports", "all", "--engine", "connect",
             "--rate", str(connect_rate), *timeout, "-o", str(out / "connect.json")],
            lambda _: exposure_open_ports(out / "connect.json"),
            target_s=20.0,
        ),
        Contender(
            "nmap -sS -T4 -p-",
            ["nmap", "-sS", "-T4", "-p-", "-Pn", "-n", "-oX", str(out / "nmap_t4.xml"), target],
            lambda _: nmap_open_ports(out / "nmap_t4.xml"),
        ),
        Contender(
            "nmap -sS -p- --min-rate 20000",
            ["nmap", "-sS", "-p-", "--min-rate", "20000", "-Pn", "-n",
             "-oX", str(out / "nmap_rate.xml"), target],
            lambda _: nmap_open_ports(out / "nmap_rate.xml"),
        ),
    ]


def measure(lab: Lab, contender: Contender, out: Path) -> Measurement:
    timing = out / f"{contender.name.replace(' ', '_')}.time"
    argv = ["/usr/bin/time", "-f", "%e %M", "-o", str(timing), *contender.argv]
    completed = lab.run_in_scan(argv, capture_output=True, text=True, timeout=600, check=False)
    wall, peak_kb = timing.read_text().split()[-2:]
    found = contender.open_ports(out) if completed.returncode == 0 else set()
    expected = set(lab.open_ports)
    return Measurement(
        name=contender.name,
        wall_s=float(wall),
        peak_rss_mb=int(peak_kb) / 1024,
        found=len(found & expected),
        expected=len(expected),
        false_open=len(found - expected),
        exit_code=completed.returncode,
        target_s=contender.target_s,
    )


def print_table(results: list[Measurement]) -> None:
    print(f"{'contender':34} {'wall s':>8} {'peak MB':>8} {'recall':>8} {'false open':>11}"
          f" {'target':>8}  verdict")
    for result in results:
        target = f"<={result.target_s:g} s" if result.target_s else ""
        print(f"{result.name:34} {result.wall_s:8.2f} {result.peak_rss_mb:8.1f} "
              f"{result.recall:8.0%} {result.false_open:11d} {target:>8}  {result.verdict}")
    by_name = {result.name: result for result in results}
    syn = by_name.get("exposure syn")
    if syn:
        for other in results:
            if other is not syn and other.wall_s:
                ratio = other.wall_s / syn.wall_s
                print(f"  {other.name} takes {ratio:.1f}x the syn engine's time")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--syn-rate", type=int, default=150_000)
    parser.add_argument("--connect-rate", type=int, default=40_000)
    parser.add_argument("--skip-slow-nmap", action="store_true", help="skip nmap -T4 (~90 s)")
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    results: list[Measurement] = []
    with tempfile.TemporaryDirectory() as scratch, Lab() as lab:
        out = Path(scratch)
        print(f"lab home {Lab.HOME_V4}: open {sorted(lab.open_ports)}, closed "
              f"{lab.closed_port}, everything else dropped; full range 1-65535\n", flush=True)
        for contender in contenders(out, args.syn_rate, args.connect_rate):
            if args.skip_slow_nmap and "-T4" in contender.name:
                continue
            results.append(measure(lab, contender, out))
            print(f"  measured {contender.name}: {results[-1].wall_s:.2f} s", flush=True)
        whole_home = measure_whole_home(lab, out)
    print()
    print_table(results)
    print()
    print_whole_home(whole_home)
    (RESULTS / "discovery.json").write_text(json.dumps([asdict(r) for r in results], indent=2))
    (RESULTS / "whole_home.json").write_text(json.dumps(whole_home, indent=2))
    passed = all(result.verdict != "FAIL" for result in results) and whole_home["pass"]
    return 0 if passed else 1


# The whole pipeline on the default lab home (SPEC: <= 15 s; identification adds <= 3 s).
WHOLE_HOME_TARGET_S = 15.0
IDENTIFICATION_BUDGET_S = 3.0


def measure_whole_home(lab: Lab, out: Path) -> dict[str, object]:
    """`exposure scan home.lab` (both addresses, top ports, everything on) vs. discovery only."""
    base = [*EXPOSURE, "scan", Lab.HOSTNAME, "--ports", "top,2222", "--rate", "20000",
            "--timeout", "0.5", "--ca-file", str(lab.ca_pem), "--format", "json",
            "--fail-on", "never", "--no-store"]
    timings: dict[str, float] = {}
    for name, extra in (("discovery only", ["--no-identify"]), ("full pipeline", [])):
        contender = Contender(name, [*base, *extra, "-o", str(out / "home.json")],
                              lambda _: set())
        timings[name] = measure(lab, contender, out).wall_s
        print(f"  measured whole home, {name}: {timings[name]:.2f} s", flush=True)
    report = json.loads((out / "home.json").read_text())
    findings = sum(len(target["findings"]) for target in report["targets"])
    added = timings["full pipeline"] - timings["discovery only"]
    return {
        "discovery_only_s": timings["discovery only"],
        "full_pipeline_s": timings["full pipeline"],
        "identification_and_checks_add_s": added,
        "addresses": len(report["targets"]),
        "findings": findings,
        "pass": timings["full pipeline"] <= WHOLE_HOME_TARGET_S,
    }


def print_whole_home(result: dict[str, object]) -> None:
    print(f"whole lab home ({result['addresses']} addresses, identification, all checks, "
          f"TLS grades): {result['full_pipeline_s']:.2f} s (target <= {WHOLE_HOME_TARGET_S:g} s)"
          f" {'PASS' if result['pass'] else 'FAIL'}")
    print(f"  discovery alone {result['discovery_only_s']:.2f} s; identification and checks "
          f"add {result['identification_and_checks_add_s']:.2f} s; {result['findings']} findings")


if __name__ == "__main__":
    raise SystemExit(main())
