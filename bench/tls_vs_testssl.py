"""exposure's TLS facts and grades next to testssl.sh on the same lab servers (opt-in, slow).

    .venv/bin/python -m bench.tls_vs_testssl [--jobs 4] [--ports 443,10443]   (as root)

Debian 12 ships testssl.sh 3.0.8 (`apt-get install testssl.sh`), which predates testssl's
rating (run_rating arrived in 3.1/3.2), so there is no testssl grade to compare with here. What we
compare is every fact the grade is made of, as each tool saw it: protocol versions, forward
secrecy, NULL / anonymous / export / 3DES suites, certificate chain of trust, name match,
expiry, HSTS, and the vulnerabilities (Heartbleed, CCS, ROBOT, renegotiation, CRIME,
TLS_FALLBACK_SCSV). A fact on which the tools disagree is printed and fails the run; where our
grade departs from testssl 3.2's reading of the guide, rating.py says why (DECISION comments).
testssl takes ~50 s per endpoint on the lab; exposure ~0.4 s.

Writes bench/results/tls_vs_testssl.json.
"""

from __future__ import annotations

import argparse
import concurrent.futures as futures
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
TESTSSL_CHECKS = ["-p", "-s", "-f", "-S", "-h", "-U"]
PROTOCOL_IDS = {"SSLv2": "SSLv2", "SSLv3": "SSLv3", "TLS1": "TLSv1.0", "TLS1_1": "TLSv1.1",
                "TLS1_2": "TLSv1.2", "TLS1_3": "TLSv1.3"}
FS_PREFIXES = ("TLS_ECDHE_", "TLS_DHE_", "TLS_AES_", "TLS_CHACHA20_")


