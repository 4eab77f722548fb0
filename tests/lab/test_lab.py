"""Tests of the lab harness itself: the network behaves as documented, and teardown is complete."""

from __future__ import annotations

import datetime as dt
import json
import random
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from tests.lab import (
    KeySpec,
    Lab,
    LabCA,
    LabError,
    Probe,
    Service,
    cleanup_stale_labs,
    dropbear,
    icmp_echo,
    pick_free_port,
    read_access_log,
    self_signed,
    start_sshd,
)
from tests.lab.netns import NETNS_ETC
from tests.lab.nsutil import list_netns

pytestmark = pytest.mark.lab

FILTERED_PORT = 8081  # neither forwarded nor the closed port
SHORT = 0.5  # seconds: enough on veth, where an answer takes microseconds


def _recv_line(sock: socket.socket, limit: int = 256) -> bytes:
    data = b""
    while b"\n" not in data and len(data) < limit:
        chunk = sock.recv(limit)
        if not chunk:
            break
        data += chunk
    return data


def test_namespaces_exist_without_default_route(lab: Lab) -> None:
    names = list_netns()
    assert lab.scan_ns in names
    assert lab.home_ns in names
    for run in (lab.run_in_scan, lab.run_in_home):
        for family in ("-4", "-6"):
            out = run(["ip", family, "route", "show", "default"], capture_output=True, text=True)
            assert out.returncode == 0
            assert out.stdout.strip() == ""


def test_open_ports_accept(lab: Lab) -> None:
    assert set(lab.open_ports) >= {22, 80, 443, 1883, 2222, 8443}
    for port in lab.open_ports:
        assert lab.probe(Lab.HOME_V4, port) is Probe.OPEN, port
        assert lab.probe(Lab.HOME_V6, port) is Probe.OPEN, port


def test_closed_port_is_refused(lab: Lab) -> None:
    assert lab.closed_port == Lab.CLOSED_PORT
    assert lab.probe(Lab.HOME_V4, lab.closed_port) is Probe.CLOSED
    assert lab.probe(Lab.HOME_V6, lab.closed_port) is Probe.CLOSED


def test_other_ports_are_filtered(lab: Lab) -> None:
    assert lab.probe(Lab.HOME_V4, FILTERED_PORT, timeout=SHORT) is Probe.FILTERED
    assert lab.probe(Lab.HOME_V6, FILTERED_PORT, timeout=SHORT) is Probe.FILTERED


def test_ssh_banner_over_ipv4_and_ipv6(lab: Lab) -> None:
    for host in (Lab.HOME_V4, Lab.HOME_V6):
        for port in (22, 2222):
            with lab.connect(host, port) as sock:
                assert _recv_line(sock).startswith(b"SSH-2.0-OpenSSH_"), (host, port)


def test_http_page_has_title_and_is_logged(lab: Lab) -> None:
    with lab.connect(Lab.HOME_V4, 80) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\nHost: home.lab\r\nUser-Agent: lab-test/1\r\n\r\n")
        response = b""
        while chunk := sock.recv(4096):
            response += chunk
    assert response.startswith(b"HTTP/1.1 200")
    assert b"<title>Exposure Lab Home</title>" in response
    nginx = next(d for d in lab.daemons if d.name == "nginx")
    entries = read_access_log(nginx)
    assert any(e["user_agent"] == "lab-test/1" and e["uri"] == "/" for e in entries)


@pytest.mark.parametrize("port", [443, 8443])
def test_tls_verifies_against_lab_ca(lab: Lab, port: int) -> None:
    context = ssl.create_default_context(cafile=str(lab.ca_pem))
    with (
        lab.connect(Lab.HOME_V4, port) as raw,
        context.wrap_socket(raw, server_hostname=Lab.HOSTNAME) as tls,
    ):
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
        names = [value for _, value in tls.getpeercert()["subjectAltName"]]
        assert names == [Lab.HOSTNAME]


def test_mosquitto_accepts_anonymous_connect(lab: Lab) -> None:
    # MQTT 3.1.1 CONNECT, clean session, keepalive 10 s, client id "lab"
    connect = bytes([0x10, 15, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 10, 0, 3]) + b"lab"
    with lab.connect(Lab.HOME_V4, 1883) as sock:
        sock.sendall(connect)
        assert sock.recv(4) == bytes([0x20, 2, 0, 0])  # CONNACK, return code 0: accepted


