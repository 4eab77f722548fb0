"""The streaming pipeline: discovery -> identification -> checks, every address at once.

One event loop drives it:

- discovery runs in a thread over every address in one pass (discovery.discover_hosts) and
  calls back the moment a port is found open; UDP probing runs alongside in threads;
- each open port becomes a task at once: it waits for one of its host's turns (at most
  `host_connections` ports of one address are worked on at a time), then gets its deadline
  (Limits.port_deadline_s) for everything done to it: identification (a coroutine), the nmap
  -sV fallback when our probes could not name it (a process killed at the deadline), and the
  checks (in a thread, through the same budget);
- a host found to answer every port (canaries) has its started work cancelled and dropped;
- when discovery has ended and every task of an address is done, the address's report is
  assembled and handed to the observer (the history store writes it then).

Every packet and connection of all of it takes from the one ScanBudget.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import threading
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from scanner.checks.runner import PortChecks, check_port, merge_details
from scanner.core.findings import Finding, FindingSpec, Severity
from scanner.core.report import PortReport, ScanReport, TargetReport
from scanner.discovery import DiscoveryEngine, HostDiscovery, PortState, discover_hosts
from scanner.discovery.udp import UdpOptions, probe_udp, udp_findings
from scanner.identification import PortResult, ServiceIdentity, merge_nmap, with_note
from scanner.identification.engine import PortProbe
from scanner.identification.nmap_fallback import NmapOutcome, nmap_identify_port
from scanner.net import Dialer, ScanBudget
from scanner.targets import IPAddress, Target

if TYPE_CHECKING:
    from scanner.api import ScanOptions

log = logging.getLogger(__name__)

IDENTIFICATION_SHARE = 0.6  # of a port's deadline; the nmap fallback and checks get the rest
CHECK_THREADS = 64  # threads running checks at once (each bounded by its port's deadline)
T = TypeVar("T")

# (target or None for the whole scan, stage, done, total). Stages: "discovery" (probes, whole
# scan), "open" (ports found open so far on that address, total 0), "identification" and
# "checks" (ports done of those found so far: the total grows as discovery goes on), "udp".
ScanProgress = Callable[[Target | None, str, int, int], None]


class ScanObserver(Protocol):
    """Told of results as they arrive, so a caller can keep them before the scan ends (the CLI
    writes them to the history: a killed scan keeps every address it finished).

    Called from the thread that called scan() (the pipeline's event loop runs there), in
    this order: scan_started once, then per address ports_found (one or more times) and
    target_done (once, unless the address failed).
    """

    def scan_started(self, report: ScanReport, targets: Sequence[Target]) -> None:
        """Before the first probe. `report` is the one scan() fills and returns: its header
        (id, started_at, engine) is final, its targets and errors grow. `targets`: every
        address the scan covers, skipped ones included."""

    def ports_found(self, target: TargetReport) -> None:
        """Port states of one address, before identification and checks; may come again as
        more is learnt (the TargetReport so far, not final)."""

    def target_done(self, target: TargetReport) -> None:
        """One address is finished: this TargetReport is final."""


ANSWERS_ALL_PORTS = FindingSpec(
    id="discovery.answers_all_ports",
    severity=Severity.INFO,
    title="The host accepts connections on every port",
)
FINDINGS: tuple[FindingSpec, ...] = (ANSWERS_ALL_PORTS,)  # part of scanner.core.catalogue


@dataclass
class _PortOutcome:
    result: PortResult | None = None
    checks: PortChecks | None = None
    errors: list[str] = field(default_factory=list)


@dataclass
class _Host:
    """One address under way."""

    target: Target
    turns: asyncio.Semaphore
    tasks: dict[int, asyncio.Task[_PortOutcome]] = field(default_factory=dict)
    discovery: HostDiscovery | None = None
    answers_all: bool = False
    udp: asyncio.Future[Any] | None = None
    identified: int = 0
    checked: int = 0


class Pipeline:
    def __init__(
        self,
        targets: list[Target],
        options: ScanOptions,
        engine: DiscoveryEngine,
        budget: ScanBudget,
        report: ScanReport,
        progress: ScanProgress | None = None,
        observer: ScanObserver | None = None,
    ) -> None:
        self._targets = targets
        self._options = options
        self._engine = engine
        self._budget = budget
        self._report = report
        self._progress = progress
        self._observer = observer
        self._hosts: dict[IPAddress, _Host] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._checks: concurrent.futures.ThreadPoolExecutor | None = None
        self._progress_lock = threading.Lock()

    def run(self) -> None:
        """Run to the end (in a thread of its own when the caller is inside an event loop)."""
        _run(self._run())

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        turns = self._budget.limits.host_connections
        self._hosts = {
            target.address: _Host(target, asyncio.Semaphore(turns)) for target in self._targets
        }
        self._checks = concurrent.futures.ThreadPoolExecutor(
            CHECK_THREADS, thread_name_prefix="checks"
        )
        try:
            if self._options.udp:
                for host in self._hosts.values():
                    host.udp = self._loop.run_in_executor(None, self._probe_udp, host.target)
            found = await self._discover()
            await self._finish(found)
        finally:
            self._checks.shutdown(wait=True, cancel_futures=True)

    # --- discovery --------------------------------------------------------------------------

    async def _discover(self) -> dict[IPAddress, HostDiscovery] | None:
        assert self._loop is not None
        loop = self._loop
        addresses = list(self._hosts)

        def found_open(address: IPAddress, port: int) -> None:
            loop.call_soon_threadsafe(self._port_found, address, port)

        def answers_all(address: IPAddress) -> None:
            loop.call_soon_threadsafe(self._drop_host, address)

        def progress(done: int, total: int) -> None:
            self._tell(None, "discovery", done, total)

        try:
            return await loop.run_in_executor(None, lambda: discover_hosts(
                addresses, self._options.ports, self._engine, self._options.discovery,
                budget=self._budget, on_open=found_open, on_answers_all=answers_all,
                progress=progress,
            ))
        except OSError as error:
            self._report.complete = False
            self._report.errors.append(f"discovery failed: {error}")
            return None

    def _port_found(self, address: IPAddress, port: int) -> None:
        host = self._hosts.get(address)
        if host is None or host.answers_all or port in host.tasks or not self._options.identify:
            return
        host.tasks[port] = asyncio.ensure_future(self._work_on(host, port))
        self._tell(host.target, "open", len(host.tasks), 0)

    def _drop_host(self, address: IPAddress) -> None:
        """Canaries say this host answers every port: stop what was started on it."""
        host = self._hosts[address]
        host.answers_all = True
        for task in host.tasks.values():
            task.cancel()

    # --- one port ---------------------------------------------------------------------------

    async def _work_on(self, host: _Host, port: int) -> _PortOutcome:
        outcome = _PortOutcome()
        async with host.turns:
            dialer = Dialer.for_port(self._budget)
            share = self._budget.limits.port_deadline_s * IDENTIFICATION_SHARE
            identify_options = dataclasses.replace(
                self._options.identification, sni=host.target.hostname
            )
            probe = PortProbe(dialer.within(share), host.target.address, port, identify_options)
            outcome.result = await probe.run()
            host.identified += 1
            self._tell(host.target, "identification", host.identified, len(host.tasks))
            # A port our probes could not name: nmap -sV runs alongside the checks (whose
            # guesses name Redis, memcached... in milliseconds); it is only waited for when
            # the checks did not find what runs there.
            nmap = None
            if outcome.result.identity.service is None and identify_options.nmap_fallback:
                nmap = asyncio.ensure_future(nmap_identify_port(
                    host.target.address, port, dialer.deadline, self._budget))
            if self._options.run_checks:
                outcome.checks = await self._run_checks(host, port, outcome.result, dialer)
            if nmap is not None:
                await self._after_nmap(host, port, outcome, nmap, dialer)
            host.checked += 1
            self._tell(host.target, "checks", host.checked, len(host.tasks))
        return outcome

    async def _after_nmap(
        self, host: _Host, port: int, outcome: _PortOutcome,
        nmap: asyncio.Future[NmapOutcome], dialer: Dialer,
    ) -> None:
        assert outcome.result is not None
        if outcome.checks is not None and _product_confirmed(outcome.checks):
            nmap.cancel()
            await asyncio.gather(nmap, return_exceptions=True)
            return
        ran = await nmap
        if ran.note is not None:
            outcome.result = with_note(outcome.result, ran.note)
        found = ran.service
        if found is None:
            return
        outcome.result = merge_nmap(outcome.result, found)
        if self._options.run_checks and found.service:  # now named: the checks that apply
            outcome.checks = await self._run_checks(host, port, outcome.result, dialer)

    async def _run_checks(
        self, host: _Host, port: int, result: PortResult, dialer: Dialer
    ) -> PortChecks:
        return await self._in_check_thread(
            check_port, host.target, port, result.identity, self._options.checks, dialer
        )

    async def _in_check_thread(self, function: Callable[..., T], *args: Any) -> T:
        assert self._loop is not None
        return await self._loop.run_in_executor(self._checks, function, *args)

    # --- the end ----------------------------------------------------------------------------

    async def _finish(self, found: dict[IPAddress, HostDiscovery] | None) -> None:
        if found is None:
            for host in self._hosts.values():
                await _settle([*host.tasks.values()])
            return
        for address, discovery in found.items():
            host = self._hosts[address]
            host.discovery = discovery
            if discovery.answers_all_ports:
                self._drop_host(address)
            else:  # what was held back or not streamed (the nmap engine reports at the end)
                for port in discovery.ports_in(PortState.OPEN):
                    self._port_found(address, port)
        await asyncio.gather(*(self._complete(host) for host in self._hosts.values()))

    async def _complete(self, host: _Host) -> None:
        assert host.discovery is not None
        target_report = _target_report(host.target, host.discovery)
        self._report.targets.append(target_report)
        if self._observer is not None:
            self._observer.ports_found(target_report)
        outcomes = await _settle(list(host.tasks.values()))
        by_port = {port.port: port for port in target_report.ports}
        for port, outcome in sorted(zip(host.tasks, outcomes, strict=True)):
            if isinstance(outcome, BaseException):
                if not isinstance(outcome, asyncio.CancelledError):
                    self._report.errors.append(
                        f"{host.target.address}: port {port} failed: {outcome!r}"[:300]
                    )
                continue
            _apply_outcome(by_port[port], outcome, target_report, self._report)
        if host.udp is not None:
            self._apply_udp(target_report, await host.udp)
        if self._options.internetdb_url:
            open_ports = [port.port for port in target_report.open_ports]
            await asyncio.to_thread(_compare_with_internetdb, host.target, target_report,
                                    open_ports, self._options.internetdb_url)
        target_report.findings.sort(key=lambda finding: (-finding.severity.rank, finding.port or 0))
        if self._observer is not None:
            self._observer.target_done(target_report)

    # --- UDP ----------------------------------------------------------------------------------

    def _probe_udp(self, target: Target) -> list[Any]:
        self._tell(target, "udp", 0, 1)
        udp_options = UdpOptions(
            timeout=self._options.discovery.timeout,
            retries=self._options.discovery.retries,
            dns_name=self._options.udp_dns_name,
            bucket=self._budget.bucket,
        )
        services = probe_udp(target.address, udp_options)
        self._tell(target, "udp", 1, 1)
        return services

    @staticmethod
    def _apply_udp(target_report: TargetReport, services: list[Any]) -> None:
        for service in services:
            target_report.ports.append(PortReport(**service.to_port_dict()))
        target_report.findings.extend(udp_findings(services))

    def _tell(self, target: Target | None, stage: str, done: int, total: int) -> None:
        if self._progress is None:
            return
        with self._progress_lock:  # called from the loop and from the discovery thread
            self._progress(target, stage, done, total)


def _product_confirmed(checks: PortChecks) -> bool:
    return bool(checks.product or checks.details.get("product"))


async def _settle(tasks: list[asyncio.Task[_PortOutcome]]) -> list[_PortOutcome | BaseException]:
    return list(await asyncio.gather(*tasks, return_exceptions=True))


def _run(coroutine: Coroutine[Any, Any, None]) -> None:
    """asyncio.run, also when the caller is itself inside an event loop (then in a thread)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(coroutine)
        return
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, coroutine).result()


