"""Targets stage: what the user typed -> addresses and ports to scan."""

from scanner.targets.parse import IPAddress, Target, parse_targets
from scanner.targets.ports import ALL_PORTS, TOP_PORTS, parse_port_spec

__all__ = ["ALL_PORTS", "TOP_PORTS", "IPAddress", "Target", "parse_port_spec", "parse_targets"]
