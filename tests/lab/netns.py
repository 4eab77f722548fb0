"""The lab: a `scan` namespace (the internet) and a `home` namespace (the target) on a veth pair.

Neither namespace has a default route, so nothing started in them can reach any address outside
203.0.113.0/24 and 2001:db8:1::/64 on the veth link. Home's iptables plays the home router (open
ports ACCEPT, CLOSED_PORT REJECTs with a TCP reset, the rest DROPs), plus two special addresses:
a tarpit where every TCP port accepts, and a blackhole where nothing ever answers.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from .daemons import Daemon, Place, start_tarpit, stop_daemons
from .nsutil import (
    IP,
    LabError,
    Probe,
    connect_in_netns,
    ip,
    list_netns,
    netns_argv,
    netns_pids,
    run_checked,
    tcp_probe,
    write_sysctl,
)
from .pki import Issued, LabCA
from .services import PROFILES, Service

NETNS_ETC = Path("/etc/netns")
# Who owns which lab, so cleanup_stale_labs() never removes the lab of a run still going on.
OWNER_DIR = Path("/run/exposure-lab")
# scan and home, and the namespaces a test adds to a lab (add_namespace): exp-ROLE-LABID
STALE_NS_RE = re.compile(r"^exp-[a-z]{2,8}-([0-9a-f]{6})$")
NAMESPACE_ROLE_RE = re.compile(r"^[a-z]{2,8}$")
STOP_TIMEOUT = 3.0
Argv = Sequence[str | os.PathLike[str]]
# Backends tried in order; the first that takes the initial rule set is used for the lab's life.
IPTABLES_BACKENDS = (
    ("iptables-restore", "ip6tables-restore"),
    ("iptables-legacy-restore", "ip6tables-legacy-restore"),
)


def require_root() -> None:
    if os.geteuid() != 0:
        raise LabError(
            "the exposure test lab needs root (it creates network namespaces, veth links and "
            "iptables rules); run the lab tests as root, e.g. in the dev container or CI"
        )


def _proc_starttime(pid: int) -> str | None:
    """Start time of `pid` in clock ticks (field 22 of /proc/PID/stat): tells pid reuse apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return fields[19]


