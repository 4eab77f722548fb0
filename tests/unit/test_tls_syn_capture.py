"""The lab's SYN counter (tests/lab/syn_capture.py) reads frames from a raw socket: it must count
exactly the SYNs to a port and take any bytes."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from tests.lab.syn_capture import syn_destination_port


def _frame_v4(port: int, flags: int) -> bytes:
    ip = bytes([0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0]) + bytes(8)
    tcp = struct.pack("!HHIIBBHHH", 40000, port, 0, 0, 0x50, flags, 1024, 0, 0)
    return bytes(12) + struct.pack("!H", 0x0800) + ip + tcp


def _frame_v6(port: int, flags: int) -> bytes:
    ip = struct.pack("!IHBB", 0x60000000, 20, 6, 64) + bytes(32)
    tcp = struct.pack("!HHIIBBHHH", 40000, port, 0, 0, 0x50, flags, 1024, 0, 0)
    return bytes(12) + struct.pack("!H", 0x86DD) + ip + tcp


def test_syn_counted_syn_ack_and_ack_not() -> None:
    for frame in (_frame_v4, _frame_v6):
        assert syn_destination_port(frame(443, 0x02)) == 443
        assert syn_destination_port(frame(443, 0x12)) is None  # SYN-ACK
        assert syn_destination_port(frame(443, 0x10)) is None  # ACK


@given(st.binary(max_size=128))
def test_any_bytes(data: bytes) -> None:
    port = syn_destination_port(data)
    assert port is None or 0 <= port <= 0xFFFF
