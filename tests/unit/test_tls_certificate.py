"""Certificate facts and verdicts: expired, not yet valid, self-signed, untrusted issuer,
incomplete chain, name mismatch, expiring soon — told apart from the certificates themselves."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID
from hypothesis import given
from hypothesis import strategies as st

from scanner.checks.tls.certificate import (
    CA_FILE,
    MOZILLA,
    TrustAnchors,
    assess,
    certificate_facts,
    load_trust_anchors,
    name_matches,
)
from tests.lab.pki import KeySpec, LabCA, self_signed
from tests.unit.test_tls_rating import NOW as RATING_NOW
from tests.unit.test_tls_rating import cert

NOW = dt.datetime.now(dt.UTC)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[LabCA, LabCA, Path]:
    directory = tmp_path_factory.mktemp("pki")
    root = LabCA(directory)
    return root, root.intermediate("Test Intermediate"), directory


def anchors_for(root: LabCA) -> TrustAnchors:
    return TrustAnchors(((CA_FILE, (root.cert,)),))


def test_leaf_of_a_trusted_root(pki: tuple[LabCA, LabCA, Path]) -> None:
    root, _, _ = pki
    leaf = root.issue("home.example")
    facts = certificate_facts([leaf.cert], anchors_for(root), NOW)
    assert facts.chain_trusted and facts.trust_anchor == CA_FILE and facts.chain_complete
    assert (facts.key_type, facts.key_bits, facts.signature_hash) == ("RSA", 2048, "sha256")
    assert facts.sans == ("home.example",) and not facts.self_signed
    verdict = assess(facts, "home.example", False, NOW)
    assert verdict.trust_issues == () and verdict.hostname_mismatch is False


def test_intermediate_sent_links_and_missing_intermediate_is_incomplete(
    pki: tuple[LabCA, LabCA, Path],
) -> None:
    root, intermediate, _ = pki
    leaf = intermediate.issue("home.example", filename="via-intermediate")
    complete = certificate_facts([leaf.cert, intermediate.cert], anchors_for(root), NOW)
    assert complete.chain_trusted and complete.chain_length == 2 and complete.chain_complete
    # The intermediate is known (a --ca-file with the root and the intermediate): the leaf sent
    # alone is an incomplete chain, trusted once completed, not an untrusted one.
    known = TrustAnchors(((CA_FILE, (root.cert,)),), ((CA_FILE, intermediate.cert),))
    alone = certificate_facts([leaf.cert], known, NOW)
    assert alone.chain_trusted and not alone.chain_complete and alone.completed_from == CA_FILE
    assert alone.missing_issuer is not None and "Test Intermediate" in alone.missing_issuer
    verdict = assess(alone, "home.example", False, NOW)
    assert verdict.incomplete_chain and not verdict.untrusted_issuer
    assert verdict.trust_issues == ()
    assert any("missing from the chain" in note for note in verdict.notes)


def test_unknown_issuer_is_untrusted_not_incomplete(pki: tuple[LabCA, LabCA, Path]) -> None:
    root, intermediate, _ = pki
    leaf = intermediate.issue("home.example", filename="unknown-intermediate")
    alone = certificate_facts([leaf.cert], anchors_for(root), NOW)
    assert not alone.chain_trusted and not alone.chain_complete
    verdict = assess(alone, "home.example", False, NOW)
    # Without the intermediate nothing proves the chain would be trusted: T, both causes named.
    assert verdict.untrusted_issuer and not verdict.incomplete_chain
    assert any("private CA" in issue for issue in verdict.trust_issues)


def test_ca_file_roots_are_anchors_and_its_other_cas_intermediates(
    pki: tuple[LabCA, LabCA, Path], tmp_path: Path,
) -> None:
    root, intermediate, _ = pki
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(root.pem + intermediate.pem)
    anchors = load_trust_anchors(bundle)
    assert dict(anchors.stores)[CA_FILE] == (root.cert,)
    assert (CA_FILE, intermediate.cert) in anchors.intermediates
    only_intermediate = tmp_path / "intermediate.pem"
    only_intermediate.write_bytes(intermediate.pem)
    assert dict(load_trust_anchors(only_intermediate).stores)[CA_FILE] == (intermediate.cert,)


def test_bundled_intermediates_link_to_mozilla_roots() -> None:
    """The shipped intermediates are genuine: each links by signature, through the bundle, to
    a root of Mozilla's store (and is a CA certificate valid now or later)."""
    from scanner.checks.tls.certificate import _bundled_intermediates, _mozilla_roots, _signed_by

    bundle = _bundled_intermediates()
    roots = _mozilla_roots()
    assert len(bundle) >= 10
    for intermediate in bundle:
        current, hops = intermediate, 0
        while not any(current.issuer == r.subject and _signed_by(current, r) for r in roots):
            parent = next(c for c in bundle if c.subject == current.issuer
                          and _signed_by(current, c))
            current, hops = parent, hops + 1
            assert hops < 4
        basic = intermediate.extensions.get_extension_for_class(x509.BasicConstraints).value
        assert basic.ca


