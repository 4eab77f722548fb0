"""The answer first: a verdict and a "fix these first" list, computed once from a report.

Every output opens with this (terminal, Markdown, HTML, the JSON `summary`, SARIF run
properties), and the history line, alerts and MQTT use the same numbers, so they can never
disagree. The definitions live here and nowhere else:

- A **host** is what one machine is called: what was typed (a name's IPv4 and IPv6
  addresses are the same machine, usually), except that each address of a network typed
  as a CIDR is a host of its own.
- An **open port** is a (host, port, protocol) that answered as open on any of its
  addresses. A host that answers on every port (tarpit, proxy) has none we can tell apart.
- A **problem** is a finding id on a host or several: the same id on 8123 and 443, on IPv4
  and IPv6, is one thing to fix, listed once with everywhere it applies.
- TLS grades compare by scanner.core.grades (F worst; T/M with the grade they would have).

    from scanner.core.summary import summarize
    summary = summarize(report)          # a ScanReport
    summary.verdict, summary.open_ports, summary.to_dict()

For a stored or received report dict, rebuild the ScanReport first
(scanner.store.report_from_dict). Every string here has been through safe_text.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from scanner.core.findings import Finding, Severity
from scanner.core.grades import Grade, grade_of, worst_grade
from scanner.core.report import PortReport, ScanReport, TargetReport
from scanner.core.text import TRUNCATION_MARK, safe_text

SEVERITY_ORDER = (Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW, Severity.INFO)
NAME_CHARS = 256
TITLE_CHARS = 300
FIX_CHARS = 2000
PORTS_NAMED = 8  # in a "where" sentence; beyond, "and N more"
TITLES_NAMED = 3  # distinct titles of one finding id

# A title or fix cut here says where the whole of it is: with the finding, in every format.
SUMMARY_CUT = "… [truncated here; the whole text is with the finding in the details]"

IPV6_NOTE = (
    "IPv6 is the newer kind of internet address. Your router's IPv4 port forwarding does not "
    "apply to it: with IPv6, devices in your home often have addresses the internet can reach "
    "directly, and only the router's IPv6 firewall decides what gets through. A port open on "
    "IPv6 is open even if you never forwarded it."
)


@dataclass(frozen=True)
class Place:
    """One port of one host where a problem was seen, and on which of its addresses."""

    host: str
    port: int | None  # None: about the whole host
    protocol: str
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class ProblemGroup:
    """One finding id, everywhere it applies, worst severity first."""

    id: str
    severity: Severity
    title: str
    fixes: tuple[str, ...]  # distinct remediations; usually one
    places: tuple[Place, ...]
    where: str  # "8123 on IPv4 and IPv6"
    references: tuple[str, ...]
    instances: int  # findings in the report (per address and port)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "severity": str(self.severity),
            "title": self.title,
            "fixes": list(self.fixes),
            "where": self.where,
            "places": [
                {"host": place.host, "port": place.port, "protocol": place.protocol,
                 "addresses": list(place.addresses)}
                for place in self.places
            ],
            "references": list(self.references),
            "instances": self.instances,
        }


@dataclass(frozen=True)
class ExposedService:
    """An open port of a host: what answers there, on which addresses."""

    host: str
    port: int
    protocol: str
    service: str
    product: str
    version: str
    tls_grade: Grade | None
    addresses: tuple[str, ...]
    worst: Severity | None  # of the problems on this port

    @property
    def label(self) -> str:
        return f"{self.port}/{self.protocol}"

    @property
    def product_version(self) -> str:
        return " ".join(part for part in (self.product, self.version) if part)

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "port": self.port,
            "protocol": self.protocol,
            "service": self.service or None,
            "product": self.product or None,
            "version": self.version or None,
            "tls_grade": self.tls_grade.display if self.tls_grade else None,
            "addresses": list(self.addresses),
            "worst_severity": str(self.worst) if self.worst else None,
        }


@dataclass(frozen=True)
class ReportSummary:
    verdict: str  # one sentence: is this safe to leave on the internet?
    status: str  # "not_safe" | "needs_attention" | "ok" | "unknown"
    worst: Severity | None
    counts: Mapping[Severity, int]  # problems (finding ids per host) by severity
    finding_counts: Mapping[Severity, int]  # findings as listed per address and port
    open_ports: int
    hosts: tuple[str, ...]
    addresses_scanned: int
    services: tuple[ExposedService, ...]
    problems: tuple[ProblemGroup, ...]  # worst first
    worst_grade: Grade | None
    complete: bool
    ipv6_note: str | None  # the plain-words IPv6 explanation, when IPv6 appears
    hidden_below: Severity | None = None  # --severity: findings below this are not shown
    hidden: int = 0
    answers_all_ports: tuple[str, ...] = field(default_factory=tuple)  # hosts that do

    @property
    def urgent(self) -> tuple[ProblemGroup, ...]:
        """The "fix these first" list: every problem above info."""
        return tuple(group for group in self.problems if group.severity is not Severity.INFO)

    @property
    def informational(self) -> tuple[ProblemGroup, ...]:
        return tuple(group for group in self.problems if group.severity is Severity.INFO)

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "status": self.status,
            "worst_severity": str(self.worst) if self.worst else None,
            "counts": {str(severity): self.counts.get(severity, 0) for severity in SEVERITY_ORDER},
            "finding_counts": {
                str(severity): self.finding_counts.get(severity, 0) for severity in SEVERITY_ORDER
            },
            "open_ports": self.open_ports,
            "hosts": list(self.hosts),
            "addresses_scanned": self.addresses_scanned,
            "worst_tls_grade": self.worst_grade.display if self.worst_grade else None,
            "exposed_services": [service.to_dict() for service in self.services],
            "findings": [group.to_dict() for group in self.problems],
            "complete": self.complete,
            **({"ipv6_note": self.ipv6_note} if self.ipv6_note else {}),
            **({"hidden_below": str(self.hidden_below), "hidden": self.hidden}
               if self.hidden_below else {}),
        }


# --- the definitions ---------------------------------------------------------------------


def host_of(target: TargetReport) -> str:
    """The machine a target address belongs to: what was typed (a name's IPv4 and IPv6
    addresses are one machine), except for a network, whose every address is its own."""
    return target.address if "/" in target.input else target.input


def open_ports_of(target: TargetReport) -> list[PortReport]:
    """The open ports of one address, as every output counts them."""
    if target.answers_all_ports:
        return []
    return [port for port in target.ports if port.state == "open"]


def open_port_count(report: ScanReport) -> int:
    """Distinct (host, port, protocol) open on any address: the one number of open ports."""
    return len({(host_of(target), port.port, port.protocol)
                for target in report.targets for port in open_ports_of(target)})


# --- building it ------------------------------------------------------------------------


def summarize(report: ScanReport, *, hidden_below: Severity | None = None,
              hidden: int = 0) -> ReportSummary:
    """The summary of `report`. hidden_below/hidden: the caller filtered out findings below
    that severity (--severity), and how many; the verdict says so."""
    hosts = _hosts(report.targets)
    problems = _problems(report.targets, hosts)
    services = _services(report.targets, problems, list(hosts))
    counts = _count(group.severity for group in problems)
    worst = next((severity for severity in SEVERITY_ORDER if counts.get(severity)), None)
    grades = [service.tls_grade for service in services if service.tls_grade]
    all_ports = tuple(dict.fromkeys(_host_name(t) for t in report.targets if t.answers_all_ports))
    summary = ReportSummary(
        verdict="",
        status=_status(report, worst, len(services), all_ports, hosts),
        worst=worst,
        counts=counts,
        finding_counts=_count(f.severity for t in report.targets for f in t.findings),
        open_ports=len(services),
        hosts=tuple(hosts),
        addresses_scanned=len(report.targets),
        services=tuple(services),
        problems=tuple(problems),
        worst_grade=worst_grade(grades),
        complete=report.complete,
        ipv6_note=IPV6_NOTE if _ipv6_matters(report.targets) else None,
        hidden_below=hidden_below,
        hidden=hidden,
        answers_all_ports=all_ports,
    )
    return _with_verdict(summary)


def _host_name(target: TargetReport) -> str:
    return safe_text(host_of(target), NAME_CHARS)


def _hosts(targets: Sequence[TargetReport]) -> dict[str, tuple[str, ...]]:
    """host -> its addresses, in report order."""
    hosts: dict[str, list[str]] = {}
    for target in targets:
        addresses = hosts.setdefault(_host_name(target), [])
        address = safe_text(target.address, NAME_CHARS)
        if address not in addresses:
            addresses.append(address)
    return {host: tuple(addresses) for host, addresses in hosts.items()}


def _problems(
    targets: Sequence[TargetReport], hosts: Mapping[str, tuple[str, ...]]
) -> list[ProblemGroup]:
    by_id: dict[str, list[tuple[str, TargetReport, Finding]]] = {}
    for target in targets:
        for finding in target.findings:
            by_id.setdefault(finding.id, []).append((_host_name(target), target, finding))
    groups = [_group(finding_id, seen, hosts) for finding_id, seen in by_id.items()]
    return sorted(groups, key=lambda g: (-_severity(g.severity).rank, -g.instances, g.id))


def _group(
    finding_id: str,
    seen: list[tuple[str, TargetReport, Finding]],
    hosts: Mapping[str, tuple[str, ...]],
) -> ProblemGroup:
    seen = sorted(seen, key=lambda item: -_severity(item[2].severity).rank)
    worst = seen[0][2]
    titles = list(dict.fromkeys(finding.title for _, _, finding in seen))
    places: dict[tuple[str, int | None, str], list[str]] = {}
    for host, target, finding in seen:
        addresses = places.setdefault((host, finding.port, finding.protocol), [])
        address = safe_text(target.address, NAME_CHARS)
        if address not in addresses:
            addresses.append(address)
    place_list = tuple(Place(host, port, safe_text(protocol, 8), tuple(addresses))
                       for (host, port, protocol), addresses in places.items())
    return ProblemGroup(
        id=safe_text(finding_id, 96),
        severity=_severity(worst.severity),
        title=_titles(titles),
        fixes=tuple(dict.fromkeys(
            _capped(finding.remediation.strip(), FIX_CHARS, keep_newlines=True)
            for _, _, finding in seen if finding.remediation.strip()
        )),
        places=place_list,
        where=where_text(place_list, hosts),
        references=tuple(dict.fromkeys(
            safe_text(ref, 512) for _, _, finding in seen for ref in finding.references
        ))[:12],
        instances=len(seen),
    )


def _titles(titles: list[str]) -> str:
    """The problem's title; several (service.unauthenticated on Redis and on Node-RED, a TLS
    grade per port) are all named, worst first."""
    named = [_capped(title, TITLE_CHARS) for title in titles[:TITLES_NAMED]]
    more = len(titles) - TITLES_NAMED
    return "; ".join(named) + (f"; and {more} more" if more > 0 else "")


def _capped(text: str, limit: int, *, keep_newlines: bool = False) -> str:
    capped = safe_text(text, limit, keep_newlines=keep_newlines)
    already = text.endswith(TRUNCATION_MARK) and len(text) - len(TRUNCATION_MARK) <= limit
    if capped.endswith(TRUNCATION_MARK) and not already:
        return capped[: -len(TRUNCATION_MARK)] + SUMMARY_CUT
    return capped


def _services(
    targets: Sequence[TargetReport], problems: Sequence[ProblemGroup], hosts: Sequence[str]
) -> list[ExposedService]:
    merged: dict[tuple[str, int, str], list[tuple[TargetReport, PortReport]]] = {}
    for target in targets:
        for port in open_ports_of(target):
            key = (_host_name(target), port.port, safe_text(port.protocol, 8))
            merged.setdefault(key, []).append((target, port))
    worst_at: dict[tuple[str, int | None, str], Severity] = {}
    for group in problems:
        for place in group.places:
            at = (place.host, place.port, place.protocol)
            if at not in worst_at or group.severity.rank > worst_at[at].rank:
                worst_at[at] = group.severity
    services = [_service(key, seen, worst_at.get(key)) for key, seen in merged.items()]
    order = {host: index for index, host in enumerate(hosts)}
    return sorted(services, key=lambda s: (order.get(s.host, 0), s.port, s.protocol))


def _service(key: tuple[str, int, str], seen: list[tuple[TargetReport, PortReport]],
             worst: Severity | None) -> ExposedService:
    host, number, protocol = key
    ports = [port for _, port in seen]
    tls = [port.details.get("tls") if isinstance(port.details, Mapping) else None
           for port in ports]
    return ExposedService(
        host=host,
        port=number,
        protocol=protocol,
        service=safe_text(_first(p.service for p in ports), 64),
        product=safe_text(_first([*(p.product for p in ports), *map(_found_product, ports)]),
                          128),
        version=safe_text(_first(p.version for p in ports), 128),
        tls_grade=worst_grade(g for g in map(grade_of, tls) if g is not None),
        addresses=tuple(dict.fromkeys(safe_text(t.address, NAME_CHARS) for t, _ in seen)),
        worst=worst,
    )


def _found_product(port: PortReport) -> str | None:
    """What a check named the service (details.product.name: Node-RED, Redis...)."""
    found = port.details.get("product") if isinstance(port.details, Mapping) else None
    name = found.get("name") if isinstance(found, Mapping) else None
    return name if isinstance(name, str) else None


def _first(values: Iterable[str | None]) -> str:
    return next((value for value in values if value), "")


def _count(severities: Iterable[Severity]) -> dict[Severity, int]:
    counts: dict[Severity, int] = {}
    for severity in severities:
        key = _severity(severity)
        counts[key] = counts.get(key, 0) + 1
    return {severity: counts[severity] for severity in SEVERITY_ORDER if severity in counts}


def _severity(value: Any) -> Severity:
    try:
        return Severity(str(value))
    except ValueError:
        return Severity.INFO


def _ipv6_matters(targets: Sequence[TargetReport]) -> bool:
    """IPv6 appears in the answer when something is open (or found) on an IPv6 address."""
    return any(_is_ipv6(target.address) and (open_ports_of(target) or target.findings)
               for target in targets)


def _is_ipv6(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).version == 6
    except ValueError:
        return False


# --- where a problem applies --------------------------------------------------------------


def where_text(places: Sequence[Place], hosts: Mapping[str, tuple[str, ...]]) -> str:
    """'8123 on IPv4 and IPv6', '443 and 8443 on IPv4 and IPv6; 2222 on IPv6 only',
    'home.example: 22; 198.51.100.9: 22' (several hosts), 'the whole host'."""
    by_host: dict[str, list[Place]] = {}
    for place in places:
        by_host.setdefault(place.host, []).append(place)
    parts = []
    for host, host_places in by_host.items():
        text = _where_on_host(host_places, hosts.get(host, ()))
        parts.append(f"{host}: {text}" if len(by_host) > 1 else text)
    return "; ".join(parts)


def _where_on_host(places: Sequence[Place], addresses: tuple[str, ...]) -> str:
    by_reach: dict[str, list[str]] = {}
    for place in sorted(places, key=lambda p: (p.port or 0, p.protocol)):
        by_reach.setdefault(_reach(place.addresses, addresses), []).append(_port_label(place))
    phrases = []
    for reach, labels in by_reach.items():
        ports = _joined(list(dict.fromkeys(labels)))
        phrases.append(f"{ports} {reach}".strip())
    return "; ".join(phrases)


def _port_label(place: Place) -> str:
    if place.port is None:
        return "the whole host"
    return str(place.port) if place.protocol == "tcp" else f"{place.port}/{place.protocol}"


def _joined(labels: list[str]) -> str:
    if len(labels) > PORTS_NAMED:
        shown = labels[:PORTS_NAMED]
        return ", ".join(shown) + f" and {len(labels) - PORTS_NAMED} more"
    if len(labels) <= 1:
        return "".join(labels)
    return ", ".join(labels[:-1]) + " and " + labels[-1]


def _reach(seen_on: tuple[str, ...], host_addresses: tuple[str, ...]) -> str:
    """On which of the host's addresses: '' (it has one), 'on IPv4 and IPv6', 'on IPv6 only'."""
    if len(host_addresses) <= 1:
        return ""
    families = {address: 6 if _is_ipv6(address) else 4 for address in host_addresses}
    seen_families = {families.get(address, 4) for address in seen_on}
    whole_families = all(
        {a for a in host_addresses if families[a] == family} <= set(seen_on)
        for family in seen_families
    )
    if set(seen_on) >= set(host_addresses):
        if set(families.values()) == {4, 6} and len(host_addresses) == 2:
            return "on IPv4 and IPv6"
        return f"on all {len(host_addresses)} addresses"
    if whole_families and len(seen_families) == 1:
        family = seen_families.pop()
        return f"on IPv{family} only"
    return "on " + ", ".join(seen_on)


