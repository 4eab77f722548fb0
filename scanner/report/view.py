"""What a person reads: the ScanReport turned into display data, shared by every renderer.

The terminal, Markdown and HTML reports show the same things in the same order; this module
decides what those things are, once. Every string in a view has been through safe_text (or
safe_tree): a renderer only has to escape for its own syntax (HTML, Markdown), never to clean.

What each stage put into a port's `details` is read through the typed details loader
(scanner.core.details): each key's record says which rows it shows in its details block and
in the port table, whether it carries a grade, whether it is the crawler's view; the view
shows those rows and the whole key as folded, pretty-printed JSON. Keys without a record (UDP
services) get their scalar fields. So a new check's details appear in every report without
any change here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scanner.core.details import (
    CrawlerView,
    Graded,
    PortDetails,
    Row,
    UntypedDetails,
    generic_rows,
    is_scalar,
    load_port_details,
    scalar_text,
)
from scanner.core.diff import Change, ReportDiff
from scanner.core.findings import Finding, Severity
from scanner.core.report import Note, PortReport, ScanReport, TargetReport
from scanner.core.summary import ReportSummary, open_ports_of, summarize
from scanner.core.text import TRUNCATION_MARK, safe_text, safe_tree
from scanner.report.shodan import compact_record
from scanner.targets.ports import compress_ports

SEVERITY_ORDER = (Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW, Severity.INFO)

# Caps for what a person reads; the JSON report keeps what the scan stages kept.
NAME_CHARS = 256
TITLE_CHARS = 300
EVIDENCE_CHARS = 4000
REMEDIATION_CHARS = 2000
BANNER_CHARS = 4096
QUERY_CHARS = 300
FACT_CHARS = 300
TABLE_FACT_CHARS = 120  # a fact in the port table: a glance, the details hold the rest
FACTS_PER_KEY = 16
LIST_ITEMS_SHOWN = 12
RAW_JSON_CHARS = 20_000
MAX_CLOSED_LISTED = 10  # beyond this, closed ports are summarised as ranges (like nmap)
CLOSED_RANGES_CHARS = 120
MAX_NOTES = 50
MAX_ERRORS = 50
# What a cut made for people says: where the whole text is (the JSON keeps what the stage kept).
CUT_MARK = "… [truncated here; the full text is in the JSON report (--format json)]"
# References become links only when they are plain https URLs (ours come from the catalogue).
SAFE_URL = re.compile(r"^https://[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+$")

# Target keys every report shows in its own way; any other key gets a generic section.
CONTRACT_TARGET_KEYS = frozenset(
    {"input", "address", "hostname", "ports", "filtered_count", "answers_all_ports",
     "findings", "notes"}
)
TARGET_EXTRA_TITLES = {"internetdb": "What Shodan already has on record (InternetDB)"}

# SSL Labs-style letters -> a colour class; anything else shows as "other" (grey).
GRADE_CLASSES = {
    "A+": "a-plus",
    "A": "a",
    "A-": "a-minus",
    "B": "b",
    "C": "c",
    "D": "d",
    "E": "e",
    "F": "f",
    "T": "t",
    "M": "m",
}


@dataclass(frozen=True)
class Fact:
    label: str
    value: str


@dataclass(frozen=True)
class DetailBlock:
    """One key of a port's details (or of a target): highlights, and the whole value as JSON."""

    key: str
    facts: tuple[Fact, ...]
    raw_json: str
    title: str = ""  # a heading for target-level blocks ("What Shodan already has on record")
    graded: bool = False  # the port's grade (scores, caps) comes from this block's details


@dataclass(frozen=True)
class GradeView:
    grade: str  # as the TLS check gave it, sanitised ("A+", "B", "T"...)
    css: str  # a fixed class name from GRADE_CLASSES, never remote text
    port: int
    scores: tuple[Fact, ...] = ()
    caps: tuple[str, ...] = ()  # why the grade is capped, in the check's words
    display: str = ""  # "T (A if trusted)": T and M with the grade they would have
    rank: int = 0  # scanner.core.grades order: higher is worse

    @property
    def shown(self) -> str:
        return self.display or self.grade


@dataclass(frozen=True)
class ShodanView:
    port: int
    protocol: str
    banner: str  # multi-line, capped (what the JSON has, for the folded full view)
    queries: tuple[str, ...]
    record: str = ""  # one line: what a crawler records (no volatile headers, no binary)

    @property
    def query(self) -> str:
        """The one query that finds this port: the most specific first."""
        return self.queries[0] if self.queries else ""


