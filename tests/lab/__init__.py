"""The exposure test lab: real daemons in Linux network namespaces with no way out.

    with Lab() as lab:                       # default profile, see services.default_services
        lab.run_in_scan(["exposure", "scan", Lab.HOSTNAME])

See netns.Lab for the layout, daemons for the start_* functions, pki for certificates.
"""

from .daemons import (
    Daemon,
    NginxSite,
    Place,
    pick_free_port,
    read_access_log,
    start_dropbear,
    start_mosquitto,
    start_nginx,
    start_sshd,
    start_tarpit,
    stop_daemons,
)
from .netns import Lab, cleanup_stale_labs, require_root
from .nsutil import LabError, Probe, call_in_netns, connect_in_netns, icmp_echo, tcp_probe
from .pki import Issued, KeySpec, LabCA, self_signed
from .services import (
    PROFILES,
    Service,
    default_services,
    dropbear,
    mosquitto,
    nginx,
    nginx_web,
    openssh,
)

__all__ = [
    "PROFILES",
    "Daemon",
    "Issued",
    "KeySpec",
    "Lab",
    "LabCA",
    "LabError",
    "NginxSite",
    "Place",
    "Probe",
    "Service",
    "call_in_netns",
    "cleanup_stale_labs",
    "connect_in_netns",
    "default_services",
    "dropbear",
    "icmp_echo",
    "mosquitto",
    "nginx",
    "nginx_web",
    "openssh",
    "pick_free_port",
    "read_access_log",
    "require_root",
    "self_signed",
    "start_dropbear",
    "start_mosquitto",
    "start_nginx",
    "start_sshd",
    "start_tarpit",
    "stop_daemons",
    "tcp_probe",
]
