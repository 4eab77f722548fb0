"""The catalogue's data files: every shipped file loads, and every mistake is one clear error."""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.checks.services.catalogue import CATALOGUE, HTTP_PRODUCTS, PROTOCOL_PRODUCTS
from scanner.checks.services.engine import PROBES
from scanner.checks.services.loader import (
    CatalogueError,
    load_catalogue,
    load_product,
    parse_product,
    product_files,
)
from scanner.checks.services.model import HttpProduct, ProtocolProduct

PRODUCTS = Path(product_files()[0]).parent


def _document(name: str) -> dict[str, Any]:
    return tomllib.loads((PRODUCTS / name).read_text())


def _error(document: dict[str, Any], name: str = "x.toml") -> str:
    with pytest.raises(CatalogueError) as caught:
        parse_product(document, name)
    return str(caught.value)


def test_every_shipped_file_loads_into_the_catalogue() -> None:
    files = product_files()
    assert len(files) == len(CATALOGUE.all()) >= 36
    assert {path.name for path in files} == {product.source for product in CATALOGUE.all()}
    assert all(isinstance(product, HttpProduct) for product in HTTP_PRODUCTS)
    assert all(isinstance(product, ProtocolProduct) for product in PROTOCOL_PRODUCTS)
    for product in PROTOCOL_PRODUCTS:
        assert product.probe in PROBES, product.source
    for product in HTTP_PRODUCTS:
        assert product.then_probe is None or product.then_probe in PROBES


def test_the_issue_18_products_are_in_the_catalogue() -> None:
    keys = {product.key for product in CATALOGUE.all()}
    assert {"ftp", "rsync", "x11", "postgresql", "mysql", "cups", "prometheus_exporter",
            "jupyter", "syncthing", "transmission", "qbittorrent", "deluge_web",
            "docker_registry", "etcd"} <= keys


def test_a_new_product_is_one_file(tmp_path: Path) -> None:
    document = (PRODUCTS / "grafana.toml").read_text().replace('key = \'grafana\'',
                                                                'key = \'grafana_copy\'')
    path = tmp_path / "grafana_copy.toml"
    path.write_text(document)
    loaded = load_catalogue([path])
    assert [product.key for product in loaded.http] == ["grafana_copy"]
    assert loaded.http[0].source == "grafana_copy.toml"


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.update(colour="red"), "unknown key(s): colour"),
    (lambda d: d.update(severity="urgent"), "severity: 'urgent' is not one of"),
    (lambda d: d.update(usual_ports=["3000"]), "usual_ports[0]: expected int"),
    (lambda d: d.update(usual_ports=[70000]), "usual_ports: 70000 is not a TCP port"),
    (lambda d: d.update(key="Grafana!"), "key: 'Grafana!' is not a lowercase identifier"),
    (lambda d: d.pop("name"), "name: missing"),
    (lambda d: d["remedy"].update(references=[]), "references: name at least one reference"),
    (lambda d: d["remedy"].update(references=["http://x"]), "is not an https:// address"),
    (lambda d: d["identify"][0]["when"][0].update(request="helth"),
     "identify[0].when[0]: request: 'helth' is not in [requests]"),
    (lambda d: d["identify"][0]["when"][0].update(body=["(unclosed"]),
     "is not a valid regex"),
    (lambda d: d["identify"][0]["when"][0].update(json=[{"path": "a"}]),
     "give exactly one of test and pattern"),
    (lambda d: d["identify"][0]["when"][0].update(json=[{"path": "a", "test": "maybe"}]),
     "test: 'maybe' is not one of"),
    (lambda d: d["identify"][0]["when"][0].pop("json"), "has no body/JSON/header marker"),
    (lambda d: d["requests"]["org"].update(headers={"Authorization": "Basic eDp5"}),
     "never sends credentials"),
    (lambda d: d["requests"]["org"].update(path="api/org"), "must start with /"),
    (lambda d: d["requests"]["org"].update(kind="post"), "kind: 'post' is not one of"),
    (lambda d: d.update(identify=[]), "identify: needs at least one identifying rule"),
    (lambda d: d.update(kind="ftp"), "kind: 'ftp' is not one of"),
    (lambda d: d.update(exposed={"finding": "Exposed"}), "is not a finding id"),
])
def test_mistakes_name_the_file_and_the_key(change: Any, message: str) -> None:
    document = copy.deepcopy(_document("grafana.toml"))
    change(document)
    text = _error(document, "grafana.toml")
    assert text.startswith("grafana.toml: ") and message in text, text


def test_protocol_product_mistakes() -> None:
    document = _document("redis.toml")
    assert "probe: 'Redis-2' is not a probe name" in _error({**document, "probe": "Redis-2"})
    assert "banner" in _error({**document, "banner": "["})
    assert "finding_open" in _error({**document, "finding_open": "unauthenticated"})


def test_unreadable_files_are_one_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("key = 'x\n")
    with pytest.raises(CatalogueError, match=r"^broken\.toml: not valid TOML"):
        load_product(broken)
    huge = tmp_path / "huge.toml"
    huge.write_text("# " + "x" * 70_000)
    with pytest.raises(CatalogueError, match="larger than"):
        load_product(huge)
    with pytest.raises(CatalogueError, match="duplicate HTTP product key: grafana"):
        one = PRODUCTS / "grafana.toml"
        two = tmp_path / "grafana2.toml"
        two.write_text(one.read_text())
        load_catalogue([one, two])


_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 70000) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["kind", "key", "name", "usual_ports", "severity",
                                        "remedy", "requests", "identify", "probe", "open_when",
                                        "hints", "version", "exposed", "services"]),
                       _VALUES, max_size=10))
def test_any_document_loads_or_is_one_catalogue_error(document: dict[str, Any]) -> None:
    try:
        parse_product(document, "fuzz.toml")
    except CatalogueError as error:
        assert str(error).startswith("fuzz.toml")


def test_checks_list_shows_every_product_and_finding(capsys: pytest.CaptureFixture[str]) -> None:
    from scanner.cli import main

    assert main(["checks", "--list"]) == 0
    out = capsys.readouterr().out
    for finding in ("service.unauthenticated", "service.exposed", "http.plain_login",
                    "mqtt.anonymous", "smb.exposed"):
        assert finding in out
    assert f"Products of the services check ({len(CATALOGUE.all())}," in out
    for product in CATALOGUE.all():
        assert product.name[:30] in out, product.name


# Home Assistant's own API paths: a 401 on one of them is a failed login towards its IP ban.
# A product probed on every HTTP port (no hints) must never ask them.
HOME_ASSISTANT_API = re.compile(r"^/(api|auth)(/|$)")


def test_products_probed_everywhere_never_ask_home_assistant_api_paths() -> None:
    for product in HTTP_PRODUCTS:
        if product.hints:
            continue
        for request in product.requests():
            assert not HOME_ASSISTANT_API.match(request.path) or request.path in (
                "/api/auth",  # Pi-hole's: HA has no such view (404, not a 401)
            ), f"{product.source}: {request.path}"
