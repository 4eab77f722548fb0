"""Targets stage: what the user typed -> addresses and ports to scan."""

from scanner.targets.inputs import TargetInputs, collect_targets, split_host_port
from scanner.targets.parse import IPAddress, Target, check_target_syntax, parse_targets
from scanner.targets.ports import ALL_PORTS, TOP_PORTS, parse_port_spec

__all__ = [
    "ALL_PORTS",
    "TOP_PORTS",
    "IPAddress",
    "Target",
    "TargetInputs",
    "check_target_syntax",
    "collect_targets",
    "parse_port_spec",
    "parse_targets",
    "split_host_port",
]
