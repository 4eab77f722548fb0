"""Finds every check: each module in scanner.checks (or a subpackage) that defines CHECK."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from functools import cache
from types import ModuleType

import scanner.checks
from scanner.checks.base import Check, FindingSpec
from scanner.core.details import DetailsLoader

_FRAMEWORK_MODULES = {"base", "registry", "runner"}


@cache
def _check_modules() -> tuple[ModuleType, ...]:
    modules = []
    for module_info in pkgutil.walk_packages(scanner.checks.__path__, "scanner.checks."):
        if module_info.name.rsplit(".", 1)[-1] in _FRAMEWORK_MODULES:
            continue
        modules.append(importlib.import_module(module_info.name))
    return tuple(modules)


@cache
def all_checks() -> tuple[Check, ...]:
    found = (getattr(module, "CHECK", None) for module in _check_modules())
    checks: list[Check] = [check for check in found if check is not None]
    _require_unique([check.name for check in checks], "check name")
    _require_unique([spec.id for check in checks for spec in check.catalogue], "finding id")
    return tuple(_in_dependency_order(checks))


def catalogue() -> list[FindingSpec]:
    """Every finding id a check can produce."""
    specs = [spec for check in all_checks() for spec in check.catalogue]
    return sorted(specs, key=lambda spec: spec.id)


def details_loaders() -> dict[str, DetailsLoader]:
    """Every check module's DETAILS ({details key: loader}; scanner.core.details)."""
    loaders: dict[str, DetailsLoader] = {}
    for module in _check_modules():
        declared: Mapping[str, DetailsLoader] = getattr(module, "DETAILS", {})
        for key, loader in declared.items():
            if key in loaders and loaders[key] != loader:
                raise RuntimeError(f"duplicate details key: {key}")
            loaders[key] = loader
    return loaders


def __getattr__(name: str) -> object:
    # FINDINGS for scanner.core.catalogue and DETAILS for scanner.core.details, computed on
    # first use: finding the checks imports them
    if name == "FINDINGS":
        return tuple(catalogue())
    if name == "DETAILS":
        return details_loaders()
    raise AttributeError(name)


def _require_unique(names: list[str], what: str) -> None:
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise RuntimeError(f"duplicate {what}: {', '.join(duplicates)}")


def _in_dependency_order(checks: list[Check]) -> list[Check]:
    by_name = {check.name: check for check in checks}
    ordered: list[Check] = []
    visiting: set[str] = set()

    def visit(check: Check) -> None:
        if check in ordered:
            return
        if check.name in visiting:
            raise RuntimeError(f"check dependency cycle at {check.name}")
        visiting.add(check.name)
        for name in check.after:
            if name in by_name:
                visit(by_name[name])
        visiting.discard(check.name)
        ordered.append(check)

    for check in sorted(checks, key=lambda check: check.name):
        visit(check)
    return ordered
