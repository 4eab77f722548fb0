"""What a scan is asked to do: the options of every stage, and the limits of its one budget.

Its own module so the pipeline (which runs a scan) and the drivers that start scans (the CLI,
watch, preflight, fleet workers) share one definition without importing the library API.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from scanner.checks.base import CheckOptions
from scanner.discovery import DiscoveryOptions
from scanner.identification import IdentifyOptions
from scanner.net import Limits
from scanner.net.budget import DEFAULT_GLOBAL_CONNECTIONS, DEFAULT_HOST_CONNECTIONS
from scanner.targets import TOP_PORTS


@dataclass(frozen=True)
class ScanOptions:
    ports: tuple[int, ...] = TOP_PORTS
    engine: str = "auto"
    # rate (whole scan: packets and connection attempts per second), timeout (every read),
    # retries (discovery)
    discovery: DiscoveryOptions = field(default_factory=DiscoveryOptions)
    allow_large_range: bool = False
    identify: bool = True  # what runs on each open port (off: discovery only)
    identification: IdentifyOptions = field(default_factory=IdentifyOptions)
    run_checks: bool = True  # needs identify
    checks: CheckOptions = field(default_factory=CheckOptions)
    # --internetdb: compare with what Shodan already has on record (None: off)
    internetdb_url: str | None = None
    udp: bool = False  # --udp: probe the UDP services self-hosters expose (DNS, NTP, SSDP...)
    udp_dns_name: str = "example.com"  # the name the open-resolver test asks for
    family: int | None = None  # 4 or 6 (-4 / -6): only the addresses of that IP version
    host_connections: int = DEFAULT_HOST_CONNECTIONS  # open at once to one address
    global_connections: int = DEFAULT_GLOBAL_CONNECTIONS  # open at once, whole scan

    def limits(self) -> Limits:
        return Limits(
            rate=self.discovery.rate,
            timeout=self.discovery.timeout,
            host_connections=self.host_connections,
            global_connections=self.global_connections,
        )
