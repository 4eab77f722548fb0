"""The one finding catalogue: every id the scanner can report, built once.

Findings are declared where they are produced: each check lists its own (`Check.catalogue`),
and the stages that produce findings without a check (discovery: its UDP probes and its
"answers on every port", the baseline's `port.unexpected`, the fleet's vantage comparison) each
export a `FINDINGS` tuple. The catalogue gathers them by module name, the way a plugin registry
does, so core never imports a stage and a new check module is picked up without editing this
file or any renderer.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache

from scanner.core.findings import FindingSpec

# Modules that export FINDINGS. scanner.checks.registry exports every check's catalogue.
FINDING_SOURCES: tuple[str, ...] = (
    "scanner.discovery",
    "scanner.discovery.udp",
    "scanner.checks.registry",
    "scanner.diff.baseline",
    "scanner.fleet.vantage",
)


@dataclass(frozen=True)
class Catalogue:
    """Finding specs by id, sorted; iteration and lookup only."""

    specs: tuple[FindingSpec, ...]

    def __iter__(self) -> Iterator[FindingSpec]:
        return iter(self.specs)

    def __len__(self) -> int:
        return len(self.specs)

    def get(self, finding_id: str) -> FindingSpec | None:
        return next((spec for spec in self.specs if spec.id == finding_id), None)

    @classmethod
    def of(cls, specs: Sequence[FindingSpec]) -> Catalogue:
        ids = [spec.id for spec in specs]
        duplicates = sorted({finding_id for finding_id in ids if ids.count(finding_id) > 1})
        if duplicates:
            raise RuntimeError(f"finding id declared twice: {', '.join(duplicates)}")
        return cls(tuple(sorted(specs, key=lambda spec: spec.id)))


@cache
def finding_catalogue() -> Catalogue:
    """Every finding id the scanner can produce (`exposure checks --list`, SARIF rules)."""
    specs: list[FindingSpec] = []
    for name in FINDING_SOURCES:
        declared: Sequence[FindingSpec] = importlib.import_module(name).FINDINGS
        specs.extend(declared)
    return Catalogue.of(specs)
