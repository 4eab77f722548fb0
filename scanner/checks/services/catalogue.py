"""The catalogue: one small definition per product that self-hosters forward.

What is checked is data; engine.py runs it. Each HTTP definition says which GETs to send, the
markers that identify the product (always a body, JSON or header marker: never a status code
alone), the markers that mean "open to anyone" and those that mean "asks for credentials".
`usual_ports` is informational: definitions apply to any port that speaks their protocol.
Protocol definitions name a probe module (mqtt, redis, ...) that speaks the protocol.

Adding a product: add one definition here and its test (tests/unit/test_services_catalogue.py
replays answers; tests/lab/test_services*.py runs real servers where the product installs).

Sources (checked 2025-11): each definition's `remedy.references` names the product documentation
or source file its markers come from.
"""

from __future__ import annotations

from scanner.checks.services.model import (
    Hint,
    HttpProduct,
    JsonMarker,
    JsonTest,
    Match,
    ProtocolProduct,
    Remedy,
    Request,
    Rule,
)
from scanner.findings import FindingSpec, Severity

CATALOGUE_DATE = "2025-11"

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
    SMB_EXPOSED,
)

VPN_ADVICE = (
    "Do not forward this port: reach it over a VPN (WireGuard, Tailscale) or through Home "
    "Assistant's own authenticated interface instead."
)


def _get(path: str, *headers: tuple[str, str]) -> Request:
    return Request(path, "get", tuple(headers))


def _json(*markers: tuple[str, JsonTest | str]) -> tuple[JsonMarker, ...]:
    """("path", JsonTest.X) or ("path", "regex") pairs as JSON markers."""
    return tuple(
        JsonMarker(path, test=value)
        if isinstance(value, JsonTest)
        else JsonMarker(path, pattern=value)
        for path, value in markers
    )


def _rule(says: str, *when: tuple[Request, Match]) -> Rule:
    return Rule(tuple(when), says)


JSON_ACCEPT = ("Accept", "application/json")

# --- HTTP products -----------------------------------------------------------------------

NODE_RED_SETTINGS = _get("/settings", JSON_ACCEPT, ("Node-RED-API-Version", "v2"))
NODE_RED_LOGIN = _get("/auth/login", JSON_ACCEPT)
NODE_RED = HttpProduct(
    key="node_red",
    name="Node-RED",
    usual_ports=(1880,),
    hints=(Hint(title=r"^Node-RED\b"),),
    identify=(
        _rule("the editor's settings name Node-RED's httpNodeRoot",
              (NODE_RED_SETTINGS, Match(json=_json(("httpNodeRoot", JsonTest.PRESENT))))),
        _rule("the login endpoint describes Node-RED's adminAuth",
              (NODE_RED_LOGIN, Match(json=_json(("type", r"^(credentials|strategy)$"))))),
    ),
    open_when=(
        _rule("no adminAuth: /auth/login is {} and the editor settings are served to anyone",
              (NODE_RED_LOGIN, Match(status=frozenset({200}),
                                     json=_json(("", JsonTest.EMPTY_OBJECT)))),
              (NODE_RED_SETTINGS, Match(status=frozenset({200}),
                                        json=_json(("httpNodeRoot", JsonTest.PRESENT))))),
    ),
    locked_when=(
        _rule("adminAuth is on: /auth/login asks for credentials",
              (NODE_RED_LOGIN, Match(json=_json(("type", r"^(credentials|strategy)$"))))),
    ),
    severity=Severity.CRITICAL,
    open_title="Node-RED's editor is open to anyone (no adminAuth): remote code execution",
    remedy=Remedy(
        "Enable adminAuth in Node-RED's settings.js (or the HA add-on's login), and do not "
        "forward port 1880: the editor can run arbitrary code (exec and function nodes). "
        + VPN_ADVICE,
        ("https://nodered.org/docs/user-guide/runtime/securing-node-red",),
    ),
    version_from=(NODE_RED_SETTINGS, "version"),
)

