"""The probes of issue 18, by the name a product file's `probe` gives them.

Each is `probe(connector: scanner.net.Connector) -> ProbeOutcome`, like the engine's others;
the engine adds these to its PROBES.
"""

from __future__ import annotations

from collections.abc import Callable

from scanner.checks.services import etcd, ftp, mysql, portmapper, postgres, rsync, x11
from scanner.checks.services.model import ProbeOutcome
from scanner.net import Connector

ConnectorProbe = Callable[[Connector], ProbeOutcome]

CONNECTOR_PROBES: dict[str, ConnectorProbe] = {
    "ftp": ftp.probe,
    "rsync": rsync.probe,
    "x11": x11.probe,
    "postgresql": postgres.probe,
    "mysql": mysql.probe,
    "etcd": etcd.probe,
    "portmapper": portmapper.probe,
}