def test_home_lab_resolves_in_scan_namespace(lab: Lab) -> None:
    code = (
        "import json, socket\n"
        "infos = socket.getaddrinfo('home.lab', 22, proto=socket.IPPROTO_TCP)\n"
        "print(json.dumps(sorted({info[4][0] for info in infos})))\n"
        "try:\n"
        "    socket.getaddrinfo('not-in-the-lab.example', 22)\n"
        "    print('resolved')\n"
        "except socket.gaierror:\n"
        "    print('unresolved')\n"
    )
    out = lab.run_in_scan([sys.executable, "-c", code], capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.splitlines()
    assert json.loads(first) == sorted([Lab.HOME_V4, Lab.HOME_V6])
    assert second == "unresolved"


def test_tarpit_accepts_any_port_and_stays_silent(lab: Lab) -> None:
    for port in random.sample(range(1, 65536), 5):
        with lab.connect(Lab.TARPIT_V4, port, timeout=SHORT) as sock:
            sock.settimeout(0.2)
            sock.sendall(b"hello?\r\n")
            with pytest.raises(TimeoutError):
                sock.recv(1)


def test_blackhole_never_answers(lab: Lab) -> None:
    assert lab.probe(Lab.BLACKHOLE_V4, 22, timeout=SHORT) is Probe.FILTERED
    port = random.randrange(1024, 65536)
    assert lab.probe(Lab.BLACKHOLE_V4, port, timeout=SHORT) is Probe.FILTERED
    assert not icmp_echo(lab.scan_ns, Lab.BLACKHOLE_V4, timeout=SHORT)
    # the same ping to home is answered: the silence above is the blackhole's, not the method's
    assert icmp_echo(lab.scan_ns, Lab.HOME_V4, timeout=SHORT)
    assert icmp_echo(lab.scan_ns, Lab.HOME_V6, timeout=SHORT)


def test_sshd_on_loopback_without_namespace(tmp_path: Path) -> None:
    port = pick_free_port()
    daemon = start_sshd(None, port, workdir=tmp_path)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            assert _recv_line(sock).startswith(b"SSH-2.0-OpenSSH_")
    finally:
        daemon.stop()
    assert not daemon.alive


def test_pki_builds_bad_certificates(tmp_path: Path) -> None:
    ca = LabCA(tmp_path)
    leaf = ca.intermediate().issue(Lab.HOSTNAME, key=KeySpec("ec"))
    assert leaf.chain_path.read_text().count("BEGIN CERTIFICATE") == 2
    expired = ca.issue(
        Lab.HOSTNAME,
        not_before=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
        not_after=dt.datetime(2021, 1, 1, tzinfo=dt.UTC),
        filename="expired",
    )
    assert expired.cert.not_valid_after_utc.year == 2021
    weak = self_signed(tmp_path, "router.local", key=KeySpec("rsa", 1024))
    assert weak.cert.issuer == weak.cert.subject
    assert weak.key_path.stat().st_mode & 0o077 == 0


def test_parallel_labs_get_distinct_names() -> None:
    first, second = Lab(), Lab()
    assert {first.scan_ns, first.home_ns}.isdisjoint({second.scan_ns, second.home_ns})


def _explode(_lab: Lab) -> list:
    raise RuntimeError("boom")


def test_failed_start_cleans_up() -> None:
    broken = Lab(services=[Service("broken", {4242: "nothing"}, _explode)])
    with pytest.raises(RuntimeError, match="boom"):
        broken.start()
    names = list_netns()
    assert broken.scan_ns not in names
    assert broken.home_ns not in names
    assert not (NETNS_ETC / broken.scan_ns).exists()
    assert not broken.running


def test_stop_removes_everything() -> None:
    other = Lab()
    other.start()
    try:
        extra = other.add_service(dropbear(2022))
        with other.connect(Lab.HOME_V4, 2022) as sock:
            assert _recv_line(sock).startswith(b"SSH-2.0-dropbear")
        other.close_port(2022)
        assert other.probe(Lab.HOME_V4, 2022, timeout=SHORT) is Probe.FILTERED
        with pytest.raises(RuntimeError):
            other.add_service(Service("broken", {4243: "nothing"}, _explode))
        assert 4243 not in other.open_ports
        assert other.probe(Lab.HOME_V4, 4243, timeout=SHORT) is Probe.FILTERED
        # a stray process left in the scan namespace must not survive either
        stray = other.popen_in_scan(["sleep", "60"])
        pids = [d.pid for d in other.daemons] + [stray.pid]
        tmpdir = other.tmpdir
        assert extra[0].pid in pids
    finally:
        other.stop()
    stray.wait(timeout=5)
    assert other.stop_seconds is not None
    names = list_netns()
    assert other.scan_ns not in names
    assert other.home_ns not in names
    for name in (other.scan_ns, other.home_ns):
        assert not (NETNS_ETC / name).exists()
    for daemon in other.daemons:
        assert not daemon.alive, daemon
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or _is_zombie_or_gone(pid), pid
    assert not tmpdir.exists()
    other.stop()  # idempotent


def _is_zombie_or_gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def test_cleanup_stale_labs_spares_live_labs(lab: Lab) -> None:
    stale = "exp-scan-" + "".join(random.choices("0123456789abcdef", k=6))
    subprocess.run(["ip", "netns", "add", stale], check=True)
    try:
        removed = cleanup_stale_labs()
    finally:
        subprocess.run(["ip", "netns", "del", stale], check=False, capture_output=True)
    assert stale in removed
    assert lab.scan_ns not in removed
    assert lab.scan_ns in list_netns()
    assert lab.probe(Lab.HOME_V4, 22) is Probe.OPEN


def test_start_twice_is_refused(lab: Lab) -> None:
    with pytest.raises(LabError):
        lab.start()