ESPHOME_DEVICES = _get("/devices", JSON_ACCEPT)
ESPHOME_LOGIN = _get("/login")
ESPHOME = HttpProduct(
    key="esphome",
    name="ESPHome dashboard",
    usual_ports=(6052,),
    # its login redirect is relative ("./login"), which may leave identification without a title
    hints=(Hint(title=r"\bESPHome\b"), Hint(location=r"^\./login$")),
    identify=(
        _rule("the dashboard lists its configured devices",
              (ESPHOME_DEVICES, Match(json=_json(("configured", JsonTest.PRESENT),
                                                  ("importable", JsonTest.PRESENT))))),
        _rule("the dashboard's login page asks for a password",
              (ESPHOME_LOGIN, Match(body=(r"ESPHome", r"type=[\"']?password")))),
    ),
    open_when=(
        _rule("the device list is served without logging in",
              (ESPHOME_DEVICES, Match(status=frozenset({200}),
                                      json=_json(("configured", JsonTest.PRESENT))))),
    ),
    locked_when=(
        _rule("the dashboard asks for a password",
              (ESPHOME_LOGIN, Match(status=frozenset({200}),
                                    body=(r"ESPHome", r"type=[\"']?password")))),
    ),
    severity=Severity.CRITICAL,
    open_title="The ESPHome dashboard is open to anyone: device configs, secrets and OTA",
    remedy=Remedy(
        "Set a dashboard username and password (--username/--password, or use it only through "
        "HA's ingress), and do not forward port 6052. " + VPN_ADVICE,
        ("https://esphome.io/guides/getting_started_command_line/#dashboard",
         "https://github.com/esphome/esphome/blob/dev/esphome/dashboard/web_server.py"),
    ),
)

Z2M_SOCKET = Request("/api", "ws")
ZIGBEE2MQTT = HttpProduct(
    key="zigbee2mqtt",
    name="Zigbee2MQTT frontend",
    usual_ports=(8080, 8099),
    hints=(Hint(title=r"^Zigbee2MQTT\b"),),
    identify=(
        _rule("the frontend's websocket streams Zigbee2MQTT topics",
              (Z2M_SOCKET, Match(ws_text=(r"\"topic\"\s*:\s*\"bridge/",)))),
        _rule("the frontend's websocket refuses us with 4401 Unauthorized",
              (Z2M_SOCKET, Match(ws_close_code=4401))),
    ),
    open_when=(
        _rule("the websocket API streams bridge state without an auth_token",
              (Z2M_SOCKET, Match(ws_text=(r"\"topic\"\s*:\s*\"bridge/",)))),
    ),
    locked_when=(
        _rule("the websocket API closes with 4401 (auth_token set)",
              (Z2M_SOCKET, Match(ws_close_code=4401))),
    ),
    severity=Severity.HIGH,
    open_title="The Zigbee2MQTT frontend is open to anyone: devices can be controlled and paired",
    remedy=Remedy(
        "Set frontend.auth_token in Zigbee2MQTT's configuration (or use it only through HA's "
        "ingress), and do not forward its port. " + VPN_ADVICE,
        ("https://www.zigbee2mqtt.io/guide/configuration/frontend.html",
         "https://github.com/Koenkk/zigbee2mqtt/blob/master/lib/extension/frontend.ts"),
    ),
)

GRAFANA_HEALTH = _get("/api/health", JSON_ACCEPT)
GRAFANA_ORG = _get("/api/org", JSON_ACCEPT)
GRAFANA = HttpProduct(
    key="grafana",
    name="Grafana",
    usual_ports=(3000,),
    hints=(Hint(title=r"^Grafana\b"),),
    identify=(
        _rule("/api/health answers with Grafana's database/version fields",
              (GRAFANA_HEALTH, Match(json=_json(("database", JsonTest.PRESENT),
                                                 ("version", JsonTest.PRESENT))))),
    ),
    open_when=(
        _rule("anonymous access: /api/org answers with the organisation",
              (GRAFANA_ORG, Match(status=frozenset({200}),
                                  json=_json(("id", JsonTest.PRESENT),
                                             ("name", JsonTest.PRESENT))))),
    ),
    locked_when=(
        _rule("/api/org answers 401 Unauthorized",
              (GRAFANA_ORG, Match(status=frozenset({401}), json=_json(("message", r"unauthori"))))),
    ),
    severity=Severity.HIGH,
    open_title="Grafana allows anonymous access: dashboards and data sources are readable",
    remedy=Remedy(
        "Disable [auth.anonymous] in grafana.ini (enabled = false) unless the dashboards are "
        "meant to be public, and keep the admin account's password strong.",
        ("https://grafana.com/docs/grafana/latest/setup-grafana/configure-security/"
         "configure-authentication/grafana/#anonymous-authentication",),
    ),
    version_from=(GRAFANA_HEALTH, "version"),
)

