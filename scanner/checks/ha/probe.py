"""The requests the HA check sends: GETs of public endpoints, one websocket greeting, and
(only under --active) the start of one login flow. Bounded in bytes and time, always.

What is never sent, and why (HA core's source, confirmed on real 2024.1.6 and 2025.4.4):
- GET /api/ or any endpoint that needs a token: HA answers 401, and its ban middleware
  (components/http/ban.py) counts every 401 as a failed login, notifies the owner "Login
  attempt failed", and bans the address after `login_attempts_threshold`.
- GET /api/onboarding/installation_type once any onboarding step is done: it then raises 401
  too (components/onboarding/views.py), so it is asked only while no step is done.
- A websocket auth message: a wrong one is a failed login. We read the greeting and close.
- POST /auth/login_flow with a handler HA does not list: answered 404/400, which
  `log_invalid_auth` counts as a failed login. We only start a trusted_networks flow that
  /auth/providers listed for us, with a client_id/redirect_uri pair on one host so HA does not
  fetch anything (components/auth/indieauth.py).

Every request goes through the network layer (scanner.net): one connection per request,
bounded in bytes and time, under the scan's budget and the port's deadline.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from scanner.checks.ha import parse
from scanner.checks.ha.detect import HttpAnswer, Observations, WebsocketAnswer, title_says_ha
from scanner.net import Connector, Request

HEAD_CAP = 16 * 1024
BODY_CAP = parse.JSON_CAP
WEBSOCKET_PATH = "/api/websocket"
HA_ACCEPT = "application/json, text/html;q=0.9, */*;q=0.5"
# client_id and redirect_uri on one host: HA then accepts them without fetching the client_id
# URL (indieauth.verify_redirect_uri). ".invalid" (RFC 6761) never resolves anywhere.
FLOW_CLIENT_ID = "http://exposure.invalid/"
FLOW_REDIRECT_URI = "http://exposure.invalid/auth_callback"


def _request(connector: Connector, request: Request) -> HttpAnswer | None:
    return connector.request(request, head_cap=HEAD_CAP, body_cap=BODY_CAP,
                             decoded_cap=BODY_CAP)


def http_get(connector: Connector, path: str) -> HttpAnswer | None:
    return _request(connector, Request("GET", path, accept=HA_ACCEPT,
                                       accept_encoding="identity"))


def websocket_greeting(connector: Connector) -> WebsocketAnswer | None:
    """Upgrade /api/websocket, read HA's first frame, send a close frame. Never anything else.

    Closing properly makes HA end the connection without logging anything."""
    opening = connector.websocket(WEBSOCKET_PATH, frame_cap=parse.GREETING_CAP)
    if opening is None:
        return None
    upgraded = opening.upgraded and opening.accept_valid
    if not upgraded:
        return WebsocketAnswer(False, opening.status, None, b"")
    frame = opening.first_frame
    if frame is None:
        return WebsocketAnswer(True, opening.status, None, b"")
    payload = frame.payload if frame.complete else b""
    return WebsocketAnswer(True, opening.status, frame.header, payload)


def start_login_flow(connector: Connector, handler: tuple[str, str | None]) -> HttpAnswer | None:
    """--active only: POST /auth/login_flow to start (never continue) the given provider's flow.

    The caller must pass a handler /auth/providers listed; the answer may hold an
    authorization code (trusted_networks with allow_bypass_login), which parse.parse_flow_start
    drops unread into anything kept.
    """
    body = json.dumps({
        "client_id": FLOW_CLIENT_ID,
        "handler": [handler[0], handler[1]],
        "redirect_uri": FLOW_REDIRECT_URI,
    }).encode()
    return _request(connector, Request(
        "POST", "/auth/login_flow", (("Content-Type", "application/json"),), body,
        accept=HA_ACCEPT, accept_encoding="identity",
    ))


# --- the sequence ----------------------------------------------------------------------------


OBSERVE_BUDGET = 3.0  # the whole sequence may take this many read timeouts, no more


@dataclass(frozen=True)
class Budgeted:
    """The connector cut to OBSERVE_BUDGET read timeouts from now, so a server that answers
    slowly everywhere costs three timeouts, not six; past that, requests are not sent."""

    connector: Connector

    @classmethod
    def starting_now(cls, connector: Connector) -> Budgeted:
        return cls(connector.within(connector.dialer.read_timeout * OBSERVE_BUDGET))

    def _has_time(self) -> bool:
        return self.connector.dialer.seconds_left > 0.05

    def get(self, path: str) -> HttpAnswer | None:
        return http_get(self.connector, path) if self._has_time() else None

    def websocket(self) -> WebsocketAnswer | None:
        return websocket_greeting(self.connector) if self._has_time() else None


def observe(connector: Connector, title: str | None, root_redirect: str | None) -> Observations:
    """GETs in an order that stops early on ports that are plainly not HA.

    Every HTTP port gets two cheap GETs (/auth/providers, /manifest.json); only a port that
    looks like HA by then (or whose title says so) gets /api/onboarding and the websocket.
    """
    budget = Budgeted.starting_now(connector)
    providers = budget.get("/auth/providers")
    manifest = budget.get("/manifest.json")
    hinted = title_says_ha(title) or (root_redirect or "").startswith("/onboarding.html")
    looks_ha = (
        hinted
        or (providers is not None and parse.parse_providers(providers.status, providers.body))
        or (manifest is not None and _manifest_says_ha(manifest))
    )
    if not looks_ha:
        return Observations(title=title, root_redirect=root_redirect, manifest=manifest,
                            providers=providers)
    onboarding = budget.get("/api/onboarding")
    steps = parse.parse_onboarding(onboarding.status, onboarding.body) if onboarding else None
    # Only while no step is done: afterwards HA answers 401, which counts as a failed login.
    installation_type = (
        budget.get("/api/onboarding/installation_type")
        if steps is not None and steps.nothing_done else None
    )
    return Observations(
        title=title,
        root_redirect=root_redirect,
        manifest=manifest,
        providers=providers,
        onboarding=onboarding,
        installation_type=installation_type,
        websocket=budget.websocket(),
    )


def _manifest_says_ha(answer: HttpAnswer) -> bool:
    manifest = parse.parse_manifest(answer.status, answer.body)
    return manifest is not None and manifest.names_home_assistant
