"""Servers that take their time, or never end: `python slowpoke.py MODE ADDRESS PORT [SECONDS]`.

Run inside the lab's home namespace by the budget tests (tests/lab/test_budget.py):

- slow-http SECONDS: an HTTP server that answers every request SECONDS after its head arrived;
- slow-mqtt SECONDS: an MQTT broker that refuses identification's level-0 CONNECT at once and
  accepts a real 3.1.1 CONNECT (no credentials) SECONDS later;
- drip: sends one byte a second, forever, to whoever connects;
- garbage: streams random bytes as fast as the client reads them;
- odd-banner: greets with a line no probe (ours or nmap's) knows, then waits;
- tls-garbage CERT KEY: completes a TLS handshake, then streams garbage inside it (what once
  made nmap -sV run 37 s past its --host-timeout of 15 s).

Each connection gets a thread; the process ends when the lab stops it by pid.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable

PAGE = (b"<!doctype html><html><head><title>Slow but sure</title></head>"
        b"<body>took its time</body></html>")


def _read_head(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data and len(data) < 65536:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def slow_http(conn: socket.socket, seconds: float) -> None:
    if b"\r\n\r\n" not in _read_head(conn):
        return  # not HTTP (a TLS ClientHello, an MQTT CONNECT): say nothing
    time.sleep(seconds)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: "
                 + str(len(PAGE)).encode() + b"\r\nConnection: close\r\n\r\n" + PAGE)


def slow_mqtt(conn: socket.socket, seconds: float) -> None:
    data = conn.recv(256)
    if len(data) < 9 or data[0] != 0x10 or data[4:8] != b"MQTT":
        return
    level = data[8]
    if level == 4:  # MQTT 3.1.1: accepted, after a while
        time.sleep(seconds)
        conn.sendall(b"\x20\x02\x00\x00")
        conn.recv(16)  # the client's DISCONNECT
    else:  # identification's refused-by-design CONNECT: "unacceptable protocol version"
        conn.sendall(b"\x20\x02\x00\x01")


def drip(conn: socket.socket, _seconds: float) -> None:
    while True:
        conn.sendall(b"x")
        time.sleep(1.0)


def garbage(conn: socket.socket, _seconds: float) -> None:
    junk = os.urandom(65536)
    while True:
        conn.sendall(junk)


def odd_banner(conn: socket.socket, _seconds: float) -> None:
    conn.sendall(b"XQ7 hello from the quux relay, proto 3; say HI\r\n")
    while conn.recv(4096):
        pass


MODES: dict[str, Callable[[socket.socket, float], None]] = {
    "slow-http": slow_http, "slow-mqtt": slow_mqtt, "drip": drip, "garbage": garbage,
    "odd-banner": odd_banner,
}


def tls_garbage(conn: socket.socket, context: ssl.SSLContext) -> None:
    with context.wrap_socket(conn, server_side=True) as tls:
        junk = os.urandom(16384)
        while True:
            tls.sendall(junk)


def tls_garbage_handler(tls: list[str]) -> Callable[[socket.socket, float], None]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls[0], tls[1])

    def handler(conn: socket.socket, _seconds: float) -> None:
        tls_garbage(conn, context)

    return handler


def serve(mode: str, address: str, port: int, seconds: float, tls: list[str]) -> None:
    handler = tls_garbage_handler(tls) if mode == "tls-garbage" else MODES[mode]
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    server = socket.socket(family, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((address, port))
    server.listen(64)

    def handle(conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:
            handler(conn, seconds)

    while True:
        conn, _ = server.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2], int(sys.argv[3]),
          float(sys.argv[4]) if len(sys.argv) > 4 else 0.0, sys.argv[5:7])
