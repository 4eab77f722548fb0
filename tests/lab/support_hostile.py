"""A hostile lab server for the report tests, and a headless Chromium that opens the HTML report.

The server (`hostile_service()`, run in the lab's home namespace) answers on several ports
with everything a malicious or broken server can put into a report: `<script>`, attribute
breakouts, ANSI/OSC escape sequences (title change, cursor moves, OSC 8 hyperlinks, C1 CSI),
invalid UTF-8, right-to-left overrides, zero-width characters, Markdown and rich markup, and
a 1 MB line. It does so in a greeting banner, an SSH identification line, HTTP headers, the
HTML title, the favicon link and file, and the TLS certificate's subject.

    2121  a server-first banner (like FTP/SMTP), then 1 MB, then silence
    2222  an "SSH-2.0-" identification line with payloads, then close
    80    HTTP: hostile Server header, title, favicon link, a javascript: redirect
    443   the same over TLS, certificate CN/O/OU hostile (markup, escapes, RLO, 8 KB)
    8443  the same over TLS, certificate with raw invalid bytes in a T61String (L)

Run as a script (by the lab, inside the home namespace) it serves; imported, it provides the
payload table, the Service for `Lab(services=[...])`, and `HeadlessChromium`. Only the
standard library is imported at module level, so the script needs nothing from the tree.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.lab.daemons import Daemon
    from tests.lab.netns import Lab
    from tests.lab.services import Service

# --- the payloads ---------------------------------------------------------------------------

# Every script payload would set window.__pwned (or fetch from a lab-range address that
# nothing listens on, inside a browser whose network namespace has no route at all).
CANARY = "__pwned"
LEAK_URL = "http://203.0.113.99/leak"
HTML_PAYLOADS = (
    f"<script>window.{CANARY}=1</script>",
    f'"><img src=x onerror="window.{CANARY}=2">',
    f"'><svg/onload=window.{CANARY}=3>",
    f'<a href="javascript:window.{CANARY}=4">click</a>',
    f"<style>*{{background:url({LEAK_URL})}}</style>",
    f'<meta http-equiv="refresh" content="0;url={LEAK_URL}">',
    f"<iframe srcdoc=\"<script>parent.{CANARY}=5</script>\"></iframe>",
    "{{7*7}}{% raw %}",
)
MARKUP_PAYLOADS = (
    f"[click]({LEAK_URL}) ![x]({LEAK_URL}) @everyone #1 $x^2$ ``` | pipe |",
    f"[bold red]rich markup[/] [link={LEAK_URL}]rich link[/link] :skull:",
)
TERMINAL_PAYLOADS = (
    "\x1b]0;pwned-window-title\x07",  # OSC 0: set the terminal title
    "\x1b[2J\x1b[H\x1b[1A\x1b[31m",  # clear screen, cursor home/up, red
    f"\x1b]8;;{LEAK_URL}\x1b\\osc8-link\x1b]8;;\x1b\\",  # OSC 8 hyperlink
    "\x9b31mC1-CSI",  # the one-byte CSI
    "bell\x07backspace\x08\x08cr\roverwrite\x00nul",
)
UNICODE_PAYLOADS = (
    "\u202etxt.exe\u202c",  # right-to-left override
    "\u2066isolate\u2069\u200f",
    "zero\u200bwidth\ufeff",
    "Z" + "\u0301" * 40,  # combining-mark pile-up
)
ALL_TEXT = " ".join([*HTML_PAYLOADS, *MARKUP_PAYLOADS, *TERMINAL_PAYLOADS, *UNICODE_PAYLOADS])
INVALID_UTF8 = b"\xff\xfe\xc3\x28\xed\xa0\x80\xf8\x88\x80\x80"
HUGE_LINE = b"A" * 1_000_000

BANNER_PORT = 2121
SSH_PORT = 2222
HTTP_PORT = 80
HTTPS_PORT = 443
HTTPS_BYTES_PORT = 8443
PORTS = {
    BANNER_PORT: "hostile banner",
    SSH_PORT: "hostile SSH identification",
    HTTP_PORT: "hostile HTTP",
    HTTPS_PORT: "hostile HTTPS (hostile certificate)",
    HTTPS_BYTES_PORT: "hostile HTTPS (certificate with invalid bytes)",
}
IO_TIMEOUT = 5.0  # a connection the scanner abandons is dropped after this


def hostile_bytes() -> bytes:
    return ALL_TEXT.encode("utf-8") + b" " + INVALID_UTF8


# --- the server (script side) ---------------------------------------------------------------


def _http_response(tls: bool) -> bytes:
    title = hostile_bytes() + b" " + HUGE_LINE  # 1 MB title: the scanner must cap it
    icon_href = f'"><img src=x onerror=window.{CANARY}=6>.ico'.replace('"', "&quot;")
    body = (
        b"<!DOCTYPE html><html><head><title>" + title + b"</title>"
        b'<link rel="icon" href="' + icon_href.encode() + b'">'
        b"</head><body>" + hostile_bytes() + b"</body></html>"
    )
    head = [
        b"HTTP/1.1 200 OK",
        b"Server: " + _header_safe(hostile_bytes()),
        b"X-Powered-By: " + _header_safe(ALL_TEXT.encode()[:300]),
        b"Content-Type: text/html",  # no charset: invalid UTF-8 must be survived, not decoded
        b"Content-Length: " + str(len(body)).encode(),
        b"Connection: close",
    ]
    if tls:
        head.append(b"Strict-Transport-Security: max-age=" + _header_safe(INVALID_UTF8))
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def _favicon_response() -> bytes:
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" onload="window.{CANARY}=7">'
        f"<script>window.{CANARY}=8</script></svg>"
    ).encode() + hostile_bytes()
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: image/svg+xml\r\nContent-Length: "
        + str(len(svg)).encode()
        + b"\r\nConnection: close\r\n\r\n"
        + svg
    )


def _redirect_response() -> bytes:
    return (
        b"HTTP/1.1 302 Found\r\nLocation: javascript:window." + CANARY.encode() + b"=9//"
        + _header_safe(hostile_bytes())
        + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )


def _header_safe(value: bytes) -> bytes:
    """Keep a header on one line (CR/LF would end it), everything else stays hostile."""
    return value.replace(b"\r", b"\\r").replace(b"\n", b"\\n")


def _serve_http(conn: socket.socket, tls: bool) -> None:
    request = _read_head(conn)
    path = request.split(b" ", 2)[1] if request.count(b" ") >= 2 else b"/"
    if path.startswith(b"/favicon"):
        conn.sendall(_favicon_response())
    elif path.startswith(b"/login"):
        conn.sendall(_redirect_response())
    else:
        conn.sendall(_http_response(tls))


def _read_head(conn: socket.socket, cap: int = 16384) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data and len(data) < cap:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def _serve_banner(conn: socket.socket) -> None:
    conn.sendall(b"220 " + hostile_bytes() + b"\r\n")
    conn.sendall(HUGE_LINE)  # a 1 MB line: bounded reads must stop long before its end
    _drain(conn, 0.2)


def _serve_ssh(conn: socket.socket) -> None:
    line = b"SSH-2.0-OpenSSH_9.2p1 " + _header_safe(hostile_bytes())[:200] + b"\r\n"
    conn.sendall(line)
    _drain(conn, 0.2)  # then hang up: what it sent is the test, not how long it waits


def _drain(conn: socket.socket, seconds: float) -> None:
    """Read and discard what the client sends for `seconds` at most, then return."""
    deadline = time.monotonic() + seconds
    with contextlib.suppress(OSError):
        while (left := deadline - time.monotonic()) > 0:
            conn.settimeout(left)
            if not conn.recv(4096):
                return


def _handle(conn: socket.socket, port: int, contexts: dict[int, ssl.SSLContext]) -> None:
    conn.settimeout(IO_TIMEOUT)
    try:
        if port == BANNER_PORT:
            _serve_banner(conn)
        elif port == SSH_PORT:
            _serve_ssh(conn)
        elif port == HTTP_PORT:
            _serve_http(conn, tls=False)
        elif port in contexts:
            with contexts[port].wrap_socket(conn, server_side=True) as wrapped:
                _serve_http(wrapped, tls=True)
    except (OSError, ssl.SSLError):
        pass  # the scanner hung up, or was not speaking TLS: both are fine
    finally:
        with contextlib.suppress(OSError):
            conn.close()


def serve(addresses: Sequence[str], tls_dir: Path) -> None:
    contexts = {}
    for port, stem in ((HTTPS_PORT, "hostile"), (HTTPS_BYTES_PORT, "hostile-bytes")):
        contexts[port] = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        contexts[port].load_cert_chain(tls_dir / f"{stem}.crt", tls_dir / f"{stem}.key")
    listeners = {}
    for address in addresses:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        for port in PORTS:
            server = socket.socket(family, socket.SOCK_STREAM)
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind((address, port))
            server.listen(64)
            listeners[server] = port
    while True:
        readable, _, _ = select.select(list(listeners), [], [])
        for server in readable:
            conn, _ = server.accept()
            threading.Thread(
                target=_handle, args=(conn, listeners[server], contexts), daemon=True
            ).start()


# --- the certificate (a hostile subject, and invalid UTF-8 patched into the DER) -------------

CN_PLACEHOLDER = "Q" * len(INVALID_UTF8)


def hostile_certificate(
    lab: Lab, directory: Path, stem: str, *, raw_bytes: bool = False
) -> tuple[Path, Path]:
    """A leaf from the lab CA whose CN, O and OU carry payloads; (cert_path, key_path).

    cryptography accepts any Unicode string in a name (over 64 characters only without
    validation) but cannot write invalid UTF-8. OpenSSL, on the server side, refuses to load
    a certificate with invalid UTF-8 in a UTF8String name at all (checked: "unsupported"), so
    no OpenSSL-based server can send one. With raw_bytes the bytes go into a T61String (L)
    instead, which OpenSSL loads: written as a placeholder of the same length, replaced in the
    DER, and signed again.
    """
    import warnings

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.name import _ASN1Type
    from cryptography.x509.oid import NameOID

    assert lab.ca is not None
    key = ec.generate_private_key(ec.SECP256R1())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "length must be <= 64": that is the point
        subject = x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, " ".join(TERMINAL_PAYLOADS),
                               _validate=False),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "U" * 8000, _validate=False),
            *([x509.NameAttribute(NameOID.LOCALITY_NAME, CN_PLACEHOLDER,
                                  _type=_ASN1Type.T61String)] if raw_bytes else []),
            x509.NameAttribute(
                NameOID.COMMON_NAME,
                " ".join([*HTML_PAYLOADS[:3], *UNICODE_PAYLOADS[:1]]),
                _validate=False,
            ),
        ])
    now = time.time()
    import datetime as dt

    start = dt.datetime.fromtimestamp(now - 3600, dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(lab.ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("home.lab")]), critical=False)
        .sign(lab.ca.key, hashes.SHA256())
    )
    der = _patched_and_resigned(cert, lab.ca.key) if raw_bytes else cert.public_bytes(
        serialization.Encoding.DER
    )
    cert_path = directory / f"{stem}.crt"
    key_path = directory / f"{stem}.key"
    cert_path.write_bytes(_pem(der))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _patched_and_resigned(cert: Any, ca_key: Any) -> bytes:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    tbs = cert.tbs_certificate_bytes
    assert tbs.count(CN_PLACEHOLDER.encode()) == 1
    tbs = tbs.replace(CN_PLACEHOLDER.encode(), INVALID_UTF8)  # same length: DER stays valid
    signature = ca_key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    der = cert.public_bytes(serialization.Encoding.DER)
    body_start = _header_length(der, 0)
    tbs_end = body_start + _element_length(der, body_start)
    algorithm = der[tbs_end : tbs_end + _element_length(der, tbs_end)]
    bit_string = _der(0x03, b"\x00" + signature)
    return _der(0x30, tbs + algorithm + bit_string)


def _header_length(der: bytes, offset: int) -> int:
    """Offset of the content of the DER element at `offset`."""
    first = der[offset + 1]
    return offset + 2 + (first & 0x7F if first & 0x80 else 0)


def _element_length(der: bytes, offset: int) -> int:
    """Total length (header + content) of the DER element at `offset`."""
    first = der[offset + 1]
    if first & 0x80:
        count = first & 0x7F
        length = int.from_bytes(der[offset + 2 : offset + 2 + count], "big")
        return 2 + count + length
    return 2 + first


def _der(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    encoded = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(encoded)]) + encoded + content


def _pem(der: bytes) -> bytes:
    lines = base64.encodebytes(der).replace(b"\n", b"")
    wrapped = b"\n".join(lines[i : i + 64] for i in range(0, len(lines), 64))
    return b"-----BEGIN CERTIFICATE-----\n" + wrapped + b"\n-----END CERTIFICATE-----\n"


# --- the lab service (test side) ------------------------------------------------------------


def hostile_service() -> Service:
    from tests.lab.services import Service

    def start(lab: Lab) -> list[Daemon]:
        from tests.lab.daemons import _launch  # the lab's own start-and-wait-until-ready

        directory = lab.tmpdir / "hostile"
        directory.mkdir(parents=True, exist_ok=True)
        hostile_certificate(lab, directory, "hostile")
        hostile_certificate(lab, directory, "hostile-bytes", raw_bytes=True)
        argv = [sys.executable, str(Path(__file__).resolve()), "--tls-dir", str(directory),
                *lab.place.addresses]
        return [_launch(lab.place, "hostile", argv, list(PORTS), directory)]

    return Service("hostile", dict(PORTS), start)


# --- headless Chromium over the DevTools protocol --------------------------------------------


CHROMIUM_CANDIDATES = ("/usr/lib/chromium/chromium", "chromium", "chromium-browser")


def find_chromium() -> str | None:
    for candidate in CHROMIUM_CANDIDATES:
        path = shutil.which(candidate) if "/" not in candidate else candidate
        if path and os.access(path, os.X_OK):
            return path
    return None


@dataclass
class PageVisit:
    """What happened while a page loaded: every request, console message and exception."""

    url: str
    requests: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    log_entries: list[str] = field(default_factory=list)
    evaluations: dict[str, Any] = field(default_factory=dict)
    screenshot: bytes | None = None


class CdpError(RuntimeError):
    pass


class HeadlessChromium:
    """Chromium driven through --remote-debugging-pipe (fds 3 and 4: no port, no websocket).

    It runs as root with --no-sandbox (root cannot use Chromium's sandbox) inside a network
    namespace of its own made by `unshare --net`: only a loopback that is down. So whatever a
    page tries, no packet can leave, and every attempt still shows in Network events.
    """

    def __init__(self, timeout: float = 20.0) -> None:
        binary = find_chromium()
        if binary is None:
            raise CdpError("chromium is not installed (Debian package: chromium)")
        self._timeout = timeout
        self._profile = tempfile.mkdtemp(prefix="exp-chromium-")
        self._to_browser, self._from_browser = self._start(binary)
        self._next_id = 0
        self._buffer = b""
        self._events: list[dict[str, Any]] = []

    def _start(self, binary: str) -> tuple[int, int]:
        commands_read, commands_write = os.pipe()
        replies_read, replies_write = os.pipe()

        def wire_pipes() -> None:  # in the child: the fds Chromium expects
            os.dup2(commands_read, 3)
            os.dup2(replies_write, 4)

        argv = [
            "unshare", "--net", "--", binary,
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-extensions",
            "--disable-default-apps", "--metrics-recording-only", "--mute-audio",
            "--hide-scrollbars", "--remote-debugging-pipe",
            f"--user-data-dir={self._profile}", "about:blank",
        ]
        self._process = subprocess.Popen(
            argv,
            preexec_fn=wire_pipes,
            pass_fds=(3, 4),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its helpers share its process group: stopped together
        )
        os.close(commands_read)
        os.close(replies_write)
        return commands_write, replies_read

    def close(self) -> None:
        with contextlib.suppress(OSError, CdpError):
            self._send("Browser.close", {}, wait=False)
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)  # the group we created
            self._process.wait(timeout=5)
        for fd in (self._to_browser, self._from_browser):
            with contextlib.suppress(OSError):
                os.close(fd)
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> HeadlessChromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- protocol ---------------------------------------------------------------------------

    def _send(
        self, method: str, params: dict[str, Any], session: str | None = None, wait: bool = True
    ) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        if not wait:
            return {}
        deadline = time.monotonic() + self._timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise CdpError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self._events.append(reply)

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CdpError("Chromium did not answer in time")
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if ready:
                chunk = os.read(self._from_browser, 1 << 20)
                if not chunk:
                    raise CdpError("Chromium closed the DevTools pipe")
                self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def _events_until(self, predicate: Any, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not any(predicate(event) for event in self._events):
            self._events.append(self._read_message(deadline))

    def _settle(self, seconds: float) -> None:
        """Collect whatever events arrive in the next `seconds` (late requests, timers)."""
        deadline = time.monotonic() + seconds
        with contextlib.suppress(CdpError):
            while True:
                self._events.append(self._read_message(deadline))

    # --- what the tests use -----------------------------------------------------------------

    @property
    def pid(self) -> int:
        """Chromium's pid (`unshare` execs it): /proc/PID/ns/net is its network namespace."""
        return self._process.pid

    def visit(
        self,
        path: Path,
        evaluate: dict[str, str] | None = None,
        screenshot_width: int | None = None,
    ) -> PageVisit:
        """Open file://path, wait for load (plus a moment), report what happened."""
        return self.visit_url(path.resolve().as_uri(), evaluate, screenshot_width)

    def visit_url(
        self,
        url: str,
        evaluate: dict[str, str] | None = None,
        screenshot_width: int | None = None,
        settle_s: float = 0.7,
    ) -> PageVisit:
        """Open `url` (in Chromium's own network namespace), wait for load plus settle_s."""
        target = self._send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self._send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Page", "Network", "Runtime", "Log"):
            self._send(f"{domain}.enable", {}, session)
        self._events.clear()
        self._send("Page.navigate", {"url": url}, session)
        self._events_until(lambda e: e.get("method") == "Page.loadEventFired", self._timeout)
        self._settle(settle_s)
        visit = PageVisit(url=url)
        self._collect(visit)
        for name, expression in (evaluate or {}).items():
            result = self._send(
                "Runtime.evaluate", {"expression": expression, "returnByValue": True}, session
            )
            visit.evaluations[name] = result.get("result", {}).get("value")
        if screenshot_width:
            visit.screenshot = self._screenshot(session, screenshot_width)
        self._send("Target.closeTarget", {"targetId": target})
        return visit

    def _collect(self, visit: PageVisit) -> None:
        for event in self._events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Network.requestWillBeSent":
                visit.requests.append(params.get("request", {}).get("url", ""))
            elif method == "Runtime.consoleAPICalled":
                visit.console.append(json.dumps(params.get("args", []))[:500])
            elif method == "Runtime.exceptionThrown":
                visit.exceptions.append(json.dumps(params.get("exceptionDetails", {}))[:500])
            elif method == "Log.entryAdded":
                entry = params.get("entry", {})
                visit.log_entries.append(f"{entry.get('level')}: {entry.get('text')}"[:500])

    def _screenshot(self, session: str, width: int) -> bytes:
        self._send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False},
            session,
        )
        metrics = self._send("Page.getLayoutMetrics", {}, session)
        height = min(int(metrics["cssContentSize"]["height"]) + 1, 12000)
        self._send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session,
        )
        shot = self._send("Page.captureScreenshot", {"format": "png"}, session)
        return base64.b64decode(shot["data"])


@contextlib.contextmanager
def chromium(timeout: float = 20.0) -> Iterator[HeadlessChromium]:
    browser = HeadlessChromium(timeout)
    try:
        yield browser
    finally:
        browser.close()


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[0] != "--tls-dir":
        print("usage: support_hostile.py --tls-dir DIR ADDRESS...", file=sys.stderr)
        return 2
    serve(argv[2:], Path(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