INFLUX_PING = _get("/ping")
INFLUX_QUERY = _get("/query?q=SHOW%20DATABASES", JSON_ACCEPT)
INFLUXDB = HttpProduct(
    key="influxdb",
    name="InfluxDB",
    usual_ports=(8086,),
    hints=(),
    identify=(
        _rule("/ping answers with an X-Influxdb-Version header",
              (INFLUX_PING, Match(headers=(("x-influxdb-version", r"."),)))),
    ),
    open_when=(
        _rule("SHOW DATABASES (a read) answers without credentials",
              (INFLUX_PING, Match(headers=(("x-influxdb-version", r"."),))),
              (INFLUX_QUERY, Match(status=frozenset({200}),
                                   json=_json(("results.0.series.0.name", r"^databases$"))))),
    ),
    locked_when=(
        _rule("queries need credentials",
              (INFLUX_QUERY, Match(status=frozenset({401, 403}),
                                   json=_json(("error", r"auth|credential|unauthori"))))),
        _rule("queries need a token (InfluxDB 2)",
              (INFLUX_QUERY, Match(status=frozenset({401, 403}),
                                   json=_json(("code", r"unauthori"))))),
    ),
    severity=Severity.CRITICAL,
    open_title="InfluxDB runs without authentication: anyone can read and write its data",
    remedy=Remedy(
        "Create an admin user and set auth-enabled = true in the [http] section of "
        "influxdb.conf (InfluxDB 1.x), and do not forward port 8086. " + VPN_ADVICE,
        ("https://docs.influxdata.com/influxdb/v1/administration/authentication_and_authorization/",),
    ),
    version_from=(INFLUX_PING, "header:x-influxdb-version"),
)

JELLYFIN_INFO = _get("/System/Info/Public", JSON_ACCEPT)
JELLYFIN = HttpProduct(
    key="jellyfin",
    name="Jellyfin",
    usual_ports=(8096, 8920),
    hints=(Hint(title=r"^Jellyfin\b"),),
    identify=(
        _rule("/System/Info/Public names Jellyfin Server",
              (JELLYFIN_INFO, Match(json=_json(("ProductName", r"^Jellyfin"),
                                                ("StartupWizardCompleted", r"^(true|false)$"))))),
    ),
    open_when=(
        _rule("StartupWizardCompleted is false: anyone can run the wizard and create the admin",
              (JELLYFIN_INFO, Match(json=_json(("ProductName", r"^Jellyfin"),
                                                ("StartupWizardCompleted", JsonTest.FALSE))))),
    ),
    locked_when=(
        _rule("the startup wizard is completed: users log in",
              (JELLYFIN_INFO, Match(json=_json(("StartupWizardCompleted", JsonTest.TRUE))))),
    ),
    severity=Severity.CRITICAL,
    open_title="Jellyfin's startup wizard was never completed: anyone can create the admin",
    remedy=Remedy(
        "Complete Jellyfin's startup wizard now (it creates the administrator), from your LAN, "
        "before forwarding the port.",
        ("https://jellyfin.org/docs/general/post-install/setup-wizard/",),
    ),
    version_from=(JELLYFIN_INFO, "Version"),
    facts=((JELLYFIN_INFO, "ServerName", "server_name"),),
)