# --- the verdict --------------------------------------------------------------------------


def _status(report: ScanReport, worst: Severity | None, open_ports: int,
            all_ports: tuple[str, ...], hosts: Mapping[str, tuple[str, ...]]) -> str:
    if not report.targets:
        return "unknown"
    if worst in (Severity.CRITICAL, Severity.HIGH):
        return "not_safe"
    if worst is Severity.MEDIUM:
        return "needs_attention"
    if all_ports and len(all_ports) == len(hosts) and open_ports == 0:
        return "unknown"
    return "ok"


def _with_verdict(summary: ReportSummary) -> ReportSummary:
    return replace(summary, verdict=verdict_sentence(summary))


def verdict_sentence(summary: ReportSummary) -> str:
    """One sentence answering "is this safe to leave on the internet?"."""
    ports = _plural(summary.open_ports, "open port")
    counts = summary.counts
    if summary.status == "unknown" and not summary.hosts:
        sentence = ("Nothing could be scanned, so this report cannot say whether anything is "
                    "safe: see the errors.")
    elif summary.status == "unknown":
        sentence = (f"Cannot tell: {', '.join(summary.answers_all_ports)} answers on every "
                    "port (a tarpit, honeypot or a proxy in front), so what is really open "
                    "cannot be seen from the outside.")
    elif summary.status == "not_safe":
        serious_counts = [(s, counts[s]) for s in (Severity.CRITICAL, Severity.HIGH)
                          if counts.get(s)]
        total = sum(n for _, n in serious_counts)
        serious = _and([f"{n} {s}" for s, n in serious_counts]) + (
            " problem" if total == 1 else " problems")
        sentence = (f"Not safe to leave on the internet: {serious} on {ports} that anyone "
                    "who finds it can use. Fix the list below first.")
    elif summary.status == "needs_attention":
        sentence = (f"Not urgent, but not as safe as it should be: "
                    f"{_plural(counts[Severity.MEDIUM], 'medium-severity problem')} on {ports}.")
    elif summary.open_ports == 0:
        sentence = ("Nothing answers from the internet on the ports scanned: nothing is "
                    "exposed there.")
    else:
        minor = [f"{counts[s]} {s}" for s in (Severity.LOW, Severity.INFO) if counts.get(s)]
        rest = f", only minor points ({_and(minor)})" if minor else ", no problem found"
        sentence = (f"Safe to leave on the internet as far as a scan from outside can tell: "
                    f"{ports}{rest}.")
    if summary.hidden and summary.hidden_below:
        sentence += (f" {_plural(summary.hidden, 'finding')} below {summary.hidden_below} "
                     "not shown (--severity).")
    if not summary.complete and summary.hosts:
        sentence += " The scan was incomplete (see the errors), so something may be missing."
    return sentence


def _plural(count: int, noun: str) -> str:
    word = noun if count == 1 else _plural_noun(noun)
    return f"{count} {word}"


def _plural_noun(noun: str) -> str:
    head, _, last = noun.rpartition(" ")
    plural = last + "es" if last.endswith("s") else last + "s"
    return f"{head} {plural}".strip()


def _and(parts: list[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]
