"""etcd: can an anonymous client read the key space?

Identification is by GET /version (the product file, etcd.toml). Then one read through the v3
gRPC gateway, which takes every call as a POST: a Range over the whole key space with
count_only, so the answer is how many keys there are, never a key or a value. Without auth the
gateway answers with the count; with auth enabled it refuses ("user name is empty", gRPC code
3) and etcd logs nothing. Nothing is written.
"""

from __future__ import annotations

import json

from scanner.checks.services.model import NOT_IDENTIFIED, Auth, ProbeOutcome
from scanner.core.text import safe_text
from scanner.net import Connector, Request

RANGE = Request(
    "POST", "/v3/kv/range", (("Content-Type", "application/json"),),
    body=b'{"key":"AA==","range_end":"AA==","count_only":true}', accept="application/json",
)
REPLY_CAP = 16 * 1024


def classify(status: int, body: bytes) -> ProbeOutcome:
    try:
        document = json.loads(body[:REPLY_CAP].decode("utf-8", "replace"))
    except (ValueError, RecursionError):
        return NOT_IDENTIFIED
    if not isinstance(document, dict):
        return NOT_IDENTIFIED
    if status == 200 and isinstance(document.get("header"), dict):
        count = str(document.get("count", "0"))
        count = count if count.isdigit() else "?"
        return ProbeOutcome(
            True, Auth.NONE,
            f"a count-only Range over all keys answered without credentials: {count} key(s)",
            product="etcd", facts={"keys": int(count) if count.isdigit() else None},
        )
    message = safe_text(str(document.get("message") or document.get("error") or ""), 160)
    if "user name is empty" in message or "permission denied" in message or (
        "token" in message and "invalid" in message
    ):
        return ProbeOutcome(True, Auth.REQUIRED, f"the key-space read was refused: {message}",
                            product="etcd")
    return NOT_IDENTIFIED


def probe(connector: Connector) -> ProbeOutcome:
    reply = connector.request(RANGE, body_cap=REPLY_CAP)
    if reply is None:
        return NOT_IDENTIFIED
    return classify(reply.status, reply.body)
