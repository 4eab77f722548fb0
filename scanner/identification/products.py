"""Product and version from what a service says about itself, as data-driven patterns.

Each rule is one regular expression over one kind of evidence (an SSH software string, a
greeting line, an HTTP Server header, a page title). Adding a product is adding a row. The
patterns are anchored or short and run on size-capped text, so hostile input stays cheap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from scanner.core.text import safe_text

MAX_EVIDENCE_CHARS = 4096  # rules only ever look at this much text
MAX_FIELD_CHARS = 64  # a product or version longer than this is not a product or version


@dataclass(frozen=True)
class ProductRule:
    """One row of the table: `pattern` found in the evidence names `product`.

    The pattern may capture `version`; `shodan_product` is the name Shodan's `product:`
    filter uses when it differs from ours.
    """

    product: str
    pattern: re.Pattern[str]
    shodan_product: str | None = None


@dataclass(frozen=True)
class ProductMatch:
    product: str
    version: str | None
    shodan_product: str


def _rule(product: str, pattern: str, shodan_product: str | None = None) -> ProductRule:
    return ProductRule(product, re.compile(pattern, re.IGNORECASE), shodan_product)


# The SSH "softwareversion" field of the identification string (RFC 4253 section 4.2).
SSH_SOFTWARE_RULES: tuple[ProductRule, ...] = (
    _rule("OpenSSH", r"^OpenSSH_for_Windows_(?P<version>[\w.]+)"),
    _rule("OpenSSH", r"^OpenSSH_(?P<version>[\w.]+)"),
    _rule("Dropbear", r"^dropbear(?:_(?P<version>[\w.]+))?", "Dropbear sshd"),
    _rule("libssh", r"^libssh[_-](?P<version>[\w.]+)"),
    _rule("MikroTik RouterOS sshd", r"^ROSSSH"),
    _rule("Cisco SSH", r"^Cisco-(?P<version>[\w.]+)"),
    _rule("Paramiko", r"^paramiko_(?P<version>[\w.]+)"),
    _rule("AsyncSSH", r"^AsyncSSH_(?P<version>[\w.]+)"),
    _rule("Go x/crypto/ssh", r"^Go$", "Golang x/crypto/ssh server"),
    _rule("ProFTPD mod_sftp", r"^mod_sftp(?:/(?P<version>[\w.]+))?"),
)

# Distribution packaging in the SSH comment field, e.g. "Debian-2+deb12u3": the package
# revision is what tells a patched distro build from a vulnerable upstream version.
SSH_DISTRO_PATTERN = re.compile(
    r"^(?P<distro>Debian|Ubuntu|Raspbian|FreeBSD|Alpine)[-_ ](?P<revision>[\w.+~:-]{1,40})",
    re.IGNORECASE,
)

# Greetings of server-speaks-first protocols (FTP, SMTP, POP3, IMAP, MySQL, VNC).
GREETING_RULES: dict[str, tuple[ProductRule, ...]] = {
    "ftp": (
        _rule("vsftpd", r"\(vsFTPd (?P<version>[\d.]+)\)"),
        _rule("ProFTPD", r"ProFTPD(?: (?P<version>\d[\w.]*))?"),
        _rule("Pure-FTPd", r"Pure-FTPd"),
        _rule("FileZilla Server", r"FileZilla Server(?: version)?(?: (?P<version>\d[\w.]*))?"),
        _rule("Microsoft ftpd", r"Microsoft FTP Service"),
    ),
    "smtp": (
        _rule("Postfix", r"ESMTP Postfix", "Postfix smtpd"),
        _rule("Exim", r"Exim (?P<version>\d[\w.]*)", "Exim smtpd"),
        _rule("Sendmail", r"Sendmail (?P<version>\d[\w./]*)"),
        _rule("OpenSMTPD", r"OpenSMTPD"),
        _rule("Microsoft ESMTP", r"Microsoft ESMTP MAIL Service"),
    ),
    "pop3": (_rule("Dovecot", r"Dovecot", "Dovecot pop3d"),),
    "imap": (
        _rule("Dovecot", r"Dovecot", "Dovecot imapd"),
        _rule("Courier", r"Courier-IMAP"),
    ),
    "mysql": (
        _rule("MariaDB", r"^(?:5\.5\.5-)?(?P<version>\d+\.\d+\.\d+)-MariaDB"),
        _rule("MySQL", r"^(?P<version>\d+\.\d+\.\d+)"),
    ),
    "mqtt": (_rule("mosquitto", r"mosquitto(?: version)?[ /](?P<version>\d[\w.]*)"),),
    "rsync": (_rule("rsync daemon", r"^@RSYNCD: "),),
}

# Server-speaks-first protocols named by their first line alone (beyond banner.py's own).
GREETING_SERVICES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("rsync", re.compile(r"^@RSYNCD: \d{1,3}(\.\d{1,3})?( |$)")),
)


def greeting_service(first_line: str) -> str | None:
    """The service a greeting's first line names by itself, from GREETING_SERVICES."""
    line = first_line[:256]
    return next((service for service, pattern in GREETING_SERVICES if pattern.match(line)), None)


