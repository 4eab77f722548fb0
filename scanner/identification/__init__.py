"""Identification: what runs on each open port, by probing, not by port number.

    from scanner.identification import IdentifyOptions, identify_services
    found = identify_services(address, [22, 443, 2222], IdentifyOptions(sni="home.example"))
    found[2222].service, found[2222].product, found[2222].version  # "ssh", "OpenSSH", "9.2p1"

Synchronous API for identification on its own; inside, one asyncio task per port, all under
one network budget (`options.max_connections_per_host` connections to the address at once).
Ports our own probes cannot name go to nmap -sV (when installed and `options.nmap_fallback`).
A scan (scanner.api) drives PortProbe itself, port by port as discovery finds them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import time
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

from scanner.identification.engine import (
    PortResult,
    identify_all,
    standalone_budget,
    with_shodan_view,
)
from scanner.identification.model import IdentifyOptions, ServiceIdentity
from scanner.identification.nmap_fallback import (
    NmapOutcome,
    NmapService,
    nmap_identify_port,
    nmap_seconds,
)
from scanner.net import ScanBudget
from scanner.targets import IPAddress

__all__ = [
    "IdentifyOptions",
    "PortResult",
    "ServiceIdentity",
    "identify_ports",
    "identify_services",
    "with_note",
]

T = TypeVar("T")


def identify_services(
    address: IPAddress, ports: Sequence[int], options: IdentifyOptions | None = None
) -> dict[int, ServiceIdentity]:
    """A ServiceIdentity for every port in `ports` (service None where nothing could tell)."""
    results = identify_ports(address, ports, options or IdentifyOptions())
    return {port: result.identity for port, result in results.items()}


def identify_ports(
    address: IPAddress, ports: Sequence[int], options: IdentifyOptions,
    budget: ScanBudget | None = None,
) -> dict[int, PortResult]:
    """Like identify_services, with what each port cost (bytes, connections, seconds)."""
    budget = budget or standalone_budget(options)
    results = _run(identify_all(address, ports, options, budget))
    if options.nmap_fallback:
        unknown = [port for port, result in results.items() if result.identity.service is None]
        outcomes = _run(_nmap_all(address, unknown, budget, options))
        for port, outcome in zip(unknown, outcomes, strict=True):
            if outcome.note is not None:
                results[port] = with_note(results[port], outcome.note)
            if outcome.service is not None:
                results[port] = merge_nmap(results[port], outcome.service)
    return results


async def _nmap_all(
    address: IPAddress, ports: Sequence[int], budget: ScanBudget, options: IdentifyOptions
) -> list[NmapOutcome]:
    """The fallback for each unnamed port at once, each within NMAP_SECONDS_ON_ITS_OWN."""
    deadline = time.monotonic() + nmap_seconds(options)
    return list(await asyncio.gather(
        *(nmap_identify_port(address, port, deadline, budget) for port in ports)
    ))


def merge_nmap(result: PortResult, found: NmapService) -> PortResult:
    """nmap's answer fills what our probes left open; what we saw ourselves is kept."""
    old = result.identity
    evidence = dataclasses.replace(
        result.evidence,
        service=found.service,
        product=found.product,
        version=found.version,
    )
    details = {**old.details, "nmap": found.details()}
    identity = dataclasses.replace(
        old,
        service=found.service,
        product=found.product or old.product,
        version=found.version or old.version,
        tls=old.tls or found.tls,
        details=with_shodan_view(details, evidence),
        source="nmap",
    )
    return dataclasses.replace(result, identity=identity, evidence=evidence)


def with_note(result: PortResult, note: str) -> PortResult:
    """The result with one more note of what identification could not do (details.probe)."""
    details = dict(result.identity.details)
    probe = dict(details.get("probe") or {})
    probe["nmap"] = note
    details["probe"] = probe
    return dataclasses.replace(result, identity=dataclasses.replace(result.identity,
                                                                      details=details))


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, also when the caller is itself inside an event loop (then in a thread)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