PORTAINER_STATUS = _get("/api/status", JSON_ACCEPT)
PORTAINER_ADMIN = _get("/api/users/admin/check", JSON_ACCEPT)
PORTAINER = HttpProduct(
    key="portainer",
    name="Portainer",
    usual_ports=(9000, 9443),
    hints=(Hint(title=r"^Portainer\b"),),
    identify=(
        _rule("/api/status answers with Portainer's Version and InstanceID",
              (PORTAINER_STATUS, Match(json=_json(("Version", JsonTest.PRESENT),
                                                   ("InstanceID", JsonTest.PRESENT))))),
        _rule("/api/users/admin/check answers with Portainer's own message",
              (PORTAINER_ADMIN, Match(json=_json(("message", r"administrator account"))))),
    ),
    open_when=(
        _rule("no administrator exists yet: anyone can create it (admin/init)",
              (PORTAINER_ADMIN, Match(status=frozenset({404}),
                                      json=_json(("message", r"No administrator account found"))))),
    ),
    locked_when=(
        _rule("an administrator exists (admin/check answers 204)",
              (PORTAINER_ADMIN, Match(status=frozenset({204})))),
    ),
    severity=Severity.CRITICAL,
    open_title="Portainer has no administrator yet: anyone can claim it and control Docker",
    remedy=Remedy(
        "Create Portainer's administrator now from your LAN (or restart Portainer and do it "
        "within its 5-minute window), and do not forward Portainer's port. " + VPN_ADVICE,
        ("https://github.com/portainer/portainer/blob/develop/api/http/handler/users/"
         "admin_check.go",),
    ),
    version_from=(PORTAINER_STATUS, "Version"),
)

ADGUARD_INSTALL = _get("/control/install/get_addresses", JSON_ACCEPT)
ADGUARD_HOME = HttpProduct(
    key="adguard_home",
    name="AdGuard Home",
    usual_ports=(3000, 80),
    hints=(),
    identify=(
        _rule("the first-run installer describes interfaces and ports",
              (ADGUARD_INSTALL, Match(json=_json(("interfaces", JsonTest.PRESENT),
                                                  ("web_port", JsonTest.PRESENT),
                                                  ("dns_port", JsonTest.PRESENT))))),
    ),
    open_when=(
        _rule("the installer runs: anyone can finish setup and choose the admin password",
              (ADGUARD_INSTALL, Match(status=frozenset({200}),
                                      json=_json(("interfaces", JsonTest.PRESENT),
                                                 ("web_port", JsonTest.PRESENT))))),
    ),
    severity=Severity.CRITICAL,
    open_title="AdGuard Home's setup wizard is reachable: anyone can configure it",
    remedy=Remedy(
        "Finish AdGuard Home's setup from your LAN now (it sets the admin credentials), and "
        "forward only the DNS-over-HTTPS/TLS ports you need, never the admin port.",
        ("https://github.com/AdguardTeam/AdGuardHome/blob/master/internal/home/"
         "controlinstall.go",),
    ),
    version_from=(ADGUARD_INSTALL, "version"),
)

PIHOLE_AUTH = _get("/api/auth", JSON_ACCEPT)
PIHOLE = HttpProduct(
    key="pihole",
    name="Pi-hole",
    usual_ports=(80, 443, 8080),
    hints=(),
    identify=(
        _rule("/api/auth answers with Pi-hole's session object",
              (PIHOLE_AUTH, Match(json=_json(("session.valid", r"^(true|false)$"),
                                             ("session.totp", r"^(true|false)$"))))),
    ),
    open_when=(
        _rule("no password is set: the session is valid without logging in",
              (PIHOLE_AUTH, Match(status=frozenset({200}),
                                  json=_json(("session.valid", JsonTest.TRUE),
                                             ("session.totp", r"^(true|false)$"))))),
    ),
    locked_when=(
        _rule("a password is set: the anonymous session is not valid",
              (PIHOLE_AUTH, Match(json=_json(("session.valid", JsonTest.FALSE))))),
    ),
    severity=Severity.HIGH,
    open_title="Pi-hole's admin API needs no password",
    remedy=Remedy(
        "Set a web interface password (pihole setpassword) and do not forward the admin "
        "interface.",
        ("https://docs.pi-hole.net/api/auth/",),
    ),
)

