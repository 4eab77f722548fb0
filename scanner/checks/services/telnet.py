"""Telnet: does the server ask for a login, or hand out a shell?

We refuse every option the server proposes (DO x -> WONT x, WILL x -> DONT x, RFC 854/855):
that is how a dumb terminal answers, and it lets the server go on to its prompt. Then we read
what it prints until it pauses, and look at the last line: "login:"/"Username:"/"Password:"
means credentials are asked for (in clear text); a shell prompt ($ # > %) without a login
prompt means anyone gets a shell. We type nothing.
"""

from __future__ import annotations

import re
import time

from scanner.checks.services.model import NOT_IDENTIFIED, Auth, ProbeOutcome
from scanner.core.text import safe_text
from scanner.net import Connector, NetError, Stream

IAC, DONT, DO, WONT, WILL, SB, SE = 255, 254, 253, 252, 251, 250, 240
CAP = 8 * 1024
IDLE = 0.3  # seconds of silence that end one burst of the server's output
MAX_ROUNDS = 12

_LOGIN = re.compile(r"(login|username|user name|user|password|passcode)\s*:\s*$", re.IGNORECASE)
_SHELL = re.compile(r"(^|[\s\]\)@:~/\w-])[$#>%]\s*$")


def split_telnet(data: bytes) -> tuple[bytes, list[tuple[int, int]]]:
    """Text without telnet commands, and the (command, option) negotiations found. Pure."""
    text = bytearray()
    negotiations: list[tuple[int, int]] = []
    i = 0
    while i < len(data):
        byte = data[i]
        if byte != IAC:
            text.append(byte)
            i += 1
            continue
        if i + 1 >= len(data):
            break
        command = data[i + 1]
        if command in (DO, DONT, WILL, WONT):
            if i + 2 < len(data):
                negotiations.append((command, data[i + 2]))
            i += 3
        elif command == SB:
            end = data.find(bytes([IAC, SE]), i + 2)
            i = len(data) if end == -1 else end + 2
        elif command == IAC:
            text.append(IAC)
            i += 2
        else:
            i += 2
    return bytes(text), negotiations


def refusals(negotiations: list[tuple[int, int]]) -> bytes:
    """Our answer to each request: WONT to DO, DONT to WILL (nothing to DONT/WONT)."""
    out = bytearray()
    for command, option in negotiations:
        if command == DO:
            out += bytes([IAC, WONT, option])
        elif command == WILL:
            out += bytes([IAC, DONT, option])
    return bytes(out)


def last_line(text: str) -> str:
    lines = [line.strip("\x00 \t") for line in text.replace("\r", "\n").split("\n")]
    lines = [line for line in lines if line]
    return lines[-1] if lines else ""


def classify(text: str) -> ProbeOutcome:
    """What the server printed (telnet commands removed) says. Pure; never raises."""
    line = last_line(text)
    shown = safe_text(line, 120)
    lines = [part for part in text.replace("\r", "").split("\n") if part.strip()]
    banner = safe_text(" | ".join(lines)[:400], 300)
    facts = {"banner": banner} if banner else {}
    if _LOGIN.search(line):
        return ProbeOutcome(True, Auth.REQUIRED, f"telnet prints a login prompt: {shown!r}",
                            facts=facts)
    if _SHELL.search(line) and not _LOGIN.search(text[-400:]):
        return ProbeOutcome(True, Auth.NONE,
                            f"telnet prints a shell prompt without asking to log in: {shown!r}",
                            facts=facts)
    return ProbeOutcome(True, Auth.UNKNOWN,
                        f"telnet answered but printed no login or shell prompt: {shown!r}",
                        facts=facts)


def probe(connector: Connector) -> ProbeOutcome:
    if connector.tls:
        return NOT_IDENTIFIED
    try:
        with connector.open(cap=CAP) as stream:
            raw, negotiated = _converse(stream)
    except NetError:
        return NOT_IDENTIFIED
    if not raw:
        return NOT_IDENTIFIED
    text, _ = split_telnet(raw)
    if not negotiated and not text.strip():
        return NOT_IDENTIFIED
    return classify(text.decode("utf-8", "replace"))


def _converse(stream: Stream) -> tuple[bytes, bool]:
    """Answer negotiations until a prompt shows, or the server waits for us (or caps end it).

    Each option is refused once: servers that re-offer (inetutils telnetd repeats WILL ECHO
    after our DONT) would otherwise keep us in a loop until the deadline.
    """
    received = bytearray()
    answered: set[tuple[int, int]] = set()
    for _ in range(MAX_ROUNDS):
        chunk = _read_until_pause(stream)
        if not chunk:
            break
        received += chunk
        text, negotiations = split_telnet(bytes(received))
        if _prompt_shown(text.decode("utf-8", "replace")):
            break
        fresh = [item for item in negotiations if item not in answered]
        answered.update(fresh)
        answer = refusals(fresh)
        if not answer:
            break  # nothing left to negotiate: the server waits for input
        stream.send(answer)
    return bytes(received), bool(answered)


def _prompt_shown(text: str) -> bool:
    line = last_line(text)
    return bool(_LOGIN.search(line) or _SHELL.search(line))


def _read_until_pause(stream: Stream) -> bytes:
    data = bytearray()
    pause_until = time.monotonic() + IDLE
    while True:
        try:
            chunk = stream.recv(until=pause_until)
        except NetError:
            break
        if not chunk:
            break
        data += chunk
        pause_until = time.monotonic() + IDLE
    return bytes(data)
