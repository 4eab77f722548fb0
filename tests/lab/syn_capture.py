"""Count TCP connection attempts (SYN without ACK) per destination port, from a raw capture.

Runs inside a lab namespace (the home host, where the servers are), so what it counts is what
reached the servers, whatever the scanner thinks it did:

    python -m tests.lab.syn_capture PORT[,PORT...]

prints "ready" once the capture socket is open, then, when stdin closes or on SIGTERM, one JSON
object {port: SYN count} and exits. `SynCapture` wraps that for tests and benchmarks. Only the
home namespace's own interfaces are seen; packets are parsed with bounds (a short frame is skipped).
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
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
TCP = 6
SYN, ACK = 0x02, 0x10


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


def capture(ports: set[int], stop: threading.Event, counts: Counter[int]) -> None:
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL)) as sock:
        print("ready", flush=True)
        while not stop.is_set():
            readable, _, _ = select.select([sock], [], [], 0.1)
            if not readable:
                continue
            frame, address = sock.recvfrom(256)
            if address[2] == PACKET_OUTGOING:
                continue  # a SYN the home host sends itself
            port = syn_destination_port(frame)
            if port in ports:
                counts[port] += 1


def main(argv: list[str]) -> int:
    ports = {int(p) for p in argv[0].split(",")}
    stop = threading.Event()
    counts: Counter[int] = Counter()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    worker = threading.Thread(target=capture, args=(ports, stop, counts), daemon=True)
    worker.start()
    while not stop.is_set():  # until stdin closes
        readable, _, _ = select.select([sys.stdin], [], [], 0.2)
        if readable and not os.read(sys.stdin.fileno(), 1024):
            stop.set()
    worker.join(timeout=2)
    print(json.dumps({str(port): counts[port] for port in sorted(ports)}), flush=True)
    return 0


class SynCapture:
    """Count SYNs to `ports` in the lab's home namespace while the `with` block runs."""

    def __init__(self, lab: Lab, ports: Iterable[int]) -> None:
        self._lab = lab
        self._ports = sorted(set(ports))
        self._proc: subprocess.Popen[str] | None = None
        self.counts: dict[int, int] = {}

    def __enter__(self) -> SynCapture:
        argv = [sys.executable, "-m", "tests.lab.syn_capture", ",".join(map(str, self._ports))]
        self._proc = self._lab.popen_in_home(argv, stdin=subprocess.PIPE,
                                             stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        if self._proc.stdout.readline().strip() != "ready":
            self._stop()
            raise RuntimeError("SYN capture did not start")
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        output = self._stop()
        if kind is None:
            self.counts = {int(port): count for port, count in json.loads(output).items()}

    def _stop(self) -> str:
        proc = self._proc
        if proc is None:
            return "{}"
        try:
            output, _ = proc.communicate(input="", timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()  # our own child, by its handle
            output, _ = proc.communicate()
        self._proc = None
        return output.strip().splitlines()[-1] if output.strip() else "{}"


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
