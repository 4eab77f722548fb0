"""The fleet lab: the lab home seen from two internets, and a control namespace for the fleet.

    control (ctl)  redis-server and PostgreSQL (Debian's), the coordinator runs here
       |  192.0.2.1/30 -- 192.0.2.2/30        192.0.2.5/30 -- 192.0.2.6/30  |
     scan (internet a, 203.0.113.1)                     inetb (internet b, 198.51.100.1)
       |  the lab's veth                                 |  a veth of its own (198.51.100.10)
       +------------------------- home ------------------+

Home gets 64 more addresses (203.0.113.64-127), each with its own forwarded ports (sshd on 22,
nginx on 80, anonymous mosquitto on 1883, in a pattern: see open_ports_of), port 23 closed.
Its main address, 203.0.113.10, has 22 and 80 open, except that 80 is dropped for internet b:
the vantage difference. Nothing has a default route: the two internets reach home and the
control namespace, nothing else; the control namespace reaches no home at all.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .daemons import Daemon, NginxSite, Place, _launch, start_mosquitto, start_nginx, start_sshd
from .netns import Lab
from .nsutil import LabError, netns_argv

REDIS = "/usr/bin/redis-server"
EXPOSURE = [sys.executable, "-m", "scanner"]
TARGETS = tuple(f"203.0.113.{64 + index}" for index in range(64))
CLOSED_PORT = 23
SERVICES = {22: "ssh", 80: "http", 1883: "mqtt"}
PORTS = "22,23,80,443,1883,8080"  # what the fleet tests ask for
FENCED_PORT = 80  # on Lab.HOME_V4: open from internet a, filtered from internet b
WORKER_READY_S = 30.0
STOP_S = 10.0


def open_ports_of(index: int) -> tuple[int, ...]:
    """Which ports of target `index` are forwarded: every address a little different."""
    ports = []
    if index % 2 == 0:
        ports.append(22)
    if index % 3 != 2:
        ports.append(80)
    if index % 4 == 1:
        ports.append(1883)
    return tuple(ports)


class Worker:
    """An `exposure worker` process in one of the internets, stopped (or killed) by its pid."""

    def __init__(self, proc: subprocess.Popen[bytes], log: Path, vantage: str) -> None:
        self.proc = proc
        self.log = log
        self.vantage = vantage

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float = WORKER_READY_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise LabError(f"worker exited ({self.proc.returncode}):\n{self.log_tail()}")
            if " ready." in self.log_text():
                return
            time.sleep(0.1)
        raise LabError(f"worker not ready after {timeout} s:\n{self.log_tail()}")

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL: the worker dies mid-task, its messages unacknowledged."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        """SIGTERM (Celery's warm shutdown: running tasks finish), then SIGKILL."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_S)
            except subprocess.TimeoutExpired:
                self.kill()


class FleetLab:
    CTL_A, SCAN_CTL = "192.0.2.1", "192.0.2.2"  # /30 between scan and ctl
    CTL_B, INETB_CTL = "192.0.2.5", "192.0.2.6"  # /30 between inetb and ctl
    INETB_V4, HOME_B = "198.51.100.1", "198.51.100.10"  # /24 between inetb and home
    REDIS_PORT = 6379
    PG_PORT = 5432

    def __init__(self, targets: Sequence[str] = TARGETS) -> None:
        self.lab = Lab(profile="bare")
        self.targets = tuple(targets)
        self.ctl_ns = ""
        self.inetb_ns = ""
        self.redis: Daemon | None = None
        self.postgres: object | None = None
        self.workers: list[Worker] = []

    # --- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> FleetLab:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> FleetLab:
        self.lab.start()
        try:
            self._build_network()
            self._start_home_services()
            self._open_home_firewall()
            self._start_control()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Workers, Redis, PostgreSQL by pid, then the lab (its daemons and namespaces)."""
        errors = []
        for worker in self.workers:
            try:
                worker.stop()
            except Exception as error:
                errors.append(str(error))
        if self.redis is not None:
            self.redis.stop()
        if self.postgres is not None:
            self.postgres.stop()  # type: ignore[attr-defined]
        self.lab.stop()
        if errors:
            raise LabError("fleet lab teardown: " + "; ".join(errors))

    # --- what tests use --------------------------------------------------------------------

    @property
    def namespaces(self) -> list[str]:
        return [self.lab.scan_ns, self.lab.home_ns, self.ctl_ns, self.inetb_ns]

    def broker(self, internet: str | None) -> str:
        """The Redis URL from internet 'a' (scan), 'b' (inetb) or the control namespace."""
        return f"redis://{self._ctl_address(internet)}:{self.REDIS_PORT}/0"

    def db(self, database: str, internet: str | None) -> str:
        host = self._ctl_address(internet)
        return f"postgresql://exposure@{host}:{self.PG_PORT}/{database}"

    def create_database(self, name: str) -> None:
        self.postgres.create_database(name)  # type: ignore[attr-defined]

    def start_worker(
        self, internet: str, database: str, *, vantage: str | None = None,
        extra: Sequence[str] = (), wait: bool = True,
    ) -> Worker:
        netns = {"a": self.lab.scan_ns, "b": self.inetb_ns}[internet]
        log = self.lab.tmpdir / f"worker-{internet}-{len(self.workers)}.log"
        argv = [*EXPOSURE, "worker", "--broker", self.broker(internet),
                "--db", self.db(database, internet), *(["--vantage", vantage] if vantage else []),
                *extra]
        with open(log, "ab") as handle:
            proc = subprocess.Popen(netns_argv(netns, argv), stdin=subprocess.DEVNULL,
                                    stdout=handle, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        worker = Worker(proc, log, vantage or internet)
        self.workers.append(worker)
        if wait:
            worker.wait_ready()
        return worker

    def run_coordinator(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """`exposure ARGS` in the control namespace (it reaches Redis and PostgreSQL only)."""
        return subprocess.run(netns_argv(self.ctl_ns, [*EXPOSURE, *args]), capture_output=True,
                              text=True, timeout=timeout, check=False,
                              env={**os.environ, "COLUMNS": "120"})

    def popen_coordinator(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(netns_argv(self.ctl_ns, [*EXPOSURE, *args]),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    # --- building --------------------------------------------------------------------------

    def _ctl_address(self, internet: str | None) -> str:
        return {"a": self.CTL_A, "b": self.CTL_B, None: "127.0.0.1"}[internet]

    def _build_network(self) -> None:
        lab = self.lab
        self.ctl_ns = lab.add_namespace("ctl")
        self.inetb_ns = lab.add_namespace("inetb")
        lab.link(lab.scan_ns, "to-ctl", f"{self.SCAN_CTL}/30", self.ctl_ns, "to-scan",
                 f"{self.CTL_A}/30")
        lab.link(self.inetb_ns, "to-ctl", f"{self.INETB_CTL}/30", self.ctl_ns, "to-inetb",
                 f"{self.CTL_B}/30")
        lab.link(self.inetb_ns, "to-home", f"{self.INETB_V4}/24", lab.home_ns, "to-inetb",
                 f"{self.HOME_B}/24")
        # internet b reaches the home's public addresses by its own link: another path
        lab.route(self.inetb_ns, "203.0.113.0/24", "to-home")
        lab.add_home_addresses(self.targets)

    def _start_home_services(self) -> None:
        lab = self.lab
        anywhere = Place(lab.home_ns, ("0.0.0.0",), lab.tmpdir)  # the firewall decides
        # One sshd answers for every address: a scan of 32 at once opens more unauthenticated
        # connections than its default MaxStartups (10) lets through.
        lab.track(start_sshd(anywhere, 22, name="fleet-sshd", extra_config="MaxStartups 500"))
        lab.track(start_nginx(anywhere, [NginxSite(80)], name="fleet-nginx"))
        lab.track(start_mosquitto(anywhere, 1883, name="fleet-mosquitto"))

    def _open_home_firewall(self) -> None:
        rules = []
        for index, address in enumerate(self.targets):
            rules += [f"-A EXP-OPEN -d {address} -p tcp --dport {port} -j ACCEPT"
                      for port in open_ports_of(index)]
            rules.append(f"-A EXP-OPEN -d {address} -p tcp --dport {CLOSED_PORT} "
                         "-j REJECT --reject-with tcp-reset")
        # Lab.HOME_V4: 22 and 80 open, but 80 dropped for internet b (inserted before the rest)
        rules += [f"-A EXP-OPEN -d {Lab.HOME_V4} -p tcp --dport {port} -j ACCEPT"
                  for port in (22, FENCED_PORT)]
        rules.append(f"-I EXP-OPEN 1 -s {self.INETB_V4}/32 -d {Lab.HOME_V4} -p tcp "
                     f"--dport {FENCED_PORT} -j DROP")
        self.lab.home_rules(rules)

    def _start_control(self) -> None:
        from tests.pgserver import PostgresServer

        lab = self.lab
        directory = lab.tmpdir / "redis"
        directory.mkdir()
        addresses = ("127.0.0.1", self.CTL_A, self.CTL_B)
        place = Place(self.ctl_ns, addresses, lab.tmpdir)
        argv = [REDIS, "--port", str(self.REDIS_PORT), "--bind", *addresses, "--save", "",
                "--appendonly", "no", "--protected-mode", "no", "--dir", str(directory),
                "--daemonize", "no"]
        self.redis = _launch(place, "redis", argv, [self.REDIS_PORT], directory)
        self.postgres = PostgresServer(
            netns=self.ctl_ns, listen=addresses, port=self.PG_PORT, trusted=["192.0.2.0/24"],
        ).start()
