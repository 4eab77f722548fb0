"""rsync daemon: does it list its modules to anyone?

The daemon greets with "@RSYNCD: <version>"; we answer with our version and ask "#list", as
`rsync host::` and nmap's rsync-list-modules do. Every module not marked `list = no` comes
back with its comment, then "@RSYNCD: EXIT". A listed module tells anyone what is shared
(often whole backups); we never open a module, so nothing is read or written, and no
password is ever sent.
"""

from __future__ import annotations

import re

from scanner.checks.services.model import NOT_IDENTIFIED, Auth, ProbeOutcome
from scanner.core.text import safe_text
from scanner.net import Connector, NetError

GREETING = re.compile(rb"^@RSYNCD: (\d{1,3})(?:\.(\d{1,3}))?[^\n]{0,200}\n")
CLIENT_VERSION = b"@RSYNCD: 31.0\n"
LIST_CAP = 64 * 1024
MAX_MODULES = 50
EXIT = b"@RSYNCD: EXIT"


def listing_complete(data: bytes) -> bool:
    return EXIT in data or b"@ERROR" in data


def parse_greeting(data: bytes) -> str | None:
    found = GREETING.match(data[:256])
    if found is None:
        return None
    major, minor = found.group(1).decode(), (found.group(2) or b"0").decode()
    return f"{int(major)}.{int(minor)}"


def parse_listing(data: bytes) -> tuple[list[tuple[str, str]], str | None]:
    """(modules as (name, comment), the @ERROR text if the daemon refused). Never raises."""
    modules: list[tuple[str, str]] = []
    error = None
    for raw in data[:LIST_CAP].split(b"\n"):
        line = raw.rstrip(b"\r").decode("utf-8", "replace")
        if line.startswith("@RSYNCD:"):
            continue
        if line.startswith("@ERROR"):
            error = safe_text(line.removeprefix("@ERROR").lstrip(": "), 200)
            break
        name, _, comment = line.partition("\t")
        if name.strip() and len(modules) < MAX_MODULES:
            modules.append((safe_text(name.strip(), 64), safe_text(comment.strip(), 120)))
    return modules, error


def probe(connector: Connector) -> ProbeOutcome:
    if connector.tls:
        return NOT_IDENTIFIED
    try:
        with connector.open(cap=LIST_CAP + 1024) as stream:
            greeting = stream.recv_until(lambda data: b"\n" in data, 256)
            version = parse_greeting(greeting)
            if version is None:
                return NOT_IDENTIFIED
            stream.send(CLIENT_VERSION)
            stream.send(b"#list\n")
            listing = stream.recv_until(listing_complete, LIST_CAP)
    except NetError:
        return NOT_IDENTIFIED
    return outcome(version, *parse_listing(listing))


def outcome(version: str, modules: list[tuple[str, str]], error: str | None) -> ProbeOutcome:
    names = [name for name, _ in modules]
    facts = {"protocol_version": version, "modules": names}
    if modules:
        shown = ", ".join(f"{name} ({comment})" if comment else name for name, comment in modules)
        return ProbeOutcome(True, Auth.NONE, f"#list returned {len(modules)} module(s): {shown}",
                            product="rsync daemon", facts=facts)
    if error:
        return ProbeOutcome(True, Auth.REQUIRED, f"#list refused: {error}",
                            product="rsync daemon", facts={**facts, "refused": error})
    return ProbeOutcome(
        True, Auth.REQUIRED, "#list returned no module (every module is list = no)",
        product="rsync daemon", facts=facts,
        notes=("the rsync daemon lists no module; unlisted modules may still be readable by "
               "anyone who knows their name, which cannot be verified from outside",),
    )