@dataclass(frozen=True)
class FindingView:
    id: str
    severity: Severity
    title: str
    evidence: str  # multi-line, capped
    remediation: str  # multi-line, capped
    references: tuple[str, ...]
    target: str  # the target's display name (what the user typed)
    address: str  # the first address it was seen on
    port: int | None
    protocol: str
    addresses: tuple[str, ...] = ()  # every address it was seen on (IPv4 and IPv6 of a name)

    @property
    def all_addresses(self) -> tuple[str, ...]:
        return self.addresses or (self.address,)

    @property
    def links(self) -> tuple[tuple[str, bool], ...]:
        """(reference, is a safe https link) for each reference."""
        return tuple((ref, is_safe_url(ref)) for ref in self.references)

    @property
    def host(self) -> str:
        """'home.example (198.51.100.7, 2001:db8::7)', or the address typed."""
        addresses = ", ".join(self.all_addresses)
        return self.target if addresses == self.target else f"{self.target} ({addresses})"

    @property
    def where(self) -> str:
        """host plus 'port 22/tcp', or just the host for host-wide findings."""
        return f"{self.host} port {self.port}/{self.protocol}" if self.port else self.host


@dataclass(frozen=True)
class PortView:
    port: int
    protocol: str
    state: str
    service: str
    product: str
    version: str
    tls: bool
    banner: str
    grade: GradeView | None
    highlights: tuple[Fact, ...]
    details: tuple[DetailBlock, ...]
    shodan: ShodanView | None
    finding_count: int
    worst: Severity | None

    @property
    def is_open(self) -> bool:
        return self.state == "open"

    @property
    def label(self) -> str:
        return f"{self.port}/{self.protocol}"

    @property
    def product_version(self) -> str:
        return " ".join(part for part in (self.product, self.version) if part)


@dataclass(frozen=True)
class TargetView:
    input: str
    address: str
    hostname: str
    title: str  # "home.example (198.51.100.7)"
    open_count: int
    closed_count: int
    filtered_count: int
    answers_all_ports: bool
    worst: Severity | None
    grades: tuple[GradeView, ...]
    ports: tuple[PortView, ...]  # open and closed, by port number
    findings: tuple[FindingView, ...]  # worst first
    severity_counts: Mapping[Severity, int]
    notes: tuple[Note, ...]  # their texts sanitised; render with Note.line()
    extras: tuple[DetailBlock, ...] = ()  # target keys added by later stages (internetdb...)

    @property
    def open_ports(self) -> tuple[PortView, ...]:
        return tuple(port for port in self.ports if port.is_open)

    @property
    def listed_ports(self) -> tuple[PortView, ...]:
        """The rows of a port table: all, or the open ones when closed ports are many."""
        if self.closed_count <= MAX_CLOSED_LISTED:
            return self.ports
        return self.open_ports

    @property
    def closed_summary(self) -> str:
        """'1200 closed ports not listed: 1-1000,2000-2199' when the table leaves them out."""
        if self.closed_count <= MAX_CLOSED_LISTED:
            return ""
        ranges = compress_ports([port.port for port in self.ports if port.state == "closed"])
        if len(ranges) > CLOSED_RANGES_CHARS:
            ranges = ranges[:CLOSED_RANGES_CHARS] + "…"
        return f"{self.closed_count} closed ports not listed: {ranges}"


@dataclass(frozen=True)
class TargetGroup:
    """The addresses of one name the user typed, and its findings once each."""

    input: str
    targets: tuple[TargetView, ...]
    findings: tuple[FindingView, ...]  # merged across the addresses, worst first
    severity_counts: Mapping[Severity, int]


@dataclass(frozen=True)
class ChangeView:
    kind: str  # "added" | "removed" | "changed": ChangeKind.direction
    what: str  # the ChangeKind ("port.opened", "tls.grade_changed", ...)
    addresses: str  # where it was seen (one change may hold IPv4 and IPv6)
    where: str  # the addresses and the port
    summary: str
    before: str
    after: str
    severity: Severity | None


@dataclass(frozen=True)
class DiffView:
    previous_scan_id: str
    previous_started_at: str
    changes: tuple[ChangeView, ...]

    def count(self, kind: str) -> int:
        return sum(1 for change in self.changes if change.kind == kind)


