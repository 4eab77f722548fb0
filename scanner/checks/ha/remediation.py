"""Each HA finding, tied to the line of HA's own "Securing" page it violates, fixed in HA's terms.

The checklist lines are quoted from the two versions of the page users were told to follow
(shared/seeds/ha-securing-2018.md and ha-securing-current.md).
"""

from __future__ import annotations

from dataclasses import dataclass

SECURING_PAGE = "https://www.home-assistant.io/docs/configuration/securing/"
ONBOARDING_DOCS = "https://www.home-assistant.io/getting-started/onboarding/"
TRUSTED_NETWORKS_DOCS = "https://www.home-assistant.io/docs/authentication/providers/#trusted-networks"
HTTP_DOCS = "https://www.home-assistant.io/integrations/http/"
REMOTE_ACCESS_DOCS = "https://www.home-assistant.io/docs/configuration/remote/"


@dataclass(frozen=True)
class Guidance:
    checklist: str  # the seed checklist line, quoted
    remediation: str  # what to do, in HA's terms
    references: tuple[str, ...]

    def text(self) -> str:
        return f"{self.remediation} (HA's Securing checklist: {self.checklist})"


GUIDANCE: dict[str, Guidance] = {
    "ha.onboarding_open": Guidance(
        checklist='"Set a password" / "Protect your web interface with a password" (2018); '
        '"If you fail to set a password then it is simply a matter of time before somebody '
        'finds your system"',
        remediation=(
            "Onboard now: open Home Assistant and create the owner account with a strong "
            "password before anyone else does. Until then, remove the port forward: whoever "
            "finishes onboarding first owns this Home Assistant."
        ),
        references=(ONBOARDING_DOCS, SECURING_PAGE),
    ),
    "ha.trusted_networks_exposed": Guidance(
        checklist='"Protect your web interface with a password" (2018)',
        remediation=(
            "Remove the trusted_networks auth provider from configuration.yaml "
            "(homeassistant: auth_providers:), or restrict trusted_networks to your LAN "
            "ranges (for example 192.168.1.0/24) and never 0.0.0.0/0 or ::/0. Behind a reverse "
            "proxy, list only the proxy in http: trusted_proxies, so HA sees real client "
            "addresses. Restart Home Assistant afterwards."
        ),
        references=(TRUSTED_NETWORKS_DOCS, SECURING_PAGE),
    ),
    "ha.trusted_networks_bypass": Guidance(
        checklist='"Protect your web interface with a password" (2018)',
        remediation=(
            "Treat this Home Assistant as compromised until fixed: remove trusted_networks "
            "(and allow_bypass_login) from configuration.yaml or restrict it to your LAN, "
            "restart, then review Settings > People and the long-lived access tokens for "
            "anything you did not create."
        ),
        references=(TRUSTED_NETWORKS_DOCS, SECURING_PAGE),
    ),
    "ha.plain_http": Guidance(
        checklist='"For remote access for components, use a TLS/SSL certificate" (2018); '
        '"use TLS/SSL via the add-ons Duck DNS integrating Let\'s Encrypt or Let\'s Encrypt" '
        "(current)",
        remediation=(
            "Put TLS in front: the Duck DNS add-on with Let's Encrypt, the Let's Encrypt "
            "add-on, or a reverse proxy (NGINX Home Assistant SSL proxy add-on, Caddy, "
            "Traefik) terminating HTTPS; then forward only the HTTPS port. Better still, "
            "do not forward at all: use Home Assistant Cloud, a VPN, Tor or an SSH tunnel."
        ),
        references=(SECURING_PAGE, REMOTE_ACCESS_DOCS, HTTP_DOCS),
    ),
    "ha.version_disclosed": Guidance(
        checklist='"For remote access to the UI, use a VPN or Tor" (2018); "To expose your '
        'instance to the internet, use a VPN, or an SSH tunnel" (current)',
        remediation=(
            "Home Assistant tells its version to every client in the websocket greeting; it "
            "cannot be switched off. Anyone on the internet can match it against published "
            "advisories, so keep it current, or reach HA through Home Assistant Cloud or a "
            "VPN instead of a port forward."
        ),
        references=(REMOTE_ACCESS_DOCS, SECURING_PAGE),
    ),
    "ha.outdated": Guidance(
        checklist='"Regularly keep the system up to date" (2018 and current)',
        remediation=(
            "Update Home Assistant Core (Settings > System > Updates, or pull the newer "
            "container image) to the latest release, at least to the fixed versions listed."
        ),
        references=("https://www.home-assistant.io/security/", SECURING_PAGE),
    ),
}


def guidance(finding_id: str) -> Guidance:
    return GUIDANCE[finding_id]
