"""Data: which SSH algorithms we call weak, and why, with the source of each verdict.

Reviewed 2026-11-23 against RFC 9142 (key exchange, 2022), the OpenSSH release notes (as
quoted in Debian's openssh changelog), the Terrapin paper (CVE-2023-48795) and ssh-audit's
algorithm database (2.5.0, Debian bookworm). A lab test compares these verdicts with
ssh-audit's on real servers.

Two tiers:
- WEAK: reported as `ssh.weak_algorithms` (low): broken, or retired from OpenSSH's defaults
  because of a concrete weakness.
- LEGACY: listed in the port's details only, no finding: dated but not known to be
  exploitable, and still in OpenSSH's own default lists (a default install is not a finding).

Deliberately not listed: the NIST P-curves (ecdh-sha2-nistp*, ecdsa-sha2-nistp*). ssh-audit
marks them "weak elliptic curves"; RFC 9142 recommends ecdh-sha2-nistp256 (SHOULD), no
practical attack is known, and OpenSSH offers them by default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

REVIEWED = "2026-11-23"

RFC9142 = "RFC 9142 (2022) section 4"
OPENSSH_6_7 = "OpenSSH 6.7 release notes (2014): removed from sshd's default list"
OPENSSH_7_0 = "OpenSSH 7.0 release notes (2015): disabled by default"
OPENSSH_8_2 = "OpenSSH 8.2 release notes (2020): removed from the default kex proposal"
OPENSSH_8_8 = "OpenSSH 8.8 release notes (2021): RSA/SHA-1 signatures disabled by default"
SSH_AUDIT = "ssh-audit algorithm database"

WEAK = "weak"
LEGACY = "legacy"

# Algorithm kinds, as keys of the port's details and in finding evidence.
KEX = "kex"
HOST_KEY = "host_key"
CIPHER = "cipher"
MAC = "mac"


@dataclass(frozen=True)
class Verdict:
    tier: str  # WEAK or LEGACY
    why: str
    source: str


@dataclass(frozen=True)
class PatternVerdict:
    """A verdict for every name matching `pattern` (whole name, case-sensitive)."""

    pattern: re.Pattern[str]
    verdict: Verdict


def _weak(why: str, source: str) -> Verdict:
    return Verdict(WEAK, why, source)


def _legacy(why: str, source: str) -> Verdict:
    return Verdict(LEGACY, why, source)


def _pattern(regex: str, verdict: Verdict) -> PatternVerdict:
    return PatternVerdict(re.compile(regex), verdict)


_SHA1_EXCHANGE = "SHA-1 exchange hash (SHA-1 collisions are practical)"
_GROUP1 = "1024-bit Diffie-Hellman group: within reach of precomputation (Logjam, 2015)"

KEX_VERDICTS: dict[str, Verdict] = {
    "diffie-hellman-group1-sha1": _weak(f"{_GROUP1}, and SHA-1", f"{RFC9142}; {OPENSSH_7_0}"),
    "diffie-hellman-group1-sha256": _weak(_GROUP1, SSH_AUDIT),
    "diffie-hellman-group14-sha1": _weak(_SHA1_EXCHANGE, f"{RFC9142}; {OPENSSH_8_2}"),
    "diffie-hellman-group-exchange-sha1": _weak(_SHA1_EXCHANGE, f"{RFC9142} (SHOULD NOT)"),
    "rsa1024-sha1": _weak("1024-bit RSA key exchange and SHA-1", f"{RFC9142} (MUST NOT)"),
}
KEX_PATTERNS: tuple[PatternVerdict, ...] = (
    # GSS-API key exchange (RFC 4462) names end in a base64 mechanism OID hash.
    _pattern(r"gss-group1-sha1-.*", _weak(f"{_GROUP1}, and SHA-1", RFC9142)),
    _pattern(r"gss-(gex|group14)-sha1-.*", _weak(_SHA1_EXCHANGE, RFC9142)),
)

_SHA1_SIGNATURE = "RSA signatures with SHA-1 (chosen-prefix collisions are practical since 2020)"
_DSA = "DSA: fixed 1024-bit keys and SHA-1 signatures"
HOST_KEY_VERDICTS: dict[str, Verdict] = {
    "ssh-rsa": _weak(_SHA1_SIGNATURE, OPENSSH_8_8),
    "ssh-rsa-cert-v01@openssh.com": _weak(_SHA1_SIGNATURE, OPENSSH_8_8),
    "ssh-rsa-cert-v00@openssh.com": _weak(_SHA1_SIGNATURE, OPENSSH_7_0),
    "ssh-dss": _weak(_DSA, OPENSSH_7_0),
    "ssh-dss-cert-v01@openssh.com": _weak(_DSA, OPENSSH_7_0),
    "ssh-dss-cert-v00@openssh.com": _weak(_DSA, OPENSSH_7_0),
    "x509v3-sign-dss": _weak(_DSA, SSH_AUDIT),
    "x509v3-ssh-dss": _weak(_DSA, SSH_AUDIT),
    "x509v3-sign-rsa": _weak(_SHA1_SIGNATURE, SSH_AUDIT),
    "x509v3-ssh-rsa": _weak(_SHA1_SIGNATURE, SSH_AUDIT),
    "ssh-dss-sha256@ssh.com": _weak("DSA: fixed 1024-bit keys", SSH_AUDIT),
    "ssh-rsa1": _weak("SSH protocol 1 key type", SSH_AUDIT),
}
HOST_KEY_PATTERNS: tuple[PatternVerdict, ...] = ()
MIN_RSA_BITS = 2048  # NIST SP 800-131A: RSA below 2048 bits is disallowed since 2014

_CBC = (
    "CBC mode: plaintext recovery attacks on SSH's CBC packets (CVE-2008-5161), "
    "and with an -etm MAC the Terrapin prefix truncation"
)
_SMALL_BLOCK = "64-bit block cipher (Sweet32 birthday attacks)"
_RARE = "rarely implemented cipher with little scrutiny in SSH, deprecated"
CIPHER_VERDICTS: dict[str, Verdict] = {
    "none": _weak("no encryption", "RFC 4253 6.3"),
    "3des-cbc": _weak(f"{_SMALL_BLOCK}; {_CBC}", OPENSSH_6_7),
    "3des": _weak(_SMALL_BLOCK, SSH_AUDIT),
    "3des-ctr": _weak(_SMALL_BLOCK, SSH_AUDIT),
    "idea-ctr": _weak(f"IDEA: {_SMALL_BLOCK}", SSH_AUDIT),
    "cast128-ctr": _weak(f"CAST-128: {_SMALL_BLOCK}", SSH_AUDIT),
    "serpent128-ctr": _weak(_RARE, SSH_AUDIT),
    "serpent192-ctr": _weak(_RARE, SSH_AUDIT),
    "serpent256-ctr": _weak(_RARE, SSH_AUDIT),
    "crypticore128@ssh.com": _weak("unproven proprietary cipher", SSH_AUDIT),
    "arcfour": _weak("RC4: biased keystream", f"{OPENSSH_6_7}; RFC 8758"),
    "arcfour128": _weak("RC4: biased keystream", f"{OPENSSH_6_7}; RFC 8758"),
    "arcfour256": _weak("RC4: biased keystream", f"{OPENSSH_6_7}; RFC 8758"),
    "des": _weak("DES: 56-bit key", SSH_AUDIT),
    "des-cbc-ssh1": _weak("DES: 56-bit key (SSH protocol 1)", SSH_AUDIT),
    "blowfish": _weak(_SMALL_BLOCK, SSH_AUDIT),
    "blowfish-ctr": _weak(_SMALL_BLOCK, SSH_AUDIT),
}
# aes128-cbc, aes256-cbc, blowfish-cbc, cast128-cbc, rijndael-cbc@lysator.liu.se, ...
CBC_PATTERN = re.compile(r"[\w.+-]*-cbc(@[\w.+-]+)?")
CIPHER_PATTERNS: tuple[PatternVerdict, ...] = (
    PatternVerdict(CBC_PATTERN, _weak(_CBC, OPENSSH_6_7)),
)

_MD5 = "MD5-based MAC (MD5 is broken)"
_TRUNCATED = "truncated MAC tag"
MAC_VERDICTS: dict[str, Verdict] = {
    "none": _weak("no integrity protection", "RFC 4253 6.4"),
    "hmac-sha1": _legacy(
        "HMAC-SHA1: not known to be broken, but SHA-1 is being retired", SSH_AUDIT
    ),
    "hmac-sha1-etm@openssh.com": _legacy(
        "HMAC-SHA1: not known to be broken, but SHA-1 is being retired", SSH_AUDIT
    ),
    "umac-64@openssh.com": _legacy("64-bit MAC tag", SSH_AUDIT),
    "umac-64-etm@openssh.com": _legacy("64-bit MAC tag", SSH_AUDIT),
    "umac-32@openssh.com": _weak("32-bit MAC tag", SSH_AUDIT),
    "hmac-sha1-96": _weak(f"{_TRUNCATED} and SHA-1", OPENSSH_6_7),
    "hmac-sha1-96-etm@openssh.com": _weak(f"{_TRUNCATED} and SHA-1", OPENSSH_6_7),
    "hmac-sha2-256-96": _weak(_TRUNCATED, "OpenSSH 6.1 release notes (2012): removed"),
    "hmac-sha2-512-96": _weak(_TRUNCATED, "OpenSSH 6.1 release notes (2012): removed"),
    "crypticore-mac@ssh.com": _weak("unproven proprietary MAC", SSH_AUDIT),
}
MAC_PATTERNS: tuple[PatternVerdict, ...] = (
    _pattern(r"hmac-md5(-96)?(-etm@openssh\.com)?", _weak(_MD5, OPENSSH_6_7)),
    _pattern(r"hmac-ripemd160.*|hmac-ripemd", _weak("RIPEMD-160 MAC, removed", OPENSSH_6_7)),
)

VERDICTS: dict[str, tuple[dict[str, Verdict], tuple[PatternVerdict, ...]]] = {
    KEX: (KEX_VERDICTS, KEX_PATTERNS),
    HOST_KEY: (HOST_KEY_VERDICTS, HOST_KEY_PATTERNS),
    CIPHER: (CIPHER_VERDICTS, CIPHER_PATTERNS),
    MAC: (MAC_VERDICTS, MAC_PATTERNS),
}

# --- Terrapin (CVE-2023-48795) ----------------------------------------------------------------
# Prefix truncation needs a server without the strict-kex countermeasure and one of these
# modes: ChaCha20-Poly1305, or a CBC cipher with an encrypt-then-MAC MAC. (CTR with EtM is
# affected in theory but not exploitable in practice, per the paper; GCM is not affected.)
TERRAPIN_CIPHERS = frozenset({"chacha20-poly1305@openssh.com"})
TERRAPIN_ETM_SUFFIX = "-etm@openssh.com"
TERRAPIN_REFERENCES = (
    "https://terrapin-attack.com/",
    "https://nvd.nist.gov/vuln/detail/CVE-2023-48795",
)
