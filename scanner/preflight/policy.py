"""What blocks "safe to forward", as data (policy of 2026-11, reasons in each entry).

A finding at or above BLOCKING_SEVERITY blocks. A few medium findings block too, because once a
port is forwarded the internet's bots exploit exactly them within hours. Findings that depend on
where the client stands (HA trusts LAN addresses) cannot be judged from the LAN: they become
warnings that say so, never a verdict either way.
"""

from __future__ import annotations

from scanner.core.findings import Severity

BLOCKING_SEVERITY = Severity.HIGH

# Medium findings that still block forwarding, with why.
ALSO_BLOCKING: dict[str, str] = {
    "ssh.password_auth": (
        "password logins on a forwarded SSH port are brute-forced around the clock by bots"
    ),
    "http.plain_login": (
        "a login over plain HTTP sends the password readable to every network on the way"
    ),
    "service.cleartext_auth": (
        "credentials over an unencrypted connection are readable to every network on the way"
    ),
}

# Findings whose truth depends on the client's address: from the LAN we see what a LAN client
# sees, which is not what an internet client will see.
VANTAGE_DEPENDENT: dict[str, str] = {
    "ha.trusted_networks_exposed": (
        "Home Assistant lists trusted_networks to this LAN address; whether it does so to an "
        "internet address depends on the networks you configured: cannot be judged from the LAN"
    ),
    "ha.trusted_networks_bypass": (
        "this LAN address is trusted by Home Assistant; an internet client is trusted only if "
        "trusted_networks covers it (e.g. 0.0.0.0/0): check your configuration.yaml"
    ),
}

# What a scan from the LAN cannot see, said on every verdict.
OUTSIDE_DIFFERENCES: tuple[str, ...] = (
    "Router: the port forwarding decides what the internet reaches; check that external port "
    "{as_port} goes to {host}:{port} and to nothing else, and that UPnP has not opened more.",
    "Reverse proxy: if a proxy (nginx, Caddy, Traefik, a tunnel) sits in front after forwarding, "
    "the internet sees its TLS certificate, headers and paths, not this service's.",
    "IPv6: devices often have public IPv6 addresses that bypass the router's NAT; the router's "
    "IPv6 firewall decides whether the internet reaches this service directly.",
    "Afterwards: check from the outside with `exposure scan YOUR-PUBLIC-NAME` from a VPS, or "
    "keep `exposure watch` running.",
)

HTTPS_PORTS = frozenset({443, 8443, 9443})
