"""What runs on the lab's home host: services, and the profiles made of them.

A `Service` names the TCP ports it needs (the lab opens them in the home firewall first) and how
to start its daemons in a started `Lab`. Adding a kind of server to the lab means writing one small
factory here (or in a test) and passing it to `Lab(services=[...])` or `lab.add_service(...)`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .daemons import (
    Daemon,
    NginxSite,
    start_dropbear,
    start_mosquitto,
    start_nginx,
    start_sshd,
)

if TYPE_CHECKING:
    from .netns import Lab


@dataclass(frozen=True)
class Service:
    """Daemons to start in the lab's home namespace, and the ports they answer on."""

    name: str
    ports: Mapping[int, str]  # port -> short description of what listens there
    start: Callable[[Lab], Sequence[Daemon]]


def openssh(
    port: int = 22,
    *,
    extra_config: str = "",
    name: str | None = None,
    description: str = "OpenSSH",
) -> Service:
    name = name or f"openssh-{port}"

    def start(lab: Lab) -> list[Daemon]:
        return [start_sshd(lab, port, extra_config=extra_config, name=name)]

    return Service(name, {port: description}, start)


def nginx(
    sites: Callable[[Lab], Sequence[NginxSite]], ports: Mapping[int, str], *, name: str = "nginx"
) -> Service:
    """nginx with sites built at start time (they may need the lab's certificates)."""

    def start(lab: Lab) -> list[Daemon]:
        return [start_nginx(lab, sites(lab), name=name)]

    return Service(name, ports, start)


def nginx_web(http_port: int = 80, tls_ports: Sequence[int] = (443, 8443)) -> Service:
    """The default web server: plain HTTP, and TLS with the lab CA's certificate for home.lab."""

    def sites(lab: Lab) -> list[NginxSite]:
        return [NginxSite(http_port), *(NginxSite(port, tls=lab.home_cert) for port in tls_ports)]

    ports = {http_port: "nginx HTTP", **{port: "nginx HTTPS (lab CA)" for port in tls_ports}}
    return nginx(sites, ports, name="nginx")


def mosquitto(
    port: int = 1883, *, allow_anonymous: bool = True, name: str | None = None
) -> Service:
    name = name or f"mosquitto-{port}"
    auth = "anonymous allowed" if allow_anonymous else "auth required"

    def start(lab: Lab) -> list[Daemon]:
        return [start_mosquitto(lab, port, allow_anonymous=allow_anonymous, name=name)]

    return Service(name, {port: f"mosquitto MQTT ({auth})"}, start)


def dropbear(port: int = 2022, *, name: str | None = None) -> Service:
    name = name or f"dropbear-{port}"

    def start(lab: Lab) -> list[Daemon]:
        return [start_dropbear(lab, port, name=name)]

    return Service(name, {port: "Dropbear SSH"}, start)


def default_services() -> list[Service]:
    """The default home: two OpenSSH, nginx on 80/443/8443, anonymous mosquitto."""
    return [
        openssh(22),
        openssh(2222, name="openssh-alt", description="OpenSSH (non-standard port)"),
        nginx_web(),
        mosquitto(1883, allow_anonymous=True),
    ]


PROFILES: dict[str, Callable[[], list[Service]]] = {
    "default": default_services,
    "bare": list,  # namespaces, firewall, tarpit and blackhole only
}
