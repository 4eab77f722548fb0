"""Alerts about what already exists: the first scan's open findings, reminders, resolved once.

The watcher runs real scans of a real mosquitto on loopback, which accepts anonymous clients
(mqtt.anonymous, high); the clock is the only thing the test moves.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from scanner.alerts import AlertReason, states_for
from scanner.alerts.http import WebhookNotifier
from scanner.api import ScanOptions, scan
from scanner.core.diff import ScanRef
from scanner.core.findings import Severity
from scanner.discovery import DiscoveryOptions
from scanner.monitor import Watcher, WatchOptions
from scanner.monitor.reminders import ReminderPolicy, finding_addresses, plan
from scanner.store import FindingAlert, Store
from tests.lab.daemons import Daemon, pick_free_port, start_mosquitto
from tests.lab.support_monitor import HttpReceiver

DAY = dt.timedelta(days=1)
START = dt.datetime(2026, 11, 23, 8, 0, tzinfo=dt.UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Daemon]:
    daemon = start_mosquitto(None, pick_free_port(), workdir=tmp_path / "mosquitto")
    try:
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    http = HttpReceiver().start()
    try:
        yield http
    finally:
        http.stop()


def watcher(tmp_path: Path, receiver: HttpReceiver, port: int, clock: Clock,
            **options: object) -> Watcher:
    watch = WatchOptions(inputs=("127.0.0.1",), every_s=6 * 3600, jitter=0,
                         db=tmp_path / "h.db", **options)  # type: ignore[arg-type]
    scanning = ScanOptions(ports=(port,), engine="connect",
                           discovery=DiscoveryOptions(timeout=0.5, retries=0))
    return Watcher(watch, scanning, [WebhookNotifier(f"{receiver.url}/hook")], scan, clock=clock)


def sent(receiver: HttpReceiver) -> list[tuple[str, str, str]]:
    """(reason, kind, finding) of every alert received so far; then forget them."""
    received = [(r["json"]["reason"], r["json"]["change"]["kind"], r["json"]["change"]["subject"])
                for r in receiver.on("/hook")]
    receiver.requests.clear()
    return received


def test_first_scan_alerts_what_is_open_then_reminds_daily_then_resolves_once(
    tmp_path: Path, receiver: HttpReceiver, broker: Daemon
) -> None:
    clock = Clock()
    watch = watcher(tmp_path, receiver, broker.port, clock, min_severity=Severity.HIGH)
    first = watch.iteration(1)
    assert first.report and first.report["targets"][0]["findings"]
    assert sent(receiver) == [("first_scan", "finding.new", "mqtt.anonymous")]
    clock.now += dt.timedelta(hours=6)
    watch.iteration(2)
    assert sent(receiver) == []  # said once; not yet a day
    clock.now += dt.timedelta(hours=18)
    watch.iteration(3)
    assert sent(receiver) == [("reminder", "finding.still_open", "mqtt.anonymous")]
    clock.now += dt.timedelta(hours=6)
    # A restarted watch (cron's --once does this every time) keeps the reminder schedule.
    restarted = watcher(tmp_path, receiver, broker.port, clock, min_severity=Severity.HIGH)
    restarted.iteration(1)
    assert sent(receiver) == []
    with Store.open(tmp_path / "h.db") as store:
        (kept,) = store.finding_alerts(["127.0.0.1"])
    assert kept.key[0] == "mqtt.anonymous" and kept.first_seen_at.startswith("2026-11-23T08")
    assert kept.last_alerted_at == (START + DAY).isoformat()
    broker.stop()  # the user fixed it: nothing listens there any more
    clock.now += dt.timedelta(hours=6)
    restarted.iteration(2)
    # resolved is announced although only high and critical alerts are wanted: it was high
    assert ("change", "finding.resolved", "mqtt.anonymous") in sent(receiver)
    clock.now += 2 * DAY
    restarted.iteration(3)
    assert sent(receiver) == []  # once; and no reminder of what is gone
    with Store.open(tmp_path / "h.db") as store:
        assert store.finding_alerts(["127.0.0.1"]) == []


def test_first_scan_alerts_can_be_turned_off_and_follow_the_minimum(
    tmp_path: Path, receiver: HttpReceiver, broker: Daemon
) -> None:
    clock = Clock()
    watcher(tmp_path / "off", receiver, broker.port, clock, alert_existing=False).iteration(1)
    assert sent(receiver) == []
    watcher(tmp_path / "crit", receiver, broker.port, clock,
            min_severity=Severity.CRITICAL).iteration(1)
    assert sent(receiver) == []  # high is below the minimum
    never = watcher(tmp_path / "never", receiver, broker.port, clock, alert_existing=False,
                    remind_s=None)
    never.iteration(1)
    clock.now += 3 * DAY
    never.iteration(2)
    assert sent(receiver) == []  # --remind never


# --- the pure logic ---------------------------------------------------------------------------

REPORT = {
    "scan": {"id": "s1", "finished_at": "2026-11-23T08:00:05+00:00"},
    "targets": [
        {"input": "home.example", "address": "198.51.100.7", "ports": [],
         "findings": [{"id": "ha.onboarding_open", "severity": "critical", "port": 8123},
                      {"id": "tls.no_hsts", "severity": "low", "port": 443}]},
        {"input": "home.example", "address": "2001:db8::7", "ports": [],
         "findings": [{"id": "ha.onboarding_open", "severity": "critical", "port": 8123}]},
    ],
}
SCAN = ScanRef("s1", "2026-11-23T08:00:00+00:00")


def test_plan_says_each_open_finding_once_with_all_its_addresses() -> None:
    outcome = plan(states_for(REPORT), finding_addresses(REPORT), [], [], first_scan=True,
                   policy=ReminderPolicy(alert_minimum=Severity.MEDIUM), scan=SCAN, now=START)
    (alert,) = outcome.alerts
    assert alert.reason is AlertReason.FIRST_SCAN and alert.severity is Severity.CRITICAL
    assert alert.change.addresses == ("198.51.100.7", "2001:db8::7")
    assert alert.title.startswith("exposure: home.example: open finding ha.onboarding_open")
    assert {item.key[0] for item in outcome.memory} == {"ha.onboarding_open", "tls.no_hsts"}
    told = {item.key[0]: item.last_alerted_at for item in outcome.memory}
    assert told == {"ha.onboarding_open": START.isoformat(), "tls.no_hsts": None}


def test_plan_reminds_from_first_seen_when_never_alerted_and_forgets_what_is_gone() -> None:
    seen = FindingAlert("home.example", ("ha.onboarding_open", 8123, "tcp"), "critical",
                        (START - DAY).isoformat(), None)
    gone = FindingAlert("home.example", ("ssh.password_auth", 22, "tcp"), "medium",
                        (START - DAY).isoformat(), None)
    outcome = plan(states_for(REPORT), finding_addresses(REPORT), [seen, gone], [],
                   first_scan=False, policy=ReminderPolicy(alert_minimum=Severity.CRITICAL),
                   scan=SCAN, now=START)
    (alert,) = outcome.alerts
    assert alert.reason is AlertReason.REMINDER and alert.since == seen.first_seen_at
    assert "still open since 2026-11-22" in alert.title
    assert "ssh.password_auth" not in {item.key[0] for item in outcome.memory}