def test_chain_order_does_not_matter(pki: tuple[LabCA, LabCA, Path]) -> None:
    root, intermediate, _ = pki
    leaf = intermediate.issue("home.example", filename="order")
    shuffled = certificate_facts([leaf.cert, root.cert, intermediate.cert], anchors_for(root), NOW)
    assert shuffled.chain_trusted


def test_self_signed_is_told_apart(pki: tuple[LabCA, LabCA, Path]) -> None:
    root, _, directory = pki
    own = self_signed(directory, "home.example")
    facts = certificate_facts([own.cert], anchors_for(root), NOW)
    assert facts.self_signed and not facts.chain_trusted
    verdict = assess(facts, "home.example", False, NOW)
    assert verdict.self_signed and not verdict.untrusted_issuer
    assert verdict.trust_issues == ("self-signed certificate: no client trusts it",)


def test_self_signed_certificate_the_user_trusts_with_ca_file(
    pki: tuple[LabCA, LabCA, Path],
) -> None:
    _, _, directory = pki
    own = self_signed(directory, "pinned.example")
    facts = certificate_facts([own.cert], TrustAnchors(((CA_FILE, (own.cert,)),)), NOW)
    assert facts.chain_trusted
    assert assess(facts, "pinned.example", False, NOW).trust_issues == ()


def test_unknown_root_is_an_untrusted_issuer(pki: tuple[LabCA, LabCA, Path]) -> None:
    root, _, directory = pki
    stranger = LabCA(directory / "stranger", common_name="Stranger CA")
    leaf = stranger.issue("home.example")
    facts = certificate_facts([leaf.cert, stranger.cert], anchors_for(root), NOW)
    assert not facts.chain_trusted and facts.chain_complete and not facts.self_signed
    verdict = assess(facts, "home.example", False, NOW)
    assert verdict.untrusted_issuer and not verdict.incomplete_chain


def test_expired_leaf_keeps_a_trusted_issuer(pki: tuple[LabCA, LabCA, Path]) -> None:
    root, _, _ = pki
    # Expired before the lab CA existed: only the signature path can show the issuer is fine.
    leaf = root.issue("home.example", filename="expired", not_before=NOW - dt.timedelta(days=100),
                      not_after=NOW - dt.timedelta(days=10))
    facts = certificate_facts([leaf.cert], anchors_for(root), NOW)
    assert facts.chain_trusted
    verdict = assess(facts, "home.example", False, NOW)
    assert verdict.expired and not verdict.untrusted_issuer and verdict.days_left < 0
    (issue,) = verdict.trust_issues
    assert issue.startswith("certificate expired")


def test_not_yet_valid(pki: tuple[LabCA, LabCA, Path]) -> None:
    root, _, _ = pki
    leaf = root.issue("home.example", filename="future", not_before=NOW + dt.timedelta(days=2))
    verdict = assess(certificate_facts([leaf.cert], anchors_for(root), NOW), "home.example",
                     False, NOW)
    assert verdict.not_yet_valid and not verdict.expired and not verdict.expiring_soon


@pytest.mark.parametrize("spec", [KeySpec("ec"), KeySpec("ed25519"), KeySpec("rsa", 1024)])
def test_key_descriptions(pki: tuple[LabCA, LabCA, Path], spec: KeySpec) -> None:
    root, _, _ = pki
    leaf = root.issue("home.example", filename=f"key-{spec.type}-{spec.size}", key=spec)
    facts = certificate_facts([leaf.cert], anchors_for(root), NOW)
    expected = {"ec": ("EC", 256), "ed25519": ("Ed25519", 256), "rsa": ("RSA", 1024)}[spec.type]
    assert (facts.key_type, facts.key_bits) == expected


def test_sha384_signature_is_recorded(pki: tuple[LabCA, LabCA, Path]) -> None:
    root, _, _ = pki
    leaf = root.issue("home.example", filename="sha384", hash_algorithm=hashes.SHA384())
    assert certificate_facts([leaf.cert], anchors_for(root), NOW).signature_hash == "sha384"


