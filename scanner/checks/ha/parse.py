"""What Home Assistant's public endpoints say, parsed from bytes a server chose: pure functions.

Nothing here does I/O. Every function takes bounded bytes, never raises on arbitrary input,
and returns bounded, sanitised values (or None when the answer is not what HA sends). The
shapes are HA core's, read in its source and confirmed against real instances (fixtures/ha):

- /manifest.json: the frontend's web app manifest, `name` "Home Assistant"
  (homeassistant/components/frontend/__init__.py, MANIFEST_JSON).
- /auth/providers: 400 `{"code": "onboarding_required"}` before the owner exists; then the
  providers, a bare list up to 2024.x and `{"providers": [...], "preselect_remember_me": b}`
  later (homeassistant/components/auth/login_flow.py, AuthProvidersView). `trusted_networks`
  is listed only when the caller's address is trusted.
- /api/onboarding: `[{"step": "user", "done": false}, ...]` while onboarding is unfinished;
  404 after it finished and HA restarted (components/onboarding/__init__.py registers the
  views only then).
- /api/websocket: the first frame is `{"type": "auth_required", "ha_version": "..."}`
  (components/websocket_api/auth.py).
- POST /auth/login_flow (only under --active): a data entry flow step; for trusted_networks a
  form whose `user` field is a select of the users one may log in as, without a password
  (auth/providers/trusted_networks.py), or `create_entry` at once with allow_bypass_login.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from scanner.core.text import safe_text
from scanner.net.websocket import FrameHeader

JSON_CAP = 64 * 1024  # HA's public JSON answers are a few hundred bytes; manifest ~2 KB
GREETING_CAP = 4096  # the auth_required frame is ~50 bytes
MAX_PROVIDERS = 16
MAX_STEPS = 16
NAME_CHARS = 64

# Provider types HA core ships (homeassistant/auth/providers/): a list naming none of these
# is not HA's.
KNOWN_PROVIDER_TYPES = frozenset(
    {"homeassistant", "trusted_networks", "command_line", "legacy_api_password",
     "insecure_example"}
)
# Onboarding steps HA has used (components/onboarding/const.py over the years).
KNOWN_STEPS = frozenset({"user", "core_config", "analytics", "integration", "mob_integration"})
# HA versions: 0.57, 0.118.5, 2024.1.6, 2023.12.0b3, 2024.2.0.dev20240101
_VERSION = re.compile(r"^\d{1,4}\.\d{1,3}(?:\.\d{1,4})?(?:(?:b|rc|\.dev)\d{1,12})?$")


def load_json(body: bytes) -> Any:
    """JSON from at most JSON_CAP bytes; None when it is not JSON (or too deep, or too big)."""
    if len(body) > JSON_CAP:
        return None
    try:
        return json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError):
        return None


def clean(value: Any, limit: int = NAME_CHARS) -> str | None:
    """A remote string, safe to print; None for anything that is not a string."""
    return safe_text(value, limit) if isinstance(value, str) else None


# --- /manifest.json -------------------------------------------------------------------------


@dataclass(frozen=True)
class Manifest:
    name: str | None
    names_home_assistant: bool  # name "Home Assistant" and HA's own description


def parse_manifest(status: int, body: bytes) -> Manifest | None:
    data = load_json(body) if status == 200 else None
    if not isinstance(data, dict):
        return None
    name = clean(data.get("name"))
    description = clean(data.get("description"), 200) or ""
    is_ha = name == "Home Assistant" and description.startswith("Home automation platform")
    return Manifest(name, is_ha)


# --- /auth/providers ------------------------------------------------------------------------


@dataclass(frozen=True)
class Provider:
    type: str
    id: str | None
    name: str | None


@dataclass(frozen=True)
class Providers:
    onboarding_required: bool  # 400 onboarding_required: the owner account does not exist
    providers: tuple[Provider, ...]
    shape: str  # "onboarding_required", "list" (HA <= 2024.x), "object" (later)

    @property
    def types(self) -> tuple[str, ...]:
        return tuple(provider.type for provider in self.providers)

    def find(self, provider_type: str) -> Provider | None:
        return next((p for p in self.providers if p.type == provider_type), None)


def parse_providers(status: int, body: bytes) -> Providers | None:
    """HA's answer to GET /auth/providers, or None when the answer is not shaped like HA's."""
    data = load_json(body)
    if status == 400:
        if isinstance(data, dict) and data.get("code") == "onboarding_required":
            return Providers(True, (), "onboarding_required")
        return None
    if status != 200:
        return None
    if isinstance(data, dict) and isinstance(data.get("providers"), list):
        items, shape = data["providers"], "object"
    elif isinstance(data, list):
        items, shape = data, "list"
    else:
        return None
    providers = [_provider(item) for item in items[: MAX_PROVIDERS + 1]]
    if not providers or len(items) > MAX_PROVIDERS or any(p is None for p in providers):
        return None
    kept = tuple(p for p in providers if p is not None)
    if not any(p.type in KNOWN_PROVIDER_TYPES for p in kept):
        return None
    return Providers(False, kept, shape)


def _provider(item: Any) -> Provider | None:
    if not isinstance(item, dict) or not isinstance(item.get("type"), str):
        return None
    provider_id = item.get("id")
    if provider_id is not None and not isinstance(provider_id, str):
        return None
    return Provider(
        type=safe_text(item["type"], NAME_CHARS),
        id=clean(provider_id),
        name=clean(item.get("name")),
    )


# --- /api/onboarding ------------------------------------------------------------------------


@dataclass(frozen=True)
class Onboarding:
    steps: tuple[tuple[str, bool], ...]  # (step, done), as HA lists them

    @property
    def user_done(self) -> bool | None:
        """Whether the owner account exists; None if HA did not list the user step."""
        return next((done for step, done in self.steps if step == "user"), None)

    @property
    def nothing_done(self) -> bool:
        return not any(done for _, done in self.steps)


def parse_onboarding(status: int, body: bytes) -> Onboarding | None:
    data = load_json(body) if status == 200 else None
    if not isinstance(data, list) or not 0 < len(data) <= MAX_STEPS:
        return None
    steps = []
    for item in data:
        if not isinstance(item, dict):
            return None
        step, done = item.get("step"), item.get("done")
        if not isinstance(step, str) or not isinstance(done, bool):
            return None
        steps.append((safe_text(step, NAME_CHARS), done))
    if not any(step in KNOWN_STEPS for step, _ in steps):
        return None
    return Onboarding(tuple(steps))


def parse_installation_type(status: int, body: bytes) -> str | None:
    data = load_json(body) if status == 200 else None
    return clean(data.get("installation_type")) if isinstance(data, dict) else None


# --- the websocket greeting -------------------------------------------------------------------


def parse_greeting(header: FrameHeader | None, payload: bytes) -> str | None:
    """ha_version from HA's auth_required frame; None for any other frame.

    The frame must be a single unmasked text frame (servers never mask) holding a JSON object
    with type "auth_required" and a version-shaped ha_version.
    """
    if header is None or not header.fin or header.opcode != 1 or header.masked:
        return None
    if header.length != len(payload) or len(payload) > GREETING_CAP:
        return None
    data = load_json(payload)
    if not isinstance(data, dict) or data.get("type") != "auth_required":
        return None
    version = data.get("ha_version")
    if not isinstance(version, str) or not _VERSION.match(version):
        return None
    return version


# --- POST /auth/login_flow (active only) ------------------------------------------------------


@dataclass(frozen=True)
class FlowStart:
    """What starting the trusted_networks login flow showed, without any credential in it.

    An authorization code in a create_entry answer is never kept: only the fact that HA
    handed one out.
    """

    kind: str  # "user_picker", "logged_in" (create_entry), "aborted", "other"
    users_offered: int = 0
    password_asked: bool = False
    abort_reason: str | None = None


def parse_flow_start(status: int, body: bytes) -> FlowStart | None:
    data = load_json(body) if status == 200 else None
    if not isinstance(data, dict):
        return None
    kind = data.get("type")
    if kind == "create_entry":
        return FlowStart("logged_in")
    if kind == "abort":
        return FlowStart("aborted", abort_reason=clean(data.get("reason")))
    if kind != "form":
        return FlowStart("other")
    fields = data.get("data_schema")
    if not isinstance(fields, list):
        return FlowStart("other")
    names = [f.get("name") for f in fields[:MAX_STEPS] if isinstance(f, dict)]
    users = next((f for f in fields[:MAX_STEPS]
                  if isinstance(f, dict) and f.get("name") == "user"), None)
    options = users.get("options") if isinstance(users, dict) else None
    count = len(options) if isinstance(options, list | dict) else 0
    if users is None or count == 0:
        return FlowStart("other", password_asked="password" in names)
    return FlowStart("user_picker", users_offered=min(count, 1000),
                     password_asked="password" in names)