# --- assembling an address's report ----------------------------------------------------------


def _apply_outcome(
    port: PortReport, outcome: _PortOutcome, target_report: TargetReport, report: ScanReport
) -> None:
    if outcome.result is not None:
        _apply_identity(port, outcome.result.identity)
    if outcome.checks is not None:
        _apply_checks(port, outcome.checks, target_report, report)


def _apply_identity(port: PortReport, identity: ServiceIdentity) -> None:
    port.service = identity.service
    port.product = identity.product
    port.version = identity.version
    port.tls = identity.tls
    port.banner = identity.banner
    port.details.update(identity.details)
    if identity.source != "probe":
        port.details["identified_by"] = identity.source


def _apply_checks(
    port: PortReport, outcome: PortChecks, target_report: TargetReport, report: ScanReport
) -> None:
    merge_details(port.details, outcome.details)
    if outcome.product:
        port.product, port.version = outcome.product, outcome.version
    if outcome.service and not port.service:  # a protocol a check's probe found (X11...)
        port.service = outcome.service
    target_report.findings.extend(outcome.findings)
    target_report.notes.extend(f"port {port.port}: {note}" for note in outcome.notes)
    for error in outcome.errors:
        report.errors.append(f"{target_report.address}: {error}")


def _target_report(target: Target, found: HostDiscovery) -> TargetReport:
    result = TargetReport(
        input=target.input,
        address=str(target.address),
        hostname=target.hostname,
        answers_all_ports=found.answers_all_ports,
        notes=list(found.notes),
    )
    for port, state in sorted(found.states.items()):
        if state is PortState.FILTERED:
            result.filtered_count += 1
        else:
            result.ports.append(PortReport(port=port, protocol="tcp", state=str(state)))
    if found.answers_all_ports:
        result.findings.append(_answers_all_ports_finding(found))
    return result