def test_aia_issuer_url_is_read_from_the_certificate_missing_its_issuer(
    pki: tuple[LabCA, LabCA, Path],
) -> None:
    root, intermediate, _ = pki
    leaf = intermediate.issue("home.example", filename="aia-base")
    with_aia = _reissue_with_aia(leaf.cert, intermediate, "http://ca.example/int.der")
    facts = certificate_facts([with_aia], anchors_for(root), NOW)
    assert facts.aia_ca_issuers == ("http://ca.example/int.der",)
    # An AIA URL alone proves nothing about trust (the scanner fetches nothing): untrusted.
    verdict = assess(facts, "home.example", False, NOW)
    assert verdict.untrusted_issuer and not verdict.incomplete_chain


def _reissue_with_aia(leaf: x509.Certificate, issuer: LabCA, url: str) -> x509.Certificate:
    aia = x509.AuthorityInformationAccess([x509.AccessDescription(
        AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(url))])
    builder = (
        x509.CertificateBuilder().subject_name(leaf.subject).issuer_name(leaf.issuer)
        .public_key(leaf.public_key()).serial_number(leaf.serial_number)
        .not_valid_before(leaf.not_valid_before_utc).not_valid_after(leaf.not_valid_after_utc)
        .add_extension(aia, critical=False)
        .add_extension(leaf.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value, critical=False)
    )
    return builder.sign(issuer.key, hashes.SHA256())  # type: ignore[arg-type]


def test_mozilla_store_and_ca_file_are_both_anchors(pki: tuple[LabCA, LabCA, Path]) -> None:
    root, _, _ = pki
    anchors = load_trust_anchors(root.cert_path)
    names = [name for name, _ in anchors.stores]
    assert names == [MOZILLA, CA_FILE]
    mozilla = dict(anchors.stores)[MOZILLA]
    assert len(mozilla) > 100
    assert any(r.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME) for r in mozilla)


# --- verdicts on facts --------------------------------------------------------------------------


@pytest.mark.parametrize(("days", "soon"), [(0, True), (20, True), (21, False), (60, False)])
def test_expiring_soon_is_under_21_days(days: int, soon: bool) -> None:
    facts = cert(not_after=NOW + dt.timedelta(days=days, hours=1))
    verdict = assess(facts, "home.example", False, NOW)
    assert verdict.expiring_soon is soon and verdict.days_left == days


def test_name_issue_lists_the_certificate_names() -> None:
    verdict = assess(cert(sans=("a.example", "b.example")), "home.example", False, NOW)
    assert verdict.hostname_mismatch
    assert verdict.name_issue == "certificate is for a.example, b.example, not home.example"


def test_no_san_is_a_mismatch() -> None:
    verdict = assess(cert(sans=()), "home.example", False, NOW)
    assert verdict.hostname_mismatch and "no subjectAltName" in (verdict.name_issue or "")


def test_address_scan_note() -> None:
    verdict = assess(cert(sans=("home.example",)), "198.51.100.7", True, NOW)
    assert verdict.hostname_mismatch is None and verdict.name_issue is None
    assert any("scan by hostname" in note for note in verdict.notes)


def test_revocation_unknown_is_a_note_not_an_issue() -> None:
    verdict = assess(dataclasses.replace(cert(), revoked=None), "home.example", False, RATING_NOW)
    assert verdict.trust_issues == () and any("revocation" in n for n in verdict.notes)


# --- name matching (RFC 6125 as browsers do it) -------------------------------------------------


@pytest.mark.parametrize(
    ("name", "sans", "matches"),
    [
        ("home.example", ["home.example"], True),
        ("HOME.Example.", ["home.example"], True),
        ("a.home.example", ["*.home.example"], True),
        ("home.example", ["*.home.example"], False),  # a wildcard needs a label
        ("a.b.home.example", ["*.home.example"], False),  # exactly one label
        ("x.com", ["*.com"], False),  # too broad
        ("home.example", ["h*.example"], False),  # partial wildcards: not matched
        ("198.51.100.7", ["198.51.100.7"], True),
        ("198.51.100.7", ["198.51.100.8", "home.example"], False),
        ("2001:db8::1", ["2001:db8:0::1"], True),
        ("bücher.example", ["xn--bcher-kva.example"], True),
        ("", ["home.example"], False),
    ],
)
def test_name_matching(name: str, sans: list[str], matches: bool) -> None:
    assert name_matches(name, sans) is matches


@given(st.text(max_size=300), st.lists(st.text(max_size=300), max_size=20))
def test_name_matching_never_raises(name: str, sans: list[str]) -> None:
    assert name_matches(name, sans) in (True, False)
