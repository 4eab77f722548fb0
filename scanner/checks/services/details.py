"""details.<product key> (details.node_red, details.mqtt, details.redis...) and details.product.

Each product the services check judged has one key, named by its YAML file: what identification
learnt under that key first, then the verdict (product, auth, evidence, transport, ports), then
the product's own facts (a version from an API, MQTT's CONNACK answers...). The facts are named
by the YAML files, not by code, so they stay in `extra` and are shown generically.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from scanner.checks.services.catalogue import CATALOGUE
from scanner.core.details import OMIT_NONE, DetailsLoader, DetailsRecord


@dataclass(frozen=True)
class ServiceDetails(DetailsRecord):
    product: str = ""
    auth: str = ""  # scanner.checks.services.model.Auth
    evidence: str = ""
    transport: str = "tcp"
    usual_ports: tuple[int, ...] = ()
    on_usual_port: bool = False
    version: str | None = field(default=None, metadata=OMIT_NONE)



@dataclass(frozen=True)
class MqttDetails(ServiceDetails):
    # Not connack_meaning: that is the broker's answer to our deliberately refused probe
    # (protocol level 0), not what it does with a real client. The check's facts are.
    HIGHLIGHTS = (
        ("anonymous", "anonymous access"),
        ("auth", "auth"),
        ("connack_meaning_311", "answer to a CONNECT without credentials"),
        ("evidence", "seen"),
    )
    TABLE = (("anonymous", "anonymous MQTT"),)
    TABLE_RANK = 4

    # identification's probe (refused by design), then the mqtt check's MQTT 3.1.1 CONNECT
    connack_return_code: int | None = field(default=None, metadata=OMIT_NONE)
    connack_meaning: str | None = field(default=None, metadata=OMIT_NONE)
    probe: str | None = field(default=None, metadata=OMIT_NONE)
    connack_code_311: int | None = field(default=None, metadata=OMIT_NONE)
    connack_meaning_311: str | None = field(default=None, metadata=OMIT_NONE)
    anonymous: bool | None = field(default=None, metadata=OMIT_NONE)

    def crawler_phrase(self) -> tuple[str, str] | None:
        """What the broker does with a crawler's CONNECT, from the check (never our probe)."""
        if self.anonymous is True:
            return "service", "MQTT broker that lets clients in without a password"
        if self.anonymous is False:
            return "service", "MQTT broker that asks clients for a password"
        return None


@dataclass(frozen=True)
class ProductChoice(DetailsRecord):
    """details.product: the most severe product found on the port."""

    TABLE = (("name", "found"), ("auth", "auth"))
    TABLE_RANK = 1

    name: str = ""
    key: str = ""
    auth: str = ""


def details_record(key: str, data: Mapping[str, Any]) -> ServiceDetails:
    """The record of a product key, from what is already known under it (identification's)."""
    return (MqttDetails if key == "mqtt" else ServiceDetails).from_dict(data)


def _loaders() -> dict[str, DetailsLoader]:
    loaders: dict[str, DetailsLoader] = {
        product.key: ServiceDetails.from_dict for product in CATALOGUE.all()
    }
    loaders["mqtt"] = MqttDetails.from_dict
    loaders["product"] = ProductChoice.from_dict
    return loaders


DETAILS = _loaders()
