"""The Shodan view for people: one line per port of what an internet crawler records.

details.shodan.banner holds the text a crawler would index (an HTTP response head, a
greeting, the certificate). Printed whole it is noise: dates, ETags and cookies change at
every request, a garbage-stream port sends binary. The line keeps what identifies the
service (status line, Server, the page title, the certificate's name) and nothing that
varies between two requests or cannot be read.

What an MQTT broker "records" is told from the check's facts, never from the answer to our
own identification probe: that probe is refused by design (scanner.identification.mqtt), so
its CONNACK code says nothing about what the broker does with a real client.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from scanner.core.text import safe_text

RECORD_CHARS = 200
# Response headers worth a place on the line: they name the software or the login it asks for.
KEPT_HEADERS = ("server", "x-powered-by", "www-authenticate")
# Headers that change from one request to the next (never shown, here or in the full view).
VOLATILE_HEADERS = frozenset({
    "date", "etag", "last-modified", "expires", "age", "set-cookie", "x-request-id",
    "x-runtime", "cf-ray", "x-amz-request-id", "x-amz-cf-id", "request-id", "x-trace-id",
    "content-length", "keep-alive", "x-served-by", "x-timer", "report-to", "nel",
})
_MQTT_PROBE_LINE = re.compile(r"^MQTT Connection Code: \d+$")
_READABLE = re.compile(r"[\x20-\x7e]")


def compact_record(banner: str, details: Mapping[str, Any]) -> str:
    """One line: 'HTTP/1.1 200 OK · Server: nginx · title "Welcome" · certificate for x'."""
    sections = [part.strip() for part in banner.split("\n\n") if part.strip()]
    parts: list[str] = []
    for section in sections:
        if section.startswith("SSL Certificate"):
            continue  # told from details.tls below, or from its "Issued To" line
        parts += _section_parts(section, details)
    title = _mapping(details.get("http")).get("title")
    if isinstance(title, str) and title.strip():
        parts.append(f'title "{safe_text(title.strip(), 80)}"')
    certificate = _certificate_part(details, sections)
    if certificate:
        parts.append(certificate)
    line = " · ".join(dict.fromkeys(part for part in parts if part))
    return safe_text(line, RECORD_CHARS)


def clean_banner(banner: str) -> str:
    """The banner without volatile headers, with binary shown as such (for a folded view)."""
    sections = []
    for section in banner.split("\n\n"):
        if section.startswith("HTTP/"):
            lines = section.splitlines()
            kept = [lines[0]] + [line for line in lines[1:] if _header_name(line)
                                 not in VOLATILE_HEADERS]
            sections.append("\n".join(kept))
        elif section.startswith("SSL Certificate") or not looks_binary(section):
            sections.append(section)
        else:
            sections.append(f"(binary data, {len(section)} characters, not text)")
    return "\n\n".join(sections)


def _section_parts(section: str, details: Mapping[str, Any]) -> list[str]:
    first_line = section.splitlines()[0].strip()
    if section.startswith("HTTP/"):
        return [first_line, *_kept_headers(section)]
    if _MQTT_PROBE_LINE.match(first_line) or first_line.startswith("MQTT broker"):
        return [_mqtt_part(details)]
    if looks_binary(section):
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


def _mqtt_part(details: Mapping[str, Any]) -> str:
    anonymous = _mapping(details.get("mqtt")).get("anonymous")
    if anonymous is True:
        return "MQTT broker that lets clients in without a password"
    if anonymous is False:
        return "MQTT broker that asks clients for a password"
    return "MQTT broker"


def _certificate_part(details: Mapping[str, Any], sections: list[str]) -> str:
    certificate = _mapping(_mapping(details.get("tls")).get("certificate"))
    name = certificate.get("subject_cn") or certificate.get("subject")
    if not isinstance(name, str) or not name:
        name = next((line.split(":", 1)[1].strip() for section in sections
                     if section.startswith("SSL Certificate")
                     for line in section.splitlines() if line.startswith("Issued To:")), "")
    return f"certificate for {safe_text(name, 80)}" if name else ""


def looks_binary(text: str) -> bool:
    """Replacement characters, escapes or mostly unreadable bytes: not a text greeting."""
    if not text:
        return False
    if "\ufffd" in text or "\\e" in text:
        return True
    sample = text[:400]
    readable = len(_READABLE.findall(sample)) + sample.count("\n")
    return readable < 0.85 * len(sample)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
