"""Every bad input exits 2 with one truthful line, before any packet is sent.

The table is data: tests/lab/showcase.py prints it (command, exit code, message) for the
issue's closing note. Each scan targets a listener on loopback; after the command it must
not have seen a single connection, so "before any packet" is checked, not assumed.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from scanner.cli import main
from scanner.store import Store

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class BadInput:
    argv: tuple[str, ...]  # {tmp} is a fresh directory, {port} the loopback listener
    says: str  # part of the one line on stderr


def _scan(*extra: str) -> tuple[str, ...]:
    return ("scan", LOOPBACK, "-p", "{port}", "--engine", "connect", "--no-store", *extra)


BAD_INPUTS = (
    BadInput(_scan("-o", "/nonexistent/dir/r.json"), "directory /nonexistent/dir does not exist"),
    BadInput(_scan("-o", "/tmp"), "-o /tmp: is a directory; name a file in it"),
    BadInput(_scan("-o", "{tmp}/r.html", "--format", "json"), "is html by its name"),
    BadInput(_scan("-o", "{tmp}/a.json", "-o", "{tmp}/a.json"), "the same destination twice"),
    BadInput(_scan("-oA", "-"), "-oA needs a base name"),
    BadInput(_scan("--ca-file", "{tmp}/hostname"), "not a PEM file of CA certificates"),
    BadInput(_scan("--ca-file", "{tmp}/key.pem"), "not a PEM file of CA certificates"),
    BadInput(_scan("--ca-file", "{tmp}/broken.pem"), "a certificate in it cannot be parsed"),
    BadInput(_scan("--ca-file", "{tmp}/missing.pem"), "no such file"),
    BadInput(_scan("--ca-file", "{tmp}"), "is a directory, not a PEM file"),
    BadInput(("scan", LOOPBACK, "-p", "{port}", "--db", "/proc/x.db"),
             "--db /proc/x.db: cannot be created: /proc does not accept new files (a proc file "
             "system)"),
    BadInput(("scan", LOOPBACK, "-p", "{port}", "--db", "{tmp}"), "is a directory"),
    BadInput(("scan", "999.1.1.1"), "'999.1.1.1' is not a valid IPv4 address (999 is more than"),
    BadInput(("scan", "1.2.3"), "is not a valid IPv4 address (it needs four numbers"),
    BadInput(("scan", "2001:db8::zz"), "is not a valid IPv6 address"),
    BadInput(("scan", "home.123"), "not a hostname (no top-level domain is a number)"),
    BadInput(("scan", "127.0.0.1:99999"), "bad port '99999' after ':'"),
    BadInput(("scan", "-iL", "{tmp}/missing.txt"), "-iL {tmp}/missing.txt: no such file"),
    BadInput(("scan", "-iL", "{tmp}/comments.txt"), "no target in it"),
    BadInput(_scan("-4", "-6"), "-4 and -6 together leave no address"),
    BadInput(_scan("-6"), "127.0.0.1 has no IPv6 address (only IPv4), and -6 was given"),
    BadInput(_scan("--exclude-ports", "1-65535"), "leaves no port to scan"),
    BadInput(_scan("--ports", "999999"), "port 999999 is out of range"),
    BadInput(_scan("--ports", "1-2-3"), "bad port range '1-2-3'"),
    BadInput(("scan", "10.0.0.0/8"), "needs --allow-large-range"),
    BadInput(_scan("--engine", "warp"), "unknown engine 'warp'"),
    BadInput(_scan("--format", "xml"), "'xml' is not one of"),
    BadInput(_scan("--no-such-flag"), "No such option: --no-such-flag"),
    BadInput(_scan("--rate", "0"), "--rate must be at least 1"),
    BadInput(_scan("--timeout", "-1"), "--timeout must be between 0.05 and 60"),
    BadInput(("scan",), "no target given"),
    BadInput(("scan", ""), "an empty target was given"),
    BadInput(("show", "99", "--db", "{tmp}/none.db"), "no scan stored yet"),
    BadInput(("diff", "1", "2", "--db", "{tmp}/none.db"), "no scan stored yet"),
    BadInput(("diff", "1", "2", "--db", "{tmp}/empty.db"), "has no single scan '1'"),
    BadInput(("diff", "--db", "{tmp}/empty.db"), "no complete scan stored"),
)


def make_files(directory: Path) -> None:
    """The files the table names: a non-PEM file, a key without certificate, a broken one."""
    (directory / "hostname").write_text("myhost\n")
    (directory / "key.pem").write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n"
                                       "-----END PRIVATE KEY-----\n")
    (directory / "broken.pem").write_text("-----BEGIN CERTIFICATE-----\nnot base64 !\n"
                                          "-----END CERTIFICATE-----\n")
    (directory / "comments.txt").write_text("# my hosts\n\n   # none yet\n")
    with Store.open(directory / "empty.db", create=True):
        pass


def expand(argv: tuple[str, ...], directory: Path, port: int) -> list[str]:
    return [part.replace("{tmp}", str(directory)).replace("{port}", str(port)) for part in argv]


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    server = socket.socket()
    server.bind((LOOPBACK, 0))
    server.listen(8)
    server.setblocking(False)
    try:
        yield server
    finally:
        server.close()


@pytest.mark.parametrize("case", BAD_INPUTS, ids=lambda case: " ".join(case.argv)[:60])
def test_bad_input_exits_2_with_one_line_before_any_packet(
    case: BadInput, tmp_path: Path, listener: socket.socket,
    capsys: pytest.CaptureFixture[str],
) -> None:
    make_files(tmp_path)
    port = listener.getsockname()[1]
    before = sorted(path.name for path in tmp_path.iterdir())
    assert main(expand(case.argv, tmp_path, port)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("exposure: error: "), captured.err
    assert case.says.replace("{tmp}", str(tmp_path)) in lines[0]
    assert "Traceback" not in captured.err
    with pytest.raises(BlockingIOError):  # nobody connected: nothing was sent
        listener.accept()
    assert sorted(path.name for path in tmp_path.iterdir()) == before  # no file left behind
