"""What identification learns about one open port."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class IdentifyOptions:
    # Identification on its own (identify_services): seconds for one port, and the read
    # timeout. In a scan, the scan's budget sets both (`--timeout`, the port's deadline).
    timeout: float = 3.0
    max_connections_per_host: int = 8  # on its own: probes in flight against one address
    nmap_fallback: bool = True  # nmap -sV for ports our own probes cannot name
    sni: str | None = None  # the hostname the user typed; None when they typed an IP


@dataclass(frozen=True)
class ServiceIdentity:
    """Maps 1:1 onto a port entry of the JSON report (SPEC "JSON report")."""

    service: str | None = None  # protocol by probing: "ssh", "http", "mqtt", "smtp", ...
    product: str | None = None  # "OpenSSH", "nginx", "mosquitto", ...
    version: str | None = None  # "9.2p1", "1.22.1"
    tls: bool = False  # the port speaks TLS (service is then what runs inside it)
    banner: str | None = None  # what the service says first, sanitised and size-capped
    details: dict[str, Any] = field(default_factory=dict)  # one key per protocol/product
    source: str = "probe"  # "probe", or "nmap" when the answer came from nmap -sV
