"""The network layer: every connection after discovery is opened here, under the scan's budget.

    budget = ScanBudget(Limits(rate=2000, timeout=1.0))      # one per scan (api.scan)
    dialer = Dialer.for_port(budget)                         # one per open port: its deadline
    with dialer.open(Endpoint("203.0.113.10", 22)) as stream: # a bounded connection
        stream.recv()

- budget: the rate bucket, host and global connection slots, timeouts and deadlines;
- stream: Endpoint, Dialer, Stream (blocking), AsyncStream (coroutines), SocketAdapter;
- tls: the one TLS context factory, by purpose; tls_async: TLS by hand over an AsyncStream;
- http / http_parse: the one HTTP/1.1 client over one tolerant sans-IO parser;
- websocket: openings and the frame codec; codecs: MQTT and the SSH identification line;
- connector: a Dialer bound to one endpoint, as the checks get it.
"""

from scanner.net.budget import Limits, RateBucket, ScanBudget, SharedSlots
from scanner.net.connector import Connector
from scanner.net.errors import ByteCapReached, ConnectFailed, NetError, NetTimeout, ProbeFailed
from scanner.net.http import HttpReply, HttpResponse, NotHttp, Request
from scanner.net.stream import (
    Allowance,
    AsyncStream,
    Channel,
    Dialer,
    Endpoint,
    SocketAdapter,
    Stream,
    Traffic,
)
from scanner.net.tls import TlsPurpose, tls_context

__all__ = [
    "Allowance",
    "AsyncStream",
    "ByteCapReached",
    "Channel",
    "ConnectFailed",
    "Connector",
    "Dialer",
    "Endpoint",
    "HttpReply",
    "HttpResponse",
    "Limits",
    "NetError",
    "NetTimeout",
    "NotHttp",
    "ProbeFailed",
    "RateBucket",
    "Request",
    "ScanBudget",
    "SharedSlots",
    "SocketAdapter",
    "Stream",
    "TlsPurpose",
    "Traffic",
    "tls_context",
]
