"""The catalogue: the findings this package produces, and the products it knows.

The products are data: one TOML file per product in products/ (format: products/README.md),
loaded and validated when this module is imported (loader.py), so a broken file stops the
program at once with the file and key named. engine.py runs them. Each HTTP definition says
which GETs to send, the markers that identify the product (always a body, JSON or header
marker: never a status code alone), the markers that mean "open to anyone" and those that mean
"asks for credentials". `usual_ports` is informational: definitions apply to any port that
speaks their protocol. Protocol definitions name a probe module (mqtt, redis, ...) that speaks
the protocol.

Adding a product: one data file in products/ and its test (tests/unit/test_services_catalogue.py
replays answers; tests/lab/test_services*.py runs real servers where the product installs).

Sources: each file's `remedy.references` names the product documentation or source file its
markers come from.
"""

from __future__ import annotations

from scanner.checks.services.loader import load_catalogue
from scanner.checks.services.model import HttpProduct, ProtocolProduct
from scanner.core.findings import FindingSpec, Severity

# --- findings this package can produce ---------------------------------------------------

MQTT_ANONYMOUS = FindingSpec(
    id="mqtt.anonymous",
    severity=Severity.HIGH,
    title="The MQTT broker accepts clients without credentials",
    references=("https://mosquitto.org/documentation/authentication-methods/",),
)
UNAUTHENTICATED = FindingSpec(
    id="service.unauthenticated",
    severity=Severity.HIGH,
    title="An admin surface or data service answers without authentication",
)
AUTH_REQUIRED = FindingSpec(
    id="service.auth_required",
    severity=Severity.INFO,
    title="A known service is reachable from the internet and asks for credentials",
)
CLEARTEXT_AUTH = FindingSpec(
    id="service.cleartext_auth",
    severity=Severity.MEDIUM,
    title="The service asks for credentials over an unencrypted connection",
)
EXPOSED = FindingSpec(
    id="service.exposed",
    severity=Severity.MEDIUM,
    title="A database or admin login that should never face the internet answers from it",
    references=("https://owasp.org/www-project-top-ten/2017/A6_2017-Security_Misconfiguration",),
)
SMB_EXPOSED = FindingSpec(
    id="smb.exposed",
    severity=Severity.HIGH,
    title="SMB file sharing answers from the internet",
    references=(
        "https://learn.microsoft.com/en-us/windows-server/storage/file-server/"
        "smb-secure-traffic",
    ),
)
FINDINGS: tuple[FindingSpec, ...] = (
    MQTT_ANONYMOUS,
    UNAUTHENTICATED,
    AUTH_REQUIRED,
    CLEARTEXT_AUTH,
    EXPOSED,
    SMB_EXPOSED,
)

def product_rows(products: tuple[HttpProduct | ProtocolProduct, ...]) -> list[str]:
    """One line per product for `exposure checks --list`: key, name, kind, ports, findings."""
    rows = []
    for product in sorted(products, key=lambda item: (item.name.lower(), item.source)):
        kind = "http" if isinstance(product, HttpProduct) else f"probe:{product.probe}"
        says = []
        if product.open_title:  # products that can be found open say so in their title
            finding = getattr(product, "finding_open", UNAUTHENTICATED.id)
            says.append(f"{finding} ({product.severity})")
        if product.exposed is not None:
            says.append(f"{product.exposed.finding} ({product.exposed.severity})")
        ports = ",".join(str(port) for port in product.usual_ports)
        rows.append(f"{product.name[:30]:30} {kind:20} {ports[:22]:22} {', '.join(says) or '-'}")
    return rows


CATALOGUE = load_catalogue()
HTTP_PRODUCTS: tuple[HttpProduct, ...] = CATALOGUE.http
PROTOCOL_PRODUCTS: tuple[ProtocolProduct, ...] = CATALOGUE.protocols
# the websocket listener of an MQTT broker, tried on HTTP ports with no page of their own
MQTT_WEBSOCKET: ProtocolProduct = next(
    product for product in PROTOCOL_PRODUCTS if product.probe == "mqtt_websocket"
)