FRIGATE_STATS = _get("/api/stats", JSON_ACCEPT)
FRIGATE = HttpProduct(
    key="frigate",
    name="Frigate",
    usual_ports=(5000, 8971),
    hints=(Hint(title=r"^Frigate\b"),),
    identify=(
        _rule("/api/stats answers with Frigate's service and detector statistics",
              (FRIGATE_STATS, Match(json=_json(("service.version", JsonTest.PRESENT),
                                               ("detectors", JsonTest.PRESENT))))),
    ),
    open_when=(
        _rule("the API answers without authentication (port 5000 is unauthenticated by design)",
              (FRIGATE_STATS, Match(status=frozenset({200}),
                                    json=_json(("service.version", JsonTest.PRESENT),
                                               ("detectors", JsonTest.PRESENT))))),
    ),
    severity=Severity.CRITICAL,
    open_title="Frigate's unauthenticated API is reachable: cameras, recordings and config",
    remedy=Remedy(
        "Never forward Frigate's port 5000 (internal, unauthenticated by design). Use the "
        "authenticated port 8971 with auth enabled, or a VPN.",
        ("https://docs.frigate.video/configuration/authentication/",),
    ),
    version_from=(FRIGATE_STATS, "service.version"),
)

CODE_SERVER_HEALTH = _get("/healthz", JSON_ACCEPT)
CODE_SERVER_ROOT = _get("/")
CODE_SERVER_LOGIN = _get("/login")
CODE_SERVER = HttpProduct(
    key="code_server",
    name="code-server",
    usual_ports=(8443, 8080),
    hints=(Hint(title=r"code-server|Visual Studio Code"), Hint(location=r"^\./login$")),
    identify=(
        _rule("/healthz answers with code-server's heartbeat",
              (CODE_SERVER_HEALTH, Match(json=_json(("status", r"^(alive|expired)$"),
                                                    ("lastHeartbeat", JsonTest.PRESENT))))),
    ),
    open_when=(
        _rule("the workbench is served without a login (--auth none)",
              (CODE_SERVER_ROOT, Match(status=frozenset({200}),
                                       body=(r"vscode-workbench-web-configuration",)))),
    ),
    locked_when=(
        _rule("the login page asks for a password",
              (CODE_SERVER_LOGIN, Match(status=frozenset({200}),
                                        body=(r"code-server", r"type=[\"']?password")))),
    ),
    severity=Severity.CRITICAL,
    open_title="code-server runs without a password: a shell on the host for anyone",
    remedy=Remedy(
        "Run code-server with --auth password (the default) and do not forward it. "
        + VPN_ADVICE,
        ("https://coder.com/docs/code-server/FAQ#how-do-i-change-the-password",),
    ),
)

DOCKER_VERSION = _get("/version", JSON_ACCEPT)
DOCKER_API = HttpProduct(
    key="docker",
    name="Docker Engine API",
    usual_ports=(2375,),
    hints=(),
    identify=(
        _rule("/version answers with the Docker Engine's ApiVersion",
              (DOCKER_VERSION, Match(json=_json(("ApiVersion", JsonTest.PRESENT),
                                                ("Version", JsonTest.PRESENT),
                                                ("GoVersion", JsonTest.PRESENT))))),
    ),
    open_when=(
        _rule("the Engine API answers without TLS client certificates",
              (DOCKER_VERSION, Match(status=frozenset({200}),
                                     json=_json(("ApiVersion", JsonTest.PRESENT),
                                                ("GoVersion", JsonTest.PRESENT))))),
    ),
    severity=Severity.CRITICAL,
    open_title="The Docker Engine API is open: anyone can run containers as root on the host",
    remedy=Remedy(
        "Stop exposing the Docker daemon on TCP (remove -H tcp://0.0.0.0:2375), or protect it "
        "with TLS client certificates (port 2376), and never forward it.",
        ("https://docs.docker.com/engine/security/protect-access/",),
    ),
    version_from=(DOCKER_VERSION, "Version"),
)

