"""Probes written for the network layer (`probe(connector) -> ProbeOutcome`), and the bridge
that lets the engine call them with its `transport.Endpoint` until the engine itself hands
out connectors (issue 12's port; then `bridged` goes away and PROBES takes them as they are).
"""

from __future__ import annotations

from collections.abc import Callable

from scanner.checks.services import etcd, ftp, mysql, portmapper, postgres, rsync, x11
from scanner.checks.services.model import ProbeOutcome
from scanner.checks.services.transport import Endpoint
from scanner.net import Connector, Dialer, Limits, ScanBudget
from scanner.net import Endpoint as NetEndpoint

ConnectorProbe = Callable[[Connector], ProbeOutcome]
EndpointProbe = Callable[[Endpoint], ProbeOutcome]


def connector_for(endpoint: Endpoint) -> Connector:
    """A connector whose whole exchange ends within endpoint.timeout (the engine's bound)."""
    budget = ScanBudget(Limits(timeout=max(0.05, endpoint.timeout / 2)))
    dialer = Dialer.for_port(budget).within(endpoint.timeout)
    return Connector(dialer, NetEndpoint(endpoint.address, endpoint.port, endpoint.tls,
                                         endpoint.server_name, endpoint.host_header))


def bridged(probe: ConnectorProbe) -> EndpointProbe:
    def run(endpoint: Endpoint) -> ProbeOutcome:
        return probe(connector_for(endpoint))

    run.__name__ = getattr(probe, "__name__", "probe")
    run.__doc__ = probe.__doc__
    return run


# name (a product file's `probe`) -> probe; the engine adds them to its PROBES
CONNECTOR_PROBES: dict[str, ConnectorProbe] = {
    "ftp": ftp.probe,
    "rsync": rsync.probe,
    "x11": x11.probe,
    "postgresql": postgres.probe,
    "mysql": mysql.probe,
    "etcd": etcd.probe,
    "portmapper": portmapper.probe,
}
