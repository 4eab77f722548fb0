"""A Dialer bound to one endpoint: what a check is handed to talk to the port it checks."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace

from scanner.net.errors import NetError
from scanner.net.http import Headers, HttpReply, Request, fetch, get
from scanner.net.http_parse import BODY_CAP, DECODED_CAP, HEAD_CAP
from scanner.net.stream import DEFAULT_CAP, Dialer, Endpoint, Stream
from scanner.net.tls import TlsPurpose
from scanner.net.websocket import FRAME_CAP, Opening, open_websocket


@dataclass(frozen=True)
class Connector:
    dialer: Dialer
    endpoint: Endpoint

    @property
    def tls(self) -> bool:
        return self.endpoint.tls

    def with_tls(self, tls: bool) -> Connector:
        return replace(self, endpoint=self.endpoint.with_tls(tls))

    def within(self, seconds: float) -> Connector:
        """The same connector, ending no later than `seconds` from now."""
        return replace(self, dialer=self.dialer.within(seconds))

    def open(
        self, *, cap: int = DEFAULT_CAP, purpose: TlsPurpose = TlsPurpose.CHECK,
    ) -> AbstractContextManager[Stream]:
        return self.dialer.open(self.endpoint, cap=cap, purpose=purpose)

    def ask(self, command: bytes, complete: Callable[[bytes], bool], cap: int) -> bytes | None:
        """One command over plain TCP and its bounded reply; None for a TLS endpoint or when
        nothing usable came back. For the line protocols (Redis, memcached)."""
        if self.endpoint.tls:
            return None
        try:
            with self.open(cap=cap) as stream:
                stream.send(command)
                return stream.recv_until(complete, cap)
        except NetError:
            return None

    def request(
        self, request: Request, *, head_cap: int = HEAD_CAP, body_cap: int = BODY_CAP,
        decoded_cap: int = DECODED_CAP,
    ) -> HttpReply | None:
        return fetch(self.dialer, self.endpoint, request, head_cap=head_cap, body_cap=body_cap,
                     decoded_cap=decoded_cap)

    def get(
        self, path: str, headers: Headers = (), *, accept: str = "*/*",
        body_cap: int = BODY_CAP,
    ) -> HttpReply | None:
        return self.request(get(path, headers, accept), body_cap=body_cap)

    def websocket(
        self, path: str, *, subprotocol: str | None = None, first_message: bytes | None = None,
        farewell: bytes | None = None, frame_cap: int = FRAME_CAP,
    ) -> Opening | None:
        return open_websocket(self.dialer, self.endpoint, path, subprotocol=subprotocol,
                              first_message=first_message, farewell=farewell,
                              frame_cap=frame_cap)
