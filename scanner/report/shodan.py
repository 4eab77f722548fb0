"""The Shodan view for people: one line per port of what an internet crawler records.

details.shodan.banner holds the text a crawler would index (an HTTP response head, a
greeting, the certificate); its record (scanner.identification.shodan_view.ShodanDetails)
tells its sections apart, so nothing here parses what the scanner wrote. Printed whole it is
noise: dates, ETags and cookies change at every request, a garbage-stream port sends binary.
The line keeps what identifies the service (status line, Server, the page title, the
certificate's name) and nothing that varies between two requests or cannot be read.

What an MQTT broker "records" is told from the check's facts, never from the answer to our
own identification probe: that probe is refused by design (scanner.identification.mqtt), so
its CONNACK code says nothing about what the broker does with a real client.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from scanner.core.details import BannerSection, CrawlerFacts, CrawlerView, PortDetails
from scanner.core.text import safe_text

RECORD_CHARS = 200
# Response headers worth a place on the line: they name the software or the login it asks for.
KEPT_HEADERS = ("server", "x-powered-by", "www-authenticate")
_READABLE = re.compile(r"[\x20-\x7e]")


def compact_record(crawler: CrawlerView, details: Iterable[PortDetails]) -> str:
    """One line: 'HTTP/1.1 200 OK · Server: nginx · title "Welcome" · certificate for x'.

    The crawler's view splits its own banner into sections; the port's other details add
    what they know (scanner.core.details.CrawlerFacts): the title, the certificate's name,
    what a line the scanner wrote stands for (an MQTT broker's answer to a real client)."""
    phrases: dict[str, str] = {}
    for item in details:
        found = item.crawler_phrase() if isinstance(item, CrawlerFacts) else None
        if found is not None:
            phrases.setdefault(found[0], found[1])
    parts: list[str] = []
    for section in crawler.sections():
        parts += _section_parts(section, phrases)
    parts.append(phrases.get("title", ""))
    name = crawler.certificate_name()
    fallback = f"certificate for {safe_text(name, 80)}" if name else ""
    parts.append(phrases.get("certificate", fallback))
    line = " · ".join(dict.fromkeys(part for part in parts if part))
    return safe_text(line, RECORD_CHARS)


def _section_parts(section: BannerSection, phrases: Mapping[str, str]) -> list[str]:
    first_line = section.text.splitlines()[0].strip()
    if section.kind == "certificate":
        return []  # told from details.tls, or from its "Issued To" line
    if section.kind == "http":
        return [first_line, *_kept_headers(section.text)]
    if section.kind == "service":
        return [phrases.get("service", section.text)]
    if looks_binary(section.text):
        return ["binary data (not text)"]
    return [first_line]


def _kept_headers(head: str) -> list[str]:
    kept = []
    for line in head.splitlines()[1:]:
        name = _header_name(line)
        if name in KEPT_HEADERS:
            kept.append(safe_text(line.strip(), 100))
    return kept


def _header_name(line: str) -> str:
    name, colon, _ = line.partition(":")
    return name.strip().lower() if colon else ""


def looks_binary(text: str) -> bool:
    """Replacement characters, escapes or mostly unreadable bytes: not a text greeting."""
    if not text:
        return False
    if "\ufffd" in text or "\\e" in text:
        return True
    sample = text[:400]
    readable = len(_READABLE.findall(sample)) + sample.count("\n")
    return readable < 0.85 * len(sample)
