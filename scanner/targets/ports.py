"""Port specifications: `top`, `all`, or a list like `22,80,8000-8100`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from scanner.errors import BadInput

# The ports the internet probes most (the head of nmap's frequency table, which Shodan and
# Censys crawl too) plus what self-hosters forward: Home Assistant and its add-ons, MQTT,
# media servers, dashboards, container managers, NAS and camera ports.
_COMMON_INTERNET_PORTS = (
    20, 21, 22, 23, 25, 53, 69, 80, 81, 88, 110, 111, 113, 119, 123, 135, 137, 139, 143, 161,
    179, 389, 427, 443, 444, 445, 465, 500, 502, 514, 515, 548, 554, 587, 623, 631, 636, 853,
    873, 902, 990, 993, 995, 1025, 1080, 1194, 1433, 1434, 1521, 1723, 1900, 2049, 2082, 2083,
    2086, 2087, 2121, 2181, 2375, 2376, 2379, 3128, 3268, 3306, 3389, 3478, 4443, 4444, 4567,
    4711, 4712, 4786, 5060, 5061, 5222, 5353, 5432, 5555, 5601, 5672, 5900, 5901, 5938, 5984,
    5985, 5986, 6000, 6379, 6443, 6667, 7001, 7070, 7547, 7777, 8000, 8001, 8008, 8009, 8010,
    8020, 8069, 8080, 8081, 8082, 8083, 8088, 8090, 8091, 8181, 8200, 8291, 8333, 8443, 8444,
    8500, 8529, 8834, 8880, 8888, 8889, 9001, 9042, 9090, 9091, 9100, 9200, 9300, 9418, 9999,
    10000, 10250, 11211, 15672, 20000, 25565, 27017, 27018, 37777, 49152, 50000, 50070,
)
_SELF_HOSTER_PORTS = (
    1400,   # Sonos
    1880,   # Node-RED
    1883,   # MQTT
    1884,   # MQTT (second listener)
    3000,   # Grafana, AdGuard Home installer
    3001,   # Uptime Kuma
    4357,   # Home Assistant observer
    5000,   # Frigate API, Synology DSM
    5001,   # Synology DSM (HTTPS)
    5055,   # Overseerr
    5380,   # Technitium DNS
    6052,   # ESPHome dashboard
    7878,   # Radarr
    8086,   # InfluxDB
    8096,   # Jellyfin / Emby
    8112,   # Deluge
    8123,   # Home Assistant
    8384,   # Syncthing
    8554,   # RTSP (go2rtc, Frigate restream)
    8883,   # MQTT over TLS
    8920,   # Jellyfin / Emby (HTTPS)
    8971,   # Frigate (authenticated UI)
    8989,   # Sonarr
    9000,   # Portainer
    9443,   # Portainer (HTTPS)
    9696,   # Prowlarr
    9925,   # Mealie
    10443,  # UniFi / misc HTTPS
    19999,  # Netdata
    21064,  # HomeKit Bridge
    22222,  # Home Assistant OS developer SSH
    32400,  # Plex
    51820,  # WireGuard (UDP only, but forwarded as TCP by mistake)
)

TOP_PORTS: tuple[int, ...] = tuple(sorted(set(_COMMON_INTERNET_PORTS + _SELF_HOSTER_PORTS)))
ALL_PORTS: tuple[int, ...] = tuple(range(1, 65536))

MAX_PORT = 65535


def parse_port_spec(spec: str) -> tuple[int, ...]:
    """Return the sorted, de-duplicated ports of a spec; raise BadInput with one clear line."""
    text = spec.strip().lower()
    if not text:
        raise BadInput("empty port specification (use top, all, or e.g. 22,80,8000-8100)")
    ports: set[int] = set()
    for item in text.split(","):
        ports.update(_parse_port_item(item.strip(), spec))
    return tuple(sorted(ports))


def _parse_port_item(item: str, spec: str) -> Sequence[int]:
    if not item:
        raise BadInput(f"empty item in port specification {spec!r}")
    if item == "top":  # `top,9999` adds a port to the curated list
        return TOP_PORTS
    if item in ("all", "-"):
        return ALL_PORTS
    parts = item.split("-")
    if len(parts) > 2:
        raise BadInput(f"bad port range {item!r} (expected N or N-M)")
    low_text, high_text = parts[0], parts[-1]
    low, high = _parse_port_number(low_text, item), _parse_port_number(high_text, item)
    if low > high:
        raise BadInput(f"bad port range {item!r}: {low} is greater than {high}")
    return range(low, high + 1)


def _parse_port_number(text: str, item: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise BadInput(f"bad port {item!r} (ports are numbers from 1 to {MAX_PORT})")
    number = int(text)
    if not 1 <= number <= MAX_PORT:
        raise BadInput(f"port {number} is out of range (1-{MAX_PORT})")
    return number


def exclude_ports(ports: Sequence[int], spec: str) -> tuple[int, ...]:
    """`ports` without those of `spec` (--exclude-ports); BadInput when nothing is left."""
    excluded = set(parse_port_spec(spec))
    kept = tuple(port for port in ports if port not in excluded)
    if not kept:
        raise BadInput(f"--exclude-ports {spec} leaves no port to scan")
    return kept


def compress_ports(ports: Iterable[int]) -> str:
    """22,80,81,82,83 -> '22,80-83' (nmap's syntax; also how reports list many ports)."""
    ranges: list[str] = []
    start: int | None = None
    previous = -2
    for port in sorted(set(ports)):
        if start is not None and port == previous + 1:
            previous = port
            continue
        if start is not None:
            ranges.append(str(start) if start == previous else f"{start}-{previous}")
        start = previous = port
    if start is not None:
        ranges.append(str(start) if start == previous else f"{start}-{previous}")
    return ",".join(ranges)
