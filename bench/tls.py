"""TLS grading on the lab: connections and seconds per endpoint, next to testssl.sh; speed of
one endpoint, ten endpoints of one host, and at 100 ms RTT.

    .venv/bin/python -m bench.tls [--baseline REV] [--testssl modern,legacy] [--skip-latency]
                                                     (as root: it starts its own lab)

Measures, inside the lab's scan namespace:
- per lab TLS configuration: exposure's grade, in-process seconds, and the TCP connections it
  took, counted by a raw capture of SYNs in the home namespace (tests/lab/syn_capture.py), not
  by the scanner; with --baseline REV the same for the TLS check of an older revision (the
  scanner package of that commit, e.g. 93397aa, the last one that tested every suite on its
  own connection); testssl.sh (Debian's 3.0.8) on the --testssl configurations, with the checks
  tls_vs_testssl.py compares (-p -s -f -S -h -U), its wall time and its SYNs the same way,
- exposure's TLS check on one endpoint (in-process seconds, and the whole process' wall time),
- ten endpoints of one host graded together through the checks runner (the pipeline's way),
- sslyze's own Scanner with every scan command the grade uses, 5 connections per server (its
  default), for comparison,
- the same at 100 ms round trip. The kernel here has no netem (no sch_netem module), so the
  delay comes from a small proxy in the home namespace that holds every chunk 50 ms in each
  direction and the first client chunk of a connection 100 ms more (the TCP handshake's round
  trip, which a user-space proxy cannot delay). Local traffic only, like the rest of the lab.

Writes bench/results/tls.json.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures as futures
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
DELAY_S = 0.050  # one way: 100 ms round trip
PROXY_OFFSET = 20000  # proxied port = real port + this
TARGET_ONE_S = 2.0
TARGET_TEN_S = 6.0

# sslyze's Scanner with the scan commands the grade uses, for comparison (run in the scan ns).
SSLYZE_SCANNER = """
import sys, time
from pathlib import Path
from sslyze import (Scanner, ServerScanRequest, ServerNetworkLocation, ScanCommandsExtraArguments,
                    CertificateInfoExtraArgument)
from sslyze.plugins.scan_commands import ScanCommand as C
host, name, ca = sys.argv[1:4]
ports = [int(p) for p in sys.argv[4].split(",")]
commands = {C.CERTIFICATE_INFO, C.SSL_2_0_CIPHER_SUITES, C.SSL_3_0_CIPHER_SUITES,
            C.TLS_1_0_CIPHER_SUITES, C.TLS_1_1_CIPHER_SUITES, C.TLS_1_2_CIPHER_SUITES,
            C.TLS_1_3_CIPHER_SUITES, C.ELLIPTIC_CURVES, C.HEARTBLEED, C.ROBOT,
            C.OPENSSL_CCS_INJECTION, C.SESSION_RENEGOTIATION, C.TLS_COMPRESSION,
            C.TLS_FALLBACK_SCSV, C.HTTP_HEADERS}
extra = ScanCommandsExtraArguments(certificate_info=CertificateInfoExtraArgument(Path(ca)))
requests = [ServerScanRequest(server_location=ServerNetworkLocation(name, p, ip_address=host),
                              scan_commands=commands, scan_commands_extra_arguments=extra)
            for p in ports]
started = time.monotonic()
scanner = Scanner()
scanner.queue_scans(requests)
done = sum(1 for _ in scanner.get_results())
print(time.monotonic() - started, done)
"""

GRADE_WITH_CAP = """
import json, sys
import scanner.checks.tls.scan as scan
scan.ENDPOINT_JOBS = int(sys.argv[1])
from tests.lab.support_tls import grade_many
print(json.dumps(grade_many(sys.argv[2], [int(p) for p in sys.argv[3].split(",")],
                            sys.argv[4], sys.argv[5]), default=str))
