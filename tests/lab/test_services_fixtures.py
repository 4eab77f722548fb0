"""Products that cannot run here, replayed from fixtures/services/*.json through the CLI.

Each fixture says where its answers come from (reconstructed from the product's source and
documentation, with the version). A small replay server serves one fixture per port in the lab's
home namespace; one scan must flag every "open" state with the right product, leave every
locked state without a high/critical finding, and send nothing but GETs (plus, for MongoDB, the
two read-only commands isMaster and listDatabases).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.lab import Lab
from tests.lab.daemons import Daemon
from tests.lab.scanning import LAB_SPEED, scan_json
from tests.lab.support_services import FIXTURES, load_fixture, replay_server, replayed_requests

pytestmark = pytest.mark.lab

# fixture -> (finding id or None, details.product key or None, auth or None)
EXPECTED: dict[str, tuple[str | None, str | None, str | None]] = {
    "adguard-installer": ("service.unauthenticated", "adguard_home", "none"),
    "adguard-configured": (None, None, None),  # no public marker tells it apart: nothing said
    "code-server-none": ("service.unauthenticated", "code_server", "none"),
    "code-server-password": ("service.auth_required", "code_server", "required"),
    "docker-2375": ("service.unauthenticated", "docker", "none"),
    "elasticsearch-open": ("service.unauthenticated", "elasticsearch", "none"),
    "elasticsearch-secured": ("service.auth_required", "elasticsearch", "required"),
    "frigate-5000": ("service.unauthenticated", "frigate", "none"),
    "frigate-8971": (None, None, None),  # the authenticated port: identified by title only
    "grafana-anonymous": ("service.unauthenticated", "grafana", "none"),
    "grafana-login": ("service.auth_required", "grafana", "required"),
    "jellyfin-wizard": ("service.unauthenticated", "jellyfin", "none"),
    "jellyfin-ready": ("service.auth_required", "jellyfin", "required"),
    "mongodb-open": ("service.unauthenticated", "mongodb", "none"),
    "mongodb-auth": ("service.auth_required", "mongodb", "required"),
    "pihole-v6-nopassword": ("service.unauthenticated", "pihole", "none"),
    "pihole-v6-password": ("service.auth_required", "pihole", "required"),
    "portainer-no-admin": ("service.unauthenticated", "portainer", "none"),
    "portainer-admin": ("service.auth_required", "portainer", "required"),
    "zigbee2mqtt-open": ("service.unauthenticated", "zigbee2mqtt", "none"),
    "zigbee2mqtt-token": ("service.auth_required", "zigbee2mqtt", "required"),
    # issue 18: what cannot run here
    "nextcloud-installer": ("service.unauthenticated", "nextcloud", "none"),
    "nextcloud-installed": ("service.auth_required", "nextcloud", "required"),
    "couchdb-admin-party": ("service.unauthenticated", "couchdb", "none"),
    "couchdb-secured": ("service.auth_required", "couchdb", "required"),
    "kibana-open": ("service.unauthenticated", "kibana", "none"),
    "kibana-secured": ("service.auth_required", "kibana", "required"),
    "proxmox-ve": ("service.exposed", "proxmox_ve", "required"),
    "webmin": ("service.exposed", "webmin", "required"),
    "synology-dsm": ("service.exposed", "synology_dsm", "required"),
    "unifi-network": ("service.exposed", "unifi", "required"),
    "plex-claimed": ("service.auth_required", "plex", "required"),
    "gitea-install": ("service.unauthenticated", "gitea", "none"),
    "gitea-installed": ("service.auth_required", "gitea", "required"),
    "minio": ("service.auth_required", "minio", "required"),
    "vaultwarden": ("service.auth_required", "vaultwarden", "required"),
    "uptime-kuma": ("service.auth_required", "uptime_kuma", "required"),
}
NAMES = sorted(EXPECTED)
BASE_PORT = 20000


def port_of(name: str) -> int:
    return BASE_PORT + NAMES.index(name)


def test_every_fixture_has_an_expectation_and_a_provenance() -> None:
    assert {path.stem for path in FIXTURES.glob("*.json")} == set(EXPECTED)
    for name in NAMES:
        provenance = load_fixture(name)["provenance"]
        assert isinstance(provenance, dict)
        assert provenance["kind"] in ("recorded", "reconstructed")
        assert provenance["version"] and provenance["sources"]


@pytest.fixture(scope="module")
def replayed() -> Iterator[Lab]:
    with Lab(services=[replay_server(name, port_of(name)) for name in NAMES]) as lab:
        yield lab


@pytest.fixture(scope="module")
def report(replayed: Lab) -> dict[str, Any]:
    ports = ",".join(str(port_of(name)) for name in NAMES)
    return scan_json(replayed, Lab.HOME_V4, "--ports", ports, *LAB_SPEED, timeout=120)


def _entry(report: dict[str, Any], port: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    (target,) = report["targets"]
    entry = next(item for item in target["ports"] if item["port"] == port)
    return entry, [finding for finding in target["findings"] if finding["port"] == port]


@pytest.mark.parametrize("name", NAMES)
def test_fixture_verdict(report: dict[str, Any], name: str) -> None:
    finding_id, key, auth = EXPECTED[name]
    entry, findings = _entry(report, port_of(name))
    ids = {finding["id"] for finding in findings}
    if finding_id is None:
        assert not ids, findings
        assert "product" not in entry["details"]
        return
    assert finding_id in ids
    assert entry["details"]["product"]["key"] == key
    assert entry["details"]["product"]["auth"] == auth
    if auth == "required":  # (a login over plain HTTP is http.plain_login, medium; an admin
        # login that should never face the internet is service.exposed, medium)
        assert all(finding["severity"] == "info" for finding in findings
                   if finding["id"] not in ("http.plain_login", "service.exposed"))


def _daemon(lab: Lab, name: str) -> Daemon:
    return next(daemon for daemon in lab.daemons if daemon.name == f"replay-{name}-{port_of(name)}")


def test_only_gets_and_read_only_commands_were_sent(replayed: Lab, report: dict[str, Any]) -> None:
    for name in NAMES:
        for request in replayed_requests(_daemon(replayed, name)):
            if "binary" in request:
                sent = bytes.fromhex(request["binary"])
                if sent.startswith(b"\x16\x03"):  # identification's TLS ClientHello
                    continue
                # MongoDB's OP_MSG (opcode 2013): only isMaster and listDatabases
                assert sent[12:16] == (2013).to_bytes(4, "little"), sent
                assert b"isMaster" in sent or b"listDatabases" in sent, sent
            else:
                assert request["method"] == "GET", (name, request)


def test_zigbee2mqtt_socket_was_opened_once(replayed: Lab, report: dict[str, Any]) -> None:
    requests = replayed_requests(_daemon(replayed, "zigbee2mqtt-open"))
    assert sum(request.get("uri") == "/api" for request in requests) == 1
