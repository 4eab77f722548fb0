"""What a notifier is, and what it is given: one Alert per change, and each target's state.

A notifier sends every alert on its own (one message per change: an automation or a phone can
react to exactly one thing). It may also keep a current state per target (MQTT sensors in Home
Assistant); the others ignore update_states().
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from scanner import __version__
from scanner.diff.model import Change, ReportDiff, ScanRef
from scanner.diff.render import change_line
from scanner.findings import Severity

log = logging.getLogger(__name__)

ALERT_SCHEMA = "exposure-alert/1"
TITLE_LIMIT = 200
SEND_ATTEMPTS = 3


class AlertError(RuntimeError):
    """A notifier could not deliver; the message says where and why (never a secret)."""


@dataclass(frozen=True)
class Alert:
    change: Change
    scan: ScanRef

    @property
    def severity(self) -> Severity:
        return self.change.severity

    @property
    def title(self) -> str:
        title = f"exposure: {self.change.target}: {self.change.summary}"
        return title if len(title) <= TITLE_LIMIT else title[: TITLE_LIMIT - 1] + "…"

    @property
    def message(self) -> str:
        return change_line(self.change)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": ALERT_SCHEMA,
            "tool": {"name": "exposure", "version": __version__},
            "title": self.title,
            "message": self.message,
            "severity": str(self.severity),
            "change": self.change.to_dict(),
            "scan": self.scan.to_dict(),
        }


@dataclass(frozen=True)
class TargetState:
    """A target's exposure now: what the Home Assistant sensors show."""

    target: str
    open_ports: tuple[str, ...]  # "443/tcp", distinct over the target's addresses
    worst_severity: str  # a Severity, or "none"
    tls_grade: str  # the worst grade of its TLS endpoints, or "none"
    scan_id: str
    scanned_at: str
    addresses: tuple[str, ...] = ()
    open_count: int | None = None  # summary.open_ports; None: len(open_ports)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "open_ports": len(self.open_ports) if self.open_count is None else self.open_count,
            "ports": list(self.open_ports),
            "worst_severity": self.worst_severity,
            "tls_grade": self.tls_grade,
            "addresses": list(self.addresses),
            "scan_id": self.scan_id,
            "scanned_at": self.scanned_at,
        }


class Notifier(Protocol):
    name: str

    def send(self, alert: Alert) -> None:
        """Deliver one alert or raise AlertError."""

    def update_states(self, states: Sequence[TargetState]) -> None:
        """Publish each target's current state (no-op where there is no state)."""


class StatelessNotifier:
    """Base for notifiers that only send alerts."""

    name = "notifier"

    def send(self, alert: Alert) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def update_states(self, states: Sequence[TargetState]) -> None:
        return None


def alerts_for(diff: ReportDiff, minimum: Severity = Severity.INFO) -> list[Alert]:
    """One alert per change at or above `minimum`, worst first."""
    chosen = [change for change in diff.changes if change.severity.rank >= minimum.rank]
    chosen.sort(key=lambda change: -change.severity.rank)
    return [Alert(change, diff.after) for change in chosen]


def states_for(report: Mapping[str, Any]) -> list[TargetState]:
    """One state per target input (its addresses merged), from a report dict."""
    scan = report.get("scan", {})
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for target in report.get("targets", []):
        grouped.setdefault(str(target.get("input") or target.get("address")), []).append(target)
    return [_state(name, targets, scan) for name, targets in grouped.items()]


def _state(name: str, targets: list[Mapping[str, Any]], scan: Mapping[str, Any]) -> TargetState:
    """Open ports, worst severity and TLS grade as every report counts them (one definition:
    scanner.report.summary), so the sensors in Home Assistant match the report."""
    from scanner.report.summary import summarize
    from scanner.store.codec import report_from_dict

    summary = summarize(report_from_dict({"scan": dict(scan), "targets": list(targets)}))
    labels = [service.label for service in summary.services]
    return TargetState(
        target=name,
        open_ports=tuple(dict.fromkeys(labels)),
        worst_severity=str(summary.worst) if summary.worst else "none",
        tls_grade=summary.worst_grade.display if summary.worst_grade else "none",
        scan_id=str(scan.get("id", "")),
        scanned_at=str(scan.get("finished_at") or scan.get("started_at") or ""),
        addresses=tuple(str(target.get("address")) for target in targets),
        open_count=summary.open_ports,
    )


@dataclass
class Delivery:
    """What happened to each notifier's messages in one round."""

    sent: dict[str, int] = field(default_factory=dict)
    failed: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


def deliver(
    notifiers: Iterable[Notifier],
    alerts: Sequence[Alert],
    states: Sequence[TargetState] = (),
    *,
    attempts: int = SEND_ATTEMPTS,
    backoff_s: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Delivery:
    """Send every alert through every notifier, retrying a few times; never raises.

    A notifier that stays down does not stop the others, nor the watch loop (it logs).
    """
    result = Delivery()
    for notifier in notifiers:
        result.sent.setdefault(notifier.name, 0)
        for alert in alerts:
            error = _try(lambda n=notifier, a=alert: n.send(a), attempts, backoff_s, sleep)
            if error is None:
                result.sent[notifier.name] += 1
            else:
                log.warning("%s: alert not delivered: %s", notifier.name, error)
                result.failed.setdefault(notifier.name, []).append(error)
        if states:
            error = _try(lambda n=notifier: n.update_states(states), attempts, backoff_s, sleep)
            if error is not None:
                log.warning("%s: state not published: %s", notifier.name, error)
                result.failed.setdefault(notifier.name, []).append(error)
    return result


def _try(
    action: Callable[[], None], attempts: int, backoff_s: float, sleep: Callable[[float], None]
) -> str | None:
    error = "not attempted"
    for attempt in range(max(1, attempts)):
        try:
            action()
            return None
        except AlertError as problem:
            error = str(problem)
        except Exception as problem:  # a notifier's bug must not end the watch
            error = f"{type(problem).__name__}: {problem}"
        if attempt + 1 < attempts:
            sleep(backoff_s * (2**attempt))
    return error
