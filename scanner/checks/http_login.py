"""http.plain_login: a login form or a credentials challenge served over plain HTTP.

Whoever is on the path (the café's Wi-Fi, a hostile network, the ISP) reads a password typed
into a page served without TLS. We look at the page identification landed on (after its
same-origin redirects) with one GET over plain HTTP, and flag:

- an HTML form with a password field whose action does not go to https://;
- a 401 whose WWW-Authenticate offers Basic (the password travels base64-encoded, in clear).

Home Assistant has its own finding for this (ha.plain_http) and is left to it. A page that
redirects to https:// has no form to find, and is quiet. Nothing is submitted, ever.
"""

from __future__ import annotations

import re
from typing import Any

from scanner.checks.base import CheckContext, CheckResult, FindingSpec, Severity
from scanner.checks.http_details import HttpDetails
from scanner.core.text import safe_text
from scanner.net.http import HttpReply

PLAIN_LOGIN = FindingSpec(
    id="http.plain_login",
    severity=Severity.MEDIUM,
    title="A login is served over plain HTTP: passwords cross the network unencrypted",
    references=(
        "https://owasp.org/www-community/vulnerabilities/Insecure_Transport",
        "https://letsencrypt.org/getting-started/",
    ),
)
PAGE_CAP = 256 * 1024
SCAN_CHARS = 200_000
_PASSWORD_INPUT = re.compile(r"<input\b[^>]{0,600}?\btype\s*=\s*[\"']?password\b", re.I)
_FORM = re.compile(r"<form\b([^>]{0,1000})>(.{0,20000}?)</form\s*>", re.I | re.S)
_ACTION = re.compile(r"\baction\s*=\s*[\"']?\s*([^\"'\s>]{1,500})", re.I)
_BASIC = re.compile(r"^\s*Basic\b", re.I)


def login_on_page(reply: HttpReply) -> str | None:
    """What makes this answer a plain-HTTP login, in words; None when it is not one."""
    challenge = reply.header("www-authenticate") or ""
    if reply.status == 401 and _BASIC.match(challenge):
        realm = safe_text(challenge[:120], 120)
        path = safe_text(reply.path, 100)
        return f"GET {path} -> 401 asking for HTTP Basic credentials ({realm})"
    text = reply.body[:SCAN_CHARS].decode("utf-8", "replace")
    if not _PASSWORD_INPUT.search(text):
        return None
    forms = list(_FORM.finditer(text))
    with_password = [form for form in forms if _PASSWORD_INPUT.search(form.group(0))]
    if with_password and all(_posts_to_https(form.group(1)) for form in with_password):
        return None  # the page is plain, but the password itself is sent over TLS
    return f"GET {safe_text(reply.path, 100)} -> {reply.status}: the page has a password field"


def _posts_to_https(attributes: str) -> bool:
    action = _ACTION.search(attributes)
    return bool(action and action.group(1).lower().startswith("https://"))


class PlainLoginCheck:
    name = "http_login"
    catalogue = (PLAIN_LOGIN,)
    after: tuple[str, ...] = ("ha",)

    def applies(self, context: CheckContext) -> bool:
        identity = context.identity
        ha = context.earlier.get("ha")
        is_ha = isinstance(ha, dict) and ha.get("is_home_assistant") is True
        return identity.service == "http" and not identity.tls and not is_ha

    def run(self, context: CheckContext) -> CheckResult:
        http: dict[str, Any] = context.identity.details.get("http") or {}
        path = str(http.get("path") or "/")
        if not path.startswith("/"):
            path = "/"
        reply = context.connector.with_tls(False).get(
            path, accept="text/html,application/xhtml+xml,*/*;q=0.8", body_cap=PAGE_CAP)
        if reply is None:
            return CheckResult()
        login = login_on_page(reply)
        if login is None:
            return CheckResult()
        finding = PLAIN_LOGIN.finding(
            port=context.port, evidence=login,
            remediation="Serve the login over HTTPS only: put the service behind a reverse proxy "
                        "with a Let's Encrypt certificate (Caddy, nginx, Traefik), redirect "
                        "http:// to https://, and send HSTS; or reach it over a VPN.",
        )
        # merged into identification's details.http
        return CheckResult((finding,), {"http": HttpDetails.partial(plain_login=login).to_dict()})


CHECK = PlainLoginCheck()
