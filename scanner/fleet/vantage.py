"""One address seen from several vantage points: which saw each port open, and what differs.

The combined report keeps every port any vantage saw open or closed; each port's
`details.vantages` lists the vantages that saw it open, closed and filtered. A port open from
some vantages and not from others is a `vantage.difference` finding: a geo-fence or an
allow-list does that on purpose; a second path into the home that bypasses the router's
firewall (an IPv6 route, a second uplink, a forward limited by source) does it by mistake.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from scanner.core.findings import Finding, FindingSpec, Severity
from scanner.core.report import Note, PortReport, TargetReport

VANTAGE_DIFFERENCE = FindingSpec(
    id="vantage.difference",
    severity=Severity.MEDIUM,
    title="A port answers differently depending on where it is scanned from",
)
FINDINGS: tuple[FindingSpec, ...] = (VANTAGE_DIFFERENCE,)  # part of scanner.core.catalogue
STATES = ("open", "closed", "filtered")
REMEDIATION = (
    "The port is reachable from some places and not from others. If you set that up (a "
    "geo-fence, a source allow-list, a firewall rule limited by country), it works as "
    "intended. If not, something opens this port on one path only: an IPv6 address that "
    "reaches the device directly and bypasses the router's IPv4 port-forwarding rules, a "
    "second internet connection, or a forward restricted by source. Check the router's "
    "rules for this port on both address families and every uplink."
)


def port_states(target: TargetReport, ports: Sequence[int]) -> dict[int, str]:
    """TCP state of every port asked, as this vantage saw it (unlisted: filtered)."""
    listed = {port.port: port.state for port in target.ports if port.protocol == "tcp"}
    return {port: listed.get(port, "filtered") for port in ports}


def combine(seen: Mapping[str, TargetReport], ports: Sequence[int]) -> TargetReport:
    """The report of one address seen from every vantage in `seen` (in its order)."""
    vantages = list(seen)
    first = seen[vantages[0]]
    states = {vantage: port_states(target, ports) for vantage, target in seen.items()}
    reliable = [vantage for vantage in vantages if not seen[vantage].answers_all_ports]
    combined = TargetReport(
        input=first.input, address=first.address, hostname=first.hostname,
        answers_all_ports=any(target.answers_all_ports for target in seen.values()),
    )
    combined.ports = _ports(seen, states)
    combined.ports += _udp_ports(seen)
    combined.filtered_count = sum(
        1 for port in ports if all(states[v][port] == "filtered" for v in vantages))
    combined.findings = _findings(seen, states)
    combined.findings += _differences(states, reliable)
    combined.notes = _notes(seen, states, reliable)
    combined.internetdb = next(
        (target.internetdb for target in seen.values() if target.internetdb is not None), None)
    return combined


def _ports(seen: Mapping[str, TargetReport], states: Mapping[str, dict[int, str]]) -> list[
        PortReport]:
    """Each TCP port listed by some vantage: open if any saw it open, identified by the first
    vantage that did; details.vantages says who saw what."""
    numbers = sorted(
        {port.port for target in seen.values() for port in target.ports if port.protocol == "tcp"})
    result = []
    for number in numbers:
        by_vantage = {v: _port(t, number) for v, t in seen.items()}
        chosen = next((p for p in by_vantage.values() if p is not None and p.state == "open"),
                      None) or next(p for p in by_vantage.values() if p is not None)
        port = dataclasses.replace(chosen, details=dict(chosen.details))
        port.details["vantages"] = {
            state: [v for v in seen if states[v][number] == state] for state in STATES
        }
        result.append(port)
    return result


def _port(target: TargetReport, number: int) -> PortReport | None:
    return next((p for p in target.ports if p.port == number and p.protocol == "tcp"), None)


def _udp_ports(seen: Mapping[str, TargetReport]) -> list[PortReport]:
    found: dict[int, PortReport] = {}
    for target in seen.values():
        for port in target.ports:
            if port.protocol != "tcp":
                found.setdefault(port.port, port)
    return [found[number] for number in sorted(found)]


def _findings(seen: Mapping[str, TargetReport], states: Mapping[str, dict[int, str]]) -> list[
        Finding]:
    """Every finding once (by id, port and protocol); one that only some of the vantages which
    saw its port open have found says from where."""
    first: dict[tuple[str, int | None, str], Finding] = {}
    found_by: dict[tuple[str, int | None, str], list[str]] = {}
    for vantage, target in seen.items():
        for finding in target.findings:
            key = (finding.id, finding.port, finding.protocol)
            first.setdefault(key, finding)
            if vantage not in found_by.setdefault(key, []):
                found_by[key].append(vantage)
    result = []
    for key, finding in first.items():
        _, port, protocol = key
        could = [v for v in seen if port is None or protocol != "tcp"
                 or states[v].get(port) == "open"]
        missing = [v for v in could if v not in found_by[key]]
        if missing:
            finding = dataclasses.replace(finding, evidence=(
                f"{finding.evidence} (seen from {', '.join(found_by[key])}; "
                f"not from {', '.join(missing)})"))
        result.append(finding)
    return result


def _differences(states: Mapping[str, dict[int, str]], vantages: Sequence[str]) -> list[Finding]:
    if len(vantages) < 2:
        return []
    result = []
    for port in sorted(states[vantages[0]]):
        seen_open = [v for v in vantages if states[v][port] == "open"]
        if not seen_open or len(seen_open) == len(vantages):
            continue
        others = "; ".join(
            f"{state} from {', '.join(v for v in vantages if states[v][port] == state)}"
            for state in ("closed", "filtered")
            if any(states[v][port] == state for v in vantages)
        )
        result.append(VANTAGE_DIFFERENCE.finding(
            port=port,
            evidence=f"port {port}/tcp: open from {', '.join(seen_open)}; {others}",
            remediation=REMEDIATION,
        ))
    return result


def _notes(seen: Mapping[str, TargetReport], states: Mapping[str, dict[int, str]],
           reliable: Sequence[str]) -> list[Note]:
    notes = [Note(None, f"scanned from {len(seen)} vantage points: {', '.join(seen)}")]
    for vantage, target in seen.items():
        if target.answers_all_ports:
            notes.append(Note(None, f"from {vantage}, the address accepts connections on every "
                                    "port: its ports are not compared"))
    for port in sorted(states[next(iter(seen))]):
        closed = [v for v in reliable if states[v][port] == "closed"]
        filtered = [v for v in reliable if states[v][port] == "filtered"]
        if closed and filtered and len(closed) + len(filtered) == len(reliable):
            notes.append(Note(port, f"closed from {', '.join(closed)}, filtered from "
                                    f"{', '.join(filtered)} (a firewall on one path only)"))
    noted_by: dict[Note, list[str]] = {}
    for vantage, target in seen.items():
        for note in target.notes:
            noted_by.setdefault(note, []).append(vantage)
    for note, vantages in noted_by.items():
        notes.append(note if len(vantages) == len(seen) else
                     Note(note.port, f"{note.text} (from {', '.join(vantages)})"))
    return notes
