"""Compare two reports (exposure-report dicts, /2 or /1) target by target, port by port.

Only facts that mean a change of exposure are compared: port states, what answers on a port,
findings (id, port, severity), TLS grade, protocols and certificate. Evidence text, banners,
timings and free-form details are not: they vary between two scans of an unchanged host and
would make every diff noisy. Targets are matched by address; one change seen on several
addresses of the same target (IPv4 and IPv6 of one name) is reported once.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from scanner.core.diff import BaselineViolation, Change, ChangeKind, ReportDiff, ScanRef
from scanner.core.findings import Severity
from scanner.core.legacy import errors_of
from scanner.core.text import safe_text
from scanner.diff import tls_facts
from scanner.diff.baseline import Baseline

Report = Mapping[str, Any]
SKIPPED_FINDINGS = frozenset({"port.unexpected"})  # derived from ports: compared as ports
TEXT_LIMIT = 120


@dataclass(frozen=True)
class Side:
    """One report and, when known, the ports it probed (None: unknown, assume the same)."""

    report: Report
    probed: Collection[int] | None = None
    seq: int | None = None

    @property
    def ref(self) -> ScanRef:
        scan = self.report.get("scan", {})
        return ScanRef(str(scan.get("id", "")), str(scan.get("started_at", "")), self.seq)

    @property
    def time(self) -> str | None:
        scan = self.report.get("scan", {})
        return scan.get("finished_at") or scan.get("started_at")

    @property
    def complete(self) -> bool:
        return bool(self.report.get("scan", {}).get("complete", True))

    def targets(self, only: str | None) -> dict[str, Mapping[str, Any]]:
        found = {}
        for target in self.report.get("targets", []):
            if only is None or only in (target.get("input"), target.get("address")):
                found[str(target.get("address"))] = target
        return found

    def was_probed(self, port: int) -> bool:
        return self.probed is None or port in self.probed

    def checks_failed_on(self, address: str, port: int | None) -> bool:
        """A check crashed or timed out on this port: its findings may be missing."""
        return any(
            error.stage in ("check", "port") and error.address == address
            and (port is None or error.port == port)
            for error in errors_of(self.report.get("scan", {}))
        )


def diff_reports(
    before: Side | None,
    after: Side,
    *,
    baseline: Baseline | None = None,
    only_target: str | None = None,
) -> ReportDiff:
    """What changed from `before` to `after` (before None: nothing was known)."""
    empty = Side({"scan": {}, "targets": []})
    earlier = before or empty
    changes: list[Change] = []
    violations: list[BaselineViolation] = []
    notes: list[str] = []
    old_targets, new_targets = earlier.targets(only_target), after.targets(only_target)
    for address, new in new_targets.items():
        old = old_targets.get(address)
        if old is None and before is not None:
            changes.append(_target_added(new))
        pair = _TargetPair(old or {}, new, earlier, after, baseline)
        changes += pair.changes()
        violations += pair.still_unexpected()
        notes += pair.notes
    for address, old in old_targets.items():
        if address in new_targets:
            continue
        if after.complete:
            changes.append(_target_removed(old))
        else:
            notes.append(f"{address} was not scanned successfully this time: not compared")
    if before is not None and earlier.probed is not None and after.probed is not None and (
        set(earlier.probed) != set(after.probed)
    ):
        notes.append("the two scans probed different port lists: only ports probed by both "
                     "are compared")
    return ReportDiff(
        before=before.ref if before else None,
        after=after.ref,
        changes=tuple(merge_addresses(changes)),
        still_unexpected=tuple(violations),
        baseline=baseline.source if baseline else None,
        notes=tuple(dict.fromkeys(notes)),
    )


def merge_addresses(changes: Iterable[Change]) -> list[Change]:
    """One change per identity, with every address it was seen on, in first-seen order."""
    merged: dict[str, Change] = {}
    for change in changes:
        seen = merged.get(change.identity)
        if seen is None:
            merged[change.identity] = change
        else:
            addresses = tuple(dict.fromkeys([*seen.addresses, *change.addresses]))
            merged[change.identity] = _with_addresses(seen, addresses)
    return list(merged.values())


def _with_addresses(change: Change, addresses: tuple[str, ...]) -> Change:
    return replace(change, addresses=addresses)


def _target_added(target: Mapping[str, Any]) -> Change:
    address = str(target.get("address"))
    return Change(ChangeKind.TARGET_ADDED, Severity.INFO, _input(target), (address,),
                  f"{address} is scanned for the first time (the name now resolves to it)")


def _target_removed(target: Mapping[str, Any]) -> Change:
    address = str(target.get("address"))
    return Change(ChangeKind.TARGET_REMOVED, Severity.INFO, _input(target), (address,),
                  f"{address} was not part of this scan (the name no longer resolves to it)")


def _input(target: Mapping[str, Any]) -> str:
    return safe_text(str(target.get("input") or target.get("address")), TEXT_LIMIT)


class _TargetPair:
    """The same address in the earlier and the later scan."""

    def __init__(self, old: Mapping[str, Any], new: Mapping[str, Any], earlier: Side,
                 later: Side, baseline: Baseline | None) -> None:
        self.old, self.new = old, new
        self.earlier, self.later = earlier, later
        self.baseline = baseline
        self.target = _input(new)
        self.address = str(new.get("address"))
        self.old_ports = _open_ports(old)
        self.new_ports = _open_ports(new)
        self.notes: list[str] = []

    def changes(self) -> list[Change]:
        return [*self._port_changes(), *self._finding_changes(), *self._tls_changes()]

    def still_unexpected(self) -> list[BaselineViolation]:
        if self.baseline is None:
            return []
        return [
            BaselineViolation(self.target, self.address, port, protocol)
            for (port, protocol) in sorted(self.new_ports)
            if (port, protocol) in self.old_ports and not self._expected(port, protocol)
        ]

    def _expected(self, port: int, protocol: str) -> bool:
        assert self.baseline is not None
        return self.baseline.is_expected(str(self.new.get("input")), self.address, port, protocol)

    def _change(self, kind: ChangeKind, severity: Severity, summary: str, **fields: Any) -> Change:
        return Change(kind, severity, self.target, (self.address,), summary, **fields)

    # --- ports ---------------------------------------------------------------------------

    def _port_changes(self) -> list[Change]:
        changes = []
        for key in sorted(self.new_ports.keys() - self.old_ports.keys()):
            if self.earlier.report.get("targets") and not self.earlier.was_probed(key[0]):
                self.notes.append(f"port {key[0]} was not probed by the earlier scan")
                continue
            changes.append(self._opened(key, self.new_ports[key]))
        for key in sorted(self.old_ports.keys() - self.new_ports.keys()):
            if not self.later.was_probed(key[0]):
                self.notes.append(f"port {key[0]} was not probed by the later scan")
                continue
            changes.append(self._closed(key))
        for key in sorted(self.old_ports.keys() & self.new_ports.keys()):
            before, after = _service(self.old_ports[key]), _service(self.new_ports[key])
            if before != after:
                changes.append(self._change(
                    ChangeKind.SERVICE_CHANGED, Severity.LOW,
                    f"port {_where(key)}: {_describe(before)} -> {_describe(after)}",
                    port=key[0], protocol=key[1], before=before, after=after))
        return changes

    def _opened(self, key: tuple[int, str], port: Mapping[str, Any]) -> Change:
        service = _service(port)
        unexpected = self.baseline is not None and not self._expected(*key)
        kind = ChangeKind.PORT_UNEXPECTED if unexpected else ChangeKind.PORT_OPENED
        suffix = f", not in the baseline {self.baseline.source}" if unexpected and self.baseline \
            else ""
        return self._change(
            kind, Severity.HIGH, f"port {_where(key)} opened ({_describe(service)}){suffix}",
            port=key[0], protocol=key[1], before=None, after=service)

    def _closed(self, key: tuple[int, str]) -> Change:
        state = _state(self.new, key)
        summary = f"port {_where(key)} is no longer open ({state})"
        return self._change(ChangeKind.PORT_CLOSED, Severity.INFO, summary,
                            port=key[0], protocol=key[1], before="open", after=state)

    # --- findings ------------------------------------------------------------------------

    def _finding_changes(self) -> list[Change]:
        old, new = _findings(self.old), _findings(self.new)
        changes = []
        for key in sorted(new.keys() - old.keys(), key=_finding_order):
            finding = new[key]
            changes.append(self._finding_change(
                ChangeKind.FINDING_NEW, _severity(finding), key,
                f"new finding {key[0]} ({_severity(finding)}){_on(key)}: "
                f"{safe_text(str(finding.get('title', '')), TEXT_LIMIT)}",
                None, str(_severity(finding))))
        for key in sorted(old.keys() - new.keys(), key=_finding_order):
            if key[1] is not None and not self.later.was_probed(key[1]):
                continue
            if self.later.checks_failed_on(self.address, key[1]):
                self.notes.append(f"a check failed on port {key[1]} in the later scan: "
                                  f"{key[0]} is not reported as resolved")
                continue
            finding = old[key]
            changes.append(self._finding_change(
                ChangeKind.FINDING_RESOLVED, Severity.INFO, key,
                f"resolved: {key[0]}{_on(key)} "
                f"({safe_text(str(finding.get('title', '')), TEXT_LIMIT)})",
                str(_severity(finding)), None))
        for key in sorted(old.keys() & new.keys(), key=_finding_order):
            before, after = _severity(old[key]), _severity(new[key])
            if before != after:
                worse = after.rank > before.rank
                changes.append(self._finding_change(
                    ChangeKind.FINDING_SEVERITY, after if worse else Severity.INFO, key,
                    f"{key[0]}{_on(key)}: severity {before} -> {after}",
                    str(before), str(after)))
        return changes

    def _finding_change(self, kind: ChangeKind, severity: Severity, key: _FindingKey,
                        summary: str, before: Any, after: Any) -> Change:
        return self._change(kind, severity, summary, port=key[1], protocol=key[2],
                            subject=key[0], before=before, after=after)

    # --- TLS -----------------------------------------------------------------------------

    def _tls_changes(self) -> list[Change]:
        changes: list[Change] = []
        for key in sorted(self.old_ports.keys() & self.new_ports.keys()):
            old_details = self.old_ports[key].get("details")
            new_details = self.new_ports[key].get("details")
            changes += self._grade_change(key, old_details, new_details)
            changes += self._protocol_change(key, old_details, new_details)
            changes += self._certificate_changes(key, old_details, new_details)
        for key in sorted(self.new_ports.keys() - self.old_ports.keys()):
            changes += self._certificate_changes(key, None, self.new_ports[key].get("details"))
        return changes

    def _grade_change(self, key: tuple[int, str], old: Any, new: Any) -> list[Change]:
        before, after = tls_facts.grade(old), tls_facts.grade(new)
        if before is None or after is None or before == after:
            return []
        old_grade, new_grade = tls_facts.full_grade(old), tls_facts.full_grade(new)
        old_rank = old_grade.rank if old_grade else tls_facts.grade_rank(before)
        new_rank = new_grade.rank if new_grade else tls_facts.grade_rank(after)
        worse = new_rank > old_rank
        severity = (Severity.HIGH if new_rank >= tls_facts.grade_rank("F")
                    else Severity.MEDIUM) if worse else Severity.INFO
        return [self._change(
            ChangeKind.TLS_GRADE, severity,
            f"TLS grade on port {_where(key)}: {safe_text(before, 8)} -> {safe_text(after, 8)}",
            port=key[0], protocol=key[1], before=before, after=after)]

    def _protocol_change(self, key: tuple[int, str], old: Any, new: Any) -> list[Change]:
        before, after = tls_facts.protocols(old), tls_facts.protocols(new)
        if before is None or after is None or before[1] != after[1] or before[0] == after[0]:
            return []
        label = "TLS protocols" if after[1] == "accepted" else "best TLS version negotiated"
        text = f"{label} on port {_where(key)}: {_join(before[0])} -> {_join(after[0])}"
        return [self._change(ChangeKind.TLS_PROTOCOLS, Severity.LOW, text, port=key[0],
                             protocol=key[1], before=list(before[0]), after=list(after[0]))]

    def _certificate_changes(self, key: tuple[int, str], old: Any, new: Any) -> list[Change]:
        old_cert, new_cert = tls_facts.certificate(old), tls_facts.certificate(new)
        if new_cert is None:
            return []
        changes = []
        replaced = old_cert is not None and (
            tls_facts.certificate_identity(old_cert) != tls_facts.certificate_identity(new_cert)
        )
        if replaced:
            assert old_cert is not None
            before = tls_facts.certificate_summary(old_cert)
            after = tls_facts.certificate_summary(new_cert)
            changes.append(self._change(
                ChangeKind.TLS_CERTIFICATE, Severity.LOW,
                f"certificate on port {_where(key)} replaced: {_cert_text(before)} -> "
                f"{_cert_text(after)}",
                port=key[0], protocol=key[1], before=before, after=after))
        days = tls_facts.days_left(new_cert, self.later.time)
        bucket = tls_facts.expiry_bucket(days)
        old_days = None if (old_cert is None or replaced) else tls_facts.days_left(
            old_cert, self.earlier.time)
        old_bucket = tls_facts.expiry_bucket(old_days)
        if bucket is not None and (old_bucket is None or bucket < old_bucket):
            assert days is not None
            changes.append(self._change(
                ChangeKind.TLS_EXPIRY, Severity.HIGH if days <= 7 else Severity.MEDIUM,
                f"certificate on port {_where(key)} "
                + (f"expires in {days} day(s)" if days >= 0 else f"expired {-days} day(s) ago")
                + f" ({safe_text(str(new_cert.not_after or '?'), 40)})",
                port=key[0], protocol=key[1], before=old_days, after=days))
        return changes


_FindingKey = tuple[str, int | None, str]


def _finding_order(key: _FindingKey) -> tuple[int, str, str]:
    return (key[1] or 0, key[2], key[0])


def _open_ports(target: Mapping[str, Any]) -> dict[tuple[int, str], Mapping[str, Any]]:
    ports = {}
    for port in target.get("ports", []):
        if port.get("state") == "open" and isinstance(port.get("port"), int):
            ports[(port["port"], str(port.get("protocol", "tcp")))] = port
    return ports


def _state(target: Mapping[str, Any], key: tuple[int, str]) -> str:
    for port in target.get("ports", []):
        if (port.get("port"), port.get("protocol", "tcp")) == key:
            return str(port.get("state"))
    return "filtered"


def _findings(target: Mapping[str, Any]) -> dict[_FindingKey, Mapping[str, Any]]:
    """Findings by (id, port, protocol); several with one key keep the worst severity."""
    found: dict[_FindingKey, Mapping[str, Any]] = {}
    for finding in target.get("findings", []):
        finding_id = str(finding.get("id", ""))
        if finding_id in SKIPPED_FINDINGS:
            continue
        port = finding.get("port") if isinstance(finding.get("port"), int) else None
        key = (finding_id, port, str(finding.get("protocol", "tcp")))
        if key not in found or _severity(finding).rank > _severity(found[key]).rank:
            found[key] = finding
    return found


def _severity(finding: Mapping[str, Any]) -> Severity:
    try:
        return Severity(str(finding.get("severity")))
    except ValueError:
        return Severity.INFO


def _service(port: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "service": _text(port.get("service")),
        "product": _text(port.get("product")),
        "version": _text(port.get("version")),
        "tls": bool(port.get("tls")),
    }


def _text(value: Any) -> str | None:
    return safe_text(str(value), TEXT_LIMIT) if value not in (None, "") else None


def _describe(service: Mapping[str, Any]) -> str:
    words = [service.get("product") or service.get("service") or "unidentified",
             service.get("version") or ""]
    text = " ".join(word for word in words if word)
    if service.get("product") and service.get("service"):
        text = f"{service['service']}, {text}"
    return text + (" over TLS" if service.get("tls") else "")


def _where(key: tuple[int, str]) -> str:
    return f"{key[0]}/{key[1]}"


def _on(key: _FindingKey) -> str:
    return f" on port {key[1]}/{key[2]}" if key[1] is not None else ""


def _join(items: Iterable[str]) -> str:
    return ", ".join(safe_text(item, 20) for item in items) or "none"


def _cert_text(summary: Mapping[str, Any]) -> str:
    name = summary.get("subject_cn") or summary.get("subject") or "?"
    issuer = summary.get("issuer_cn") or summary.get("issuer") or "?"
    until = str(summary.get("not_after") or "?")[:10]
    return f"{safe_text(str(name), 60)} (issuer {safe_text(str(issuer), 60)}, until {until})"
