"""ScanOptions to and from the JSON a task carries through the broker.

Whoever can write to the broker can hand a worker a task, so a worker reads a task like any
remote data: every field is checked for its type and range, unknown fields are refused, and
nothing in it names a file on the worker (the --ca-file travels as PEM text).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from scanner.checks.base import CheckOptions
from scanner.discovery import ENGINE_NAMES, DiscoveryOptions
from scanner.identification import IdentifyOptions
from scanner.options import ScanOptions

MAX_CA_PEM_BYTES = 1024 * 1024
MAX_TEXT_CHARS = 2048


class BadTask(ValueError):
    """A task message that does not say what to scan in the form a worker expects."""


def options_to_message(options: ScanOptions, ca_pem: str | None) -> dict[str, Any]:
    """Everything of `options` but the ports (each task has its own) and the CA file's path."""
    return {
        "engine": options.engine,
        "discovery": dataclasses.asdict(options.discovery),
        "identify": options.identify,
        "identification": {
            "timeout": options.identification.timeout,
            "max_connections_per_host": options.identification.max_connections_per_host,
            "nmap_fallback": options.identification.nmap_fallback,
        },
        "run_checks": options.run_checks,
        "checks": {
            "active": options.checks.active,
            "ca_pem": ca_pem,
            "ssh_auth_probe": options.checks.ssh_auth_probe,
            "ssh_host_keys": options.checks.ssh_host_keys,
        },
        "internetdb_url": options.internetdb_url,
        "udp": options.udp,
        "udp_dns_name": options.udp_dns_name,
        "host_connections": options.host_connections,
        "global_connections": options.global_connections,
    }


def read_ca_pem(path: Path | None) -> str | None:
    """The --ca-file as text for the tasks (workers do not share the coordinator's files)."""
    if path is None:
        return None
    data = path.read_bytes()[: MAX_CA_PEM_BYTES + 1]
    if len(data) > MAX_CA_PEM_BYTES:
        raise ValueError(f"{path} is larger than {MAX_CA_PEM_BYTES} bytes")
    return data.decode("ascii", errors="replace")


def options_from_message(
    message: Mapping[str, Any], *, ports: tuple[int, ...], rate: int, ca_file: Path | None,
) -> ScanOptions:
    """The ScanOptions of a task, with its ports and rate; BadTask when a field is wrong."""
    _only(message, {"engine", "discovery", "identify", "identification", "run_checks", "checks",
                    "internetdb_url", "udp", "udp_dns_name", "host_connections",
                    "global_connections"}, "options")
    engine = _text(message, "engine")
    if engine not in ENGINE_NAMES:
        raise BadTask(f"options.engine: unknown engine {engine!r}")
    discovery = _mapping(message, "discovery")
    _only(discovery, {"rate", "timeout", "retries", "max_concurrency"}, "discovery")
    identification = _mapping(message, "identification")
    _only(identification, {"timeout", "max_connections_per_host", "nmap_fallback"},
          "identification")
    checks = _mapping(message, "checks")
    _only(checks, {"active", "ca_pem", "ssh_auth_probe", "ssh_host_keys"}, "checks")
    internetdb_url = message.get("internetdb_url")
    if internetdb_url is not None:
        internetdb_url = _text(message, "internetdb_url")
    return ScanOptions(
        ports=ports,
        engine=engine,
        discovery=DiscoveryOptions(
            rate=rate,
            timeout=_number(discovery, "timeout", 0.05, 60),
            retries=_integer(discovery, "retries", 0, 10),
            max_concurrency=_integer(discovery, "max_concurrency", 1, 100_000),
        ),
        identify=_flag(message, "identify"),
        identification=IdentifyOptions(
            timeout=_number(identification, "timeout", 0.05, 600),
            max_connections_per_host=_integer(identification, "max_connections_per_host", 1,
                                              1024),
            nmap_fallback=_flag(identification, "nmap_fallback"),
        ),
        run_checks=_flag(message, "run_checks"),
        checks=CheckOptions(
            active=_flag(checks, "active"),
            ca_file=ca_file,
            ssh_auth_probe=_flag(checks, "ssh_auth_probe"),
            ssh_host_keys=_flag(checks, "ssh_host_keys"),
        ),
        internetdb_url=internetdb_url,
        udp=_flag(message, "udp"),
        udp_dns_name=_text(message, "udp_dns_name"),
        host_connections=_integer(message, "host_connections", 1, 4096),
        global_connections=_integer(message, "global_connections", 1, 65536),
    )


def ca_pem_of(message: Mapping[str, Any]) -> str | None:
    checks = _mapping(message, "checks")
    pem = checks.get("ca_pem")
    if pem is None:
        return None
    if not isinstance(pem, str) or len(pem) > MAX_CA_PEM_BYTES:
        raise BadTask("checks.ca_pem: not a PEM text of at most 1 MiB")
    return pem


# --- strict readers ----------------------------------------------------------------------------


def _only(message: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(str(key) for key in message if key not in allowed)
    if unknown:
        raise BadTask(f"{where}: unknown field(s) {', '.join(unknown)[:200]}")


def _mapping(message: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = message.get(key)
    if not isinstance(value, Mapping):
        raise BadTask(f"{key}: not an object")
    return value


def _flag(message: Mapping[str, Any], key: str) -> bool:
    value = message.get(key)
    if not isinstance(value, bool):
        raise BadTask(f"{key}: not true or false")
    return value


def _integer(message: Mapping[str, Any], key: str, low: int, high: int) -> int:
    value = message.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadTask(f"{key}: not a whole number from {low} to {high}")
    return value


def _number(message: Mapping[str, Any], key: str, low: float, high: float) -> float:
    value = message.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise BadTask(f"{key}: not a number from {low} to {high}")
    return float(value)


def _text(message: Mapping[str, Any], key: str) -> str:
    value = message.get(key)
    if not isinstance(value, str) or len(value) > MAX_TEXT_CHARS:
        raise BadTask(f"{key}: not a text of at most {MAX_TEXT_CHARS} characters")
    return value
