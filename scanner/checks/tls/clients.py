"""Reference clients: what modern browsers offer, for the "suites browsers actually negotiate" rule.

SSL Labs applies its forward-secrecy, AEAD and 64-bit-block-cipher penalties only to suites that
its reference browsers negotiate ("we will not penalize sites that use suites without forward
secrecy provided they are never negotiated with clients that can do better", SSL Labs grading
update of 2018-02-02). We model that with the cipher lists below, in each browser's own order,
and the server's preference (see rating.negotiated_suite).

Data as of 2025-05 (Chrome 131 / Edge / Android share BoringSSL's list; Firefox 133 (NSS);
Safari 17 (macOS 14 / iOS 17)), from the browsers' ClientHello; cross-checked against the SSL Labs
client list shipped with testssl.sh 3.0.8 (etc/client-simulation.txt: Chrome 79, Firefox 71,
Safari 13), minus what the browsers removed since (3DES in Chrome 93 / Firefox 93, DHE in
Firefox 78, TLS 1.0/1.1 in all three in 2020). Names are IANA names, as sslyze reports them.
"""

from __future__ import annotations

from dataclasses import dataclass

TLS13_SUITES_DEFAULT = (
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
)


@dataclass(frozen=True)
class ReferenceClient:
    name: str
    versions: tuple[str, ...]  # protocol versions the client offers, e.g. ("TLSv1.2", "TLSv1.3")
    suites: tuple[str, ...]  # TLS 1.2-and-below suites, in the client's order of preference
    tls13_suites: tuple[str, ...] = TLS13_SUITES_DEFAULT


CHROME = ReferenceClient(
    name="Chrome 131",
    versions=("TLSv1.2", "TLSv1.3"),
    suites=(
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
        "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
        "TLS_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_RSA_WITH_AES_256_GCM_SHA384",
        "TLS_RSA_WITH_AES_128_CBC_SHA",
        "TLS_RSA_WITH_AES_256_CBC_SHA",
    ),
)

FIREFOX = ReferenceClient(
    name="Firefox 133",
    versions=("TLSv1.2", "TLSv1.3"),
    suites=(
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
        "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
        "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
        "TLS_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_RSA_WITH_AES_256_GCM_SHA384",
        "TLS_RSA_WITH_AES_128_CBC_SHA",
        "TLS_RSA_WITH_AES_256_CBC_SHA",
    ),
    tls13_suites=(
        "TLS_AES_128_GCM_SHA256",
        "TLS_CHACHA20_POLY1305_SHA256",
        "TLS_AES_256_GCM_SHA384",
    ),
)

SAFARI = ReferenceClient(
    name="Safari 17",
    versions=("TLSv1.2", "TLSv1.3"),
    suites=(
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
        "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
        "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
        "TLS_RSA_WITH_AES_256_GCM_SHA384",
        "TLS_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_RSA_WITH_AES_256_CBC_SHA",
        "TLS_RSA_WITH_AES_128_CBC_SHA",
        "TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA",
        "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
        "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    ),
)

REFERENCE_CLIENTS: tuple[ReferenceClient, ...] = (CHROME, FIREFOX, SAFARI)


def probe_suites(clients: tuple[ReferenceClient, ...] = REFERENCE_CLIENTS) -> tuple[str, ...]:
    """Every TLS 1.2 suite some reference client offers, once, in first-seen order.

    The server's preference order is measured over these only: it is all the model needs.
    """
    return tuple(dict.fromkeys(suite for client in clients for suite in client.suites))
