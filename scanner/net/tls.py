"""The one factory of TLS client contexts, by purpose. Nothing else builds an SSLContext.

None of them verifies certificates: a scanner wants to see what answers, and grading the
certificate is the TLS check's job (sslyze, with its own trust stores and `--ca-file`).

- IDENTIFY: talks to anything, however old or misconfigured (every protocol version and suite
  this OpenSSL still has, security level 0): identification must name what runs inside.
- CHECK: what the product checks use to reach a service over TLS: OpenSSL's default suites at
  security level 0 (old devices included), TLS 1.0 and newer.
- LEGACY_PROBE: the widest this OpenSSL allows, for probes that look for legacy suites on
  purpose (the TLS check's own probes).
"""

from __future__ import annotations

import contextlib
import enum
import functools
import ipaddress
import ssl
import warnings


class TlsPurpose(enum.Enum):
    IDENTIFY = "identify"
    CHECK = "check"
    LEGACY_PROBE = "legacy-probe"


_CIPHERS = {
    TlsPurpose.IDENTIFY: "ALL:@SECLEVEL=0",
    TlsPurpose.CHECK: "DEFAULT:@SECLEVEL=0",
    TlsPurpose.LEGACY_PROBE: "ALL:COMPLEMENTOFALL:@SECLEVEL=0",
}
_MINIMUM = {
    TlsPurpose.IDENTIFY: ssl.TLSVersion.MINIMUM_SUPPORTED,
    TlsPurpose.CHECK: ssl.TLSVersion.TLSv1,
    TlsPurpose.LEGACY_PROBE: ssl.TLSVersion.MINIMUM_SUPPORTED,
}


@functools.cache
def tls_context(purpose: TlsPurpose) -> ssl.SSLContext:
    """The shared client context for `purpose` (built once; contexts are thread-safe)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with contextlib.suppress(ssl.SSLError, ValueError), warnings.catch_warnings():
        # TLS 1.0 (and older, for identification) on purpose: old devices; ssl calls the
        # constant deprecated, a build without those versions refuses it (suppressed too)
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = _MINIMUM[purpose]
    with contextlib.suppress(ssl.SSLError):
        context.set_ciphers(_CIPHERS[purpose])
    context.options |= getattr(ssl, "OP_LEGACY_SERVER_CONNECT", 0x4)
    context.options |= getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
    return context


def sni_for(name: str | None) -> str | None:
    """SNI carries host names only; an address literal is never sent (RFC 6066)."""
    if not name:
        return None
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return name
    return None


def looks_like_tls(first: bytes) -> bool:
    """A TLS record header: handshake (22) or alert (21), major version 3, minor 0..4."""
    return (
        len(first) >= 3 and first[0] in (0x15, 0x16) and first[1] == 0x03 and first[2] <= 0x04
    )
