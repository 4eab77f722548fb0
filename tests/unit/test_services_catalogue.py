"""The catalogue as data: its invariants, and every fixture replayed through the engine.

The replay server (tests/lab/support_services.REPLAY) runs on 127.0.0.1 here: no namespace,
no root, only loopback traffic. The lab tests replay the same fixtures through the full CLI.
"""

from __future__ import annotations

import ipaddress
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scanner.checks.base import CheckContext, CheckOptions, standalone_context
from scanner.checks.registry import all_checks, catalogue
from scanner.checks.services.catalogue import FINDINGS, HTTP_PRODUCTS, PROTOCOL_PRODUCTS
from scanner.checks.services.check import CHECK
from scanner.checks.services.engine import PROBES, hinted
from scanner.checks.services.model import HttpProduct, Match, Request, Rule
from scanner.identification.model import ServiceIdentity
from scanner.targets import Target
from tests.lab.daemons import pick_free_port
from tests.lab.support_services import FIXTURES, REPLAY

# fixture -> (details.product key, auth) or None when nothing may be said
EXPECTED = {
    "adguard-installer": ("adguard_home", "none"),
    "adguard-configured": None,
    "code-server-none": ("code_server", "none"),
    "code-server-password": ("code_server", "required"),
    "docker-2375": ("docker", "none"),
    "elasticsearch-open": ("elasticsearch", "none"),
    "elasticsearch-secured": ("elasticsearch", "required"),
    "frigate-5000": ("frigate", "none"),
    "frigate-8971": None,
    "grafana-anonymous": ("grafana", "none"),
    "grafana-login": ("grafana", "required"),
    "jellyfin-wizard": ("jellyfin", "none"),
    "jellyfin-ready": ("jellyfin", "required"),
    "mongodb-open": ("mongodb", "none"),
    "mongodb-auth": ("mongodb", "required"),
    "pihole-v6-nopassword": ("pihole", "none"),
    "pihole-v6-password": ("pihole", "required"),
    "portainer-no-admin": ("portainer", "none"),
    "portainer-admin": ("portainer", "required"),
    "zigbee2mqtt-open": ("zigbee2mqtt", "none"),
    "zigbee2mqtt-token": ("zigbee2mqtt", "required"),
    "nextcloud-installer": ("nextcloud", "none"),
    "nextcloud-installed": ("nextcloud", "required"),
    "couchdb-admin-party": ("couchdb", "none"),
    "couchdb-secured": ("couchdb", "required"),
    "kibana-open": ("kibana", "none"),
    "kibana-secured": ("kibana", "required"),
    "proxmox-ve": ("proxmox_ve", "required"),
    "webmin": ("webmin", "required"),
    "synology-dsm": ("synology_dsm", "required"),
    "unifi-network": ("unifi", "required"),
    "plex-claimed": ("plex", "required"),
    "gitea-install": ("gitea", "none"),
    "gitea-installed": ("gitea", "required"),
    "minio": ("minio", "required"),
    "vaultwarden": ("vaultwarden", "required"),
    "uptime-kuma": ("uptime_kuma", "required"),
}
EXPOSED = {"proxmox-ve", "webmin", "synology-dsm", "unifi-network"}
# the title identification would have found (hints), per fixture
TITLES = {
    "code-server-none": "code-server",
    "frigate-5000": "Frigate", "frigate-8971": "Frigate", "grafana-anonymous": "Grafana",
    "grafana-login": "Grafana", "jellyfin-wizard": "Jellyfin", "jellyfin-ready": "Jellyfin",
    "portainer-no-admin": "Portainer", "portainer-admin": "Portainer",
    "zigbee2mqtt-open": "Zigbee2MQTT", "zigbee2mqtt-token": "Zigbee2MQTT",
    "pihole-v6-nopassword": "Pi-hole - pihole", "pihole-v6-password": "Pi-hole - pihole",
    "proxmox-ve": "pve - Proxmox Virtual Environment", "webmin": "Login to Webmin",
    "synology-dsm": "Synology DiskStation - nas",
    "gitea-install": "Installation -  Gitea: Git with a cup of tea",
    "gitea-installed": "Gitea: Git with a cup of tea", "uptime-kuma": "Uptime Kuma",
    "vaultwarden": "Vaultwarden Web", "nextcloud-installer": "Nextcloud",
    "nextcloud-installed": "Nextcloud", "plex-claimed": "Unauthorized",
}
# the redirect identification followed (Location hints), per fixture
REDIRECTS = {"kibana-open": "/spaces/enter", "kibana-secured": "/login?next=%2F",
             "unifi-network": "/manage"}