ROOT = _get("/", JSON_ACCEPT)
ELASTICSEARCH = HttpProduct(
    key="elasticsearch",
    name="Elasticsearch",
    usual_ports=(9200,),
    hints=(),
    identify=(
        _rule("/ answers with the cluster banner (tagline)",
              (ROOT, Match(json=_json(("tagline", r"You Know, for Search|OpenSearch Project"),
                                      ("version.number", JsonTest.PRESENT))))),
        _rule("/ answers with Elasticsearch's security exception",
              (ROOT, Match(json=_json(("error.type", r"^security_exception$"))))),
    ),
    open_when=(
        _rule("the cluster answers without credentials",
              (ROOT, Match(status=frozenset({200}),
                           json=_json(("tagline", r"You Know, for Search|OpenSearch Project"),
                                      ("cluster_name", JsonTest.PRESENT))))),
    ),
    locked_when=(
        _rule("security is enabled: 401 security_exception",
              (ROOT, Match(status=frozenset({401}),
                           json=_json(("error.type", r"^security_exception$"))))),
    ),
    severity=Severity.CRITICAL,
    open_title="Elasticsearch answers without credentials: its indices are readable and writable",
    remedy=Remedy(
        "Enable security (xpack.security.enabled: true, the default since 8.0) with passwords "
        "for the built-in users, and never forward port 9200.",
        ("https://www.elastic.co/guide/en/elasticsearch/reference/current/"
         "security-minimal-setup.html",),
    ),
    version_from=(ROOT, "version.number"),
    facts=((ROOT, "cluster_name", "cluster_name"),),
)

MONGODB_HTTP = ROOT  # one GET of / serves Elasticsearch and MongoDB
MONGODB = HttpProduct(
    key="mongodb",
    name="MongoDB",
    usual_ports=(27017,),
    hints=(),
    identify=(
        _rule("the native driver port answers HTTP with MongoDB's own warning",
              (MONGODB_HTTP,
               Match(body=(r"access(ing)? MongoDB over HTTP on the native driver port",)))),
    ),
    open_when=(),
    then_probe="mongodb",
    severity=Severity.CRITICAL,
    open_title="MongoDB answers without authentication: its databases are readable",
    remedy=Remedy(
        "Enable access control (security.authorization: enabled) with an admin user, bind "
        "MongoDB to the LAN only, and never forward port 27017.",
        ("https://www.mongodb.com/docs/manual/administration/security-checklist/",),
    ),
)

HTTP_PRODUCTS: tuple[HttpProduct, ...] = (
    NODE_RED,
    ESPHOME,
    ZIGBEE2MQTT,
    GRAFANA,
    INFLUXDB,
    JELLYFIN,
    PORTAINER,
    ADGUARD_HOME,
    PIHOLE,
    FRIGATE,
    CODE_SERVER,
    DOCKER_API,
    ELASTICSEARCH,
    MONGODB,
)

# --- protocol products -------------------------------------------------------------------

