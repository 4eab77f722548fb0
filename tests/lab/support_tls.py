"""Lab services for the TLS grade: one nginx with a server block per TLS configuration,
GnuTLS servers for what Debian's OpenSSL 3 cannot offer (RC4; Camellia-GCM, which no OpenSSL
has), and mosquitto speaking MQTT over TLS (TLS on a port where no HTTP runs).

Also runnable inside the scan namespace to grade one endpoint with the TLS check alone:

    python -m tests.lab.support_tls ADDRESS PORT NAME|- CA_FILE [SERVICE [HSTS-HEADER]]
    python -m tests.lab.support_tls many ADDRESS PORT,PORT,... NAME|- CA_FILE

print JSON: {"seconds", "details", "findings", "notes"} for one endpoint, {"seconds", "grades",
...} for several graded together (NAME "-" means "the user typed the address").
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .daemons import (
    Daemon,
    NginxSite,
    _launch,
    _private_dir,
    resolve_place,
    start_mosquitto,
    start_nginx,
)
from .pki import Issued, KeySpec, self_signed
from .services import Service

if TYPE_CHECKING:
    from .netns import Lab

HSTS_HEADER = "max-age=31536000"  # one year: >= 180 days, what A+ needs
HSTS = f'add_header Strict-Transport-Security "{HSTS_HEADER}" always;'
# Mozilla "intermediate" (v5.7) minus DHE: nginx offers DHE only with ssl_dhparam.
MODERN_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
)
MISMATCH_NAME = "other.example"
INTERMEDIATE_NAME = "Exposure Lab TLS Intermediate"
GNUTLS_SERV = "/usr/bin/gnutls-serv"


@dataclass(frozen=True)
class TlsEndpoint:
    port: int
    name: str  # short id used by the tests
    description: str
    hsts: bool = True  # its HTTPS answers carry Strict-Transport-Security


ENDPOINTS = (
    TlsEndpoint(443, "modern", "TLS 1.2+1.3, ECDHE+AEAD, HSTS one year"),
    TlsEndpoint(8443, "modern_no_hsts", "as modern, no HSTS, non-standard port", hsts=False),
    TlsEndpoint(10443, "legacy", "TLS 1.0/1.1/1.2 with CBC suites, HSTS"),
    TlsEndpoint(10444, "no_fs", "TLS 1.2 with RSA key exchange only, HSTS"),
    TlsEndpoint(10445, "anonymous", "TLS 1.2 with anonymous ECDH suites enabled, HSTS"),
    TlsEndpoint(10446, "expired", "modern, certificate expired 10 days ago, HSTS"),
    TlsEndpoint(10447, "self_signed", "modern, self-signed certificate, HSTS"),
    TlsEndpoint(10448, "mismatch", f"modern, certificate for {MISMATCH_NAME}, HSTS"),
    TlsEndpoint(10449, "incomplete_chain", "modern, leaf of an intermediate sent alone, HSTS"),
    TlsEndpoint(10450, "expiring", "modern, 10 days left, intermediate sent, HSTS"),
    TlsEndpoint(10451, "weak_key", "modern, RSA 1024 certificate, HSTS"),
    TlsEndpoint(10452, "null_only", "TLS 1.2 with NULL suites only (no encryption), HSTS"),
)
# GnuTLS's own server: suites sslyze's connectivity test (and Debian's OpenSSL 3) cannot use.
# GnuTLS priority strings: https://gnutls.org/manual/html_node/Priority-Strings.html
GNUTLS_ENDPOINTS = (
    (TlsEndpoint(10453, "rc4_only", "GnuTLS, TLS 1.0-1.2 with RC4 suites only", hsts=False),
     "NONE:+VERS-TLS1.2:+VERS-TLS1.1:+VERS-TLS1.0:+ARCFOUR-128:+RSA:+ECDHE-RSA:+SHA1:+MD5:"
     "+COMP-NULL:+SIGN-ALL:+CURVE-ALL"),
    (TlsEndpoint(10454, "camellia_gcm_only", "GnuTLS, TLS 1.2 with Camellia-GCM only (no OpenSSL "
                 "has it)", hsts=False),
     "NONE:+VERS-TLS1.2:+CAMELLIA-128-GCM:+ECDHE-RSA:+AEAD:+COMP-NULL:+SIGN-ALL:+CURVE-ALL"),
)
MQTT_TLS_PORT = 8883
BY_NAME = {endpoint.name: endpoint for endpoint in ENDPOINTS}
BY_NAME.update({endpoint.name: endpoint for endpoint, _ in GNUTLS_ENDPOINTS})


def _certificates(lab: Lab) -> dict[str, Issued]:
    assert lab.ca is not None and lab.home_cert is not None
    now = dt.datetime.now(dt.UTC)
    pki = lab.tmpdir / "pki-tls"
    intermediate = lab.ca.intermediate(INTERMEDIATE_NAME)
    return {
        "expired": lab.ca.issue(lab.HOSTNAME, filename="expired", not_before=now
                                - dt.timedelta(days=100), not_after=now - dt.timedelta(days=10)),
        "self_signed": self_signed(pki, lab.HOSTNAME),
        "mismatch": lab.ca.issue(MISMATCH_NAME, filename="mismatch"),
        "incomplete_chain": intermediate.issue(lab.HOSTNAME, filename="intermediate-leaf"),
        "expiring": intermediate.issue(lab.HOSTNAME, filename="expiring",
                                       not_after=now + dt.timedelta(days=10)),
        "weak_key": lab.ca.issue(lab.HOSTNAME, filename="weak-key", key=KeySpec("rsa", 1024)),
    }


def tls_sites(lab: Lab) -> list[NginxSite]:
    assert lab.home_cert is not None
    certs = _certificates(lab)
    port = {endpoint.name: endpoint.port for endpoint in ENDPOINTS}

    def modern(name: str, cert: Issued, **extra: object) -> NginxSite:
        return NginxSite(port[name], tls=cert, ciphers=MODERN_CIPHERS, extra=HSTS,
                         **extra)  # type: ignore[arg-type]

    return [
        modern("modern", lab.home_cert),
        NginxSite(port["modern_no_hsts"], tls=lab.home_cert, ciphers=MODERN_CIPHERS),
        NginxSite(port["legacy"], tls=lab.home_cert, protocols="TLSv1 TLSv1.1 TLSv1.2",
                  ciphers="ECDHE+AESGCM:ECDHE+AES:@SECLEVEL=0", extra=HSTS),
        NginxSite(port["no_fs"], tls=lab.home_cert, protocols="TLSv1.2",
                  ciphers="AES128-GCM-SHA256:AES256-GCM-SHA384", extra=HSTS),
        NginxSite(port["anonymous"], tls=lab.home_cert, protocols="TLSv1.2",
                  ciphers="aNULL:!eNULL:ECDHE+AESGCM:@SECLEVEL=0", extra=HSTS),
        modern("expired", certs["expired"]),
        modern("self_signed", certs["self_signed"]),
        modern("mismatch", certs["mismatch"]),
        modern("incomplete_chain", certs["incomplete_chain"], send_chain=False),
        modern("expiring", certs["expiring"]),
        NginxSite(port["weak_key"], tls=certs["weak_key"],
                  ciphers=MODERN_CIPHERS + ":@SECLEVEL=0", extra=HSTS),
        NginxSite(port["null_only"], tls=lab.home_cert, protocols="TLSv1.2",
                  ciphers="NULL-SHA256:NULL-SHA:@SECLEVEL=0", extra=HSTS),
    ]


def ca_bundle(lab: Lab) -> Path:
    """The lab root and the TLS intermediate in one PEM file, as a private CA's users get it:
    with it as --ca-file, the leaf sent alone is an incomplete chain, not an untrusted one."""
    assert lab.ca is not None
    slug = INTERMEDIATE_NAME.lower().replace(" ", "-")
    intermediate = lab.ca.directory / f"{slug}.crt"
    bundle = lab.tmpdir / "pki-tls" / "ca-bundle.pem"
    bundle.write_bytes(lab.ca.cert_path.read_bytes() + intermediate.read_bytes())
    return bundle


def start_gnutls(lab: Lab, endpoint: TlsEndpoint, priority: str) -> Daemon:
    """gnutls-serv answering HTTP over TLS on every address of the home host."""
    assert lab.home_cert is not None
    place, _ = resolve_place(lab)
    name = f"gnutls-{endpoint.name}"
    directory = _private_dir(place, name)
    argv = [GNUTLS_SERV, "--http", "--port", str(endpoint.port), "--priority", priority,
            "--x509certfile", str(lab.home_cert.chain_path),
            "--x509keyfile", str(lab.home_cert.key_path)]
    return _launch(place, name, argv, [endpoint.port], directory)


def tls_nginx() -> Service:
    def start(lab: Lab) -> list[Daemon]:
        return [start_nginx(lab, tls_sites(lab), name="nginx-tls")]

    return Service("nginx-tls", {e.port: f"nginx TLS: {e.description}" for e in ENDPOINTS}, start)


def mqtt_tls(port: int = MQTT_TLS_PORT) -> Service:
    """mosquitto with TLS on `port`: TLS options follow each listener line, so the IPv6 listener
    is declared (with its own certfile) in the extra config."""

    def start(lab: Lab) -> list[Daemon]:
        assert lab.home_cert is not None
        tls = f"certfile {lab.home_cert.chain_path}\nkeyfile {lab.home_cert.key_path}"
        extra = f"{tls}\nlistener {port} {lab.HOME_V6}\n{tls}"
        return [start_mosquitto(lab, port, addresses=[lab.HOME_V4], extra_config=extra,
                                name="mosquitto-tls")]

    return Service("mosquitto-tls", {port: "mosquitto MQTT over TLS"}, start)


def gnutls_servers() -> Service:
    def start(lab: Lab) -> list[Daemon]:
        return [start_gnutls(lab, endpoint, priority) for endpoint, priority in GNUTLS_ENDPOINTS]

    return Service("gnutls", {e.port: e.description for e, _ in GNUTLS_ENDPOINTS}, start)


def tls_services() -> list[Service]:
    return [tls_nginx(), gnutls_servers(), mqtt_tls()]


# --- grading one endpoint in-process (run inside the scan namespace) --------------------------


def grade_one(
    address: str, port: int, name: str | None, ca_file: str, service: str = "http",
    hsts_header: str | None = None,
) -> dict[str, object]:

    from scanner.checks.base import CheckOptions, standalone_context
    from scanner.checks.tls.check import CHECK
    from scanner.identification.model import ServiceIdentity
    from scanner.targets import Target

    headers = {"strict-transport-security": hsts_header} if hsts_header else {}
    identity = ServiceIdentity(service=service, tls=True, details={"http": {"headers": headers}})
    target = Target(name or address, ipaddress.ip_address(address), name)
    context = standalone_context(target, port, identity, CheckOptions(ca_file=Path(ca_file)))
    started = time.monotonic()
    result = CHECK.run(context)
    return {
        "seconds": time.monotonic() - started,
        "details": result.details.get("tls"),
        "findings": [finding.to_dict() for finding in result.findings],
        "notes": list(result.notes),
    }


def grade_many(address: str, ports: list[int], name: str | None, ca_file: str) -> dict[str, object]:
    """Grade several endpoints of one host the way the pipeline does (checks runner, ports in
    parallel, one connection pool per host); identities say HTTPS with a one-year HSTS."""

    from scanner.checks.base import CheckOptions
    from scanner.checks.runner import run_checks
    from scanner.checks.tls.check import CHECK
    from scanner.identification.model import ServiceIdentity
    from scanner.targets import Target

    headers = {"strict-transport-security": HSTS_HEADER}
    identity = ServiceIdentity(service="http", tls=True, details={"http": {"headers": headers}})
    target = Target(name or address, ipaddress.ip_address(address), name)
    started = time.monotonic()
    outcome = run_checks(target, dict.fromkeys(ports, identity),
                         CheckOptions(ca_file=Path(ca_file)), [CHECK])
    return {
        "seconds": time.monotonic() - started,
        "grades": {port: checks.details.get("tls", {}).get("grade")
                   for port, checks in outcome.items()},
        "scan_seconds": {port: checks.details.get("tls", {}).get("scan_seconds")
                         for port, checks in outcome.items()},
        "errors": [error.to_dict() for checks in outcome.values() for error in checks.errors],
    }


def main(argv: list[str]) -> int:
    if argv and argv[0] == "many":
        _, address, ports, name, ca_file = argv
        report = grade_many(address, [int(p) for p in ports.split(",")],
                            None if name == "-" else name, ca_file)
    else:
        address, port, name, ca_file, *rest = argv
        report = grade_one(address, int(port), None if name == "-" else name, ca_file, *rest)
    print(json.dumps(report, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
