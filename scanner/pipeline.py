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

from scanner import assemble
from scanner.checks.runner import PortChecks, check_port
from scanner.core.report import ScanError, ScanReport, TargetReport
from scanner.discovery import DiscoveryEngine, HostDiscovery, PortState, discover_hosts
from scanner.discovery.udp import UdpOptions, UdpScan, scan_udp
from scanner.identification import PortResult, merge_nmap, with_note
from scanner.identification.engine import PortProbe
from scanner.identification.nmap_fallback import NmapOutcome, nmap_identify_port
from scanner.net import Dialer, ScanBudget
from scanner.targets import IPAddress, Target

if TYPE_CHECKING:
    from scanner.identification.internetdb import InternetDbLookup
    from scanner.options import ScanOptions

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


@dataclass
class _PortOutcome:
    result: PortResult | None = None
    checks: PortChecks | None = None


@dataclass
class _Host:
    """One address under way."""

    target: Target
    turns: asyncio.Semaphore
    tasks: dict[int, asyncio.Task[_PortOutcome]] = field(default_factory=dict)
    discovery: HostDiscovery | None = None
    answers_all: bool = False
    udp: asyncio.Future[UdpScan] | None = None
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
            self._report.errors.append(ScanError("discovery", str(error)))
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
        target_report = assemble.target_report(host.target, host.discovery)
        self._report.targets.append(target_report)
        if self._observer is not None:
            self._observer.ports_found(target_report)
        outcomes = await _settle(list(host.tasks.values()))
        for port, outcome in sorted(zip(host.tasks, outcomes, strict=True)):
            if isinstance(outcome, BaseException):
                if not isinstance(outcome, asyncio.CancelledError):
                    self._report.errors.append(assemble.port_failed(target_report, port, outcome))
                continue
            identity = outcome.result.identity if outcome.result is not None else None
            self._report.errors += assemble.add_port(target_report, port, identity,
                                                     outcome.checks)
        if host.udp is not None:
            assemble.add_udp(target_report, await host.udp)
        if self._options.internetdb_url:
            assemble.add_internetdb(target_report,
                                    await self._internetdb(host.target, target_report))
        assemble.finish(target_report)
        if self._observer is not None:
            self._observer.target_done(target_report)

    # --- InternetDB and UDP -----------------------------------------------------------------

    async def _internetdb(
        self, target: Target, target_report: TargetReport
    ) -> InternetDbLookup:
        from scanner.identification import internetdb  # requests: only paid for with --internetdb

        assert self._options.internetdb_url is not None
        open_ports = [port.port for port in target_report.open_ports]
        return await asyncio.to_thread(internetdb.look_up, target.address, open_ports,
                                       self._options.internetdb_url)

    def _probe_udp(self, target: Target) -> UdpScan:
        self._tell(target, "udp", 0, 1)
        udp_options = UdpOptions(
            timeout=self._options.discovery.timeout,
            retries=self._options.discovery.retries,
            dns_name=self._options.udp_dns_name,
            bucket=self._budget.bucket,
        )
        found = scan_udp(target.address, udp_options)
        self._tell(target, "udp", 1, 1)
        return found

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
