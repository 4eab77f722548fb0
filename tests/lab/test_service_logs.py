"""What a full default scan leaves in the scanned services' own logs (issue: polite to the host).

A lab of its own (two OpenSSH at LogLevel VERBOSE, nginx with its error log at `info`, mosquitto
with `log_type all`, MQTT over TLS too), one full default scan of both addresses, then every
daemon stopped (mosquitto writes its log on exit) and what the scan added read back:

- sshd: connection lines only ("Connection from", "Connection closed ... [preauth]"): no
  "kex_exchange_identification" error (identification identifies itself before it hangs up);
- nginx: nothing at [warn] or above but its one-line "open() ... failed (No such file or
  directory)" for each public path a check asks that the site does not have (nginx logs every
  404 so, at [error]); the TLS probes only at [info], which nginx's default level hides (the
  ROBOT test, which nginx logs at [crit], runs with --active only);
- mosquitto: no "Error"/"Warning" line (nor "OpenSSL Error": on its TLS port the first probe
  is a ClientHello); a probe it does not understand gets one "disconnected due to protocol
  error" line, identification's refused CONNECT "Invalid protocol version 0".
The docs (README, "What a scan leaves in your logs") list the same lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab.netns import Lab
from tests.lab.scanning import scan_json
from tests.lab.services import default_services
from tests.lab.support_services import mosquitto_tls

pytestmark = pytest.mark.lab

NGINX_LEVEL = re.compile(r"^\S+ \S+ \[(?P<level>\w+)\]")
NGINX_NOT_FOUND = re.compile(
    r'(open\(\) "[^"]+" failed|"[^"]+" is not found) \(2: No such file or directory\)'
)
SSHD_CONNECTION_LINE = re.compile(
    r"^(Connection from \S+ port \d+ on \S+ port \d+"
    r"|Connection (closed|reset) by \S+ port \d+ \[preauth\]"
    r"|Received signal 15; terminating\.)"  # the lab stopping it
)
MOSQUITTO_CONNECTION_LINE = re.compile(r": New connection from \S+ on port \d+\.$")


TLS_GRADING_REFUSALS = re.compile(
    r": (OpenSSL Error\[\d\]: error:\w+:SSL routines::(?!http request)[\w ]+"
    r"|Client <unknown> disconnected: Protocol error"
    r"|Client <unknown> closed its connection"
    r"|Client connection from \S+ failed: error:\w+:SSL routines::(?!http request)[\w ]+)\.?$"
)


@pytest.fixture(scope="module")
def logs() -> Iterator[dict[str, list[str]]]:
    """Each daemon's log lines written during one full default scan (after they stopped)."""
    with Lab(services=[*default_services(), mosquitto_tls(8883)]) as lab:
        files = {f"{daemon.name}:{key}": path for daemon in lab.daemons
                 for key, path in [("log", daemon.log_path), *daemon.files.items()]
                 if key in ("log", "error_log")}
        sizes = {name: path.stat().st_size if path.exists() else 0 for name, path in files.items()}
        report = scan_json(lab, Lab.HOSTNAME, "--ports", "top,2222", "--ca-file",
                           str(lab.ca_pem), "--no-store", timeout=180)
        assert {port["port"] for target in report["targets"] for port in target["ports"]
                if port["state"] == "open"} >= set(lab.open_ports)
        for daemon in lab.daemons:
            daemon.stop()
        added = {name: _added(path, sizes[name]) for name, path in files.items()}
        added["report:tls-connections-8883"] = [
            str(port["details"]["tls"]["connections"]) for target in report["targets"]
            for port in target["ports"] if port["port"] == 8883]
        yield added


def _added(path: Path, offset: int) -> list[str]:
    if not path.exists():
        return []
    return path.read_bytes()[offset:].decode("utf-8", "replace").splitlines()


def _of(logs: dict[str, list[str]], prefix: str) -> list[str]:
    return [line for name, lines in logs.items() if name.startswith(prefix) for line in lines]


def test_sshd_logs_connections_only(logs: dict[str, list[str]]) -> None:
    lines = _of(logs, "openssh")
    assert lines, "sshd logged nothing: the scan did not reach it"
    assert [line for line in lines if not SSHD_CONNECTION_LINE.match(line)] == []


def test_nginx_logs_nothing_worse_than_a_missing_page(logs: dict[str, list[str]]) -> None:
    complaints = []
    for line in _of(logs, "nginx:error_log"):
        found = NGINX_LEVEL.match(line)
        level = found.group("level") if found else "?"
        if level in ("info", "notice", "debug"):
            continue
        if level == "error" and NGINX_NOT_FOUND.search(line):
            continue  # a 404 of a public path some product serves
        complaints.append(line)
    assert complaints == []


# What mosquitto (log_type all) writes for our probes and checks: a probe it does not
# understand ends "due to protocol error" (a notice), identification's refused CONNECT is "Invalid
# protocol version 0" (info), the anonymous check's CONNECT a normal client's lines, the rest
# debug. Never its "Error"/"Warning"/"OpenSSL Error" lines.
MOSQUITTO_EXPECTED = re.compile(
    r": (New connection from \S+ on port \d+"
    r"|Client <unknown> disconnected due to protocol error"
    r"|Invalid protocol version 0 in CONNECT from \S+"
    r"|Sending CONNACK to \S+ \(\d, \d\)"
    r"|New client connected from \S+ as exposure-\w+ \(p2, c1, k30\)"
    r"|No will message specified"
    r"|Received DISCONNECT from exposure-\w+"
    r"|Client exposure-\w+ disconnected"
    r"|mosquitto version \S+ (starting|running|terminating)"
    r"|Config loaded from .*|Opening ipv[46] listen socket on port \d+"
    r"|Warning: Mosquitto should not be run as root/administrator|Saving in-memory database.*"
    r")\.?$"
)


def test_mosquitto_logs_only_what_the_docs_list(logs: dict[str, list[str]]) -> None:
    lines = _of(logs, "mosquitto-1883")
    assert [line for line in lines if MOSQUITTO_CONNECTION_LINE.search(line)]
    assert [line for line in lines if not MOSQUITTO_EXPECTED.search(line)] == []


def test_mosquitto_tls_logs_the_tls_grade_refusals_only(logs: dict[str, list[str]]) -> None:
    """Grading TLS means handshakes the server refuses (old versions and suites); mosquitto
    logs each as an OpenSSL error. Nothing else: no plain-text request reached the port."""
    lines = _of(logs, "mosquitto-tls")
    assert [line for line in lines if MOSQUITTO_CONNECTION_LINE.search(line)]
    unexpected = [line for line in lines if not MOSQUITTO_EXPECTED.search(line)
                  and not TLS_GRADING_REFUSALS.search(line)]
    assert unexpected == []
    refusals = [line for line in lines if "OpenSSL Error" in line]
    graded_connections = sum(int(count) for count in logs["report:tls-connections-8883"])
    assert len(refusals) <= graded_connections