RELATIVE_LOGIN = {"code-server-password"}


def test_the_check_is_registered_with_its_findings() -> None:
    assert CHECK in all_checks()
    ids = {spec.id for spec in catalogue()}
    assert {spec.id for spec in FINDINGS} <= ids
    assert {"mqtt.anonymous", "service.unauthenticated", "service.auth_required"} <= ids


def test_definitions_are_well_formed() -> None:
    keys = [product.key for product in HTTP_PRODUCTS] + [
        product.key for product in PROTOCOL_PRODUCTS if product.key != "mqtt"
    ]
    assert len(keys) == len(set(keys))
    for product in HTTP_PRODUCTS:
        assert product.remedy.text and product.remedy.references, product.key
        assert product.usual_ports and (product.open_title or not product.open_when)
        for rule in (*product.identify, *product.open_when):
            for _, match in rule.when:
                assert not match.status_only, f"{product.key}: a status code alone"
        if not product.then_probe:
            assert product.open_when or product.locked_when or product.exposed, product.key
    for product in PROTOCOL_PRODUCTS:
        assert product.probe in PROBES and product.remedy.text, product.key


def test_a_rule_without_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="marker"):
        HttpProduct(
            key="x", name="X", usual_ports=(1,), hints=(),
            identify=(Rule(((Request("/"), Match(status=frozenset({200}))),)),),
            open_when=(),
        )


def test_hints_use_title_server_or_relative_login_redirect() -> None:
    node_red = next(product for product in HTTP_PRODUCTS if product.key == "node_red")
    assert hinted(node_red, {"title": "Node-RED"})
    assert not hinted(node_red, {"title": "Welcome"})
    esphome = next(product for product in HTTP_PRODUCTS if product.key == "esphome")
    assert hinted(esphome, {"redirects": [{"status": 302, "location": "./login"}]})
    docker = next(product for product in HTTP_PRODUCTS if product.key == "docker")
    assert hinted(docker, {})  # API-only products are probed everywhere


@pytest.fixture(scope="module")
def replays(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    """One loopback replay server per fixture."""
    directory = tmp_path_factory.mktemp("replay")
    script = directory / "replay.py"
    script.write_text(REPLAY)
    ports: dict[str, int] = {}
    processes = []
    try:
        for name in EXPECTED:
            port = pick_free_port()
            while port in ports.values():  # the kernel may hand out a just-freed port again
                port = pick_free_port()
            processes.append(subprocess.Popen(
                [sys.executable, str(script), "127.0.0.1", str(port),
                 str(FIXTURES / f"{name}.json"), str(directory / f"{name}.log")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))
            ports[name] = port
        for port in ports.values():
            _wait_listening(port)
        yield ports
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=5)


def _wait_listening(port: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"replay server on {port} did not start")


def _context(port: int, http: dict[str, object]) -> CheckContext:
    address = ipaddress.ip_address("127.0.0.1")
    identity = ServiceIdentity(service="http", details={"http": http})
    return standalone_context(Target("127.0.0.1", address), port, identity, CheckOptions(),
                              timeout=3.0)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_through_the_engine(replays: dict[str, int], name: str) -> None:
    http: dict[str, object] = {"title": TITLES.get(name), "status": 200}
    if name in RELATIVE_LOGIN:
        http["redirects"] = [{"status": 302, "location": "./login", "followed": True}]
    if name in REDIRECTS:
        http["redirects"] = [{"status": 302, "location": REDIRECTS[name], "followed": True}]
    if name == "webmin":
        http["server"] = "MiniServ/2.105"
    if name == "minio":
        http["server"] = "MinIO"
    result = CHECK.run(_context(replays[name], http))
    expected = EXPECTED[name]
    if expected is None:
        assert not result.findings and "product" not in result.details
        return
    key, auth = expected
    assert result.details["product"]["key"] == key
    assert result.details["product"]["auth"] == auth
    ids = {finding.id for finding in result.findings}
    assert ("service.unauthenticated" in ids) == (auth == "none")
    assert ("service.auth_required" in ids) == (auth == "required")
    assert ("service.exposed" in ids) == (name in EXPOSED)


def test_fixtures_name_their_provenance() -> None:
    import json

    for path in Path(FIXTURES).glob("*.json"):
        provenance = json.loads(path.read_text())["provenance"]
        assert provenance["kind"] in ("recorded", "reconstructed"), path
        assert provenance["version"] and provenance["sources"], path
