"""`exposure scan --format ...`, `-o`, `--quiet` and `exposure schema` through the real CLI,
against servers on loopback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from scanner.cli import main
from scanner.report.schema import validate_report
from tests.unit.test_report_sarif import assert_valid_sarif

TITLE = "<script>window.__pwned=1</script> \x1b]0;title\x07 Loopback"


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"<html><head><title>{TITLE}</title></head><body>hi</body></html>".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # discovery's connect-and-reset is not an error worth a traceback


@pytest.fixture(scope="module")
def web() -> Iterator[int]:
    server = _QuietServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _scan(port: int, *extra: str) -> list[str]:
    return ["scan", "127.0.0.1", "--engine", "connect", "--ports", str(port),
            "--timeout", "0.5", "--fail-on", "never", *extra]


@pytest.mark.parametrize("fmt", ["table", "json", "markdown", "html", "sarif"])
def test_every_format_on_stdout(web: int, fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_scan(web, "--format", fmt)) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out  # not a terminal, and no server escapes
    if fmt == "json":
        report = json.loads(out)
        validate_report(report)
        details = report["targets"][0]["ports"][0]["details"]
        assert details["http"]["title"].startswith("<script>")  # kept as data, cleaned
    elif fmt == "sarif":
        assert_valid_sarif(json.loads(out))
    elif fmt == "html":
        assert out.startswith("<!DOCTYPE html>") and "Content-Security-Policy" in out
        assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in out and "<script" not in out
    elif fmt == "markdown":
        assert out.startswith("# Exposure report: 127.0.0.1")
        assert "\\<script\\>" in out
    else:
        assert f"{web}/tcp" in out and "title: <script>" in out and "e]0;title" in out


@pytest.mark.parametrize("fmt", ["table", "json", "markdown", "html", "sarif"])
def test_every_format_to_a_file(
    web: int, fmt: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / f"report.{fmt}"
    assert main(_scan(web, "--format", fmt, "-o", str(target))) == 0
    assert capsys.readouterr().out == ""
    text = target.read_text(encoding="utf-8")
    assert text and "\x1b" not in text
    if fmt == "json":
        validate_report(json.loads(text))


def test_quiet_without_findings_prints_nothing(
    web: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_scan(web, "--quiet", "--no-identify")) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_schema_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out)["$schema"].startswith("https://json-schema.org/")
