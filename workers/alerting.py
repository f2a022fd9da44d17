"""Alerting jobs: evaluate the rules every minute, escalate, send the warning digest, check SLAs.

The actors are thin: analytics decides (``analytics.evaluate``, ``analytics.alerts``,
``analytics.sla``) and writes the messages into the outbox in the same transaction; this module
runs it per organization and, after the commit, asks for those rows to be sent at once.

Each organization runs on its own (:func:`for_each_organization`): one organization's failure is
logged and counted, and the others go on. The message is not retried for it: the next run (a minute
later for rules) covers it, where a retry would evaluate every other organization twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime

import dramatiq
import structlog

from analytics.alerts import EngineReport, Notify, apply_sla, digest, escalate
from analytics.builtin import SNMP_FAILING
from analytics.rules import load_rules
from analytics.sla import evaluate_targets
from workers.notify import send_soon
from workers.outage import INFRASTRUCTURE_ERRORS, describe, retry_on_outage
from workers.runtime import Runtime, current

log = structlog.get_logger("netpulse.workers.alerting")

ALERTING = "alerting"


def dispatch(notify: Sequence[Notify]) -> int:
    """Ask for the rows the engine queued to be sent now; returns how many rows."""
    ids = [i for n in notify for i in n.outbox_ids]
    send_soon(ids)
    return len(ids)


def for_each_organization(rt: Runtime, job: str, orgs: Iterable[uuid.UUID],
                          run: Callable[[uuid.UUID], object]) -> list[uuid.UUID]:
    """``run(org)`` for each organization; returns those that failed (each logged once and counted
    in ``netpulse_organization_failures``). An outage of the database or Redis fails the whole run."""
    failed = []
    for org_id in orgs:
        try:
            run(org_id)
        except INFRASTRUCTURE_ERRORS:
            raise  # the database or Redis is away for everyone: the whole run is retried
        except Exception as exc:  # one organization's bad data or bug must not starve the others
            failed.append(org_id)
            log.error("netpulse.workers.organization_failed", job=job, org=str(org_id), error=describe(exc),
                      exc_info=True)
            with rt.telemetry.batch() as t:
                t.count("netpulse_organization_failures", (job,))
    return failed


# Organizations with something to evaluate: enabled rules, a device whose SNMP polls fail (the
# built-in rule), or an open alert of a built-in rule to clear.
_EVALUATED = """
SELECT organization_id FROM alert_rules WHERE enabled
UNION
SELECT d.organization_id FROM probe_status p JOIN devices d ON d.id = p.device_id WHERE p.kind = 'snmp' AND NOT p.ok
UNION
SELECT organization_id FROM alerts WHERE NOT resolved AND rule_id IS NULL AND alert_type = %(builtin)s
ORDER BY 1
"""
_ORGANIZATIONS = {
    "evaluate": _EVALUATED,
    "digest": "SELECT DISTINCT organization_id FROM alerts WHERE NOT resolved ORDER BY 1",
    "sla": "SELECT DISTINCT organization_id FROM sla_targets ORDER BY 1",
}


def _organizations(rt: Runtime, job: str) -> list[uuid.UUID]:
    with rt.connection() as conn:
        params = {"builtin": SNMP_FAILING[:50]} if job == "evaluate" else None
        return [r[0] for r in conn.execute(_ORGANIZATIONS[job], params)]


def evaluate_organization(rt: Runtime, org_id: uuid.UUID, now: datetime) -> EngineReport:
    """One evaluation tick of an organization's rules, escalation included; its messages sent."""
    with rt.connection() as conn:
        rules = load_rules(conn, org_id)
        findings = rt.evaluator.evaluate(conn, org_id, rules, now)
        report = rt.alert_engine.apply(conn, org_id, findings, now)
        with conn.transaction():
            escalations = escalate(conn, org_id, now)
    dispatch(report.notify + escalations)
    if report.opened or report.resolved:
        log.info("netpulse.workers.alerts_evaluated", org=str(org_id), opened=len(report.opened),
                 resolved=len(report.resolved), repeated=report.repeated, suppressed=len(report.suppressed),
                 flapping=len(report.flapping))
    return report


@dramatiq.actor(actor_name="workers.evaluate_alerts", queue_name=ALERTING, max_retries=3, max_age=120_000,
                time_limit=300_000)
@retry_on_outage
def evaluate_alerts() -> None:
    """Every minute (the scheduler sends it): each organization's rules against its latest samples."""
    rt = current()
    now = datetime.now(UTC)
    for_each_organization(rt, "evaluate_alerts", _organizations(rt, "evaluate"),
                          lambda org_id: evaluate_organization(rt, org_id, now))


def _digest_organization(rt: Runtime, org_id: uuid.UUID, now: datetime) -> None:
    with rt.connection() as conn, conn.transaction():
        notify = digest(conn, org_id, now)
    dispatch(notify)


@dramatiq.actor(actor_name="workers.send_digests", queue_name=ALERTING, max_retries=3, max_age=600_000)
@retry_on_outage
def send_digests() -> None:
    """Every digest period: the open warnings not in a digest yet, one message per channel set."""
    rt = current()
    now = datetime.now(UTC)
    for_each_organization(rt, "send_digests", _organizations(rt, "digest"),
                          lambda org_id: _digest_organization(rt, org_id, now))


def _check_organization(rt: Runtime, org_id: uuid.UUID, now: datetime) -> None:
    with rt.connection() as conn:
        report = apply_sla(conn, org_id, evaluate_targets(conn, org_id, now), now)
    dispatch(report.notify)
    if report.opened or report.resolved:
        log.info("netpulse.workers.sla_checked", org=str(org_id), opened=len(report.opened),
                 resolved=len(report.resolved))


@dramatiq.actor(actor_name="workers.check_sla", queue_name=ALERTING, max_retries=3, max_age=600_000,
                time_limit=300_000)
@retry_on_outage
def check_sla() -> None:
    """Every few minutes: each SLA target over its period so far; a breach opens (or keeps) an alert."""
    rt = current()
    now = datetime.now(UTC)
    for_each_organization(rt, "check_sla", _organizations(rt, "sla"),
                          lambda org_id: _check_organization(rt, org_id, now))


ACTORS = (evaluate_alerts, send_digests, check_sla)
