"""Is this port Home Assistant? A confidence level and the evidence for it (pure).

A page title is what anyone can write: it is a hint, never proof. What makes HA is HA's own
behaviour at its public endpoints, which a static page or a catch-all server does not have:

| signal      | how strong | what it is                                                      |
|-------------|------------|-----------------------------------------------------------------|
| title       | hint       | `<title>Home Assistant` on the page identification fetched      |
| redirect    | hint       | `/` redirects to `/onboarding.html` (HA before onboarding ends) |
| manifest    | hint       | /manifest.json names "Home Assistant" with HA's description      |
| providers   | strong     | /auth/providers answers in HA's shape (list, or onboarding_required) |
| onboarding  | strong     | /api/onboarding lists HA's steps with their done flags          |
| websocket   | strong     | /api/websocket greets with auth_required and ha_version         |

Confidence: "high" with two strong signals, "medium" with one, "low" with hints only, "none"
without any. Only medium and high count as HA; critical findings want high.
"""

from __future__ import annotations

from dataclasses import dataclass

from scanner.checks.ha import parse
from scanner.core.text import safe_text
from scanner.net import HttpReply
from scanner.net.websocket import FrameHeader

EVIDENCE_BODY_CHARS = 160
CONFIDENCE_ORDER = ("none", "low", "medium", "high")


# One bounded answer: status, headers (lower-case names), body (capped): the network layer's.
HttpAnswer = HttpReply


@dataclass(frozen=True)
class WebsocketAnswer:
    upgraded: bool  # 101 with the right Sec-WebSocket-Accept: a real websocket server
    status: int | None  # the HTTP status of the upgrade answer
    header: FrameHeader | None  # the first frame
    payload: bytes  # its payload (capped)


@dataclass(frozen=True)
class Observations:
    """What was seen on one port: identification's page, and our GETs (None: not asked/failed)."""

    title: str | None = None
    root_redirect: str | None = None  # Location of the answer to GET /
    manifest: HttpAnswer | None = None
    providers: HttpAnswer | None = None
    onboarding: HttpAnswer | None = None
    installation_type: HttpAnswer | None = None
    websocket: WebsocketAnswer | None = None


@dataclass(frozen=True)
class Facts:
    """The observations parsed: what HA told us, each None when it did not (or was not HA)."""

    title_says_ha: bool
    redirects_to_onboarding: bool
    manifest: parse.Manifest | None
    providers: parse.Providers | None
    onboarding: parse.Onboarding | None
    installation_type: str | None
    version: str | None


@dataclass(frozen=True)
class Detection:
    confidence: str  # none, low, medium, high
    evidence: tuple[str, ...]  # one line per signal seen, sanitised
    facts: Facts
    contradictions: tuple[str, ...] = ()

    @property
    def is_ha(self) -> bool:
        return self.confidence in ("medium", "high") and not self.contradictions

    @property
    def strong(self) -> bool:
        return self.confidence == "high" and not self.contradictions


def title_says_ha(title: str | None) -> bool:
    return bool(title) and title.strip().startswith("Home Assistant")  # type: ignore[union-attr]


def parse_observations(seen: Observations) -> Facts:
    manifest = parse.parse_manifest(seen.manifest.status, seen.manifest.body) if seen.manifest \
        else None
    providers = parse.parse_providers(seen.providers.status, seen.providers.body) \
        if seen.providers else None
    onboarding = parse.parse_onboarding(seen.onboarding.status, seen.onboarding.body) \
        if seen.onboarding else None
    install = parse.parse_installation_type(
        seen.installation_type.status, seen.installation_type.body
    ) if seen.installation_type else None
    version = None
    if seen.websocket and seen.websocket.upgraded:
        version = parse.parse_greeting(seen.websocket.header, seen.websocket.payload)
    return Facts(
        title_says_ha=title_says_ha(seen.title),
        redirects_to_onboarding=(seen.root_redirect or "").split("?")[0] == "/onboarding.html",
        manifest=manifest if manifest and manifest.names_home_assistant else None,
        providers=providers,
        onboarding=onboarding,
        installation_type=install,
        version=version,
    )


def assess(seen: Observations) -> Detection:
    facts = parse_observations(seen)
    hints: list[str] = []
    strong: list[str] = []
    if facts.title_says_ha:
        hints.append(f"page title {safe_text(seen.title or '', 80)!r}")
    if facts.redirects_to_onboarding:
        hints.append("GET / redirects to /onboarding.html")
    if facts.manifest:
        hints.append('GET /manifest.json names "Home Assistant" with HA\'s description')
    if facts.providers and seen.providers:
        strong.append(f"GET /auth/providers -> {seen.providers.status} in HA's shape: "
                      + _excerpt(seen.providers.body))
    if facts.onboarding and seen.onboarding:
        strong.append("GET /api/onboarding -> 200 in HA's shape: " + _excerpt(seen.onboarding.body))
    if facts.version and seen.websocket:
        strong.append("GET /api/websocket greets with " + _excerpt(seen.websocket.payload))
    confidence = _confidence(len(strong), len(hints))
    return Detection(confidence, tuple(strong + hints), facts, _contradictions(facts))


def _confidence(strong: int, hints: int) -> str:
    if strong >= 2:
        return "high"
    if strong == 1:
        return "medium"
    return "low" if hints else "none"


def _contradictions(facts: Facts) -> tuple[str, ...]:
    """Answers that HA could not give together: a sign of a decoy, so no findings at all."""
    found = []
    onboarding, providers = facts.onboarding, facts.providers
    # HA lists providers only once the owner exists (2024.x: user step done; older: all steps
    # done). A list next to "user step not done" is no HA's.
    if (onboarding and providers and not providers.onboarding_required
            and onboarding.user_done is False):
        found.append("/api/onboarding and /auth/providers disagree on whether the owner exists")
    return tuple(found)


def _excerpt(body: bytes) -> str:
    return safe_text(body[: EVIDENCE_BODY_CHARS * 2], EVIDENCE_BODY_CHARS)