# The HTTP Server header (and X-Powered-By when Server says nothing useful).
HTTP_SERVER_RULES: tuple[ProductRule, ...] = (
    _rule("nginx", r"^nginx(?:/(?P<version>[\w.]+))?"),
    _rule("openresty", r"^openresty(?:/(?P<version>[\w.]+))?"),
    _rule("Apache httpd", r"^Apache(?:/(?P<version>[\d.]+))?"),
    _rule("lighttpd", r"^lighttpd(?:/(?P<version>[\w.-]+))?"),
    _rule("Caddy", r"^Caddy"),
    _rule("Microsoft IIS httpd", r"^Microsoft-IIS(?:/(?P<version>[\d.]+))?"),
    _rule("Jetty", r"^Jetty\((?P<version>[\w.-]+)\)"),
    _rule("aiohttp", r"aiohttp/(?P<version>[\w.]+)"),
    _rule("Werkzeug", r"^Werkzeug/(?P<version>[\w.]+)"),
    _rule("TornadoServer", r"^TornadoServer/(?P<version>[\w.]+)"),
    _rule("uvicorn", r"^uvicorn"),
    _rule("gunicorn", r"^gunicorn(?:/(?P<version>[\w.]+))?"),
    _rule("Docker", r"^Docker/(?P<version>[\w.+-]+)"),
    _rule("Kestrel", r"^Kestrel"),
    _rule("mini_httpd", r"^mini_httpd(?:/(?P<version>[\w.]+))?"),
    _rule("GoAhead", r"^GoAhead"),
    _rule("Express", r"^Express$"),
    _rule("MinIO", r"^MinIO"),
    _rule("envoy", r"^envoy$"),
    _rule("cloudflare", r"^cloudflare$"),
)

# Applications recognised by their page title: what a self-hoster forwards.
HTTP_TITLE_RULES: tuple[ProductRule, ...] = (
    _rule("Home Assistant", r"^Home Assistant\b"),
    _rule("Node-RED", r"^Node-RED\b"),
    _rule("ESPHome", r"^ESPHome\b"),
    _rule("Zigbee2MQTT", r"^Zigbee2MQTT\b"),
    _rule("Portainer", r"^Portainer\b"),
    _rule("Grafana", r"^Grafana\b"),
    _rule("Jellyfin", r"^Jellyfin\b"),
    _rule("Plex Media Server", r"^Plex\b"),
    _rule("Frigate", r"^Frigate\b"),
    _rule("Proxmox Virtual Environment", r"Proxmox Virtual Environment"),
    _rule("Pi-hole", r"Pi-hole"),
    _rule("Nextcloud", r"Nextcloud"),
    _rule("InfluxDB", r"^InfluxDB\b"),
    _rule("Synology DiskStation", r"Synology"),
    _rule("Vaultwarden", r"Vaultwarden|Bitwarden Web Vault"),
    _rule("Jupyter", r"^(Jupyter Server|JupyterLab|Jupyter Notebook|Home Page - Select or)"),
    _rule("qBittorrent", r"^qBittorrent Web UI"),
    _rule("Deluge", r"^Deluge(?: WebUI)?(?: (?P<version>\d[\w.]*))?"),
    _rule("Transmission", r"^Transmission Web Interface"),
    _rule("Syncthing", r"^Syncthing\b"),
    _rule("CUPS", r"CUPS (?P<version>\d+\.\d+(?:\.\d+)?)$"),
    _rule("Node Exporter", r"^Node Exporter$"),
    _rule("Cockpit", r"^Cockpit\b"),
    _rule("Webmin", r"^Login to Webmin|Webmin\b"),
    _rule("Uptime Kuma", r"^Uptime Kuma"),
    _rule("OctoPrint", r"^OctoPrint\b"),
    _rule("Gitea", r"Gitea\b"),
    _rule("Forgejo", r"Forgejo\b"),
    _rule("Kibana", r"^(Elastic|Kibana)$"),
    _rule("MinIO Console", r"^MinIO Console"),
    _rule("UniFi Network", r"^UniFi Network"),
    _rule("Emby", r"^Emby\b"),
)


def match_product(rules: tuple[ProductRule, ...], evidence: str) -> ProductMatch | None:
    """First rule that matches the evidence; None when none does. Never raises."""
    text = evidence[:MAX_EVIDENCE_CHARS]
    for rule in rules:
        found = rule.pattern.search(text)
        if found:
            return ProductMatch(
                product=rule.product,
                version=_version_of(found),
                shodan_product=rule.shodan_product or rule.product,
            )
    return None


def _version_of(found: re.Match[str]) -> str | None:
    version = found.groupdict().get("version")
    if not version:
        return None
    return safe_text(version, MAX_FIELD_CHARS) or None