@dataclass(frozen=True)
class ReportView:
    id: str
    tool_version: str
    started_at: str
    finished_at: str
    duration_s: float
    engine: str
    ports_requested: int
    complete: bool
    errors: tuple[str, ...]  # ScanError.line() of each, sanitised
    targets: tuple[TargetView, ...]
    groups: tuple[TargetGroup, ...]  # targets by the name typed, in report order
    findings: tuple[FindingView, ...]  # merged across addresses of a name, worst first
    severity_counts: Mapping[Severity, int]
    worst: Severity | None
    diff: DiffView | None
    summary: ReportSummary

    @property
    def open_count(self) -> int:
        """Open ports as every output counts them (scanner.core.summary)."""
        return self.summary.open_ports

    def findings_of(self, problem_id: str) -> tuple[FindingView, ...]:
        """The merged findings behind one problem of the summary (its evidence per place)."""
        return tuple(finding for finding in self.findings if finding.id == problem_id)

    @property
    def started_display(self) -> str:
        """'2024-05-01 08:00 UTC' for people; the ISO form stays in the JSON."""
        try:
            moment = dt.datetime.fromisoformat(self.started_at)
        except ValueError:
            return self.started_at
        if moment.utcoffset() != dt.timedelta(0):
            return self.started_at
        return moment.strftime("%Y-%m-%d %H:%M UTC")

    @property
    def grades(self) -> tuple[tuple[TargetView, GradeView], ...]:
        return tuple((target, grade) for target in self.targets for grade in target.grades)


def build_view(
    report: ScanReport, diff: ReportDiff | None = None, summary: ReportSummary | None = None
) -> ReportView:
    from scanner import __version__

    targets = tuple(_target_view(target) for target in report.targets)
    groups = _groups(targets)
    findings = _worst_first([finding for group in groups for finding in group.findings])
    counts = _severity_counts(findings)
    return ReportView(
        id=safe_text(report.id, 64),
        tool_version=safe_text(__version__, 64),
        started_at=safe_text(report.started_at, 64),
        finished_at=safe_text(report.finished_at, 64),
        duration_s=report.duration_s,
        engine=safe_text(report.engine, 32),
        ports_requested=report.ports_requested,
        complete=report.complete,
        errors=_capped_list([error.line() for error in report.errors], MAX_ERRORS, 500),
        targets=targets,
        groups=groups,
        findings=findings,
        severity_counts=counts,
        worst=_worst(findings),
        diff=_diff_view(diff) if diff is not None else None,
        summary=summary if summary is not None else summarize(report),
    )


# --- targets and ports --------------------------------------------------------------------


def _target_view(target: TargetReport) -> TargetView:
    name = safe_text(target.input, NAME_CHARS)
    address = safe_text(target.address, NAME_CHARS)
    findings = _worst_first([_finding_view(finding, target, name) for finding in target.findings])
    ports = tuple(_port_view(port, findings) for port in sorted(target.ports, key=_port_key))
    open_count = len(open_ports_of(target))
    return TargetView(
        input=name,
        address=address,
        hostname=safe_text(target.hostname or "", NAME_CHARS),
        title=name if name == address else f"{name} ({address})",
        open_count=open_count,
        closed_count=sum(1 for port in ports if port.state == "closed"),
        filtered_count=target.filtered_count,
        answers_all_ports=target.answers_all_ports,
        worst=_worst(findings),
        grades=tuple(port.grade for port in ports if port.grade is not None),
        ports=ports,
        findings=findings,
        severity_counts=_severity_counts(findings),
        notes=_capped_notes(target.notes),
        extras=_target_extras(target),
    )


def _target_extras(target: TargetReport) -> tuple[DetailBlock, ...]:
    """Whatever a stage added to the target beyond the contract, shown generically."""
    extras = []
    for key, value in target.to_dict().items():
        if key in CONTRACT_TARGET_KEYS or value is None:
            continue
        block = _untyped_block(str(key), value)
        title = TARGET_EXTRA_TITLES.get(str(key), block.key.replace("_", " "))
        extras.append(DetailBlock(block.key, block.facts, block.raw_json, title))
    return tuple(extras)


def _port_key(port: PortReport) -> tuple[int, str]:
    return (port.port, port.protocol)


def _port_view(port: PortReport, findings: Sequence[FindingView]) -> PortView:
    typed = load_port_details(port.details)
    mine = [f for f in findings if f.port == port.port and f.protocol == port.protocol]
    return PortView(
        port=port.port,
        protocol=safe_text(port.protocol, 8),
        state=safe_text(port.state, 16),
        service=safe_text(port.service or "", 64),
        product=safe_text(port.product or "", 128),
        version=safe_text(port.version or "", 128),
        tls=bool(port.tls),
        banner=safe_text(port.banner or "", BANNER_CHARS, keep_newlines=True),
        grade=grade_view(port.port, typed.values()),
        highlights=_highlights(typed.values()),
        details=tuple(
            _detail_block(key, typed[key]) for key in sorted(typed)
            if not isinstance(typed[key], CrawlerView)
        ),
        shodan=_shodan_view(port, tuple(typed.values())),
        finding_count=len(mine),
        worst=_worst(mine),
    )


