"""The work of a fleet scan, split into tasks: one per address and vantage (and port range).

How the rate is shared (the cap holds per address across the whole fleet): `--rate R` of a
fleet scan is what one address may receive per second, whoever sends it. The tasks of one
address (one per vantage, times the port ranges of a large port list) may all run at the same
moment on different workers, so each task gets R divided by their number. A worker then
runs each task at that share or at its own `--rate` divided by its concurrency, whichever is
lower: a worker never sends more than its `--rate`, and an address never gets more than R.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scanner.errors import BadInput
from scanner.fleet.codec import BadTask, options_to_message
from scanner.options import ScanOptions
from scanner.targets import Target, parse_port_spec
from scanner.targets.ports import compress_ports

DEFAULT_QUEUE = "exposure"  # tasks any worker may take (no --vantage asked)
PART_PORTS = 16384  # a larger port list (--ports all) is split into ranges of this many
VANTAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,31}$")
MESSAGE_FIELDS = frozenset(
    {"job", "key", "vantage", "input", "address", "hostname", "ports", "part", "rate", "options"}
)


def queue_for(vantage: str) -> str:
    """The queue of a vantage's workers (the default queue when no vantage is asked)."""
    return f"{DEFAULT_QUEUE}.vantage.{vantage}" if vantage else DEFAULT_QUEUE


def check_vantage(name: str) -> str:
    if not VANTAGE_NAME.match(name):
        raise BadInput(f"--vantage {name!r}: use 1-32 lowercase letters, digits, '.', '_', '-'")
    return name


@dataclass(frozen=True)
class TaskSpec:
    job: str  # the fleet scan (its report id)
    key: str  # unique in the job: vantage, address and port range
    vantage: str  # '' when any worker will do
    input: str  # what the user typed for this address
    address: str
    hostname: str | None
    ports: str  # this task's ports, compressed (22,80,8000-8100)
    part: int  # which range of the address's ports (UDP and InternetDB go with part 0)
    rate: int  # this task's share of the per-address rate
    options: Mapping[str, Any]  # codec.options_to_message

    @property
    def target(self) -> Target:
        return Target(self.input, ipaddress.ip_address(self.address), self.hostname)

    def to_message(self) -> dict[str, Any]:
        return {
            "job": self.job, "key": self.key, "vantage": self.vantage, "input": self.input,
            "address": self.address, "hostname": self.hostname, "ports": self.ports,
            "part": self.part, "rate": self.rate, "options": dict(self.options),
        }

    @classmethod
    def from_message(cls, message: object) -> TaskSpec:
        """Read a task from the broker; BadTask when it is not one of ours."""
        if not isinstance(message, Mapping) or set(message) != MESSAGE_FIELDS:
            raise BadTask("not a fleet task message")
        texts = {name: message[name] for name in ("job", "key", "vantage", "input", "address",
                                                  "ports")}
        if not all(isinstance(value, str) and len(value) <= 512 for value in texts.values()):
            raise BadTask("a text field is not a short text")
        hostname = message["hostname"]
        if hostname is not None and not (isinstance(hostname, str) and len(hostname) <= 255):
            raise BadTask("hostname: not a host name")
        if texts["vantage"] and not VANTAGE_NAME.match(texts["vantage"]):
            raise BadTask("vantage: not a vantage name")
        try:
            ipaddress.ip_address(texts["address"])
            parse_port_spec(texts["ports"])
        except (ValueError, BadInput) as error:
            raise BadTask(f"address or ports: {error}") from None
        part, rate = message["part"], message["rate"]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (part, rate)):
            raise BadTask("part and rate: not whole numbers")
        if not (0 <= part < 65536 and 1 <= rate <= 10_000_000):
            raise BadTask("part or rate out of range")
        if not isinstance(message["options"], Mapping):
            raise BadTask("options: not an object")
        return cls(job=texts["job"], key=texts["key"], vantage=texts["vantage"],
                   input=texts["input"], address=texts["address"], hostname=hostname,
                   ports=texts["ports"], part=part, rate=rate, options=message["options"])


def port_parts(ports: Sequence[int]) -> list[tuple[int, ...]]:
    """The port ranges one address is split into: one part, or ranges of PART_PORTS."""
    ordered = sorted(set(ports))
    count = max(1, math.ceil(len(ordered) / PART_PORTS))
    size = math.ceil(len(ordered) / count)
    return [tuple(ordered[start:start + size]) for start in range(0, len(ordered), size)] or [()]


def plan_tasks(
    job: str, targets: Sequence[Target], options: ScanOptions, vantages: Sequence[str],
    ca_pem: str | None = None,
) -> list[TaskSpec]:
    """Every task of a fleet scan, in report order (address, then vantage, then range)."""
    parts = port_parts(options.ports)
    asked = list(vantages) or [""]
    share = max(1, options.discovery.rate // (len(asked) * len(parts)))
    message = options_to_message(options, ca_pem)
    tasks = []
    for target in targets:
        for vantage in asked:
            for index, ports in enumerate(parts):
                spec = compress_ports(ports)
                tasks.append(TaskSpec(
                    job=job, key=f"{vantage or '-'}|{target.address}|{index}", vantage=vantage,
                    input=target.input, address=str(target.address), hostname=target.hostname,
                    ports=spec, part=index, rate=share, options=message,
                ))
    return tasks
