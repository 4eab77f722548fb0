"""Every TCP connection attempt (SYN without ACK) that reaches the home host, from a raw capture.

Runs inside the lab's home namespace, where the servers are, so what it records is what reached
them, whatever the scanner thinks it did:

    python -m tests.lab.syn_capture OUTPUT [PORT,PORT...]

writes "ready" to OUTPUT once the capture socket is open, then one line per SYN to one of the
ports (every port when none is given): the time the kernel received it (SO_TIMESTAMPNS: a busy
capture process cannot bunch packets up) and the destination port. It ends on SIGTERM.
`SynCapture` wraps that for tests and benchmarks: `.counts` per port and `.syns` (time, port)
once the `with` block ends. Discovery probes, identification, the checks, sslyze and paramiko
all start with a SYN, so this is the scanner's whole rate as the scanned host sees it. Frames
are parsed with bounds (a short frame is skipped).
"""

from __future__ import annotations

import contextlib
import signal
import socket
import struct
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .netns import Lab

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
PACKET_OUTGOING = 4
SO_TIMESTAMPNS = 35  # asm-generic/socket.h (SO_TIMESTAMPNS_OLD): a struct timespec
TCP = 6
SYN, ACK = 0x02, 0x10
READY_TIMEOUT = 10.0


def syn_destination_port(frame: bytes) -> int | None:
    """The destination port of an Ethernet frame carrying a TCP SYN (no ACK), else None."""
    if len(frame) < 14:
        return None
    (ethertype,) = struct.unpack_from("!H", frame, 12)
    offset = 14
    if ethertype == ETH_P_IP:
        if len(frame) < offset + 20 or frame[offset + 9] != TCP:
            return None
        offset += (frame[offset] & 0x0F) * 4
    elif ethertype == ETH_P_IPV6:
        if len(frame) < offset + 40 or frame[offset + 6] != TCP:
            return None  # the lab sends no extension headers
        offset += 40
    else:
        return None
    if len(frame) < offset + 14:
        return None
    (port,) = struct.unpack_from("!H", frame, offset + 2)
    flags = frame[offset + 13]
    return port if flags & SYN and not flags & ACK else None


def _kernel_time(ancillary: list[tuple[int, int, bytes]]) -> float:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            seconds, nanoseconds = struct.unpack("qq", data[:16])
            return seconds + nanoseconds / 1e9
    return time.time()


def run(output: str, ports: set[int] | None) -> None:
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL)) as sock, \
            open(output, "w", buffering=1) as out:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        out.write("ready\n")
        while True:
            frame, ancillary, _flags, address = sock.recvmsg(256, 64)
            if address[2] == PACKET_OUTGOING:
                continue  # a SYN the home host sends itself
            port = syn_destination_port(frame)
            if port is not None and (ports is None or port in ports):
                out.write(f"{_kernel_time(ancillary):.9f} {port}\n")


class SynCapture:
    """Record the SYNs to `ports` (every port: None) in the home namespace while the `with`
    block runs; the daemon is stopped by pid on leaving it."""

    def __init__(self, lab: Lab, ports: Iterable[int] | None = None) -> None:
        self._lab = lab
        self._ports = None if ports is None else sorted(set(ports))
        self._path = lab.tmpdir / f"syns-{time.monotonic_ns()}.txt"
        self._proc: subprocess.Popen[bytes] | None = None
        self.syns: list[tuple[float, int]] = []
        self.counts: Counter[int] = Counter()

    def __enter__(self) -> SynCapture:
        argv = [sys.executable, "-m", "tests.lab.syn_capture", str(self._path)]
        if self._ports is not None:
            argv.append(",".join(map(str, self._ports)))
        self._proc = self._lab.popen_in_home(argv)
        deadline = time.monotonic() + READY_TIMEOUT
        while not (self._path.exists() and self._path.read_text().startswith("ready")):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self._stop()
                raise RuntimeError("SYN capture did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        time.sleep(0.2)  # the last SYNs in flight
        self._stop()
        lines = self._path.read_text().splitlines()[1:]
        self.syns = [(float(at), int(port)) for at, port in (line.split() for line in lines)]
        self.counts = Counter(port for _, port in self.syns)

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.send_signal(signal.SIGTERM)  # our own child, by its handle
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def most_in_any_window(times: Iterable[float], window: float) -> int:
    """The largest number of events inside any half-open window [t, t + window)."""
    ordered = sorted(times)
    best, right = 0, 0
    for left, start in enumerate(ordered):
        while right < len(ordered) and ordered[right] < start + window:
            right += 1
        best = max(best, right - left)
    return best


if __name__ == "__main__":
    chosen = {int(port) for port in sys.argv[2].split(",")} if len(sys.argv) > 2 else None
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with contextlib.suppress(KeyboardInterrupt):
        run(sys.argv[1], chosen)
