"""Count the scanner's connection attempts where they arrive: every TCP SYN into home.

`python capture.py INTERFACE OUTPUT` runs in the home namespace: a raw AF_PACKET socket on the
veth interface (what the home "router" receives), one line per SYN without ACK: the time the
kernel received it (SO_TIMESTAMPNS: a busy capture process cannot bunch packets up) and the
destination port.
`syn_capture(lab)` starts it, waits until it listens, and on exit stops it by pid and returns
the SYNs seen. Discovery probes, identification, the checks, sslyze and paramiko: all of them
start with a SYN, so this is the scanner's whole rate as the scanned host sees it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.lab.netns import Lab

ETH_P_ALL = 0x0003
SO_TIMESTAMPNS = 35  # asm-generic/socket.h (SO_TIMESTAMPNS_OLD): a struct timespec
PACKET_OUTGOING = 4
TCP_SYN, TCP_ACK = 0x02, 0x10


def _syn_port(frame: bytes) -> int | None:
    """Destination port of an Ethernet frame carrying a TCP SYN (no ACK), IPv4 or IPv6."""
    if len(frame) < 14:
        return None
    ethertype = struct.unpack_from("!H", frame, 12)[0]
    if ethertype == 0x0800 and len(frame) >= 34:
        header = (frame[14] & 0x0F) * 4
        if frame[23] != 6:
            return None
        tcp = 14 + header
    elif ethertype == 0x86DD and len(frame) >= 54:
        if frame[20] != 6:  # next header TCP (the scanner sends no extension headers)
            return None
        tcp = 54
    else:
        return None
    if len(frame) < tcp + 14:
        return None
    flags = frame[tcp + 13]
    if flags & TCP_SYN and not flags & TCP_ACK:
        return int(struct.unpack_from("!H", frame, tcp + 2)[0])
    return None


def run(interface: str, output: str) -> None:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    sock.bind((interface, 0))
    with open(output, "w", buffering=1) as out:
        out.write("ready\n")
        while True:
            frame, ancillary, _flags, address = sock.recvmsg(256, 64)
            if address[2] == PACKET_OUTGOING:
                continue
            port = _syn_port(frame)
            if port is not None:
                out.write(f"{_kernel_time(ancillary):.9f} {port}\n")


def _kernel_time(ancillary: list[tuple[int, int, bytes]]) -> float:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            seconds, nanoseconds = struct.unpack("qq", data[:16])
            return seconds + nanoseconds / 1e9
    return time.time()


@dataclass
class Capture:
    path: Path
    syns: list[tuple[float, int]] = field(default_factory=list)

    def read(self) -> list[tuple[float, int]]:
        lines = self.path.read_text().splitlines()[1:]
        return [(float(at), int(port)) for at, port in (line.split() for line in lines if line)]


@contextlib.contextmanager
def syn_capture(lab: Lab) -> Iterator[Capture]:
    capture = Capture(lab.tmpdir / f"syns-{os.getpid()}-{time.monotonic_ns()}.txt")
    process = lab.popen_in_home([sys.executable, str(Path(__file__).resolve()), lab.HOME_IF,
                                 str(capture.path)])
    try:
        deadline = time.monotonic() + 10
        while not (capture.path.exists() and capture.path.read_text().startswith("ready")):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the SYN capture did not start")
            time.sleep(0.02)
        yield capture
    finally:
        time.sleep(0.2)  # the last SYNs in flight
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=5)
        capture.syns = capture.read()


def most_in_any_window(times: list[float], window: float) -> int:
    """The largest number of events inside any half-open window [t, t + window)."""
    ordered = sorted(times)
    best, right = 0, 0
    for left, start in enumerate(ordered):
        while right < len(ordered) and ordered[right] < start + window:
            right += 1
        best = max(best, right - left)
    return best


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        run(sys.argv[1], sys.argv[2])
