"""Discovery stage: which TCP ports of an address are open, closed or filtered."""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence

from scanner.discovery.base import (
    DiscoveryEngine,
    DiscoveryOptions,
    HostDiscovery,
    PortState,
    ProgressCallback,
)
from scanner.errors import BadInput
from scanner.targets import IPAddress

ENGINE_NAMES = ("auto", "syn", "connect", "nmap")
log = logging.getLogger(__name__)

CANARY_COUNT = 4
CANARY_RANGE = range(40000, 65536)  # rarely used ports: a real host has them closed or filtered


def choose_engine(name: str) -> DiscoveryEngine:
    """The engine for `--engine NAME`; `auto` is syn when raw sockets work, else connect."""
    if name == "auto":
        from scanner.discovery.syn import raw_sockets_available

        name = "syn" if raw_sockets_available() else "connect"
        if name == "connect":  # say so: the user may expect the SYN engine's speed
            log.warning("no raw-socket privilege (root or CAP_NET_RAW), so the connect engine "
                        "runs: full TCP handshakes, same results, slower on many ports")
    if name == "syn":  # SynEngine itself refuses, with a clear message, without raw sockets
        from scanner.discovery.syn import SynEngine

        return SynEngine()
    if name == "connect":
        from scanner.discovery.connect import ConnectEngine

        return ConnectEngine()
    if name == "nmap":
        from scanner.discovery.nmap_engine import NmapEngine

        return NmapEngine()
    raise BadInput(f"unknown engine {name!r} (choose from {', '.join(ENGINE_NAMES)})")


def pick_canaries(rng: random.Random | None = None) -> list[int]:
    """Random high ports to probe alongside the requested ones, to spot hosts that answer all."""
    return (rng or random.SystemRandom()).sample(CANARY_RANGE, CANARY_COUNT)


def discover(
    address: IPAddress,
    ports: Sequence[int],
    engine: DiscoveryEngine,
    options: DiscoveryOptions,
    progress: ProgressCallback | None = None,
) -> HostDiscovery:
    """Scan `ports` of `address`, probing a few random canary ports in the same pass.

    A tarpit or middlebox that SYN-ACKs everything would otherwise show as thousands of
    "open" ports and send identification after each of them. The canaries ride in the
    same pass (costing nothing extra on a normal host, where waiting for a separate canary
    round would add a whole timeout) and are judged before any result is used.
    """
    canaries = pick_canaries()
    requested = set(ports)
    extra_probes = [port for port in canaries if port not in requested]
    states = engine.scan(address, [*extra_probes, *ports], options, progress)
    result = HostDiscovery(address=address, engine=engine.name)
    open_canaries = [port for port in canaries if states.get(port) is PortState.OPEN]
    if len(open_canaries) >= len(canaries) - 1:
        opened = sum(1 for port in ports if states.get(port) is PortState.OPEN)
        result.answers_all_ports = True
        result.notes.append(
            f"{address} answered as open on {len(open_canaries)} of {len(canaries)} random "
            f"canary ports and on {opened} of {len(ports)} requested ports: a tarpit, honeypot "
            "or middlebox that accepts every connection; its ports cannot be told apart"
        )
        return result
    result.states = {port: states.get(port, PortState.FILTERED) for port in ports}
    return result


__all__ = [
    "ENGINE_NAMES",
    "DiscoveryEngine",
    "DiscoveryOptions",
    "HostDiscovery",
    "PortState",
    "choose_engine",
    "discover",
]