def _answers_all_ports_finding(found: HostDiscovery) -> Finding:
    return ANSWERS_ALL_PORTS.finding(
        port=None,
        evidence=found.notes[0] if found.notes else "random canary ports answered as open",
        remediation=(
            "Something in front of this address (a tarpit, honeypot, or a firewall/CDN "
            "that completes handshakes itself) answers on all ports, so open ports cannot be "
            "told apart from the outside. Scan the device behind it from your LAN "
            "(exposure preflight) or check the router's port-forwarding table."
        ),
    )


def _compare_with_internetdb(
    target: Target, target_report: TargetReport, open_ports: list[int], base_url: str
) -> None:
    """Side by side with Shodan's record. A failure is a note, never a failed scan."""
    from scanner.identification import internetdb  # requests: only paid for with --internetdb

    own_server = base_url.rstrip("/") != internetdb.DEFAULT_BASE_URL
    # Shodan only has public IPv4; a server the user points us at may know other addresses.
    if not (internetdb.eligible(target.address) or (own_server and target.address.version == 4)):
        target_report.internetdb = {"skipped": "InternetDB covers public IPv4 addresses only"}
        return
    result = internetdb.fetch_internetdb(target.address, base_url)
    if result.record is None:
        target_report.internetdb = {"warning": result.warning}
        target_report.notes.append(result.warning or "InternetDB lookup failed")
        return
    comparison = internetdb.compare_with_scan(result.record, open_ports)
    target_report.internetdb = comparison.details