def grade_view(port: int, details: Iterable[PortDetails]) -> GradeView | None:
    """The grade of an endpoint, if a check gave one (the TLS check's details.tls.grade)."""
    graded = next((item for item in details if isinstance(item, Graded)), None)
    found = graded.graded() if graded is not None else None
    if graded is None or found is None:
        return None
    grade = safe_text(found.letter, 8)
    if not grade:
        return None
    return GradeView(
        grade=grade,
        css=GRADE_CLASSES.get(grade.upper(), "other"),
        port=port,
        scores=_facts(graded.score_rows()),
        caps=tuple(safe_text(cap, FACT_CHARS) for cap in graded.cap_texts()[:FACTS_PER_KEY]),
        display=safe_text(found.display, 40),
        rank=found.rank,
    )


def _shodan_view(port: PortReport, details: Sequence[PortDetails]) -> ShodanView | None:
    crawler = next((item for item in details if isinstance(item, CrawlerView)), None)
    if crawler is None:
        return None
    view = ShodanView(
        port=port.port,
        protocol=safe_text(port.protocol, 8),
        banner=safe_text(crawler.banner, BANNER_CHARS, keep_newlines=True),
        queries=tuple(safe_text(q, QUERY_CHARS) for q in crawler.queries[:LIST_ITEMS_SHOWN]),
        record=compact_record(crawler, details),
    )
    return view if view.banner or view.queries else None


# --- details ------------------------------------------------------------------------------


def _highlights(details: Iterable[PortDetails]) -> tuple[Fact, ...]:
    """The few facts worth a glance in the port table: title, server, auth methods..."""
    ranked = sorted(details, key=lambda item: item.table_rank)
    return tuple(Fact(row.label, safe_text(row.value, TABLE_FACT_CHARS))
                 for item in ranked for row in item.table_rows())


def _facts(rows: Sequence[Row]) -> tuple[Fact, ...]:
    return tuple(Fact(safe_text(row.label, 64), safe_text(row.value, FACT_CHARS))
                 for row in rows[:FACTS_PER_KEY])


def _detail_block(key: str, details: PortDetails) -> DetailBlock:
    if isinstance(details, UntypedDetails):
        return _untyped_block(key, details.value)
    return DetailBlock(safe_text(key, 64), _facts(details.rows()), _pretty_json(details.to_dict()),
                       graded=isinstance(details, Graded))


def _untyped_block(key: str, value: Any) -> DetailBlock:
    if isinstance(value, Mapping):
        facts = _facts(generic_rows(value))
    elif is_scalar(value):
        facts = (Fact(safe_text(key, 64), scalar_text(value)),)
    else:
        facts = ()
    return DetailBlock(safe_text(key, 64), facts, _pretty_json(value))


def _pretty_json(value: Any) -> str:
    text = json.dumps(safe_tree(value), indent=2, ensure_ascii=False, sort_keys=True)
    if len(text) > RAW_JSON_CHARS:
        return text[:RAW_JSON_CHARS] + "\n" + TRUNCATION_MARK
    return text


# --- findings -----------------------------------------------------------------------------


def _finding_view(finding: Finding, target: TargetReport, target_name: str) -> FindingView:
    return FindingView(
        id=safe_text(finding.id, 96),
        severity=_severity(finding.severity),
        title=safe_text(finding.title, TITLE_CHARS),
        evidence=shown_text(finding.evidence, EVIDENCE_CHARS, keep_newlines=True),
        remediation=shown_text(finding.remediation, REMEDIATION_CHARS, keep_newlines=True),
        references=tuple(safe_text(ref, 512) for ref in finding.references[:LIST_ITEMS_SHOWN]),
        target=target_name,
        address=safe_text(target.address, NAME_CHARS),
        port=finding.port,
        protocol=safe_text(finding.protocol, 8),
    )


def _groups(targets: Sequence[TargetView]) -> tuple[TargetGroup, ...]:
    by_input: dict[str, list[TargetView]] = {}
    for target in targets:
        by_input.setdefault(target.input, []).append(target)
    groups = []
    for name, members in by_input.items():
        findings = _merged([finding for target in members for finding in target.findings])
        groups.append(TargetGroup(name, tuple(members), findings, _severity_counts(findings)))
    return tuple(groups)


def _merged(findings: Sequence[FindingView]) -> tuple[FindingView, ...]:
    """One finding per problem: the same id, port, title and fix on several addresses of a
    name (its IPv4 and IPv6) is one thing to fix, seen on each of them."""
    same: dict[tuple[Any, ...], list[FindingView]] = {}
    for finding in findings:
        key = (finding.target, finding.id, finding.port, finding.protocol, finding.severity,
               finding.title, finding.remediation)
        same.setdefault(key, []).append(finding)
    return _worst_first([_merge(group) for group in same.values()])


