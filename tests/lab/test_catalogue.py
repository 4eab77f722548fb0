"""The catalogue's breadth against real servers (issue 18), each open and locked down.

One home with every product of the issue that installs here (Debian: vsftpd, rsync, Xvfb,
PostgreSQL, MariaDB, CUPS, node exporter, Transmission, qBittorrent, Deluge web, the Docker
registry, the Docker Engine, etcd, Syncthing; PyPI: jupyter-server) plus catch-all nginx
servers that only borrow product titles. One scan from the scan namespace (and a second one for
the FTP server that refuses anonymous logins: one anonymous attempt per address per scan). Then
each open configuration must be flagged, each locked one must not be, the catch-alls must
produce nothing, and every server's own log must show no failed login, except the single
anonymous FTP attempt.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.lab import Lab
from tests.lab.scanning import scan_json
from tests.lab.support_catalogue import (
    cockpit,
    cups,
    daemon_named,
    deluge_web,
    docker_registry,
    dockerd,
    etcd,
    jupyter,
    log_text,
    mariadb,
    node_exporter,
    octoprints,
    postgresql,
    qbittorrent,
    rpcbind,
    rsyncd,
    syncthing,
    transmission,
    vsftpd,
    xvfb,
)
from tests.lab.support_services import nginx_catch_all

pytestmark = pytest.mark.lab
# the scanner's default --timeout (1.0): OctoPrint takes about half a second to send its
# 580 KB page, slower under the load of 40 ports probed at once
SPEED = ["--rate", "20000", "--timeout", "1.0"]

# port -> (finding that must be there, details.product key, details.product auth)
OPEN = {
    21: ("service.unauthenticated", "ftp", "none"),
    873: ("service.unauthenticated", "rsync", "none"),
    6010: ("service.unauthenticated", "x11", "none"),
    631: ("service.unauthenticated", "cups", "none"),
    9100: ("service.unauthenticated", "prometheus_exporter", "none"),
    9091: ("service.unauthenticated", "transmission", "none"),
    18090: ("service.unauthenticated", "qbittorrent", "none"),
    5000: ("service.unauthenticated", "docker_registry", "none"),
    2375: ("service.unauthenticated", "docker", "none"),
    2379: ("service.unauthenticated", "etcd", "none"),
    8384: ("service.unauthenticated", "syncthing", "none"),
    8888: ("service.unauthenticated", "jupyter", "none"),
}
# databases and admin logins: reachable at all is the finding, even asking for a password
EXPOSED = {
    5432: ("postgresql", "unknown"),
    3306: ("mysql", "required"),
    111: ("portmapper", "unknown"),
    9090: ("cockpit", "required"),  # the host's admin login
}
LOCKED = {
    874: ("rsync", "required"),
    6011: ("x11", "required"),
    632: ("cups", "required"),
    9093: ("transmission", "required"),
    18091: ("qbittorrent", "required"),
    5001: ("docker_registry", "required"),
    2479: ("etcd", "required"),
    8889: ("jupyter", "required"),
    8112: ("deluge_web", "required"),
    3307: ("mysql", "required"),  # refuses remote hosts before any login: not exposed
}
SILENT = (9101,)  # node exporter with basic auth: every path 401, nothing identifies it
# Syncthing 1.19 with a GUI password answers a bare Basic challenge everywhere (no
# X-Syncthing-Id on it): nothing tells it from any Basic-auth server, so nothing is said
SYNCTHING_LOCKED = 8385
CATCH_ALL = {8080: 200, 8081: 401, 8082: 200, 8083: 200}
FTP_LOCKED = 2121
# dockerd --tlsverify: the TLS handshake itself demands a client certificate of the lab CA, so
# nothing past TLS is ever seen (no product named); the TLS check only says the CA is private
DOCKER_LOCKED = 2376
# OctoPrint takes 0.4 s before the first byte of its 580 KB page (3-4 s on its first view),
# much of identification's share of a 1 s port budget after the greeting wait: scanned on its
# own with --timeout 2, not under the load of forty other servers on two cores
OCTOPRINT = {5080: ("none", "service.unauthenticated"), 5081: ("required", None)}
IDENTIFIED_AS = {21: "ftp", 873: "rsync", 6010: "x11", 5432: "postgresql", 3306: "mysql",
                 6011: "x11", 874: "rsync", 111: "rpcbind"}


@pytest.fixture(scope="module")
def home() -> Iterator[Lab]:
    services = [
        vsftpd(21, anonymous=True), vsftpd(FTP_LOCKED, anonymous=False),
        rsyncd(873, listed=True), rsyncd(874, listed=False),
        xvfb(10, access_control=False), xvfb(11, access_control=True),
        postgresql(5432),
        mariadb(3306, remote_account=True), mariadb(3307, remote_account=False),
        cups(631, remote=True), cups(632, remote=False),
        node_exporter(9100, basic_auth=False), node_exporter(9101, basic_auth=True),
        transmission(9091, password=False), transmission(9093, password=True),
        qbittorrent(18090, bypass_auth=True), qbittorrent(18091, bypass_auth=False),
        deluge_web(8112),
        docker_registry(5000, htpasswd=False), docker_registry(5001, htpasswd=True),
        dockerd(2375, tls_verify=False), dockerd(DOCKER_LOCKED, tls_verify=True),
        etcd(2379, auth=False), etcd(2479, auth=True),
        syncthing(8384, password=False), syncthing(8385, password=True),
        jupyter(8888, token=False), jupyter(8889, token=True),
        cockpit(9090), rpcbind(), octoprints(5080, 5081),
        nginx_catch_all(8080, title="qBittorrent Web UI"),
        nginx_catch_all(8081, status=401),
        nginx_catch_all(8082, title="Jupyter Server", name="nginx-catchall-jupyter"),
        nginx_catch_all(8083, title="Deluge WebUI 2.0.3", name="nginx-catchall-deluge"),
    ]
    with Lab(services=services) as lab:
        yield lab


@pytest.fixture(scope="module")
def report(home: Lab) -> dict[str, Any]:
    alone = {FTP_LOCKED, *OCTOPRINT}
    ports = ",".join(str(port) for port in home.open_ports if port not in alone)
    return scan_json(home, Lab.HOME_V4, "--ports", ports, *SPEED, timeout=240)


@pytest.fixture(scope="module")
def ftp_locked_report(home: Lab, report: dict[str, Any]) -> dict[str, Any]:
    return scan_json(home, Lab.HOME_V4, "--ports", str(FTP_LOCKED), *SPEED, timeout=60)


@pytest.fixture(scope="module")
def octoprint_report(home: Lab, report: dict[str, Any]) -> dict[str, Any]:
    ports = ",".join(str(port) for port in OCTOPRINT)
    return scan_json(home, Lab.HOME_V4, "--ports", ports, "--rate", "20000", "--timeout", "2",
                     timeout=90)


def _port(report: dict[str, Any], number: int) -> dict[str, Any]:
    (target,) = report["targets"]
    return next(entry for entry in target["ports"] if entry["port"] == number)


def _findings(report: dict[str, Any], number: int) -> list[dict[str, Any]]:
    (target,) = report["targets"]
    return [finding for finding in target["findings"] if finding["port"] == number]


@pytest.mark.parametrize("port", sorted(OPEN))
def test_open_configuration_is_flagged(report: dict[str, Any], port: int) -> None:
    finding_id, key, auth = OPEN[port]
    findings = _findings(report, port)
    assert finding_id in {finding["id"] for finding in findings}, json.dumps(_port(report, port))
    details = _port(report, port)["details"]
    assert details["product"]["key"] == key and details["product"]["auth"] == auth, details
    flagged = next(finding for finding in findings if finding["id"] == finding_id)
    assert flagged["severity"] in ("medium", "high", "critical")
    assert flagged["evidence"] and flagged["remediation"] and flagged["references"]


@pytest.mark.parametrize("port", sorted(EXPOSED))
def test_reachable_database_or_admin_login_is_exposed(report: dict[str, Any], port: int) -> None:
    key, auth = EXPOSED[port]
    findings = _findings(report, port)
    exposed = [finding for finding in findings if finding["id"] == "service.exposed"]
    assert len(exposed) == 1, findings
    assert exposed[0]["severity"] == "medium"
    assert "brute-forced" in exposed[0]["remediation"] or "DDoS" in exposed[0]["remediation"]
    assert not {f["id"] for f in findings} & {"service.unauthenticated"}
    assert "should never face it" in exposed[0]["title"]
    details = _port(report, port)["details"]
    assert details["product"]["key"] == key and details["product"]["auth"] == auth


@pytest.mark.parametrize("port", sorted(LOCKED))
def test_locked_configuration_is_not_flagged(report: dict[str, Any], port: int) -> None:
    key, auth = LOCKED[port]
    # Syncthing's GUI also answers TLS with its own self-signed certificate: the TLS check's
    # findings are about that certificate, not about who may log in
    findings = [f for f in _findings(report, port) if not f["id"].startswith("tls.")]
    ids = {finding["id"] for finding in findings}
    assert not ids & {"service.unauthenticated", "service.exposed", "mqtt.anonymous"}, findings
    assert all(finding["severity"] in ("info", "medium") for finding in findings), findings
    details = _port(report, port)["details"]
    assert details["product"]["key"] == key and details["product"]["auth"] == auth, details


def test_ftp_refusing_anonymous_is_not_flagged(ftp_locked_report: dict[str, Any]) -> None:
    findings = _findings(ftp_locked_report, FTP_LOCKED)
    ids = {finding["id"] for finding in findings}
    assert "service.unauthenticated" not in ids
    assert {"service.auth_required", "service.cleartext_auth"} <= ids, findings
    details = _port(ftp_locked_report, FTP_LOCKED)["details"]
    assert details["product"]["key"] == "ftp" and details["product"]["auth"] == "required"


@pytest.mark.parametrize("port", sorted(OCTOPRINT))
def test_octoprint(octoprint_report: dict[str, Any], port: int) -> None:
    auth, finding_id = OCTOPRINT[port]
    entry = _port(octoprint_report, port)
    ids = {finding["id"] for finding in _findings(octoprint_report, port)}
    assert entry["product"] == "OctoPrint", json.dumps(entry)
    assert entry["details"]["product"] == {"name": "OctoPrint", "key": "octoprint", "auth": auth}
    if finding_id:
        assert finding_id in ids
    else:
        assert "service.unauthenticated" not in ids and "service.auth_required" in ids


@pytest.mark.parametrize("port", SILENT)
def test_exporter_behind_basic_auth_names_no_product(report: dict[str, Any], port: int) -> None:
    # the one thing to say: its Basic-auth password travels over plain HTTP
    assert [f["id"] for f in _findings(report, port)] == ["http.plain_login"]
    assert "product" not in _port(report, port)["details"]


def test_syncthing_with_a_password_has_no_product_finding(report: dict[str, Any]) -> None:
    """Its GUI (TLS on) answers on one port in TLS and in plain HTTP alike: a plain GET gets
    its Basic challenge, so the one finding is the true one, a login offered over plain HTTP
    (a browser typing http://... sends the password in clear). No product finding."""
    entry = _port(report, SYNCTHING_LOCKED)
    ids = {f["id"] for f in _findings(report, SYNCTHING_LOCKED)}
    assert ids == {"http.plain_login"}, ids
    assert "product" not in entry["details"]


@pytest.mark.parametrize("port", sorted(CATCH_ALL))
def test_catch_all_servers_produce_no_product_finding(report: dict[str, Any], port: int) -> None:
    ids = [f["id"] for f in _findings(report, port)]
    # 401 + Basic everywhere over plain HTTP is a plain-HTTP login (true), never a product
    assert ids == (["http.plain_login"] if CATCH_ALL[port] == 401 else []), ids
    entry = _port(report, port)
    assert "product" not in entry["details"] and entry["service"] == "http"


@pytest.mark.parametrize("port", sorted(IDENTIFIED_AS))
def test_services_are_named(report: dict[str, Any], port: int) -> None:
    entry = _port(report, port)
    assert entry["service"] == IDENTIFIED_AS[port], entry


def test_products_and_versions_are_named(report: dict[str, Any]) -> None:
    assert _port(report, 21)["product"] == "vsftpd" and _port(report, 21)["version"] == "3.0.3"
    assert _port(report, 3306)["product"] == "MariaDB"
    assert _port(report, 873)["details"]["rsync"]["modules"] == ["backup"]
    assert "backup" not in str(_port(report, 874)["details"]["rsync"])
    assert _port(report, 2379)["details"]["etcd"]["version"].startswith("3.4")
    assert _port(report, 18090)["details"]["qbittorrent"]["auth"] == "none"


# --- what the servers saw ---------------------------------------------------------------------

FAILED_LOGIN = {
    # daemon -> (log file key or None for its stdout log, pattern of a failed login)
    "vsftpd-21": ("protocol_log", r"FAIL LOGIN"),
    # (protocol guesses on a port identification cannot name leave "invalid length of startup
    # packet" lines: bytes that were no PostgreSQL at all, not logins)
    "postgresql-5432": (None, r"authentication failed|no pg_hba\.conf entry|connection authorized"),
    "mariadb-3306": ("error_log", r"Access denied"),
    "mariadb-3307": ("error_log", r"Access denied"),
    "transmission-9093": ("log", r"[Uu]nauthori[sz]ed|login attempt"),
    "qbittorrent-18091": ("log", r"WebAPI login failure|banned"),
    "syncthing-8385": ("log", r"Wrong credentials|authentication failed"),
    "cups-632": ("error_log", r"[Aa]uthentication|Unauthorized"),
    "jupyter-8889": (None, r"[Ff]ailed login|Invalid (password|token)"),
    "deluge-web-8112": ("log", r"[Ll]ogin failed|[Bb]ad password"),
    "rsyncd-874": ("log", r"auth failed"),
    "cockpit-9090": (None, r"[Aa]uthentication failed|pam_unix|[Ll]ogin failed"),
    "octoprint-5081": (None, r"[Ll]ogin failed|[Ww]rong (user|password)|[Ff]ailed login"),
}


@pytest.mark.parametrize("name", sorted(FAILED_LOGIN))
def test_no_failed_login_in_the_server_log(home: Lab, report: dict[str, Any],
                                           ftp_locked_report: dict[str, Any],
                                           octoprint_report: dict[str, Any],
                                           name: str) -> None:
    key, pattern = FAILED_LOGIN[name]
    text = log_text(daemon_named(home, name), key)
    assert not re.search(pattern, text), text[-2000:]


def test_exactly_one_anonymous_ftp_attempt(home: Lab, report: dict[str, Any],
                                           ftp_locked_report: dict[str, Any]) -> None:
    opened = log_text(daemon_named(home, "vsftpd-21"), "protocol_log")
    assert len(re.findall(r"OK LOGIN: Client \"203\.0\.113\.1\", anon password", opened)) == 1
    refused = log_text(daemon_named(home, f"vsftpd-{FTP_LOCKED}"), "protocol_log")
    assert len(re.findall(r"FAIL LOGIN: Client \"203\.0\.113\.1\"", refused)) == 1, refused
    commands = re.findall(r'FTP command: Client "203\.0\.113\.1", "(\w+)', opened + refused)
    assert set(commands) <= {"FEAT", "USER", "PASS", "QUIT"}, commands


def test_quiet_servers_logged_nothing_about_us(home: Lab, report: dict[str, Any]) -> None:
    # locked X server, exporter behind basic auth and etcd with auth: not a line about us
    for name in ("xvfb-6011", "node-exporter-9101", "etcd-2479"):
        log = log_text(daemon_named(home, name))
        assert not re.search(r"203\.0\.113\.1(?!\d)|rejected", log), (name, log[-1500:])


def test_registry_logged_one_challenge_and_no_credential(home: Lab, report: dict[str, Any]) -> None:
    # distribution logs a warning for every 401 challenge, as for any `docker pull`; with no
    # credential sent it can say nothing else, and /v2/_catalog is never asked once /v2/ is 401
    log = log_text(daemon_named(home, "registry-5001"))
    challenges = re.findall(r"error authorizing context: basic authentication challenge", log)
    assert len(challenges) == 1, log[-2000:]
    assert "_catalog" not in log


def test_postgresql_saw_no_login(home: Lab, report: dict[str, Any]) -> None:
    log = log_text(daemon_named(home, "postgresql-5432"))
    assert "connection received: host=203.0.113.1" in log  # log_connections: we were there
    assert "connection authorized" not in log


def test_rsync_module_was_never_opened(home: Lab, report: dict[str, Any]) -> None:
    for name in ("rsyncd-873", "rsyncd-874"):
        log = log_text(daemon_named(home, name), "log")
        assert "module-list request" in log and "rsync on backup" not in log, log


def test_etcd_kept_its_key_and_was_only_read(home: Lab, report: dict[str, Any]) -> None:
    done = home.run_in_home(
        ["curl", "-sS", "-X", "POST", f"http://{Lab.HOME_V4}:2379/v3/kv/range", "-d",
         '{"key":"Y29uZmln"}'], capture_output=True, text=True, check=True, timeout=10)
    assert '"value":"c2VjcmV0"' in done.stdout
    assert '"revision":"2"' in done.stdout  # one put by the lab, nothing written since


def test_plain_http_logins_are_flagged(report: dict[str, Any]) -> None:
    flagged = {port for port in {entry["port"] for entry in report["targets"][0]["ports"]}
               if "http.plain_login" in {f["id"] for f in _findings(report, port)}}
    # qBittorrent's and Cockpit's login forms, the Basic challenges of Transmission, the node
    # exporter, Syncthing's GUI (plain HTTP answers too) and the catch-all
    assert {18091, 9090, 9093, 9101, 8081, SYNCTHING_LOCKED} <= flagged, flagged
    # no login there: open products, a catch-all page, non-HTTP services
    assert not flagged & {8888, 8080, 8082, 631, 2379, 2375, 21, 5432}, flagged
    form = next(f["evidence"] for f in _findings(report, 18091) if f["id"] == "http.plain_login")
    assert "password field" in form
    basic = next(f["evidence"] for f in _findings(report, 9093) if f["id"] == "http.plain_login")
    assert "HTTP Basic" in basic


# --- the Docker Engine ------------------------------------------------------------------------


def _dockerd_version() -> str:
    # "Docker version 20.10.24+dfsg1, build 5d6db84": what the binary says, not the API
    said = subprocess.run(["/usr/sbin/dockerd", "--version"], capture_output=True, text=True,
                          check=True, timeout=10).stdout
    match = re.match(r"Docker version ([^,\s]+)", said)
    assert match, said
    return match.group(1)


def test_open_docker_engine_is_named_and_critical(report: dict[str, Any]) -> None:
    entry = _port(report, 2375)
    assert entry["product"] == "Docker Engine API" and entry["version"] == _dockerd_version()
    (flagged,) = [f for f in _findings(report, 2375) if f["id"] == "service.unauthenticated"]
    assert flagged["severity"] == "critical"  # docker.toml: anyone can run containers as root
    assert "GET /version -> 200" in flagged["evidence"]


def test_docker_engine_with_tlsverify_says_only_that_its_ca_is_private(
        home: Lab, report: dict[str, Any]) -> None:
    findings = _findings(report, DOCKER_LOCKED)
    assert findings and all(f["id"].startswith("tls.") for f in findings), findings
    assert all("Exposure Lab Root CA" in f["evidence"] for f in findings), findings
    entry = _port(report, DOCKER_LOCKED)
    assert entry["tls"] is True and "product" not in entry["details"], json.dumps(entry)
    log = log_text(daemon_named(home, f"dockerd-{DOCKER_LOCKED}"))
    # the scanner's handshakes were refused for want of a client certificate; no API call
    assert "203.0.113.1:" in log and "client didn't provide a certificate" in log, log[-2000:]
    assert "Calling " not in log, log[-2000:]


def test_docker_engine_was_only_read(home: Lab, report: dict[str, Any]) -> None:
    # dockerd --log-level=debug logs every API call it routes ("Calling POST /containers/create")
    log = log_text(daemon_named(home, "dockerd-2375"))
    calls = re.findall(r'msg="Calling (\w+) ([^"]+)"', log)
    assert ("GET", "/version") in calls, log[-2000:]
    assert {method for method, _ in calls} <= {"GET", "HEAD"}, calls
    # and nothing exists that a write would have left: no container, image, volume or network
    # beyond the built-in ones (the lab admin reads this from inside home, after the scan)
    def read(path: str) -> Any:
        done = home.run_in_home(["curl", "-sS", "-f", f"http://{Lab.HOME_V4}:2375{path}"],
                                capture_output=True, text=True, check=True, timeout=10)
        return json.loads(done.stdout)

    assert read("/containers/json?all=1") == [] and read("/images/json") == []
    assert not read("/volumes")["Volumes"]
    assert {network["Name"] for network in read("/networks")} <= {"none", "host"}