def testssl_facts(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """The grade's facts from testssl's flat JSON (ids of testssl 3.0.8)."""
    by_id = {entry["id"]: str(entry.get("finding", "")) for entry in entries}
    severity = {entry["id"]: str(entry.get("severity", "")) for entry in entries}

    def offered(key: str) -> bool | None:
        text = by_id.get(key)
        if text is None:
            return None
        return text.startswith("offered") or text.startswith("supported")

    def ok(key: str, *good: str) -> bool | None:
        text = by_id.get(key)
        return None if text is None else text.lower().startswith(good)

    expiry = by_id.get("cert_expirationStatus", "")
    return {
        "protocols": sorted((v for k, v in PROTOCOL_IDS.items() if offered(k)),
                            key=list(PROTOCOL_IDS.values()).index),
        "forward_secrecy": offered("PFS"),
        "null": offered("cipherlist_NULL"),
        "anonymous": offered("cipherlist_aNULL"),
        "export": offered("cipherlist_EXPORT"),
        "triple_des": offered("cipherlist_3DES_IDEA"),
        "chain_trusted": ok("cert_chain_of_trust", "passed"),
        "name_matches": ok("cert_trust", "ok"),
        "expired": "expired" in expiry.lower() if expiry else None,
        "hsts": ok("HSTS_time", "") if "HSTS_time" in by_id else (False if "HSTS" in by_id
                                                                   else None),
        "heartbleed": not ok("heartbleed", "not vulnerable") if "heartbleed" in by_id else None,
        "ccs_injection": not ok("CCS", "not vulnerable") if "CCS" in by_id else None,
        "robot": not ok("ROBOT", "not vulnerable", "server does not support")
        if "ROBOT" in by_id else None,
        "secure_renegotiation": ok("secure_renego", "supported"),
        "compression": not ok("CRIME_TLS", "not vulnerable") if "CRIME_TLS" in by_id else None,
        "fallback_scsv": _fallback(by_id.get("fallback_SCSV"), severity.get("fallback_SCSV")),
        "scan_seconds": int(by_id.get("scanTime", "0") or 0),
    }


def _fallback(finding: str | None, severity: str | None) -> bool | None:
    """testssl says "supported", or (OK) "no protocol below TLS 1.2 offered": nothing to
    downgrade to, so not comparable with sslyze's test (which then tries TLS 1.2 from 1.3)."""
    if finding is None:
        return None
    if finding.lower().startswith("supported"):
        return True
    return None if severity == "OK" else False


def exposure_facts(tls: dict[str, Any]) -> dict[str, Any]:
    """The same facts from exposure's details.tls."""
    suites = [name for names in tls.get("suites", {}).values() for name in names]
    certificate = tls.get("certificate") or {}
    vulnerabilities = tls.get("vulnerabilities") or {}
    robot = vulnerabilities.get("robot")
    hsts = tls.get("hsts") or {}
    return {
        "protocols": tls.get("protocols", []),
        "forward_secrecy": any(name.startswith(FS_PREFIXES) for name in suites),
        "null": any("_WITH_NULL_" in name for name in suites),
        "anonymous": any("_anon_" in name for name in suites),
        "export": any("EXPORT" in name for name in suites),
        "triple_des": any("3DES" in name or "IDEA" in name for name in suites),
        "chain_trusted": bool(certificate.get("trusted")) if certificate else None,
        "name_matches": certificate.get("hostname_matches"),
        "expired": certificate.get("days_left", 0) < 0 if certificate else None,
        "hsts": bool(hsts.get("present")) if hsts.get("applicable") else None,
        "heartbleed": vulnerabilities.get("heartbleed"),
        "ccs_injection": vulnerabilities.get("ccs_injection"),
        "robot": robot.startswith("vulnerable") if isinstance(robot, str) else None,
        "secure_renegotiation": vulnerabilities.get("secure_renegotiation"),
        "compression": vulnerabilities.get("compression"),
        "fallback_scsv": vulnerabilities.get("fallback_scsv"),
        "scan_seconds": tls.get("scan_seconds"),
    }


# Facts testssl reports in a way that cannot be compared one to one, with the reason.
NOT_COMPARED = {
    # testssl's "Chain of trust" also fails for an expired leaf; exposure's "trusted" means the
    # certificate is trusted now, which an expired one is not either: compared as is.
    "scan_seconds": "timing, reported separately",
}


def compare(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    differences = {}
    for key, value in ours.items():
        if key in NOT_COMPARED or theirs.get(key) is None or value is None:
            continue
        if value != theirs[key]:
            differences[key] = {"exposure": value, "testssl": theirs[key]}
    return differences


def run_testssl(lab: Any, port: int, ca_file: str, out: Path) -> tuple[int, list[dict[str, Any]]]:
    from tests.lab.netns import Lab

    json_file = out / f"testssl-{port}.json"
    argv = ["testssl", "--quiet", "--warnings", "batch", "--color", "0", "--ip", Lab.HOME_V4,
            "--add-ca", ca_file, "--jsonfile", str(json_file), *TESTSSL_CHECKS,
            f"{Lab.HOSTNAME}:{port}"]
    lab.run_in_scan(argv, capture_output=True, text=True, timeout=900, check=False)
    return port, json.loads(json_file.read_text()) if json_file.exists() else []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=4, help="testssl processes at once")
    parser.add_argument("--ports", help="comma-separated subset of the lab's TLS ports")
    args = parser.parse_args()
    if shutil.which("testssl") is None:
        print("testssl is not installed: apt-get install testssl.sh", file=sys.stderr)
        return 3
    from tests.lab.netns import Lab
    from tests.lab.scanning import LAB_SPEED, scan_json
    from tests.lab.support_tls import ENDPOINTS, MQTT_TLS_PORT, tls_services

    names = {e.port: e.name for e in ENDPOINTS} | {MQTT_TLS_PORT: "mqtt_tls"}
    ports = [int(p) for p in args.ports.split(",")] if args.ports else sorted(names)
    rows = []
    with Lab(services=tls_services()) as lab, tempfile.TemporaryDirectory() as scratch:
        started = time.monotonic()
        report = scan_json(lab, Lab.HOSTNAME, "--ports", ",".join(map(str, ports)),
                           "--ca-file", str(lab.ca_pem), *LAB_SPEED)
        exposure_wall = time.monotonic() - started
        target = next(t for t in report["targets"] if t["address"] == Lab.HOME_V4)
        details = {p["port"]: p["details"].get("tls", {}) for p in target["ports"]}
        with futures.ThreadPoolExecutor(args.jobs) as pool:
            done = dict(pool.map(lambda p: run_testssl(lab, p, str(lab.ca_pem), Path(scratch)),
                                 ports))
    for port in ports:
        ours, theirs = exposure_facts(details.get(port, {})), testssl_facts(done.get(port, []))
        rows.append({
            "port": port, "config": names.get(port, "?"),
            "grade": details.get(port, {}).get("grade"),
            "grade_if_trust_ignored": details.get(port, {}).get("grade_if_trust_ignored"),
            "caps": [c["reason"] for c in details.get(port, {}).get("caps", [])],
            "exposure": ours, "testssl": theirs, "differences": compare(ours, theirs),
        })
    _print(rows, exposure_wall)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tls_vs_testssl.json").write_text(json.dumps(rows, indent=2, default=str))
    return 1 if any(row["differences"] for row in rows) else 0


def _print(rows: list[dict[str, Any]], exposure_wall: float) -> None:
    print(f"{'port':>6} {'config':18} {'grade':6} {'if trusted':10} {'testssl s':>9}  facts")
    for row in rows:
        verdict = "same" if not row["differences"] else f"DIFFER {row['differences']}"
        print(f"{row['port']:>6} {row['config']:18} {row['grade']!s:6} "
              f"{row['grade_if_trust_ignored']!s:10} {row['testssl']['scan_seconds']:>9}  "
              f"{verdict}")
    print(f"exposure: the whole scan of these {len(rows)} endpoints by name, IPv4 and IPv6, with "
          f"discovery and identification, took {exposure_wall:.1f} s")


if __name__ == "__main__":
    raise SystemExit(main())
