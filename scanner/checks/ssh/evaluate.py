"""The engine: what the data tables (algorithms.py, vulns.py) say about what a server sent.
Pure functions over parsed, sanitised values."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from scanner.checks.ssh.algorithms import (
    CBC_PATTERN,
    CIPHER,
    HOST_KEY,
    KEX,
    MAC,
    MIN_RSA_BITS,
    TERRAPIN_CIPHERS,
    TERRAPIN_ETM_SUFFIX,
    VERDICTS,
    WEAK,
    Verdict,
)
from scanner.checks.ssh.hostkeys import HostKey
from scanner.checks.ssh.kexinit import KexInit
from scanner.checks.ssh.versions import (
    Distro,
    Software,
    compare_debian_versions,
    version_key,
)
from scanner.checks.ssh.vulns import ADVISORIES, Advisory, AffectedRange, DistroFix
from scanner.core.findings import Severity

# --- algorithms ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlaggedAlgorithm:
    kind: str  # algorithms.KEX, HOST_KEY, CIPHER, MAC
    name: str
    tier: str  # algorithms.WEAK or LEGACY
    why: str
    source: str

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name, "why": self.why, "source": self.source}


def verdict(kind: str, name: str) -> Verdict | None:
    exact, patterns = VERDICTS[kind]
    if name in exact:
        return exact[name]
    return next((p.verdict for p in patterns if p.pattern.fullmatch(name)), None)


def flag_algorithms(kexinit: KexInit) -> list[FlaggedAlgorithm]:
    """Every offered algorithm our tables have a verdict on, weak and legacy, in list order."""
    offered = {
        KEX: kexinit.kex,
        HOST_KEY: kexinit.host_key,
        CIPHER: kexinit.ciphers,
        MAC: kexinit.macs,
    }
    flagged = []
    for kind, names in offered.items():
        for name in names:
            found = verdict(kind, name)
            if found is not None:
                flagged.append(FlaggedAlgorithm(kind, name, found.tier, found.why, found.source))
    return flagged


def flag_small_keys(host_keys: Iterable[HostKey]) -> list[FlaggedAlgorithm]:
    """RSA and DSA host keys below 2048 bits (an algorithm list cannot show a key's size)."""
    return [
        FlaggedAlgorithm(
            HOST_KEY,
            f"{key.type} {key.bits}-bit key",
            WEAK,
            f"{key.bits}-bit key: below {MIN_RSA_BITS} bits, within reach of factoring efforts",
            "NIST SP 800-131A rev. 2",
        )
        for key in host_keys
        if key.type in ("ssh-rsa", "ssh-dss") and key.bits is not None and key.bits < MIN_RSA_BITS
    ]


@dataclass(frozen=True)
class TerrapinExposure:
    """Why a server meets the Terrapin (CVE-2023-48795) conditions."""

    chacha20: tuple[str, ...]
    cbc_ciphers: tuple[str, ...]
    etm_macs: tuple[str, ...]


def terrapin_exposure(kexinit: KexInit) -> TerrapinExposure | None:
    """None unless the server lacks strict kex and offers ChaCha20-Poly1305 or CBC with EtM."""
    if kexinit.strict_kex:
        return None
    chacha20 = tuple(c for c in kexinit.ciphers if c in TERRAPIN_CIPHERS)
    cbc = tuple(c for c in kexinit.ciphers if CBC_PATTERN.fullmatch(c))
    etm = tuple(m for m in kexinit.macs if m.endswith(TERRAPIN_ETM_SUFFIX))
    if chacha20 or (cbc and etm):
        return TerrapinExposure(chacha20, cbc if etm else (), etm if cbc else ())
    return None


# --- advisories ----------------------------------------------------------------------------------

AFFECTED = "affected"  # the banner's distro package revision predates the recorded fix
FIXED_BY_DISTRO = "fixed-by-distro"  # upstream version in range, package revision has the fix
PATCH_LEVEL_UNKNOWN = "patch-level-unknown"  # in range; the banner cannot tell if it is fixed


@dataclass(frozen=True)
class AdvisoryMatch:
    advisory: Advisory
    status: str
    explanation: str

    @property
    def severity(self) -> Severity | None:
        if self.status == AFFECTED:
            return self.advisory.severity
        if self.status == PATCH_LEVEL_UNKNOWN:
            return self.advisory.unknown_severity
        return None

    def to_dict(self) -> dict[str, str | None]:
        severity = self.severity
        return {
            "id": self.advisory.cve,
            "name": self.advisory.name,
            "status": self.status,
            "severity": str(severity) if severity else None,
            "explanation": self.explanation,
        }


def _in_range(product: str, version: str, affected: AffectedRange) -> bool:
    key = version_key(product, version)
    if key is None:
        return False
    if affected.introduced is not None:
        start = version_key(product, affected.introduced)
        if start is None or key < start:
            return False
    if affected.fixed is not None:
        end = version_key(product, affected.fixed)
        if end is None or key >= end:
            return False
    return True


def _fix_for(advisory: Advisory, version: str, distro: Distro | None) -> DistroFix | None:
    if distro is None or distro.family is None:
        return None
    return next(
        (f for f in advisory.fixes if f.family == distro.family and f.upstream == version), None
    )


def _match(advisory: Advisory, software: Software, distro: Distro | None) -> AdvisoryMatch | None:
    version = software.version
    if software.product != advisory.product or version is None:
        return None
    if not any(_in_range(advisory.product, version, r) for r in advisory.affected):
        return None
    fix = _fix_for(advisory, version, distro)
    if fix is None or distro is None:
        return AdvisoryMatch(advisory, PATCH_LEVEL_UNKNOWN, _unknown_explanation(version, distro))
    installed = f"{version}-{distro.revision}"
    packaged = f"{distro.name} package {installed}"
    if compare_debian_versions(installed, f"{fix.upstream}-{fix.revision}") >= 0:
        return AdvisoryMatch(
            advisory,
            FIXED_BY_DISTRO,
            f"{packaged} includes the fix ({fix.family} fixed it in "
            f"{fix.upstream}-{fix.revision}; {fix.source})",
        )
    return AdvisoryMatch(
        advisory,
        AFFECTED,
        f"{packaged} predates the fixed {fix.upstream}-{fix.revision} ({fix.source})",
    )


def _unknown_explanation(version: str, distro: Distro | None) -> str:
    if distro is None:
        return (
            f"version {version} is in the affected range; the banner names no distribution "
            "package, so whether a backported fix is installed cannot be seen from outside"
        )
    return (
        f"version {version} is in the affected range; we have no record of which "
        f"{distro.name} package revision fixed it, so whether {distro.name}-{distro.revision} "
        "includes the fix cannot be told from the banner"
    )


def match_advisories(
    software: Software, distro: Distro | None, advisories: Sequence[Advisory] = ADVISORIES
) -> list[AdvisoryMatch]:
    """Every advisory whose version range holds the banner's version, with its status."""
    matches = (_match(advisory, software, distro) for advisory in advisories)
    return [match for match in matches if match is not None]
