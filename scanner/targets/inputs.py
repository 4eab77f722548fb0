"""What the user typed on the command line, before resolution: target lists and host:port.

- `-iL FILE` (nmap's name) or `-iL -` / a target `-`: one target per line, `#` starts a
  comment, blank lines are skipped. Read with a size cap (it may be any file).
- `host:port` (nuclei's habit): the host is scanned, and the port is added to the port list.
  `[2001:db8::1]:443` for IPv6; a bare IPv6 address has no port (its colons are its own).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from scanner.errors import BadInput
from scanner.targets.ports import MAX_PORT

STDIN = "-"
MAX_LIST_BYTES = 1 << 20  # 1 MiB of target list is tens of thousands of targets
MAX_LIST_TARGETS = 65536


@dataclass(frozen=True)
class TargetInputs:
    hosts: tuple[str, ...]  # names, addresses and networks, as parse_targets takes them
    extra_ports: tuple[int, ...]  # from host:port, added to the port list


def collect_targets(
    arguments: Sequence[str], list_file: str | None = None, stdin: TextIO | None = None
) -> TargetInputs:
    """The targets of the arguments and of -iL, in order, host:port split."""
    texts: list[str] = []
    stdin_used = False
    for argument in arguments:
        if argument == STDIN:
            texts += _read_stream(stdin or sys.stdin, "standard input")
            stdin_used = True
        elif not argument.strip():
            raise BadInput("an empty target was given (a hostname, an IP address or a small "
                           "CIDR)")
        else:
            texts.append(argument.strip())
    if list_file is not None:
        if list_file == STDIN:
            if stdin_used:
                raise BadInput("standard input given twice (a target '-' and -iL -)")
            texts += _read_stream(stdin or sys.stdin, "standard input")
        else:
            texts += read_target_file(Path(list_file))
    if not texts:
        raise BadInput("no target given (a hostname, an IP address, a small CIDR, -iL FILE, or "
                       "--resume SCAN)")
    if len(texts) > MAX_LIST_TARGETS:
        raise BadInput(f"{len(texts)} targets; the limit is {MAX_LIST_TARGETS}")
    hosts: list[str] = []
    ports: list[int] = []
    for text in texts:
        host, port = split_host_port(text)
        hosts.append(host)
        if port is not None and port not in ports:
            ports.append(port)
    return TargetInputs(tuple(hosts), tuple(ports))


def read_target_file(path: Path) -> list[str]:
    label = f"-iL {path}"
    try:
        if path.is_dir():
            raise BadInput(f"{label}: is a directory, not a list of targets")
        with path.open("rb") as handle:
            data = handle.read(MAX_LIST_BYTES + 1)
    except FileNotFoundError:
        raise BadInput(f"{label}: no such file") from None
    except OSError as error:
        raise BadInput(f"{label}: cannot be read: {error.strerror or error}") from None
    if len(data) > MAX_LIST_BYTES:
        raise BadInput(f"{label}: larger than {MAX_LIST_BYTES // 1024} KiB; is it a target list?")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput(f"{label}: not text (a target list is one name or address per line)") \
            from None
    targets = parse_target_lines(text)
    if not targets:
        raise BadInput(f"{label}: no target in it (one per line; # starts a comment)")
    return targets


def _read_stream(stream: TextIO, label: str) -> list[str]:
    try:
        text = stream.read(MAX_LIST_BYTES + 1)
    except (OSError, UnicodeDecodeError) as error:
        raise BadInput(f"{label}: cannot be read as a target list: {error}") from None
    if len(text) > MAX_LIST_BYTES:
        raise BadInput(f"{label}: more than {MAX_LIST_BYTES // 1024} KiB of targets")
    targets = parse_target_lines(text)
    if not targets:
        raise BadInput(f"{label}: no target in it (one per line; # starts a comment)")
    return targets


def parse_target_lines(text: str) -> list[str]:
    """One target per line; `#` to the end of the line is a comment."""
    targets = []
    for line in text.splitlines():
        target = line.split("#", 1)[0].strip()
        if target:
            targets.append(target)
    return targets


def split_host_port(text: str) -> tuple[str, int | None]:
    """'home.example:8123' -> ('home.example', 8123); '[2001:db8::1]:443' -> ('2001:db8::1',
    443); '2001:db8::1' and 'home.example' have no port."""
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise BadInput(f"{text!r}: '[' without ']' (IPv6 with a port is [2001:db8::1]:443)")
        host, rest = text[1:end], text[end + 1:]
        if not rest:
            return host, None
        if not rest.startswith(":"):
            raise BadInput(f"{text!r}: expected ':PORT' after ']'")
        return host, _port(rest[1:], text)
    if text.count(":") == 1:
        host, port = text.split(":")
        if not host:
            raise BadInput(f"{text!r}: no host before ':'")
        return host, _port(port, text)
    return text, None


def _port(value: str, text: str) -> int:
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= MAX_PORT:
        raise BadInput(f"{text!r}: bad port {value!r} after ':' (ports are 1-{MAX_PORT})")
    return int(value)
