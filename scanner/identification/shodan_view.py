"""The Shodan view: what an internet-wide scanner stores about a port, and how to find it.

Shodan, Censys and the botnets keep roughly what a service says unprompted (or the HTTP
response head) plus the TLS certificate, and make it searchable. Showing the user that
text, and the exact queries that list their host, makes "it is on the internet" concrete.
Pure functions over what identification learnt; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scanner.core.details import BannerSection, DetailsRecord
from scanner.core.text import safe_text

BANNER_CHARS = 4096
# What the banner says for an MQTT broker: our identification probe is refused by design, so
# its answer is not what a crawler records (older reports: "MQTT Connection Code: N").
MQTT_BANNER = "MQTT broker (answers an MQTT CONNECT)"
MQTT_BANNER_BEFORE = "MQTT Connection Code: "
CERTIFICATE_HEADING = "SSL Certificate"
ISSUED_TO = "Issued To: "
QUERY_VALUE_CHARS = 100
MAX_SAN_QUERIES = 3


@dataclass(frozen=True)
class ShodanEvidence:
    port: int
    service: str | None = None
    product: str | None = None  # as Shodan's product: filter names it
    version: str | None = None
    greeting: str | None = None  # what the service sent first (already printable)
    http_head: str | None = None  # the response head to GET /
    title: str | None = None
    favicon_mmh3: int | None = None
    certificate: dict[str, Any] | None = None  # tls.parse_certificate output
    mqtt_return_code: int | None = None


@dataclass(frozen=True)
class ShodanDetails(DetailsRecord):
    """details.shodan: the text a crawler indexes for the port, and the queries that find it.
    Reports show it in a section of its own (scanner.core.details.CrawlerView), not as rows."""

    TABLE_RANK = 200

    banner: str = ""
    queries: tuple[str, ...] = ()

    def sections(self) -> tuple[BannerSection, ...]:
        """The banner's parts: what the scanner wrote in it is told from what servers sent."""
        parts = [part.strip() for part in self.banner.split("\n\n") if part.strip()]
        return tuple(_section(part) for part in parts)

    def certificate_name(self) -> str:
        """Whom the certificate block of the banner says it was issued to ('' if none)."""
        for section in self.sections():
            if section.kind == "certificate":
                for line in section.text.splitlines():
                    if line.startswith(ISSUED_TO):
                        return line[len(ISSUED_TO):].strip()
        return ""


def _section(part: str) -> BannerSection:
    if part.startswith("HTTP/"):
        return BannerSection("http", part)
    if part.startswith(CERTIFICATE_HEADING):
        return BannerSection("certificate", part)
    first = part.splitlines()[0]
    if first == MQTT_BANNER or (first.startswith(MQTT_BANNER_BEFORE)
                                and first[len(MQTT_BANNER_BEFORE):].isdigit()):
        # a line we wrote: shown as what it stands for, with what the mqtt check learnt
        return BannerSection("service", "MQTT broker")
    return BannerSection("other", part)


def shodan_view(evidence: ShodanEvidence) -> dict[str, Any]:
    return ShodanDetails(shodan_banner(evidence), tuple(shodan_queries(evidence))).to_dict()


DETAILS = {"shodan": ShodanDetails.from_dict}


def shodan_banner(evidence: ShodanEvidence) -> str:
    """The text a scanner would index for this port."""
    parts: list[str] = []
    if evidence.http_head:
        parts.append(evidence.http_head)
    elif evidence.greeting:
        parts.append(evidence.greeting)
    elif evidence.mqtt_return_code is not None:
        # Not our probe's CONNACK code: the probe is refused by design (protocol level 0), so
        # its code is ours, not what a crawler's CONNECT would get. The mqtt check tells that.
        parts.append(MQTT_BANNER)
    if evidence.certificate:
        parts.append(_certificate_block(evidence.certificate))
    return safe_text("\n\n".join(parts), BANNER_CHARS, keep_newlines=True)


def _certificate_block(certificate: dict[str, Any]) -> str:
    lines = [
        CERTIFICATE_HEADING,
        f"Issued By: {certificate.get('issuer', '')}",
        f"{ISSUED_TO}{certificate.get('subject', '')}",
    ]
    if certificate.get("sans"):
        lines.append("Subject Alternative Names: " + ", ".join(certificate["sans"]))
    lines.append(f"Valid: {certificate.get('not_before')} to {certificate.get('not_after')}")
    return "\n".join(lines)


def shodan_queries(evidence: ShodanEvidence) -> list[str]:
    """Search queries that would list this host, most specific first; no duplicates."""
    queries = [
        *_certificate_queries(evidence.certificate),
        *_http_queries(evidence),
        *_product_queries(evidence),
        *_text_queries(evidence),
    ]
    return list(dict.fromkeys(query for query in queries if query))


def _certificate_queries(certificate: dict[str, Any] | None) -> list[str]:
    if not certificate:
        return []
    queries: list[str] = []
    if certificate.get("sha256"):
        queries.append(f"ssl.cert.fingerprint:{_quoted(certificate['sha256'])}")
    if certificate.get("subject_cn"):
        queries.append(f"ssl.cert.subject.cn:{_quoted(certificate['subject_cn'])}")
    for name in certificate.get("sans", [])[:MAX_SAN_QUERIES]:
        queries.append(f"ssl:{_quoted(name)}")
    return queries


def _http_queries(evidence: ShodanEvidence) -> list[str]:
    queries: list[str] = []
    if evidence.title:
        queries.append(f"http.title:{_quoted(evidence.title)}")
    if evidence.favicon_mmh3 is not None:
        queries.append(f"http.favicon.hash:{evidence.favicon_mmh3}")
    return queries


def _product_queries(evidence: ShodanEvidence) -> list[str]:
    if not evidence.product:
        return []
    product = _quoted(evidence.product)
    queries = [f"product:{product} port:{evidence.port}"]
    if evidence.version:
        queries.append(f"product:{product} version:{_quoted(evidence.version)}")
    return queries


def _text_queries(evidence: ShodanEvidence) -> list[str]:
    """Free-text search on the banner line, for services without a product name."""
    if evidence.mqtt_return_code is not None:
        return [f'"MQTT Connection Code" port:{evidence.port}']
    if evidence.service == "ssh" and evidence.greeting:
        return [_quoted(evidence.greeting.split("\n", 1)[0])]
    if evidence.greeting and not evidence.product:
        return [f"{_quoted(evidence.greeting.split(chr(10), 1)[0])} port:{evidence.port}"]
    return []


def _quoted(value: object) -> str:
    """A double-quoted query value; Shodan has no escape for quotes, so they are dropped."""
    text = safe_text(str(value), QUERY_VALUE_CHARS).replace('"', "").replace("\\", "")
    return f'"{text}"'
