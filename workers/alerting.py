"""Alerting jobs: evaluate the rules every minute, escalate, send the warning digest, check SLAs.

The actors are thin: analytics decides (``analytics.evaluate``, ``analytics.alerts``,
``analytics.sla``); this module only runs it per organization and hands the resulting
notification requests to the notification actor.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import dramatiq
import structlog

from analytics.alerts import EngineReport, Notify, apply_sla, digest, escalate
from analytics.builtin import SNMP_FAILING
from analytics.rules import load_rules
from analytics.sla import evaluate_targets
from workers.notify import notify_alert, notify_digest
from workers.runtime import Runtime, current

log = structlog.get_logger("netpulse.workers.alerting")

ALERTING = "alerting"


def dispatch(org_id: uuid.UUID, notify: Sequence[Notify]) -> int:
    """Queue the deliveries the engine asked for; returns how many were queued."""
    queued = 0
    for n in notify:
        if n.reason == "digest":
            queued += len(notify_digest(org_id, n.alert_ids, n.channels))
        else:
            for alert_id in n.alert_ids:
                queued += len(notify_alert(alert_id, channel_names=n.channels))
    return queued


# Organizations with something to evaluate: enabled rules, a device whose SNMP polls fail (the
# built-in rule), or an open alert of a built-in rule to clear.
_ORGANIZATIONS = """
SELECT organization_id FROM alert_rules WHERE enabled
UNION
SELECT d.organization_id FROM probe_status p JOIN devices d ON d.id = p.device_id WHERE p.kind = 'snmp' AND NOT p.ok
UNION
SELECT organization_id FROM alerts WHERE NOT resolved AND rule_id IS NULL AND alert_type = %s
"""


def _organizations(rt: Runtime) -> list[uuid.UUID]:
    with rt.connection() as conn:
        return [r[0] for r in conn.execute(_ORGANIZATIONS, (SNMP_FAILING[:50],))]


def evaluate_organization(rt: Runtime, org_id: uuid.UUID, now: datetime) -> EngineReport:
    """One evaluation tick of an organization's rules, escalation included; notifications queued."""
    with rt.connection() as conn:
        rules = load_rules(conn, org_id)
        findings = rt.evaluator.evaluate(conn, org_id, rules, now)
        report = rt.alert_engine.apply(conn, org_id, findings, now)
        with conn.transaction():
            escalations = escalate(conn, org_id, now)
    dispatch(org_id, report.notify + escalations)
    return report


@dramatiq.actor(actor_name="workers.evaluate_alerts", queue_name=ALERTING, max_retries=3, max_age=120_000,
                time_limit=300_000)
def evaluate_alerts() -> None:
    """Every minute (the scheduler sends it): each organization's rules against its latest samples."""
    rt = current()
    now = datetime.now(UTC)
    for org_id in _organizations(rt):
        report = evaluate_organization(rt, org_id, now)
        if report.opened or report.resolved:
            log.info("netpulse.workers.alerts_evaluated", org=str(org_id), opened=len(report.opened),
                     resolved=len(report.resolved), repeated=report.repeated, suppressed=len(report.suppressed),
                     flapping=len(report.flapping))


@dramatiq.actor(actor_name="workers.send_digests", queue_name=ALERTING, max_retries=3, max_age=600_000)
def send_digests() -> None:
    """Every digest period: the warnings not yet notified, one message per channel set."""
    rt = current()
    now = datetime.now(UTC)
    for org_id in _organizations(rt):
        with rt.connection() as conn, conn.transaction():
            notify = digest(conn, org_id, now)
        dispatch(org_id, notify)


@dramatiq.actor(actor_name="workers.check_sla", queue_name=ALERTING, max_retries=3, max_age=600_000,
                time_limit=300_000)
def check_sla() -> None:
    """Every few minutes: each SLA target over its period so far; a breach opens (or keeps) an alert."""
    rt = current()
    now = datetime.now(UTC)
    with rt.connection() as conn:
        orgs = [r[0] for r in conn.execute("SELECT DISTINCT organization_id FROM sla_targets")]
    for org_id in orgs:
        with rt.connection() as conn:
            report = apply_sla(conn, org_id, evaluate_targets(conn, org_id, now), now)
        dispatch(org_id, report.notify)
        if report.opened or report.resolved:
            log.info("netpulse.workers.sla_checked", org=str(org_id), opened=len(report.opened),
                     resolved=len(report.resolved))


ACTORS = (evaluate_alerts, send_digests, check_sla)
