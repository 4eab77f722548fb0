"""Does an answer carry a definition's markers? Pure functions over capped, untrusted data.

Nothing here raises on what a server sent: unparsable JSON simply matches no JSON marker, a
regex runs on a bounded prefix of the body, and a JSON path walks at most a few levels.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

from scanner.checks.services.model import JsonMarker, JsonTest, Match
from scanner.core.text import safe_text
from scanner.net import HttpReply
from scanner.net.websocket import Opening

TEXT_CAP = 128 * 1024  # characters of a body the regexes look at
MAX_PATH_DEPTH = 8
_MISSING = object()


@lru_cache(maxsize=512)
def _pattern(regex: str) -> re.Pattern[str]:
    return re.compile(regex, re.IGNORECASE | re.DOTALL)


def body_text(body: bytes) -> str:
    return body[:TEXT_CAP].decode("utf-8", "replace")


def parse_json(body: bytes) -> Any:
    """The JSON document in `body`, or _MISSING when it is not JSON (never raises)."""
    text = body_text(body).strip()
    if not text or text[0] not in "{[":
        return _MISSING
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return _MISSING


def json_value(document: Any, path: str) -> Any:
    """The value at a dotted path ("" is the document); _MISSING when absent."""
    if document is _MISSING:
        return _MISSING
    if not path:
        return document
    value = document
    for step in path.split(".")[:MAX_PATH_DEPTH]:
        if isinstance(value, dict) and step in value:
            value = value[step]
        elif isinstance(value, list) and step.isdigit() and int(step) < len(value):
            value = value[int(step)]
        else:
            return _MISSING
    return value


def json_marker_holds(document: Any, marker: JsonMarker) -> bool:
    value = json_value(document, marker.path)
    if value is _MISSING:
        return False
    if marker.pattern is not None:
        if isinstance(value, dict | list):
            return False
        text = str(value).lower() if isinstance(value, bool) else str(value)
        return _pattern(marker.pattern).search(text[:4096]) is not None
    return _TESTS[marker.test](value) if marker.test else False


_TESTS = {
    JsonTest.PRESENT: lambda value: True,
    JsonTest.TRUE: lambda value: value is True,
    JsonTest.FALSE: lambda value: value is False,
    JsonTest.NULL: lambda value: value is None,
    JsonTest.EMPTY_OBJECT: lambda value: value == {},
    JsonTest.NON_EMPTY_LIST: lambda value: isinstance(value, list) and len(value) > 0,
}


def reply_matches(reply: HttpReply | None, match: Match) -> bool:
    """Every marker of `match` holds for this GET answer (None: the GET failed)."""
    if reply is None or match.ws_close_code is not None or match.ws_text:
        return False
    if match.status is not None and reply.status not in match.status:
        return False
    if match.headers:
        for name, regex in match.headers:
            value = reply.header(name)
            if value is None or not _pattern(regex).search(value[:1024]):
                return False
    if match.body:
        text = body_text(reply.body)
        if not all(_pattern(regex).search(text) for regex in match.body):
            return False
    if match.json:
        document = parse_json(reply.body)
        if not all(json_marker_holds(document, marker) for marker in match.json):
            return False
    return True


def opening_matches(opening: Opening | None, match: Match) -> bool:
    """Markers for a websocket opening: the server's close code or its first text frame."""
    if opening is None or not opening.upgraded or opening.first_frame is None:
        return False
    frame = opening.first_frame
    if match.ws_close_code is not None and frame.close_code != match.ws_close_code:
        return False
    if match.ws_text:
        if frame.opcode != 1:
            return False
        text = frame.payload.decode("utf-8", "replace")
        if not all(_pattern(regex).search(text) for regex in match.ws_text):
            return False
    return match.ws_close_code is not None or bool(match.ws_text)


def reply_value(reply: HttpReply | None, source: str, limit: int = 64) -> str | None:
    """A short fact from an answer: "header:NAME", or a JSON path; sanitised and capped."""
    if reply is None:
        return None
    if source.startswith("header:"):
        raw = reply.header(source.removeprefix("header:").lower())
    else:
        value = json_value(parse_json(reply.body), source)
        if value is _MISSING or isinstance(value, dict | list) or value is None:
            return None
        raw = str(value).lower() if isinstance(value, bool) else str(value)
    return safe_text(raw, limit) if raw else None


def describe(reply: HttpReply | None, limit: int = 160) -> str:
    """A one-line description of an answer for evidence: status and the start of the body."""
    if reply is None:
        return "no HTTP answer"
    snippet = " ".join(body_text(reply.body[:512]).split())
    text = f"GET {reply.path} -> {reply.status}"
    if snippet:
        text += f": {snippet}"
    return safe_text(text, limit)