MQTT = ProtocolProduct(
    key="mqtt",
    name="MQTT broker",
    usual_ports=(1883, 8883),
    probe="mqtt",
    services=("mqtt",),
    finding_open=MQTT_ANONYMOUS.id,
    severity=Severity.HIGH,
    open_title="The MQTT broker accepts clients without credentials",
    cleartext_credentials=True,
    remedy=Remedy(
        "Set allow_anonymous false and a password_file (mosquitto; the HA Mosquitto add-on "
        "uses HA users), use TLS on 8883 if the broker must be reachable, and prefer a VPN.",
        ("https://mosquitto.org/man/mosquitto-conf-5.html",
         "https://www.home-assistant.io/integrations/mqtt/"),
    ),
)
MQTT_WEBSOCKET = ProtocolProduct(
    key="mqtt",
    name="MQTT broker (websockets)",
    usual_ports=(9001, 8083, 8080),
    probe="mqtt_websocket",
    services=(),
    try_unknown=True,  # mosquitto's websockets listener hangs up on a plain GET: unnamed
    finding_open=MQTT_ANONYMOUS.id,
    severity=Severity.HIGH,
    open_title="The MQTT broker accepts websocket clients without credentials",
    cleartext_credentials=True,
    remedy=MQTT.remedy,
)
REDIS = ProtocolProduct(
    key="redis",
    name="Redis",
    usual_ports=(6379,),
    probe="redis",
    services=("redis",),
    try_unknown=True,
    severity=Severity.CRITICAL,
    open_title="Redis answers without a password: data readable and writable, often code execution",
    cleartext_credentials=True,
    remedy=Remedy(
        "Set requirepass (or ACL users), keep protected-mode on, bind Redis to the LAN only, "
        "and never forward port 6379.",
        ("https://redis.io/docs/latest/operate/oss_and_stack/management/security/",),
    ),
)
MEMCACHED = ProtocolProduct(
    key="memcached",
    name="memcached",
    usual_ports=(11211,),
    probe="memcached",
    services=("memcached", "memcache"),
    try_unknown=True,
    severity=Severity.HIGH,
    open_title="memcached answers without authentication: cached data readable and writable",
    remedy=Remedy(
        "Bind memcached to localhost or the LAN (-l), disable UDP (-U 0), and never forward "
        "port 11211.",
        ("https://github.com/memcached/memcached/wiki/SASLHowto",),
    ),
)
VNC = ProtocolProduct(
    key="vnc",
    name="VNC server",
    usual_ports=(5900, 5901),
    probe="vnc",
    services=("vnc",),
    banner=r"^RFB \d{3}\.\d{3}",
    severity=Severity.CRITICAL,
    open_title="The VNC server offers security type None: the desktop is open to anyone",
    remedy=Remedy(
        "Require authentication (a strong VNC password at the very least, better VeNCrypt "
        "with TLS and a user login), and reach the desktop over a VPN instead of forwarding it.",
        ("https://www.rfc-editor.org/rfc/rfc6143#section-7.2",),
    ),
)
TELNET = ProtocolProduct(
    key="telnet",
    name="Telnet",
    usual_ports=(23, 2323),
    probe="telnet",
    services=("telnet",),
    severity=Severity.CRITICAL,
    open_title="Telnet gives a shell without logging in",
    cleartext_credentials=True,
    remedy=Remedy(
        "Disable telnet and use SSH with keys instead; never forward port 23.",
        ("https://www.rfc-editor.org/rfc/rfc854",),
    ),
)
RTSP = ProtocolProduct(
    key="rtsp",
    name="RTSP camera stream",
    usual_ports=(554, 8554),
    probe="rtsp",
    services=("rtsp",),
    banner=r"^RTSP/1\.0",
    # RTSP servers that tunnel RTSP over HTTP answer identification's GET themselves
    http_server=r"RTSP|LIVE555|Streaming Server",
    severity=Severity.HIGH,
    open_title="The RTSP stream plays without credentials",
    remedy=Remedy(
        "Set a camera password for RTSP (or restream through go2rtc/Frigate with credentials) "
        "and do not forward RTSP ports; watch cameras over a VPN.",
        ("https://www.rfc-editor.org/rfc/rfc2326#section-10.2",),
    ),
)
SMB = ProtocolProduct(
    key="smb",
    name="SMB file sharing",
    usual_ports=(445, 139),
    probe="smb",
    services=("microsoft-ds", "netbios-ssn", "smb"),
    try_unknown=True,
    exposed_finding=(SMB_EXPOSED.id, Severity.HIGH),
    remedy=Remedy(
        "Never forward SMB (445/139): it is the most attacked file-sharing protocol on the "
        "internet. Share files over a VPN, or with Nextcloud/Syncthing behind HTTPS.",
        SMB_EXPOSED.references,
    ),
)

PROTOCOL_PRODUCTS: tuple[ProtocolProduct, ...] = (
    MQTT, MQTT_WEBSOCKET, REDIS, MEMCACHED, VNC, TELNET, RTSP, SMB,
)
