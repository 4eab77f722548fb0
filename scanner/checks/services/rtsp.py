"""RTSP (RFC 2326): does DESCRIBE answer without credentials?

OPTIONS tells an RTSP server is there; DESCRIBE of the server's root URL (no credentials)
answers 200 with an SDP description when the stream plays for anyone, 401 with
WWW-Authenticate when it asks for credentials, and 404 when the stream lives at a path we do
not know. We do not guess stream paths, so a 404 is "cannot be verified from outside".
"""

from __future__ import annotations

import contextlib
import re

from scanner import __version__
from scanner.checks.services.model import NOT_IDENTIFIED, Auth, ProbeOutcome
from scanner.core.text import safe_text
from scanner.net import Connector, NetError

CAP = 16 * 1024
_STATUS = re.compile(r"^RTSP/1\.\d (\d{3})(?: ([^\r\n]{0,80}))?")
DESCRIBE_TIMEOUTS = 2
_HEADER = re.compile(r"^([A-Za-z-]{1,40}):[ \t]*([^\r\n]{0,300})\r?$", re.MULTILINE)


def request(method: str, url: str, cseq: int, extra: str = "") -> bytes:
    return (
        f"{method} {url} RTSP/1.0\r\nCSeq: {cseq}\r\n"
        f"User-Agent: exposure/{__version__}\r\n{extra}\r\n"
    ).encode("ascii", "replace")


def parse_response(data: bytes) -> tuple[int, dict[str, str], str] | None:
    """(status, headers lowercased, body) of one RTSP response; None if it is not one."""
    text = data[:CAP].decode("utf-8", "replace")
    found = _STATUS.match(text)
    if not found:
        return None
    head, _, body = text.partition("\r\n\r\n")
    headers = {name.lower(): value.strip() for name, value in _HEADER.findall(head)}
    return int(found.group(1)), headers, body


def response_complete(data: bytes) -> bool:
    end = data.find(b"\r\n\r\n")
    if end == -1:
        return False
    length = re.search(rb"(?im)^content-length:\s*(\d{1,6})", data[:end])
    return len(data) >= end + 4 + (int(length.group(1)) if length else 0)


def classify(options: tuple[int, dict[str, str], str] | None,
             describe: tuple[int, dict[str, str], str] | None, url: str) -> ProbeOutcome:
    if options is None and describe is None:
        return NOT_IDENTIFIED
    facts: dict[str, str] = {}
    for parsed in (options, describe):
        if parsed and "server" in parsed[1]:
            facts["server"] = safe_text(parsed[1]["server"], 100)
    if options and "public" in options[1]:
        facts["methods"] = safe_text(options[1]["public"], 160)
    if describe is None:
        return ProbeOutcome(True, Auth.UNKNOWN, "RTSP answers OPTIONS; DESCRIBE got no answer",
                            facts=facts)
    status, headers, body = describe
    if status == 200 and ("v=0" in body or "application/sdp" in headers.get("content-type", "")):
        media = re.findall(r"(?m)^m=(\w{1,16})", body)[:8]
        facts["media"] = ", ".join(media)
        return ProbeOutcome(True, Auth.NONE,
                            f"DESCRIBE {url} without credentials: 200 with a session description "
                            f"({', '.join(media) or 'no media lines'})", facts=facts)
    if status == 401:
        scheme = safe_text(headers.get("www-authenticate", "").split(" ", 1)[0], 20)
        return ProbeOutcome(True, Auth.REQUIRED,
                            f"DESCRIBE {url} without credentials: 401 ({scheme or 'no scheme'})",
                            facts=facts)
    return ProbeOutcome(
        True, Auth.UNKNOWN, f"DESCRIBE {url} without credentials: {status}", facts=facts,
        notes=("the RTSP stream paths are not known from outside (we do not guess them), so "
               "whether a stream plays without credentials cannot be verified",),
    )


def probe(connector: Connector) -> ProbeOutcome:
    if connector.tls:
        return NOT_IDENTIFIED
    url = f"rtsp://{connector.endpoint.host}/"
    describe = None
    try:
        # DESCRIBE makes the server build its media pipeline first: two read timeouts
        with connector.open(cap=2 * CAP) as stream:
            stream.send(request("OPTIONS", url, 1))
            options = parse_response(stream.recv_until(response_complete, CAP))
            if options is None:
                return NOT_IDENTIFIED
            stream.read_timeout *= DESCRIBE_TIMEOUTS
            with contextlib.suppress(NetError):  # OPTIONS answered: RTSP all the same
                stream.send(request("DESCRIBE", url, 2, "Accept: application/sdp\r\n"))
                describe = parse_response(stream.recv_until(response_complete, CAP))
    except NetError:
        return NOT_IDENTIFIED
    return classify(options, describe, url)