def _merge(group: Sequence[FindingView]) -> FindingView:
    first = group[0]
    addresses = tuple(dict.fromkeys(finding.address for finding in group))
    evidences = list(dict.fromkeys(finding.evidence for finding in group))
    evidence = evidences[0] if len(evidences) == 1 else "\n\n".join(
        f"{finding.address}:\n{finding.evidence}" for finding in group
    )
    return dataclasses.replace(
        first, addresses=addresses,
        evidence=shown_text(evidence, EVIDENCE_CHARS, keep_newlines=True),
    )


def shown_text(value: str, limit: int, *, keep_newlines: bool = False) -> str:
    """safe_text for people: a cut made here says where the whole text is. A text the stage
    already capped (it ends in the plain mark and fits) keeps that mark: nothing more exists."""
    text = safe_text(value, limit, keep_newlines=keep_newlines)
    if text.endswith(TRUNCATION_MARK) and not (
        value.endswith(TRUNCATION_MARK) and len(value) - len(TRUNCATION_MARK) <= limit
    ) and not text.endswith(CUT_MARK):
        return text[: -len(TRUNCATION_MARK)] + CUT_MARK
    return text


def is_safe_url(text: str) -> bool:
    return bool(SAFE_URL.match(text)) and ">" not in text and len(text) <= 512


def _severity(value: Any) -> Severity:
    try:
        return Severity(str(value))
    except ValueError:
        return Severity.INFO


def _worst_first(findings: Sequence[FindingView]) -> tuple[FindingView, ...]:
    return tuple(
        sorted(findings, key=lambda f: (-f.severity.rank, f.address, f.port or 0, f.id))
    )


def _worst(findings: Sequence[FindingView]) -> Severity | None:
    return max((f.severity for f in findings), key=lambda s: s.rank, default=None)


def _severity_counts(findings: Sequence[FindingView]) -> dict[Severity, int]:
    counts = Counter(finding.severity for finding in findings)
    return {severity: counts[severity] for severity in SEVERITY_ORDER if counts[severity]}


# --- diff ---------------------------------------------------------------------------------


def _diff_view(diff: ReportDiff) -> DiffView:
    changes = sorted(
        diff.changes,
        key=lambda c: (-c.severity.rank, c.addresses, c.port or 0),
    )
    return DiffView(
        previous_scan_id=safe_text(diff.before.id if diff.before else "", 64),
        previous_started_at=safe_text(diff.before.started_at if diff.before else "", 64),
        changes=tuple(_change_view(change) for change in changes[:500]),
    )


def _change_view(change: Change) -> ChangeView:
    addresses = safe_text(", ".join(change.addresses) or change.target, NAME_CHARS)
    where = addresses
    if change.port:
        where += f" port {change.port}/{safe_text(change.protocol, 8)}"
    return ChangeView(
        kind=change.kind.direction,
        what=str(change.kind),
        addresses=addresses,
        where=where,
        summary=safe_text(change.summary, TITLE_CHARS),
        before=safe_text(_value_text(change.before), FACT_CHARS),
        after=safe_text(_value_text(change.after), FACT_CHARS),
        severity=change.severity,
    )


def _value_text(value: Any) -> str:
    """A change's before/after (a JSON value: a grade, a list of protocols, a service's
    fields) as the short text a table cell shows."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    if isinstance(value, dict):
        return ", ".join(f"{key} {item}" for key, item in value.items() if item is not None)
    return json.dumps(value)


def _capped_notes(notes: Sequence[Note]) -> tuple[Note, ...]:
    shown = [Note(note.port, shown_text(note.text, 500)) for note in notes[:MAX_NOTES]]
    if len(notes) > MAX_NOTES:
        shown.append(Note(None, f"… and {len(notes) - MAX_NOTES} more"))
    return tuple(shown)


def _capped_list(items: Sequence[str], max_items: int, chars: int) -> tuple[str, ...]:
    shown = [shown_text(item, chars) for item in items[:max_items]]
    if len(items) > max_items:
        shown.append(f"… and {len(items) - max_items} more")
    return tuple(shown)


def severity_summary(counts: Mapping[Severity, int]) -> str:
    """'1 critical, 2 high' (worst first), or 'no findings'."""
    parts = [f"{counts[s]} {s}" for s in SEVERITY_ORDER if counts.get(s)]
    return ", ".join(parts) if parts else "no findings"
