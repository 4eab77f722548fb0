"""The Home Assistant check: on every HTTP port, find HA and check HA's "Securing" checklist.

Flow: probe (bounded GETs + the websocket greeting) -> detect (confidence, evidence) -> the
findings below, each only from HA's own answers (a title alone never produces one):

- ha.onboarding_open (critical): /api/onboarding says the `user` step is not done, confirmed
  by a second HA signal (high confidence).
- ha.trusted_networks_exposed (high): /auth/providers lists trusted_networks to us.
- ha.trusted_networks_bypass (critical, --active): the trusted_networks login flow, started
  and never continued, offers users to pick without a password (or logs us in at once).
- ha.plain_http (high): HA answers on this port without TLS.
- ha.version_disclosed (info) and ha.outdated: the websocket greeting's ha_version, against
  the dated advisory table.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
from typing import Any

from scanner.checks.base import CheckContext, CheckResult, FindingSpec
from scanner.checks.ha import advisories, parse, probe
from scanner.checks.ha.details import AdvisoryTable, HaDetails, LoginFlow, NotHaDetails, Onboarding
from scanner.checks.ha.detect import Detection, Facts, assess
from scanner.checks.ha.remediation import guidance
from scanner.core.findings import Finding, Severity
from scanner.core.text import safe_text


def _spec(finding_id: str, severity: Severity, title: str) -> FindingSpec:
    return FindingSpec(finding_id, severity, title, guidance(finding_id).references)


ONBOARDING_OPEN = _spec(
    "ha.onboarding_open", Severity.CRITICAL,
    "Home Assistant was never onboarded: anyone can create the owner account",
)
TRUSTED_EXPOSED = _spec(
    "ha.trusted_networks_exposed", Severity.HIGH,
    "Home Assistant offers trusted_networks login to an internet client",
)
TRUSTED_BYPASS = _spec(
    "ha.trusted_networks_bypass", Severity.CRITICAL,
    "Home Assistant logs an internet client in without a password (trusted_networks)",
)
PLAIN_HTTP = _spec(
    "ha.plain_http", Severity.HIGH, "Home Assistant login served without TLS",
)
VERSION_DISCLOSED = _spec(
    "ha.version_disclosed", Severity.INFO,
    "Home Assistant tells its version to unauthenticated clients",
)
OUTDATED = _spec(
    "ha.outdated", Severity.HIGH,
    "Home Assistant Core is older than fixes for published security advisories",
)
CATALOGUE = (ONBOARDING_OPEN, TRUSTED_EXPOSED, TRUSTED_BYPASS, PLAIN_HTTP, VERSION_DISCLOSED,
             OUTDATED)
MAX_LISTED_ADVISORIES = 6
# Addresses a scanner only reaches from inside (LAN, VPN, CGNAT/Tailscale, loopback): there,
# HA listing trusted_networks is what trusted_networks is for (e.g. `exposure preflight`), and
# whether internet clients are trusted too cannot be seen from that vantage point.
LOCAL_NETWORKS = tuple(ipaddress.ip_network(net) for net in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8",
    "169.254.0.0/16", "fc00::/7", "fe80::/10", "::1/128",
))


def is_local_vantage(address: str) -> bool:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(parsed.version == net.version and parsed in net for net in LOCAL_NETWORKS)


class HomeAssistantCheck:
    name = "ha"
    catalogue = CATALOGUE
    after: tuple[str, ...] = ()

    def applies(self, context: CheckContext) -> bool:
        return context.identity.service == "http"

    def run(self, context: CheckContext) -> CheckResult:
        page = context.identity.details.get("http") or {}
        observed = probe.observe(context.connector, page.get("title"), _root_redirect(page))
        detection = assess(observed)
        if not detection.is_ha:
            details = {"ha": not_ha_details(detection)} if detection.confidence != "none" else {}
            return CheckResult(details=details, notes=_not_ha_notes(detection))
        flow = _active_flow(context, detection)
        today = dt.datetime.now(dt.UTC).date()
        findings, notes = build_findings(
            detection, context.port, context.identity.tls, flow, context.options.active, today,
            local_vantage=is_local_vantage(str(context.target.address)),
        )
        return CheckResult(
            findings=tuple(findings),
            details={"ha": ha_details(detection, flow, today)},
            notes=tuple(notes),
            product="Home Assistant",
            version=detection.facts.version,
        )


def _root_redirect(page: dict[str, Any]) -> str | None:
    redirects = page.get("redirects") or []
    first = redirects[0] if redirects and isinstance(redirects[0], dict) else {}
    location = first.get("location")
    return location if isinstance(location, str) else None


def _not_ha_notes(detection: Detection) -> tuple[str, ...]:
    if detection.contradictions:
        return (
            "answers look partly like Home Assistant but contradict each other ("
            + "; ".join(detection.contradictions) + "): not treated as Home Assistant",
        )
    if detection.confidence == "low":
        return (
            "the page looks like Home Assistant ("
            + "; ".join(detection.evidence)
            + ") but none of HA's endpoints answered like HA: not treated as Home Assistant",
        )
    return ()


def _active_flow(context: CheckContext, detection: Detection) -> parse.FlowStart | None:
    """--active: start the trusted_networks flow HA listed for us; parse, keep no credential."""
    providers = detection.facts.providers
    provider = providers.find("trusted_networks") if providers else None
    if not context.options.active or provider is None:
        return None
    answer = probe.start_login_flow(context.connector, (provider.type, provider.id))
    if answer is None:
        return parse.FlowStart("other")
    return parse.parse_flow_start(answer.status, answer.body) or parse.FlowStart("other")


# --- findings (pure) ---------------------------------------------------------------------------


def build_findings(
    detection: Detection, port: int, tls: bool, flow: parse.FlowStart | None, active: bool,
    today: dt.date, *, local_vantage: bool = False,
) -> tuple[list[Finding], list[str]]:
    facts = detection.facts
    findings: list[Finding] = []
    notes: list[str] = []
    _onboarding(detection, port, findings, notes)
    _trusted_networks(facts, port, flow, active, findings, notes)
    if local_vantage:
        _as_seen_from_inside(findings, notes)
    if not tls:
        findings.append(_finding(PLAIN_HTTP, port, (
            f"Home Assistant answers on port {port} over plain HTTP ("
            + "; ".join(detection.evidence[:2]) + "): the login page and every password "
            "typed into it cross the internet unencrypted")))
    if facts.version:
        _version(facts, port, today, findings, notes)
    else:
        notes.append("Home Assistant's version could not be read (no websocket greeting)")
    return findings, notes


def _finding(spec: FindingSpec, port: int, evidence: str,
             severity: Severity | None = None) -> Finding:
    return spec.finding(port=port, evidence=safe_text(evidence, 1500),
                        remediation=guidance(spec.id).text(), severity=severity)


def _onboarding(detection: Detection, port: int, findings: list[Finding],
                notes: list[str]) -> None:
    onboarding = detection.facts.onboarding
    if onboarding is None or onboarding.user_done is not False:
        return
    steps = ", ".join(f"{step}={'done' if done else 'not done'}" for step, done in
                      onboarding.steps)
    if not detection.strong:
        notes.append("/api/onboarding says the owner account does not exist, but no second HA "
                      "signal confirmed it: not reported")
        return
    evidence = (f"GET /api/onboarding (no authentication) lists the onboarding steps: {steps}. "
                "The user step is not done, so anyone who opens this page can create the "
                "owner account.")
    if detection.facts.providers and detection.facts.providers.onboarding_required:
        evidence += " GET /auth/providers answers 400 onboarding_required."
    findings.append(_finding(ONBOARDING_OPEN, port, evidence))


def _trusted_networks(
    facts: Facts, port: int, flow: parse.FlowStart | None, active: bool,
    findings: list[Finding], notes: list[str],
) -> None:
    providers = facts.providers
    if providers is None or providers.find("trusted_networks") is None:
        return
    listed = ", ".join(providers.types)
    findings.append(_finding(TRUSTED_EXPOSED, port, (
        f"GET /auth/providers lists [{listed}] to this scanner's address. HA shows "
        "trusted_networks only to a client inside a trusted network, so the internet is "
        "trusted: passwordless login may be possible from here.")))
    if not active:
        notes.append("whether trusted_networks logs an internet client in without a password "
                     "is confirmed only with --active (starts, never finishes, a login flow)")
        return
    if flow is None:
        return
    if flow.kind == "user_picker" and not flow.password_asked:
        findings.append(_finding(TRUSTED_BYPASS, port, (
            "POST /auth/login_flow (handler trusted_networks) answered a form offering "
            f"{flow.users_offered} user(s) to pick, with no password field. The flow was not "
            "continued; no user was picked and nothing was exchanged for a token.")))
    elif flow.kind == "logged_in":
        findings.append(_finding(TRUSTED_BYPASS, port, (
            "POST /auth/login_flow (handler trusted_networks) completed the login at once "
            "(allow_bypass_login with a single user): HA handed out an authorization code "
            "to an anonymous internet client. The code was discarded unread and never "
            "exchanged for a token.")))
    else:
        reason = f" ({flow.abort_reason})" if flow.abort_reason else ""
        notes.append(f"the trusted_networks login flow did not offer a passwordless login: "
                     f"{flow.kind}{reason}")


def _as_seen_from_inside(findings: list[Finding], notes: list[str]) -> None:
    """From a LAN/VPN address, trusted_networks answering us is expected, not proof that the
    internet is trusted: the findings stay (forwarding the port may expose them) at medium."""
    for index, finding in enumerate(findings):
        if finding.id not in (TRUSTED_EXPOSED.id, TRUSTED_BYPASS.id):
            continue
        findings[index] = dataclasses.replace(
            finding,
            severity=Severity.MEDIUM,
            evidence=safe_text(
                finding.evidence + " Seen from a local address: whether internet clients are "
                "trusted too cannot be verified from here. Before forwarding this port, make "
                "sure trusted_networks lists only LAN ranges, and that a reverse proxy on the "
                "same host is in http: trusted_proxies (else every internet client arrives "
                "with the proxy's trusted address).", 1500),
        )
    if any(f.id in (TRUSTED_EXPOSED.id, TRUSTED_BYPASS.id) for f in findings):
        notes.append("trusted_networks findings were made from a local address (severity "
                     "medium): scan from outside to see what the internet gets")


def _version(facts: Facts, port: int, today: dt.date, findings: list[Finding],
             notes: list[str]) -> None:
    version_text = facts.version or ""
    findings.append(_finding(VERSION_DISCLOSED, port, (
        f'GET /api/websocket: the unauthenticated greeting is {{"type": "auth_required", '
        f'"ha_version": "{version_text}"}}')))
    version = advisories.parse_version(version_text)
    if version is None:
        return
    onboarding = facts.onboarding
    conditions = frozenset({"onboarding_open"}) if onboarding and onboarding.user_done is False \
        else frozenset()
    result = advisories.assess_version(version, conditions)
    age = advisories.table_age_days(today)
    table = f"advisory table of {advisories.TABLE_DATE.isoformat()} ({age} days old)"
    for advisory in result.undecided:
        notes.append(f"version {version_text} is a pre-release of {advisory.fixed}, which fixes "
                     f"{advisory.id}: cannot tell from outside whether it has the fix")
    severity = advisories.outdated_severity(result.missed)
    if severity is None:
        notes.append(f"Home Assistant {version_text}: no known advisory missed ({table})")
        return
    findings.append(_finding(OUTDATED, port, _outdated_evidence(version_text, result, table),
                             severity=severity))


def _outdated_evidence(version: str, result: advisories.Assessment, table: str) -> str:
    ordered = sorted(result.missed, key=lambda m: -m.advisory.severity.rank)
    lines = []
    for item in ordered[:MAX_LISTED_ADVISORIES]:
        advisory = item.advisory
        line = (f"{advisory.id} ({advisory.severity}, fixed in {advisory.fixed}): "
                f"{advisory.title}")
        if item.condition_unverified:
            line += f" [only if {advisory.condition}: cannot be verified from outside]"
        lines.append(line)
    more = len(ordered) - len(lines)
    tail = f"; and {more} more" if more > 0 else ""
    return (f"Home Assistant Core {version} (from the websocket greeting) misses "
            f"{len(ordered)} advisory fix(es) per the {table}: " + "; ".join(lines) + tail)


# --- details (pure) -----------------------------------------------------------------------------


def ha_details(detection: Detection, flow: parse.FlowStart | None, today: dt.date) -> dict:
    facts = detection.facts
    return HaDetails(
        is_home_assistant=True,
        version=facts.version,
        onboarding=_onboarding_details(facts),
        detected_by=tuple(detection.evidence),
        confidence=detection.confidence,
        auth_providers=tuple(facts.providers.types) if facts.providers else None,
        auth_providers_shape=facts.providers.shape if facts.providers else None,
        install_type=facts.installation_type,
        login_flow=_flow_details(flow),
        advisory_table=AdvisoryTable(
            date=advisories.TABLE_DATE.isoformat(),
            age_days=advisories.table_age_days(today),
            sources=tuple(advisories.TABLE_SOURCES),
        ),
    ).to_dict()


def not_ha_details(detection: Detection) -> dict[str, Any]:
    """A port that only looks like HA (a title, a copied manifest): said so, nothing more."""
    return NotHaDetails(
        is_home_assistant=False,
        confidence=detection.confidence,
        detected_by=tuple(detection.evidence),
        contradictions=tuple(detection.contradictions),
    ).to_dict()


def _onboarding_details(facts: Facts) -> Onboarding:
    onboarding, providers = facts.onboarding, facts.providers
    if onboarding is not None:
        state = "open" if onboarding.user_done is False else "in_progress"
        if all(done for _, done in onboarding.steps):
            state = "finished"
        return Onboarding(state, {step: done for step, done in onboarding.steps})
    if providers is not None and not providers.onboarding_required:
        return Onboarding("finished", None)  # /api/onboarding gone, providers listed
    return Onboarding("unknown", None)


def _flow_details(flow: parse.FlowStart | None) -> LoginFlow | None:
    if flow is None:
        return None
    return LoginFlow(result=flow.kind, users_offered=flow.users_offered,
                     password_asked=flow.password_asked, abort_reason=flow.abort_reason)


CHECK = HomeAssistantCheck()