def _is_running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _terminate_pids(pids: Sequence[int], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM each pid, wait up to `timeout` for all, then SIGKILL the ones left."""
    pids = [pid for pid in pids if pid != os.getpid()]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while (pids := [p for p in pids if _is_running(p)]) and time.monotonic() < deadline:
            time.sleep(0.02)
        if not pids:
            return


def _delete_netns(name: str) -> None:
    """Kill whatever still runs in namespace `name`, delete it and its /etc/netns directory."""
    _terminate_pids(netns_pids(name))
    if name in list_netns():
        ip("netns", "del", name)
    shutil.rmtree(NETNS_ETC / name, ignore_errors=True)


class Lab:
    """The scan/home namespace pair with its daemons. Use as a context manager, or start()/stop().

    `Lab()` runs the default profile (see services.default_services); `Lab(services=[...])` or
    `Lab(profile="bare")` choose others, and `add_service()` adds more to a running lab.
    """

    SCAN_V4 = "203.0.113.1"
    SCAN_V6 = "2001:db8:1::1"
    HOME_V4 = "203.0.113.10"
    HOME_V6 = "2001:db8:1::10"
    TARPIT_V4 = "203.0.113.20"
    TARPIT_LISTEN_PORT = 9999  # where the DNAT rule sends every TCP port of TARPIT_V4
    BLACKHOLE_V4 = "203.0.113.30"
    HOSTNAME = "home.lab"
    CLOSED_PORT = 23
    SCAN_IF = "veth-scan"
    HOME_IF = "veth-home"

    def __init__(self, services: Sequence[Service] | None = None, *, profile: str = "default"):
        self.id = secrets.token_hex(3)
        self.scan_ns = f"exp-scan-{self.id}"
        self.home_ns = f"exp-home-{self.id}"
        self.services: list[Service] = (
            list(services) if services is not None else PROFILES[profile]()
        )
        self.daemons: list[Daemon] = []
        self.ca: LabCA | None = None
        self.home_cert: Issued | None = None
        self.start_seconds: float | None = None
        self.stop_seconds: float | None = None
        self._open_ports: dict[int, str] = {}
        self._namespaces: list[str] = []
        self._tmpdir: Path | None = None
        self._iptables: tuple[str, str] | None = None
        self._state = "new"

    # --- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> Lab:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> Lab:
        """Build the namespaces, network, firewall, PKI and start every service; all or nothing."""
        if self._state != "new":
            raise LabError(f"lab {self.id} was already started (state: {self._state})")
        require_root()
        started = time.monotonic()
        self._state = "starting"
        atexit.register(self.stop)  # safety net if the caller never stops us
        try:
            self._tmpdir = Path(tempfile.mkdtemp(prefix=f"exp-lab-{self.id}-"))
            self._write_owner_record()
            self._create_network()
            self._write_netns_etc()
            self._apply_firewall()
            self._make_pki()
            self.daemons.append(start_tarpit(self, self.TARPIT_V4, self.TARPIT_LISTEN_PORT))
            for service in self.services:
                self._start_service(service)
            self._wait_for_link()
        except BaseException as exc:
            try:
                self.stop()  # tears down whatever was built so far
            except LabError as teardown:
                exc.add_note(str(teardown))
            raise
        self._state = "running"
        self.start_seconds = time.monotonic() - started
        return self

    def stop(self) -> None:
        """Stop daemons, delete namespaces, /etc/netns dirs and tmpdir. Idempotent."""
        if self._state not in ("starting", "running"):
            return
        self._state = "stopping"
        started = time.monotonic()
        errors: list[str] = []
        for step in (
            lambda: stop_daemons(reversed(self.daemons)),
            self._delete_namespaces,
            self._remove_tmpdir,
            lambda: (OWNER_DIR / f"{self.id}.json").unlink(missing_ok=True),
        ):
            try:
                step()
            except Exception as exc:  # keep tearing down; report everything at the end
                errors.append(str(exc))
        atexit.unregister(self.stop)
        self._state = "stopped"
        self.stop_seconds = time.monotonic() - started
        if errors:
            raise LabError(f"lab {self.id} teardown incomplete: " + "; ".join(errors))

    @property
    def running(self) -> bool:
        return self._state == "running"

    # --- public helpers ----------------------------------------------------------------------

    @property
    def tmpdir(self) -> Path:
        if self._tmpdir is None:
            raise LabError("the lab has no tmpdir before start()")
        return self._tmpdir

    @property
    def place(self) -> Place:
        """Where daemons of this lab run: home namespace, home addresses, tmpdir."""
        return Place(self.home_ns, (self.HOME_V4, self.HOME_V6), self.tmpdir)

    @property
    def open_ports(self) -> dict[int, str]:
        """Forwarded (open) TCP ports of HOME_V4/HOME_V6 -> what listens there."""
        return dict(sorted(self._open_ports.items()))

    @property
    def closed_port(self) -> int:
        return self.CLOSED_PORT

    @property
    def ca_pem(self) -> Path:
        """The lab CA certificate (PEM file): what a client must trust for the lab's TLS."""
        if self.ca is None:
            raise LabError("the lab CA exists only after start()")
        return self.ca.cert_path

    def run_in_scan(self, argv: Argv, **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        """subprocess.run(argv, **kwargs) inside the scan namespace."""
        return subprocess.run(netns_argv(self.scan_ns, argv), **kwargs)

    def popen_in_scan(self, argv: Argv, **kwargs: Any) -> subprocess.Popen[Any]:
        """subprocess.Popen(argv, **kwargs) inside the scan namespace (pid is the command's)."""
        return subprocess.Popen(netns_argv(self.scan_ns, argv), **kwargs)

    def run_in_home(self, argv: Argv, **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        """subprocess.run(argv, **kwargs) inside the home namespace."""
        return subprocess.run(netns_argv(self.home_ns, argv), **kwargs)

    def popen_in_home(self, argv: Argv, **kwargs: Any) -> subprocess.Popen[Any]:
        """subprocess.Popen(argv, **kwargs) inside the home namespace (pid is the command's)."""
        return subprocess.Popen(netns_argv(self.home_ns, argv), **kwargs)

    def probe(self, host: str, port: int, timeout: float = 1.0) -> Probe:
        """One TCP connect to a numeric host:port from the scan namespace, classified."""
        return tcp_probe(self.scan_ns, host, port, timeout)

    def connect(self, host: str, port: int, timeout: float = 2.0) -> socket.socket:
        """A TCP socket connected from the scan namespace (numeric host only)."""
        return connect_in_netns(self.scan_ns, host, port, timeout)

    def add_service(self, service: Service) -> list[Daemon]:
        """Open the service's ports in the home firewall and start it in the running lab."""
        if not self.running:
            raise LabError("add_service() needs a running lab")
        return self._start_service(service)

    def open_port(self, port: int, description: str) -> None:
        """Forward one more TCP port (for a daemon a test starts itself; see track())."""
        self._open_firewall({port: description})

    def close_port(self, port: int) -> None:
        """Stop forwarding `port`: it is filtered (DROP) again, whatever still listens there."""
        self._edit_firewall("-D", [port])
        self._open_ports.pop(port, None)

    def track(self, daemon: Daemon) -> Daemon:
        """Have stop() stop this daemon too."""
        self.daemons.append(daemon)
        return daemon

    # --- more of the internet (fleet tests: more namespaces, paths and addresses) --------------

    def add_namespace(self, role: str) -> str:
        """One more namespace of this lab (exp-ROLE-ID), deleted with it; no route at all yet.

        It gets the lab's hosts file (home.lab resolves there too) and no default route, ever.
        """
        if not NAMESPACE_ROLE_RE.match(role) or role in ("scan", "home"):
            raise LabError(f"bad namespace role {role!r}")
        if not self.running:
            raise LabError("add_namespace() needs a running lab")
        name = f"exp-{role}-{self.id}"
        ip("netns", "add", name)
        self._namespaces.append(name)
        self._write_owner_record()
        for scope in ("all", "default"):
            write_sysctl(name, f"net.ipv6.conf.{scope}.accept_dad", "0")
        self._ip_batch(name, "link set lo up")
        self._write_netns_etc_for(name)
        return name

    def link(
        self, left: str, left_if: str, left_cidr: str, right: str, right_if: str, right_cidr: str,
    ) -> None:
        """A veth pair between two namespaces of this lab, each end with one address."""
        known = {self.scan_ns, self.home_ns, *self._namespaces}
        if not {left, right} <= known:
            raise LabError(f"link() between namespaces of another lab: {left}, {right}")
        ip("link", "add", left_if, "type", "veth", "peer", "name", right_if, "netns", right,
           netns=left)
        for name, dev, cidr in ((left, left_if, left_cidr), (right, right_if, right_cidr)):
            write_sysctl(name, f"net.ipv4.neigh.{dev}.retrans_time_ms", "100")
            self._ip_batch(name, f"link set {dev} up", f"addr add {cidr} dev {dev} nodad"
                           if ":" in cidr else f"addr add {cidr} dev {dev}")
        self._assert_no_default_route()

    def route(self, netns: str, prefix: str, dev: str) -> None:
        """A route to `prefix` out of `dev`, no gateway (never a default route)."""
        if prefix in ("default", "0.0.0.0/0", "::/0"):
            raise LabError("the lab never has a default route")
        self._ip_batch(netns, f"route add {prefix} dev {dev}")
        self._assert_no_default_route()

    def add_home_addresses(self, addresses: Sequence[str]) -> None:
        """More addresses on home's link to scan (/32 each: from the documentation ranges)."""
        self._ip_batch(self.home_ns, *(f"addr add {address}/32 dev {self.HOME_IF}"
                                       for address in addresses))

    def home_rules(self, rules: Sequence[str], *, v6: bool = False) -> None:
        """Raw filter-table rules for home's firewall, e.g. `-A EXP-OPEN -d X -j ACCEPT`.

        EXP-OPEN is consulted before the final DROP: ACCEPT there opens a port, REJECT makes
        it closed, DROP (inserted first with -I) filters it for some sources only.
        """
        if self._iptables is None:
            raise LabError("the firewall is not up yet")
        binary = self._iptables[1 if v6 else 0]
        ruleset = "\n".join(["*filter", *rules, "COMMIT"]) + "\n"
        run_checked([binary, "--noflush"], netns=self.home_ns, stdin=ruleset)

    def describe(self) -> str:
        """The lab layout, for humans."""
        ports = "\n".join(
            f"    {port:>5}/tcp  open    {what}" for port, what in self.open_ports.items()
        )
        return "\n".join(
            [
                f"exposure lab {self.id}",
                f"  scan namespace  {self.scan_ns}  {self.SCAN_V4}/24  {self.SCAN_V6}/64",
                f"  home namespace  {self.home_ns}  {self.HOME_V4}/24  {self.HOME_V6}/64",
                f"  {self.HOSTNAME} resolves (in scan) to {self.HOME_V4} and {self.HOME_V6}",
                f"  home ports ({self.HOME_V4}, {self.HOME_V6}):",
                ports or "    (none open)",
                f"    {self.CLOSED_PORT:>5}/tcp  closed  (REJECT with TCP reset)",
                "    other    filtered (DROP, TCP and UDP)",
                f"  tarpit     {self.TARPIT_V4}  every TCP port accepts and never speaks",
                f"  blackhole  {self.BLACKHOLE_V4}  everything dropped, ICMP included",
                f"  lab CA     {self.ca_pem if self.ca else '-'}",
                f"  tmpdir     {self._tmpdir}",
            ]
        )

    # --- setup steps -------------------------------------------------------------------------

    def _write_owner_record(self) -> None:
        OWNER_DIR.mkdir(mode=0o755, exist_ok=True)
        record = {
            "pid": os.getpid(),
            "starttime": _proc_starttime(os.getpid()),
            "tmpdir": str(self._tmpdir),
            "namespaces": sorted({self.scan_ns, self.home_ns, *self._namespaces}),
        }
        (OWNER_DIR / f"{self.id}.json").write_text(json.dumps(record))

    def _create_network(self) -> None:
        for name in (self.scan_ns, self.home_ns):
            ip("netns", "add", name)
            self._namespaces.append(name)
            # No duplicate address detection, also for the link-local addresses the kernel adds:
            # while fe80:: is tentative, the first IPv6 connection waits ~1 s for neighbours.
            for scope in ("all", "default"):
                write_sysctl(name, f"net.ipv6.conf.{scope}.accept_dad", "0")
        # The veth peer is created straight inside home.
        ip(
            "link",
            "add",
            self.SCAN_IF,
            "type",
            "veth",
            "peer",
            "name",
            self.HOME_IF,
            "netns",
            self.home_ns,
            netns=self.scan_ns,
        )
        for name, dev in ((self.scan_ns, self.SCAN_IF), (self.home_ns, self.HOME_IF)):
            # Re-send a lost neighbour solicitation / ARP request after 100 ms, not 1 s.
            for family in ("ipv4", "ipv6"):
                write_sysctl(name, f"net.{family}.neigh.{dev}.retrans_time_ms", "100")
        # One `ip -batch` per namespace for the rest. Links go up before the addresses are added:
        # addresses added to a down link leave home deaf to IPv6 neighbour solicitations for
        # about a second after it comes up (measured: lab start 1.0 s -> 0.15 s).
        self._ip_batch(
            self.scan_ns,
            "link set lo up",
            f"link set {self.SCAN_IF} up",
            f"addr add {self.SCAN_V4}/24 dev {self.SCAN_IF}",
            # nodad: usable at once instead of after duplicate address detection (~1-2 s)
            f"addr add {self.SCAN_V6}/64 dev {self.SCAN_IF} nodad",
        )
        self._ip_batch(
            self.home_ns,
            "link set lo up",
            f"link set {self.HOME_IF} up",
            f"addr add {self.HOME_V4}/24 dev {self.HOME_IF}",
            f"addr add {self.TARPIT_V4}/32 dev {self.HOME_IF}",
            f"addr add {self.BLACKHOLE_V4}/32 dev {self.HOME_IF}",
            f"addr add {self.HOME_V6}/64 dev {self.HOME_IF} nodad",
        )
        self._assert_no_default_route()

    @staticmethod
    def _ip_batch(netns: str, *commands: str) -> None:
        run_checked([IP, "-n", netns, "-batch", "-"], stdin="\n".join(commands) + "\n")

    def _assert_no_default_route(self) -> None:
        # The lab's whole safety rests on this: without a default route, nothing can leave.
        for name in dict.fromkeys([self.scan_ns, self.home_ns, *self._namespaces]):
            for family in ("-4", "-6"):
                routes = ip(family, "route", "show", "default", netns=name).strip()
                if routes:
                    raise LabError(f"namespace {name} has a default route ({family}): {routes}")

    def _write_netns_etc(self) -> None:
        # `ip netns exec` bind-mounts /etc/netns/NAME/* over /etc/*: home.lab resolves from the
        # hosts file, and any other name fails against 127.0.0.1 instead of reaching a resolver.
        for name in (self.scan_ns, self.home_ns):
            self._write_netns_etc_for(name)

    def _write_netns_etc_for(self, name: str) -> None:
        hosts = (
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
            f"{self.HOME_V4}\t{self.HOSTNAME}\n{self.HOME_V6}\t{self.HOSTNAME}\n"
        )
        resolv = "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"
        directory = NETNS_ETC / name
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "hosts").write_text(hosts)
        (directory / "resolv.conf").write_text(resolv)

    def _ruleset(self, v6: bool) -> str:
        home = self.HOME_V6 if v6 else self.HOME_V4
        rules = ["*filter", ":INPUT ACCEPT [0:0]", ":EXP-OPEN - [0:0]", "-A INPUT -i lo -j ACCEPT"]
        if not v6:
            rules.append(f"-A INPUT -d {self.BLACKHOLE_V4}/32 -j DROP")  # ICMP too
        rules.append("-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT")
        if v6:
            rules.append("-A INPUT -p ipv6-icmp -j ACCEPT")  # neighbour discovery: v6 needs it
        else:
            rules.append(f"-A INPUT -d {self.TARPIT_V4}/32 -p tcp -j ACCEPT")
        rules += [
            "-A INPUT -j EXP-OPEN",
            f"-A INPUT -d {home} -p tcp --dport {self.CLOSED_PORT} "
            "-j REJECT --reject-with tcp-reset",
            "-A INPUT -p tcp -j DROP",
            "-A INPUT -p udp -j DROP",
            "COMMIT",
        ]
        if not v6:
            rules += [
                "*nat",
                ":PREROUTING ACCEPT [0:0]",
                f"-A PREROUTING -d {self.TARPIT_V4}/32 -p tcp -j DNAT "
                f"--to-destination {self.TARPIT_V4}:{self.TARPIT_LISTEN_PORT}",
                "COMMIT",
            ]
        return "\n".join(rules) + "\n"

    def _apply_firewall(self) -> None:
        failures = []
        for backend in IPTABLES_BACKENDS:
            try:
                for binary, v6 in zip(backend, (False, True), strict=True):
                    run_checked([binary], netns=self.home_ns, stdin=self._ruleset(v6))
            except (LabError, FileNotFoundError) as exc:
                failures.append(str(exc))
                continue
            self._iptables = backend
            return
        raise LabError("no iptables backend could load the home firewall: " + "; ".join(failures))

    def _open_firewall(self, ports: Mapping[int, str]) -> None:
        taken = sorted(set(ports) & set(self._open_ports))
        if taken:
            raise LabError(f"ports already open in the lab: {taken}")
        self._edit_firewall("-A", list(ports))
        self._open_ports.update(ports)

    def _edit_firewall(self, action: str, ports: Sequence[int]) -> None:
        """Append (-A) or delete (-D) the EXP-OPEN accept rules of `ports`, IPv4 and IPv6."""
        if self._iptables is None:
            raise LabError("the firewall is not up yet")
        for binary, home in zip(self._iptables, (self.HOME_V4, self.HOME_V6), strict=True):
            lines = [
                f"{action} EXP-OPEN -d {home} -p tcp --dport {port} -j ACCEPT" for port in ports
            ]
            ruleset = "\n".join(["*filter", *lines, "COMMIT"]) + "\n"
            run_checked([binary, "--noflush"], netns=self.home_ns, stdin=ruleset)

    def _wait_for_link(self, timeout: float = 5.0) -> None:
        """Return once scan reaches home over IPv4 and IPv6 (CLOSED_PORT answers with a reset).

        A lab handed out before that would make the scanner's first IPv6 SYN wait for a
        retransmission (see _create_network). Checked last, so daemon start-up overlaps it.
        """
        deadline = time.monotonic() + timeout
        for host in (self.HOME_V4, self.HOME_V6):
            while (seen := self.probe(host, self.CLOSED_PORT, 0.2)) is not Probe.CLOSED:
                if time.monotonic() >= deadline:
                    raise LabError(f"scan cannot reach {host} ({seen.value} on the closed port)")
                time.sleep(0.02)

    def _make_pki(self) -> None:
        self.ca = LabCA(self.tmpdir / "pki")
        self.home_cert = self.ca.issue(self.HOSTNAME)

    def _start_service(self, service: Service) -> list[Daemon]:
        self._open_firewall(service.ports)
        try:
            daemons = list(service.start(self))
        except BaseException:
            # An open port with nothing behind it would answer RST ("closed"), not be filtered.
            with contextlib.suppress(LabError):
                for port in service.ports:
                    self.close_port(port)
            raise
        self.daemons.extend(daemons)
        return daemons

    # --- teardown steps ----------------------------------------------------------------------

    def _delete_namespaces(self) -> None:
        # Deleting a namespace's name does not end the processes in it: _delete_netns kills what a
        # test or a half-started service left running there before deleting it.
        for name in reversed(self._namespaces):
            _delete_netns(name)
        for name in {self.scan_ns, self.home_ns, *self._namespaces}:
            shutil.rmtree(NETNS_ETC / name, ignore_errors=True)
        left = set(self._namespaces) & set(list_netns())
        if left:
            raise LabError(f"namespaces still present: {sorted(left)}")

    def _remove_tmpdir(self) -> None:
        if self._tmpdir is None:
            return
        if os.environ.get("EXPOSURE_KEEP_LAB") == "1":
            return
        shutil.rmtree(self._tmpdir, ignore_errors=True)


def _owner_alive(record: Mapping[str, Any]) -> bool:
    pid = record.get("pid")
    return isinstance(pid, int) and _proc_starttime(pid) == record.get("starttime")


def _read_owner_records() -> dict[str, dict[str, Any]]:
    records: dict[str, dict[str, Any]] = {}
    for path in OWNER_DIR.glob("*.json"):
        with contextlib.suppress(OSError, ValueError):
            records[path.stem] = json.loads(path.read_text())
    return records


def cleanup_stale_labs(force: bool = False) -> list[str]:
    """Delete exp-scan-*/exp-home-* namespaces (and their leftovers) of labs whose process is gone.

    Labs whose owner process still runs are left alone unless `force`. Returns the namespaces
    deleted. Only names matching our own pattern are ever touched.
    """
    require_root()
    records = _read_owner_records()
    live = {lab_id for lab_id, rec in records.items() if _owner_alive(rec) and not force}
    removed = []
    for name in list_netns():
        match = STALE_NS_RE.match(name)
        if match and match[1] not in live:
            _delete_netns(name)
            removed.append(name)
    if NETNS_ETC.is_dir():
        for directory in NETNS_ETC.iterdir():
            match = STALE_NS_RE.match(directory.name)
            if match and match[1] not in live:
                shutil.rmtree(directory, ignore_errors=True)
    for lab_id, record in records.items():
        if lab_id in live:
            continue
        tmpdir = Path(str(record.get("tmpdir", "")))
        keep = os.environ.get("EXPOSURE_KEEP_LAB") == "1"
        if tmpdir.name.startswith(f"exp-lab-{lab_id}-") and not keep:
            shutil.rmtree(tmpdir, ignore_errors=True)
        (OWNER_DIR / f"{lab_id}.json").unlink(missing_ok=True)
    return removed
