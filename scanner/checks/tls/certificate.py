"""The server's certificate: extract the facts, then tell its problems apart.

sslyze 6 validates a chain with cryptography's WebPKI verifier and reports one error string that
mixes everything (expired, wrong name, unknown issuer, missing intermediate...). Users need to
know which, because each has a different fix. So we:

1. link the received chain to a trust anchor ourselves, at a moment when the leaf is valid and
   without a name check, which answers "is the issuer trusted?" on its own;
2. read dates, self-signature, SANs and signature hashes from the certificate itself;
3. match the SANs against the name the user typed (RFC 6125, as browsers do).

A server that sends its leaf without the intermediate (cert.pem instead of fullchain.pem) is
told apart from an untrusted one by completing the chain with intermediates we already have:
a small bundle of public ones (intermediates.pem: Let's Encrypt's) and the CA certificates of
the --ca-file that are not roots. If the completed chain links to an anchor, the chain is
"incomplete" (grade capped at B, as SSL Labs and testssl.sh do), not untrusted (T). An issuer
we have no certificate for stays untrusted: we do not fetch it (AIA) from a third party.

Trust anchors are Mozilla's store as shipped with sslyze, plus the --ca-file. The verifier's
WebPKI policy is relaxed in one respect: it requires an Authority Key Identifier on every
non-root certificate, which browsers and OpenSSL do not (and which private CAs, like the test
lab's, often omit). Leaf extensions are not judged (the name is matched separately below).
Revocation is read only from a stapled OCSP response: asking the CA would mean contacting a third
party, which this scanner never does.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import ipaddress
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from scanner.checks.tls.facts import CertificateFacts
from scanner.core.text import safe_text

EXPIRING_SOON_DAYS = 21  # Let's Encrypt renews at 30 days left: under 21, renewal is failing
NAME_CHARS = 256
MAX_SANS = 100
MAX_AIA_URLS = 3
MAX_CHAIN = 10  # certificates we look at; a longer chain is not a real deployment
CA_FILE_MAX_BYTES = 4 * 1024 * 1024
MOZILLA = "Mozilla NSS"
CA_FILE = "--ca-file"
BUNDLE = "the scanner's bundle of public intermediates"
BUNDLE_PATH = Path(__file__).with_name("intermediates.pem")
WEAK_HASHES = ("md2", "md4", "md5", "sha1")  # below SHA-256; md* are "insecure", sha1 distrusted


# --- trust anchors -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TrustAnchors:
    """Named sets of root certificates; a chain is trusted if it links to any of them. The
    intermediates (with where they come from) may complete a chain a server sent short."""

    stores: tuple[tuple[str, tuple[x509.Certificate, ...]], ...]
    intermediates: tuple[tuple[str, x509.Certificate], ...] = ()


@functools.cache
def _mozilla_roots() -> tuple[x509.Certificate, ...]:
    from sslyze.plugins.certificate_info.trust_stores.trust_store_repository import (
        TrustStoresRepository,
    )

    with warnings.catch_warnings():  # one root in the store has a negative serial number
        warnings.simplefilter("ignore")
        path = TrustStoresRepository.get_default().get_main_store().path
        return tuple(x509.load_pem_x509_certificates(Path(path).read_bytes()))


@functools.cache
def _bundled_intermediates() -> tuple[x509.Certificate, ...]:
    return tuple(x509.load_pem_x509_certificates(BUNDLE_PATH.read_bytes()))


def load_trust_anchors(ca_file: Path | None) -> TrustAnchors:
    """Mozilla's roots, the --ca-file's, and the intermediates that may complete a chain.

    DECISION: in a --ca-file that holds roots (self-signed) and other CA certificates, only the
    roots are anchors and the others are intermediates, as `openssl verify -untrusted` would
    take them; a file without any root is all anchors (a private intermediate the user trusts).
    """
    stores: list[tuple[str, tuple[x509.Certificate, ...]]] = [(MOZILLA, _mozilla_roots())]
    intermediates = [(BUNDLE, cert) for cert in _bundled_intermediates()]
    if ca_file is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            extra = x509.load_pem_x509_certificates(Path(ca_file).read_bytes()[:CA_FILE_MAX_BYTES])
        roots = tuple(cert for cert in extra if is_self_signed(cert))
        stores.append((CA_FILE, roots or tuple(extra)))
        if roots:
            intermediates += [(CA_FILE, cert) for cert in extra
                              if cert not in roots and _is_ca(cert)]
    return TrustAnchors(tuple(stores), tuple(intermediates))


# --- extraction (pure over parsed certificates) -------------------------------------------------


@dataclass(frozen=True)
class ChainLink:
    trusted: bool
    anchor: str | None
    error: str | None
    complete: bool
    missing_issuer: str | None
    aia_ca_issuers: tuple[str, ...]
    completed_from: str | None = None  # where the missing intermediate came from, when found


def certificate_facts(
    received: Sequence[x509.Certificate],
    anchors: TrustAnchors,
    now: dt.datetime,
    revoked: bool | None = None,
) -> CertificateFacts:
    """Facts about the leaf (received[0]) and how the received chain links to the anchors."""
    chain = list(received[:MAX_CHAIN])
    leaf = chain[0]
    key_type, key_bits = public_key_description(leaf)
    link = link_chain(chain, anchors, now)
    return CertificateFacts(
        subject=name_text(leaf.subject),
        issuer=name_text(leaf.issuer),
        sans=subject_alt_names(leaf),
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        key_type=key_type,
        key_bits=key_bits,
        signature_hash=signature_hash(leaf),
        sha256=hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest(),
        self_signed=is_self_signed(leaf),
        chain_trusted=link.trusted,
        trust_anchor=link.anchor,
        chain_error=link.error,
        chain_complete=link.complete,
        missing_issuer=link.missing_issuer,
        aia_ca_issuers=link.aia_ca_issuers,
        completed_from=link.completed_from,
        weak_chain_signatures=_weak_intermediate_hashes(chain[1:]),
        revoked=revoked,
        chain_length=len(chain),
    )


def public_key_description(cert: x509.Certificate) -> tuple[str, int]:
    try:
        key = cert.public_key()
    except Exception:  # an algorithm cryptography does not know
        return ("unknown", 0)
    if isinstance(key, rsa.RSAPublicKey):
        return ("RSA", key.key_size)
    if isinstance(key, ec.EllipticCurvePublicKey):
        return ("EC", key.curve.key_size)
    if isinstance(key, dsa.DSAPublicKey):
        return ("DSA", key.key_size)
    if isinstance(key, ed25519.Ed25519PublicKey):
        return ("Ed25519", 256)
    if isinstance(key, ed448.Ed448PublicKey):
        return ("Ed448", 456)
    return ("unknown", 0)


def signature_hash(cert: x509.Certificate) -> str | None:
    try:
        algorithm = cert.signature_hash_algorithm
    except Exception:  # UnsupportedAlgorithm: e.g. MD2, which cryptography no longer names
        return "unknown"
    return algorithm.name if algorithm is not None else None


def subject_alt_names(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except Exception:  # absent, or malformed in a hostile certificate
        return ()
    entries = [*names.get_values_for_type(x509.DNSName)]
    entries += [str(address) for address in names.get_values_for_type(x509.IPAddress)]
    return tuple(safe_text(entry, NAME_CHARS) for entry in entries[:MAX_SANS])


def name_text(name: x509.Name) -> str:
    try:
        return safe_text(name.rfc4514_string(), NAME_CHARS)
    except Exception:  # undecodable attribute values
        return ""


def is_self_signed(cert: x509.Certificate) -> bool:
    return cert.issuer == cert.subject and _signed_by(cert, cert)


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except Exception:  # wrong name, bad signature, unsupported key: not its issuer
        return False
    return True


def _weak_intermediate_hashes(intermediates: Sequence[x509.Certificate]) -> tuple[str, ...]:
    # A root's own signature does not matter (it is trusted by being in the store).
    hashes = [signature_hash(cert) for cert in intermediates if not is_self_signed(cert)]
    return tuple(sorted({name for name in hashes if name in WEAK_HASHES}))


# --- linking the chain to an anchor ------------------------------------------------------------


def _relaxed_policies() -> tuple[ExtensionPolicy, ExtensionPolicy]:
    ca_policy = ExtensionPolicy.webpki_defaults_ca().may_be_present(
        x509.AuthorityKeyIdentifier, Criticality.AGNOSTIC, None
    )
    return ca_policy, ExtensionPolicy.permit_all()


def link_chain(
    chain: Sequence[x509.Certificate], anchors: TrustAnchors, now: dt.datetime
) -> ChainLink:
    """Does the chain link to an anchor? Judged when the leaf is valid, names aside.

    The verifier checks dates of every certificate at one moment. We pick a moment when the leaf
    is valid (its own dates are judged separately). If that fails but the chain does link by
    signatures to an anchor, we retry at a moment when every certificate of that path is valid;
    if there is none (a leaf that expired before its CA was made, which only test labs do), the
    signature path alone decides.
    """
    leaf = chain[0]
    moment = min(max(now, leaf.not_valid_before_utc), leaf.not_valid_after_utc)
    errors: list[str] = []
    for store_name, roots in anchors.stores:
        if roots and _verifies(chain, roots, moment, errors):
            return ChainLink(True, store_name, None, True, None, ())
    path = _signature_path(chain, anchors)
    if path is not None:
        store_name, certificates = path
        start = max(cert.not_valid_before_utc for cert in certificates)
        end = min(cert.not_valid_after_utc for cert in certificates)
        roots = dict(anchors.stores)[store_name]
        if start > end or _verifies(chain, roots, start, errors):
            return ChainLink(True, store_name, None, True, None, ())
    completed = _completed(chain, anchors, moment)
    if completed is not None:
        return completed
    return _diagnose(chain, anchors, errors)


def _completed(
    chain: Sequence[x509.Certificate], anchors: TrustAnchors, moment: dt.datetime
) -> ChainLink | None:
    """The chain links to an anchor once our known intermediates are added: it is incomplete,
    not untrusted. Which intermediate was missing is the first one the path needed."""
    known = [cert for _, cert in anchors.intermediates if cert not in chain]
    if not known:
        return None
    source = {id(cert): where for where, cert in anchors.intermediates}
    for store_name, roots in anchors.stores:
        if not roots:
            continue
        path = _verified_path([*chain, *known], roots, moment)
        if path is None:
            continue
        added = [cert for cert in path[1:] if cert not in chain and cert not in roots]
        if not added:
            return None  # trusted without our help after all: nothing is missing
        return ChainLink(True, store_name, None, False, name_text(added[0].subject),
                         _aia_ca_issuers(_last_linked(chain)), source.get(id(added[0])))
    return None


def _verifies(
    chain: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    moment: dt.datetime,
    errors: list[str],
) -> bool:
    return _verified_path(chain, roots, moment, errors) is not None


def _verified_path(
    chain: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    moment: dt.datetime,
    errors: list[str] | None = None,
) -> list[x509.Certificate] | None:
    """The path leaf -> ... -> root the verifier built from `chain`, or None."""
    ca_policy, ee_policy = _relaxed_policies()
    verifier = (
        PolicyBuilder()
        .store(Store(list(roots)))
        .time(moment)
        .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
        .build_client_verifier()
    )
    try:
        return list(verifier.verify(chain[0], list(chain[1:])).chain)
    except VerificationError as error:
        if errors is not None:
            errors.append(str(error))
    except Exception as error:  # a malformed certificate the verifier cannot process
        if errors is not None:
            errors.append(repr(error))
    return None


def _signature_path(
    chain: Sequence[x509.Certificate], anchors: TrustAnchors
) -> tuple[str, list[x509.Certificate]] | None:
    """Leaf -> ... -> anchor by issuer names and signatures, through the received certificates."""
    current, path = chain[0], [chain[0]]
    for _ in range(MAX_CHAIN):
        for store_name, roots in anchors.stores:
            root = next((r for r in roots if r.subject == current.issuer
                         and _signed_by(current, r)), None)
            if root is not None:
                return store_name, [*path, root]
        parent = next((c for c in chain if c not in path and c.subject == current.issuer
                       and _is_ca(c) and _signed_by(current, c)), None)
        if parent is None:
            return None
        path.append(parent)
        current = parent
    return None


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except Exception:
        return False


def _diagnose(
    chain: Sequence[x509.Certificate], anchors: TrustAnchors, errors: list[str]
) -> ChainLink:
    """Why the chain does not link: where does it end?"""
    last = _last_linked(chain)
    error = safe_text(errors[0], 300) if errors else "no trust anchor to check against"
    if is_self_signed(last):
        return ChainLink(False, None, error, True, None, ())
    root_names = {root.subject for _, roots in anchors.stores for root in roots}
    if last.issuer in root_names:  # complete, yet rejected (expired intermediate, bad key use...)
        return ChainLink(False, None, error, True, None, ())
    return ChainLink(
        False, None, error, False, name_text(last.issuer), _aia_ca_issuers(last)
    )


def _last_linked(chain: Sequence[x509.Certificate]) -> x509.Certificate:
    """Follow issuers through the received certificates (in any order) from the leaf."""
    current, seen = chain[0], {0}
    for _ in range(len(chain)):
        parent = next(
            (
                index
                for index, candidate in enumerate(chain)
                if index not in seen and candidate.subject == current.issuer
                and _signed_by(current, candidate)
            ),
            None,
        )
        if parent is None:
            return current
        seen.add(parent)
        current = chain[parent]
    return current


def _aia_ca_issuers(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        access = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except Exception:
        return ()
    urls = [
        description.access_location.value
        for description in access
        if description.access_method == AuthorityInformationAccessOID.CA_ISSUERS
        and isinstance(description.access_location, x509.UniformResourceIdentifier)
    ]
    return tuple(safe_text(url, NAME_CHARS) for url in urls[:MAX_AIA_URLS])


# --- names --------------------------------------------------------------------------------------


def name_matches(name: str, sans: Sequence[str]) -> bool:
    """RFC 6125 as browsers apply it: exact match, or a wildcard for exactly the leftmost label.

    The subject CN is ignored (browsers have required SANs since 2017). Names compare
    case-insensitively, without a trailing dot, internationalised names by their A-label.
    """
    wanted = _normalised(name)
    if not wanted:
        return False
    try:
        address = ipaddress.ip_address(wanted.strip("[]"))
    except ValueError:
        address = None
    for san in sans:
        if address is not None:
            if _same_address(address, san):
                return True
        elif _dns_match(wanted, _normalised(san)):
            return True
    return False


def _normalised(name: str) -> str:
    cleaned = name.strip().rstrip(".").lower()
    try:
        return cleaned.encode("idna").decode("ascii")
    except UnicodeError:
        return cleaned


def _same_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address, san: str) -> bool:
    try:
        return ipaddress.ip_address(san) == address
    except ValueError:
        return False


def _dns_match(wanted: str, pattern: str) -> bool:
    if not pattern:
        return False
    if pattern == wanted:
        return True
    if not pattern.startswith("*.") or "*" in pattern[2:]:
        return False
    suffix = pattern[2:]
    first, _, rest = wanted.partition(".")
    # "*.com" would cover a whole TLD: browsers refuse wildcards that broad.
    return bool(first) and rest == suffix and "." in suffix


# --- the verdict (pure) -------------------------------------------------------------------------


@dataclass(frozen=True)
class CertificateVerdict:
    days_left: int
    expired: bool
    not_yet_valid: bool
    expiring_soon: bool
    self_signed: bool
    untrusted_issuer: bool  # the chain does not link to an anchor (and is not a lone self-signed)
    incomplete_chain: bool  # an intermediate is missing from what the server sends
    hostname_mismatch: bool | None  # None: not checked (scanned by address, no address SANs)
    weak_signature: str | None  # leaf or intermediate signed with md5/sha1...
    revoked: bool
    trust_issues: tuple[str, ...]  # reasons for the T grade, in plain words
    name_issue: str | None  # reason for the M grade
    notes: tuple[str, ...]  # what could not be verified


def assess(
    cert: CertificateFacts, name: str, name_is_address: bool, now: dt.datetime
) -> CertificateVerdict:
    days_left = int((cert.not_after - now).total_seconds() // 86400)
    expired = now > cert.not_after
    not_yet_valid = now < cert.not_before
    weak = _weakest_signature(cert)
    # Incomplete: trusted once the missing intermediate is added. Untrusted: no path to an
    # anchor at all (which may also be an intermediate we do not have: we cannot tell).
    incomplete = cert.chain_trusted and not cert.chain_complete
    untrusted = not cert.chain_trusted and not cert.self_signed
    mismatch = _name_verdict(cert, name, name_is_address)
    verdict = CertificateVerdict(
        days_left=days_left,
        expired=expired,
        not_yet_valid=not_yet_valid,
        expiring_soon=not expired and not not_yet_valid and days_left < EXPIRING_SOON_DAYS,
        self_signed=cert.self_signed and not cert.chain_trusted,
        untrusted_issuer=untrusted,
        incomplete_chain=incomplete,
        hostname_mismatch=mismatch,
        weak_signature=weak,
        revoked=cert.revoked is True,
        trust_issues=(),
        name_issue=None,
        notes=(),
    )
    return _with_reasons(verdict, cert, name, name_is_address)


def _weakest_signature(cert: CertificateFacts) -> str | None:
    hashes = [cert.signature_hash, *cert.weak_chain_signatures]
    for weak in WEAK_HASHES:  # worst first
        if weak in hashes:
            return weak
    return None


def _name_verdict(cert: CertificateFacts, name: str, name_is_address: bool) -> bool | None:
    if name_matches(name, cert.sans):
        return False
    if name_is_address and not any(_is_address(san) for san in cert.sans):
        # The certificate names hosts, the user typed an address: which of those names clients
        # use cannot be known from here, so there is nothing to call a mismatch.
        return None
    return True


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _with_reasons(
    verdict: CertificateVerdict, cert: CertificateFacts, name: str, name_is_address: bool
) -> CertificateVerdict:
    issues: list[str] = []
    if verdict.expired:
        issues.append(f"certificate expired on {cert.not_after:%Y-%m-%d}")
    if verdict.not_yet_valid:
        issues.append(f"certificate not valid before {cert.not_before:%Y-%m-%d}")
    if verdict.self_signed:
        issues.append("self-signed certificate: no client trusts it")
    elif verdict.untrusted_issuer:
        issues.append(_untrusted_reason(verdict, cert))
    if verdict.weak_signature == "sha1":
        issues.append("SHA-1 certificate signature: browsers distrust it since 2017")
    if verdict.revoked:
        issues.append("the stapled OCSP response says the certificate is revoked")
    notes: list[str] = []
    if verdict.incomplete_chain:
        notes.append(
            f"intermediate '{cert.missing_issuer}' is missing from the chain the server sends; "
            f"with it (from {cert.completed_from or 'a known intermediate'}) the chain is "
            "trusted: browsers that fetch it (AIA) connect, apps and devices fail"
        )
    if verdict.hostname_mismatch is None:
        notes.append(
            f"scanned by address {name}: the certificate names {', '.join(cert.sans[:5]) or '-'};"
            " scan by hostname to check the name"
        )
    if cert.revoked is None:
        notes.append("revocation not checked (no stapled OCSP response; the CA is not contacted)")
    name_issue = None
    if verdict.hostname_mismatch:
        names = ", ".join(cert.sans[:5]) or "no subjectAltName at all"
        name_issue = f"certificate is for {names}, not {name}"
    return dataclasses.replace(
        verdict, trust_issues=tuple(issues), name_issue=name_issue, notes=tuple(notes)
    )


def _untrusted_reason(verdict: CertificateVerdict, cert: CertificateFacts) -> str:
    if not cert.chain_complete:
        return (
            f"issuer '{cert.missing_issuer}' is neither sent by the server nor a trusted root "
            "nor an intermediate the scanner knows (a private CA, or a missing intermediate of "
            "a CA it cannot check without fetching it)"
        )
    return f"certificate chain does not lead to a trusted root ({cert.chain_error or 'unknown'})"
