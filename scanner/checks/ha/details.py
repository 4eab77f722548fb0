"""details.ha: what the Home Assistant check learnt, or why a look-alike is not HA."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scanner.core.details import DetailsRecord, PortDetails

HA_HIGHLIGHTS = (
    ("version", "version"),
    ("onboarding.state", "onboarding"),
    ("auth_providers", "login providers"),
    ("install_type", "installation"),
    ("login_flow.result", "login flow"),
    ("is_home_assistant", "is Home Assistant"),
    ("confidence", "confidence"),
)


@dataclass(frozen=True)
class Onboarding(DetailsRecord):
    state: str = "unknown"  # open | in_progress | finished | unknown
    steps: Mapping[str, bool] | None = None


@dataclass(frozen=True)
class LoginFlow(DetailsRecord):
    result: str = ""
    users_offered: int | None = None
    password_asked: bool | None = None
    abort_reason: str | None = None


@dataclass(frozen=True)
class AdvisoryTable(DetailsRecord):
    date: str = ""
    age_days: int | None = None
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class HaDetails(DetailsRecord):
    """A Home Assistant: its version, onboarding state, login providers and flow."""

    HIGHLIGHTS = HA_HIGHLIGHTS
    TABLE = (("version", "Home Assistant"), ("onboarding.state", "onboarding"))
    TABLE_RANK = 0

    is_home_assistant: bool = True
    version: str | None = None
    onboarding: Onboarding | None = None
    detected_by: tuple[str, ...] = ()
    confidence: str = ""
    auth_providers: tuple[str, ...] | None = None
    auth_providers_shape: str | None = None
    install_type: str | None = None
    login_flow: LoginFlow | None = None
    advisory_table: AdvisoryTable | None = None


@dataclass(frozen=True)
class NotHaDetails(DetailsRecord):
    """A port that only looks like Home Assistant (a title, a copied manifest)."""

    HIGHLIGHTS = HA_HIGHLIGHTS
    TABLE_RANK = 0

    is_home_assistant: bool = False
    confidence: str = ""
    detected_by: tuple[str, ...] = ()
    contradictions: tuple[str, ...] = ()


def load_ha(data: Mapping[str, Any]) -> PortDetails:
    """details.ha in whichever of its two shapes it has."""
    if data.get("is_home_assistant") is True:
        return HaDetails.from_dict(data)
    return NotHaDetails.from_dict(data)


DETAILS = {"ha": load_ha}