"""


# --- the latency proxy (runs in the home namespace) ---------------------------------------------


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float,
                first_extra: float) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes | None]] = asyncio.Queue()

    async def feed() -> None:
        extra = first_extra
        while data := await reader.read(65536):
            await queue.put((loop.time() + delay + extra, data))
            extra = 0.0
        await queue.put((loop.time() + delay, None))

    feeder = asyncio.create_task(feed())
    try:
        while True:
            due, data = await queue.get()
            await asyncio.sleep(max(0.0, due - loop.time()))
            if data is None:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()
    except OSError:
        return
    finally:
        feeder.cancel()


async def _serve(listen: str, port: int, upstream: str, upstream_port: int) -> None:
    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(upstream, upstream_port)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(
            _pump(client_r, server_w, DELAY_S, 2 * DELAY_S),
            _pump(server_r, client_w, DELAY_S, 0.0),
            return_exceptions=True,
        )
        for writer in (client_w, server_w):
            writer.close()

    server = await asyncio.start_server(handle, listen, port, backlog=256)
    async with server:
        await server.serve_forever()


def proxy_main(listen: str, ports: list[int]) -> None:
    async def all_proxies() -> None:
        await asyncio.gather(*(_serve(listen, p + PROXY_OFFSET, listen, p) for p in ports))

    asyncio.run(all_proxies())


# --- measurements -------------------------------------------------------------------------------


def _run_json(lab: Any, argv: list[str]) -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    done = lab.run_in_scan(argv, capture_output=True, text=True, timeout=300, check=False)
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads(done.stdout), wall


def measure(lab: Any, ports: list[int], label: str) -> dict[str, Any]:
    from tests.lab.netns import Lab

    ca, name = str(lab.ca_pem), Lab.HOSTNAME
    one_port = ports[2]  # the legacy endpoint: the most handshakes
    result: dict[str, Any] = {"label": label}
    one, one_wall = _run_json(lab, [sys.executable, "-m", "tests.lab.support_tls", Lab.HOME_V4,
                                    str(one_port), name, ca, "http", "max-age=31536000"])
    result["one_endpoint_check_s"] = round(one["seconds"], 3)
    result["one_endpoint_process_wall_s"] = round(one_wall, 3)
    result["one_endpoint_grade"] = one["details"]["grade"]
    modern, _ = _run_json(lab, [sys.executable, "-m", "tests.lab.support_tls", Lab.HOME_V4,
                                str(ports[0]), name, ca, "http", "max-age=31536000"])
    result["modern_endpoint_check_s"] = round(modern["seconds"], 3)
    for cap in (16, 5):
        many, _ = _run_json(lab, [sys.executable, "-c", GRADE_WITH_CAP, str(cap), Lab.HOME_V4,
                                  ",".join(map(str, ports[:10])), name, ca])
        result[f"ten_endpoints_s_{cap}_connections"] = round(many["seconds"], 3)
        result[f"ten_endpoints_grades_{cap}"] = many["grades"]
    for count in (1, 10):
        done = lab.run_in_scan([sys.executable, "-c", SSLYZE_SCANNER, Lab.HOME_V4, name, ca,
                                ",".join(map(str, ports[2:3] if count == 1 else ports[:10]))],
                               capture_output=True, text=True, timeout=600, check=False)
        seconds = float(done.stdout.split()[0]) if done.returncode == 0 else None
        result[f"sslyze_scanner_{count}_endpoint{'s' if count > 1 else ''}_s"] = (
            round(seconds, 3) if seconds else done.stderr[-300:])
    return result


# --- connections per endpoint, exposure next to testssl.sh --------------------------------------


def grade_argv(lab: Any, endpoint: Any, ca_file: str, package_root: str | None) -> list[str]:
    from tests.lab.netns import Lab
    from tests.lab.support_tls import HSTS_HEADER

    # The HTTP facts the check is given are the endpoint's own: HSTS only where it sends it.
    hsts = [HSTS_HEADER] if endpoint.hsts else []
    argv = [sys.executable, "-m", "tests.lab.support_tls", Lab.HOME_V4, str(endpoint.port),
            Lab.HOSTNAME, ca_file, "http", *hsts]
    return ["env", f"PYTHONPATH={package_root}", *argv] if package_root else argv


def _run_json_in(lab: Any, argv: list[str], cwd: str | None) -> dict[str, Any]:
    done = lab.run_in_scan(argv, capture_output=True, text=True, timeout=300, check=False,
                           cwd=cwd)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return dict(json.loads(done.stdout))


def per_endpoint(lab: Any, endpoints: list[Any], ca_file: str,
                 package_root: str | None = None) -> dict[str, dict[str, Any]]:
    """Grade each endpoint alone, counting the SYNs that reach it."""
    from tests.lab.syn_capture import SynCapture

    rows: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        with SynCapture(lab, [endpoint.port]) as capture:
            # Run from the older tree (its own scanner and lab helpers come first on the path).
            graded = _run_json_in(lab, grade_argv(lab, endpoint, ca_file, package_root),
                                  package_root)
        details = graded.get("details") or {}
        rows[endpoint.name] = {
            "grade": details.get("grade"),
            "check_s": round(graded["seconds"], 3),
            "connections": capture.counts[endpoint.port],
            "connections_reported": details.get("connections"),
        }
    return rows


def baseline_package(revision: str, into: Path) -> str:
    """The scanner package and lab helpers of `revision`, extracted to `into`."""
    archive = subprocess.run(["git", "archive", revision, "scanner", "tests"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return str(into)


def testssl_runs(lab: Any, endpoints: list[Any], ca_file: str, jobs: int = 2,
                 ) -> dict[str, dict[str, Any]]:
    """testssl.sh on each endpoint (the checks tls_vs_testssl.py compares), SYNs counted."""
    from bench.tls_vs_testssl import TESTSSL_CHECKS
    from tests.lab.netns import Lab
    from tests.lab.syn_capture import SynCapture

    def one(endpoint: Any, scratch: Path) -> tuple[str, float]:
        argv = ["testssl", "--quiet", "--warnings", "batch", "--color", "0", "--ip", Lab.HOME_V4,
                "--add-ca", ca_file, "--jsonfile", str(scratch / f"{endpoint.port}.json"),
                *TESTSSL_CHECKS, f"{Lab.HOSTNAME}:{endpoint.port}"]
        started = time.monotonic()
        lab.run_in_scan(argv, capture_output=True, text=True, timeout=900, check=False)
        return endpoint.name, time.monotonic() - started

    with tempfile.TemporaryDirectory() as scratch, \
            SynCapture(lab, [e.port for e in endpoints]) as capture, \
            futures.ThreadPoolExecutor(jobs) as pool:
        seconds = dict(pool.map(lambda e: one(e, Path(scratch)), endpoints))
    return {e.name: {"seconds": round(seconds[e.name], 1), "connections": capture.counts[e.port]}
            for e in endpoints}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-latency", action="store_true", help="only the plain lab")
    parser.add_argument("--baseline", metavar="REV", help="also measure the TLS check of REV")
    parser.add_argument("--testssl", default="modern,legacy", metavar="NAMES",
                        help="lab configurations testssl.sh runs on ('' for none; ~1 min each)")
    parser.add_argument("proxy", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.proxy and args.proxy[0] == "proxy":
        proxy_main(args.proxy[1], [int(p) for p in args.proxy[2].split(",")])
        return 0
    from tests.lab.netns import Lab
    from tests.lab.support_tls import ENDPOINTS, GNUTLS_ENDPOINTS, ca_bundle, tls_services

    ports = [endpoint.port for endpoint in ENDPOINTS]
    everything = [*ENDPOINTS, *(endpoint for endpoint, _ in GNUTLS_ENDPOINTS)]
    results = []
    table: dict[str, Any] = {}
    with Lab(services=tls_services()) as lab, tempfile.TemporaryDirectory() as old:
        bundle = str(ca_bundle(lab))
        table["exposure"] = per_endpoint(lab, everything, bundle)
        if args.baseline:
            root = baseline_package(args.baseline, Path(old))
            table[f"exposure {args.baseline}"] = per_endpoint(lab, everything, bundle, root)
        chosen = [e for e in everything if e.name in args.testssl.split(",")]
        if chosen and shutil.which("testssl"):
            table["testssl.sh"] = testssl_runs(lab, chosen, bundle)
        _print_table(table)
        results.append(measure(lab, ports, "lab (veth, ~0.05 ms RTT)"))
        if not args.skip_latency:
            proxied = [p + PROXY_OFFSET for p in ports]
            for port in proxied:
                lab.open_port(port, "latency proxy")
            proxy = lab.popen_in_home([sys.executable, "-m", "bench.tls", "proxy", Lab.HOME_V4,
                                       ",".join(map(str, ports))],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                _wait_for(lab, proxied[0])
                results.append(measure(lab, proxied, "100 ms RTT (delay proxy)"))
            finally:
                proxy.terminate()
                proxy.wait(timeout=10)
    _print(results)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tls.json").write_text(json.dumps({"per_endpoint": table, "speed": results},
                                                 indent=2))
    lab_result = results[0]
    ok = (lab_result["one_endpoint_check_s"] <= TARGET_ONE_S
          and lab_result["ten_endpoints_s_16_connections"] <= TARGET_TEN_S)
    return 0 if ok else 1


def _wait_for(lab: Any, port: int) -> None:
    from tests.lab.netns import Lab

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if lab.probe(Lab.HOME_V4, port).value == "open":
            return
        time.sleep(0.1)
    raise RuntimeError("latency proxy did not start")


def _print_table(table: dict[str, dict[str, dict[str, Any]]]) -> None:
    """One line per configuration: each tool's grade (testssl 3.0.8 has none), connections and
    seconds."""
    tools = list(table)
    print(f"{'configuration':20}" + "".join(f"{tool:>30}" for tool in tools))
    print(f"{'':20}" + "".join(f"{'grade':>10}{'conns':>10}{'s':>10}" for _ in tools))
    for name in table["exposure"]:
        cells = ""
        for tool in tools:
            row = table[tool].get(name)
            if row is None:
                cells += f"{'':>30}"
                continue
            seconds = row.get("check_s", row.get("seconds"))
            cells += f"{row.get('grade', '-')!s:>10}{row['connections']:>10}{seconds:>10}"
        print(f"{name:20}{cells}")
    print("(exposure s: the check in-process; testssl.sh s: its wall time; conns: SYNs captured "
          "at the server; grade None: not graded)")


def _print(results: list[dict[str, Any]]) -> None:
    keys = [
        ("one_endpoint_check_s", "exposure, TLS 1.0-1.2 endpoint (check only)", TARGET_ONE_S),
        ("one_endpoint_process_wall_s", "exposure, TLS 1.0-1.2 endpoint (process wall)", None),
        ("modern_endpoint_check_s", "exposure, TLS 1.2+1.3 endpoint (check only)", None),
        ("ten_endpoints_s_16_connections", "exposure, ten endpoints, 16 conns/host",
         TARGET_TEN_S),
        ("ten_endpoints_s_5_connections", "exposure, ten endpoints, 5 conns/host", None),
        ("sslyze_scanner_1_endpoint_s", "sslyze Scanner, one endpoint (5 conns)", None),
        ("sslyze_scanner_10_endpoints_s", "sslyze Scanner, ten endpoints (5 conns each)", None),
    ]
    print(f"{'measurement':48}" + "".join(f"{r['label']:>28}" for r in results) + "  target")
    for key, label, target in keys:
        cells = "".join(f"{_cell(r.get(key)):>28}" for r in results)
        print(f"{label:48}{cells}  {f'<= {target:g} s' if target else ''}")


def _cell(value: Any) -> str:
    return f"{value:.2f} s" if isinstance(value, float) else str(value)[:26]


if __name__ == "__main__":
    raise SystemExit(main())
