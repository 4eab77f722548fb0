"""Tarpit listener: accepts TCP connections, holds them open, never sends a byte.

Run as a script (`python tarpit.py ADDRESS PORT`) inside the lab's home namespace, where an
iptables DNAT rule sends every TCP port of the tarpit address here: a host on which every port
looks open, which a scanner must not report as 65,536 services. Incoming data is read and
discarded so a client's writes never block; connections are closed only when the client closes
them, or oldest first when too many are held.
"""

from __future__ import annotations

import resource
import selectors
import socket
import sys
from collections import OrderedDict


def _raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 65536 if hard == resource.RLIM_INFINITY else hard
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def serve(address: str, port: int) -> None:
    limit = max(16, _raise_fd_limit() - 64)
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    server = socket.socket(family, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((address, port))
    server.listen(4096)
    server.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(server, selectors.EVENT_READ)
    held: OrderedDict[int, socket.socket] = OrderedDict()

    def drop(conn: socket.socket) -> None:
        held.pop(conn.fileno(), None)
        selector.unregister(conn)
        conn.close()

    while True:
        for key, _ in selector.select():
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if sock is server:
                try:
                    conn, _ = server.accept()
                except BlockingIOError:
                    continue
                conn.setblocking(False)
                selector.register(conn, selectors.EVENT_READ)
                held[conn.fileno()] = conn
                if len(held) > limit:
                    drop(next(iter(held.values())))
                continue
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                drop(sock)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: tarpit.py ADDRESS PORT", file=sys.stderr)
        return 2
    serve(argv[0], int(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
