"""The alert lifecycle: firing -> acknowledged -> resolved, and who hears about it.

The engine takes findings (a rule's verdict on one series at one evaluation) and keeps the alerts
table in step, in one transaction per call:

- **dedupe**: one open alert per fingerprint (rule, device, metric, interface); a repeat raises
  ``occurrences`` and ``last_seen``, never opens another;
- **auto-resolve**: a finding that no longer fires resolves its open alert;
- **flapping**: a fingerprint that opened ``flap_threshold`` alerts within ``flap_window`` is marked
  flapping and its notifications are held;
- **dependency suppression**: an alert of a device whose parent (or any ancestor) is down or
  failing its probes is kept, marked suppressed ('parent_down'), and not notified;
- **maintenance**: an alert of a device inside a maintenance window (by device, group, site, tag or
  all) is kept, marked suppressed ('maintenance'), and not notified;
- **routing by severity** (the spec's alert-processing flow): critical is notified at once on
  every channel of tier 0 of its escalation policy; warning waits for the digest (to the policy's
  warning channels, tier 0's unless set); info is logged only (policies: ``analytics.policies``).
  :func:`escalate` moves an unacknowledged critical alert to the next tier after that tier's delay.
  Every change is written to ``alert_events``.
- **no silent holes**: a critical alert whose policy names no enabled channel (no policy at all,
  an empty tier, only unknown or disabled names) goes to every enabled channel of its organization,
  with a warning in the log; with no channel at all it is marked ``no_channel`` ("not delivered:
  no channel") and an ``undelivered`` event says so.

The engine never sends anything itself: its messages go into the notification outbox
(:mod:`analytics.notify.outbox`) in the same transaction as the decision, so a decision is never
left without its messages nor a message without its decision. ``notified_at`` is set later, by the
first delivery that succeeds. The :class:`Notify` records returned say what was queued, so the
workers can send those rows at once (the outbox sweeper sends them anyway).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import polars as pl
import structlog
from psycopg.rows import dict_row

from analytics.notify.delivery import alert_notifications, digest_notification
from analytics.notify.outbox import Message, enabled_channels, enqueue
from analytics.policies import DEFAULT_POLICY, DIGEST_EVERY_S, digest_time
from analytics.rules import Rule
from analytics.sla import SlaResult
from netpulse.errors import Conflict, NotFound

log = structlog.get_logger("netpulse.analytics.alerts")

Reason = Literal["opened", "escalated", "digest", "resolved", "sla"]


@dataclass(frozen=True, slots=True)
class Finding:
    """A rule's verdict on one series at evaluation time ``at``."""

    rule: Rule
    device_id: int
    firing: bool
    at: datetime
    ifindex: int = 0
    value: float | None = None
    started_at: datetime | None = None     # when the breach began (before the ``for`` delay)
    message: str | None = None

    @property
    def fingerprint(self) -> str:
        return self.rule.fingerprint(self.device_id, self.ifindex)


@dataclass(frozen=True, slots=True)
class Notify:
    """``alert_ids`` were queued to ``channels`` (notification channel names) as outbox rows ``outbox_ids``."""

    reason: Reason
    severity: str
    alert_ids: tuple[uuid.UUID, ...]
    channels: tuple[str, ...]
    outbox_ids: tuple[int, ...] = ()


@dataclass
class EngineReport:
    opened: list[uuid.UUID] = field(default_factory=list)
    repeated: int = 0
    resolved: list[uuid.UUID] = field(default_factory=list)
    suppressed: dict[uuid.UUID, str] = field(default_factory=dict)
    flapping: list[uuid.UUID] = field(default_factory=list)
    notify: list[Notify] = field(default_factory=list)


_UPSERT = """
INSERT INTO alerts AS a (organization_id, device_id, rule_id, alert_type, severity, fingerprint, message, metric,
                         ifindex, value, threshold, started_at, created_at, last_seen)
SELECT %s, f.device_id, f.rule_id, f.alert_type, f.severity, f.fingerprint, f.message, f.metric, f.ifindex, f.value,
       f.threshold, f.started_at, %s, %s
FROM unnest(%s::integer[], %s::integer[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::integer[],
            %s::float8[], %s::float8[], %s::timestamptz[])
     AS f(device_id, rule_id, alert_type, severity, fingerprint, message, metric, ifindex, value, threshold, started_at)
ON CONFLICT (organization_id, fingerprint) WHERE NOT resolved DO UPDATE SET
    occurrences = a.occurrences + 1, last_seen = EXCLUDED.last_seen, value = EXCLUDED.value
RETURNING a.id, a.fingerprint, (xmax = 0) AS inserted
"""

# Ancestors of each device that are down or failing their probes right now (a parent outage is
# often confirmed in the same tick as its children's, so a failing streak counts too).
_PARENT_DOWN = """
WITH RECURSIVE up (device_id, ancestor, depth) AS (
    SELECT d.id, d.parent_id, 1 FROM devices d WHERE d.id = ANY(%s) AND d.parent_id IS NOT NULL
    UNION ALL
    SELECT up.device_id, p.parent_id, up.depth + 1 FROM up JOIN devices p ON p.id = up.ancestor
    WHERE p.parent_id IS NOT NULL AND up.depth < 32
)
SELECT DISTINCT up.device_id FROM up JOIN devices a ON a.id = up.ancestor
WHERE a.oper_status = 'down' OR a.fail_streak > 0
"""

# Devices inside an active maintenance window, matched by the window's scope.
IN_MAINTENANCE = """
SELECT DISTINCT d.id FROM devices d
JOIN maintenance_windows w ON w.organization_id = d.organization_id AND w.starts_at <= %(at)s AND w.ends_at > %(at)s
LEFT JOIN sites s ON s.id = d.site_id
LEFT JOIN device_groups g ON g.id = d.group_id
WHERE d.id = ANY(%(ids)s) AND (
    w.scope = 'all'
    OR (w.scope = 'device' AND w.scope_ref = d.name)
    OR (w.scope = 'site' AND w.scope_ref = s.name)
    OR (w.scope = 'group' AND w.scope_ref = g.name)
    OR (w.scope = 'tag' AND EXISTS (SELECT 1 FROM device_tags dt JOIN tags t ON t.id = dt.tag_id
                                    WHERE dt.device_id = d.id AND t.name = w.scope_ref)))
"""

_EVENT = "INSERT INTO alert_events (alert_id, time, kind, user_id, note, details) VALUES (%s, %s, %s, %s, %s, %s)"


def _events(conn: Any, rows: Sequence[tuple[Any, ...]]) -> None:
    if rows:
        with conn.cursor() as cur:
            cur.executemany(_EVENT, rows)


def _json(details: dict[str, Any]) -> Any:
    from psycopg.types.json import Jsonb

    return Jsonb(details)


class AlertEngine:
    def __init__(self, *, flap_window: timedelta = timedelta(minutes=30), flap_threshold: int = 4) -> None:
        if flap_threshold < 2:
            raise ValueError("flap_threshold must be at least 2")
        self.flap_window = flap_window
        self.flap_threshold = flap_threshold

    def apply(self, conn: Any, org_id: uuid.UUID, findings: Sequence[Finding], now: datetime) -> EngineReport:
        """Open, bump and resolve alerts for ``findings``; returns what happened and whom to tell."""
        report = EngineReport()
        with conn.transaction():
            firing = [f for f in findings if f.firing]
            if firing:
                self._open_or_bump(conn, org_id, firing, now, report)
            cleared = [f for f in findings if not f.firing]
            if cleared:
                self._resolve_cleared(conn, org_id, cleared, now, report)
        return report

    def _open_or_bump(self, conn: Any, org_id: uuid.UUID, firing: list[Finding], now: datetime,
                      report: EngineReport) -> None:
        by_fp = {f.fingerprint: f for f in firing}   # one finding per series per call
        fs = list(by_fp.values())
        rows = conn.execute(_UPSERT, (
            org_id, now, now,
            # The rule's name is the alert's type: notifications title it "<rule name> on <device>".
            [f.device_id for f in fs], [f.rule.id for f in fs], [f.rule.name[:50] for f in fs],
            [f.rule.severity for f in fs], [f.fingerprint for f in fs],
            [f.message or f.rule.summary(f.value) for f in fs],
            [f.rule.metric.metric_name if f.rule.metric else None for f in fs], [f.ifindex for f in fs],
            [f.value for f in fs], [f.rule.value for f in fs], [f.started_at or f.at for f in fs])).fetchall()
        new = [(r[0], by_fp[r[1]]) for r in rows if r[2]]
        report.repeated += sum(1 for r in rows if not r[2])
        if not new:
            return
        ids = [a for a, _ in new]
        report.opened += ids
        device_ids = sorted({f.device_id for _, f in new})
        parent_down = {r[0] for r in conn.execute(_PARENT_DOWN, (device_ids,)).fetchall()}
        maintenance = {r[0] for r in conn.execute(IN_MAINTENANCE, {"at": now, "ids": device_ids}).fetchall()}
        flap_counts = dict(conn.execute(
            "SELECT fingerprint, count(*) FROM alerts WHERE organization_id = %s AND fingerprint = ANY(%s) "
            "AND created_at > %s GROUP BY fingerprint",
            (org_id, [f.fingerprint for _, f in new], now - self.flap_window)).fetchall())
        events: list[tuple[Any, ...]] = []
        to_notify: list[tuple[uuid.UUID, Finding]] = []
        for alert_id, f in new:
            events.append((alert_id, now, "opened", None, None, _json(
                {"rule": f.rule.name, "value": f.value, "started_at": (f.started_at or f.at).isoformat()})))
            reason = ("maintenance" if f.device_id in maintenance
                      else "parent_down" if f.device_id in parent_down else None)
            flapping = flap_counts.get(f.fingerprint, 0) >= self.flap_threshold
            if reason:
                report.suppressed[alert_id] = reason
                events.append((alert_id, now, "suppressed", None, None, _json({"reason": reason})))
            if flapping:
                report.flapping.append(alert_id)
                events.append((alert_id, now, "flapping", None, None, _json(
                    {"opened_in_window": flap_counts[f.fingerprint], "window_s": self.flap_window.total_seconds()})))
            if not reason and not flapping:
                to_notify.append((alert_id, f))
        if report.suppressed:
            conn.execute("UPDATE alerts SET suppressed = true, suppressed_reason = r.reason FROM "
                         "unnest(%s::uuid[], %s::text[]) AS r(id, reason) WHERE alerts.id = r.id",
                         (list(report.suppressed), list(report.suppressed.values())))
        if report.flapping:
            conn.execute("UPDATE alerts SET flapping = true WHERE id = ANY(%s)", (report.flapping,))
        _events(conn, events)
        critical = [(a, f) for a, f in to_notify if f.rule.severity == "critical"]
        for f_info in [f for _, f in to_notify if f.rule.severity == "info"]:
            log.info("netpulse.alerts.info", rule=f_info.rule.name, device_id=f_info.device_id, value=f_info.value)
        if critical:
            tiers = _tier_channels(conn, org_id, [f.rule for _, f in critical], 0)
            for alert_id, f in critical:
                route(conn, org_id, now, report, reason="opened", severity="critical", tier=0, alert_ids=(alert_id,),
                      names=tiers.get(f.rule.escalation_policy, ()), fallback=True)

    def _resolve_cleared(self, conn: Any, org_id: uuid.UUID, cleared: list[Finding], now: datetime,
                         report: EngineReport) -> None:
        by_fp = {f.fingerprint: f for f in cleared}
        rows = conn.execute(
            "UPDATE alerts SET status = 'resolved', resolved = true, resolved_at = %s, "
            "resolution_note = 'cleared automatically' "
            "WHERE organization_id = %s AND NOT resolved AND fingerprint = ANY(%s) "
            "RETURNING id, fingerprint, severity, "
            "coalesce(delivery_status IN ('pending', 'delivered'), false) AND NOT suppressed AND NOT flapping, "
            "escalation_level", (now, org_id, list(by_fp))).fetchall()
        events = []
        recovered: list[tuple[uuid.UUID, Finding, int]] = []
        for alert_id, fp, severity, was_notified, level in rows:
            f = by_fp[fp]
            report.resolved.append(alert_id)
            events.append((alert_id, now, "resolved", None, "cleared automatically", _json({"value": f.value})))
            if severity == "critical" and was_notified:
                recovered.append((alert_id, f, level))
        _events(conn, events)
        for level in sorted({lv for _, _, lv in recovered}):
            tiers = _tier_channels(conn, org_id, [f.rule for _, f, lv in recovered if lv == level], level,
                                   cumulative=True)
            for alert_id, f, lv in recovered:
                if lv == level:
                    route(conn, org_id, now, report, reason="resolved", severity="critical", tier=level,
                          alert_ids=(alert_id,), names=tiers.get(f.rule.escalation_policy, ()), fallback=True)


def _minutes(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.1f}"


def sla_breach_message(r: SlaResult) -> str:
    """What a breach alert says. A breach means the availability so far is below the target, i.e. the
    down time so far exceeds what the target allows for the time monitored so far; the error budget
    of the whole period (``error_budget_min``) also counts the time still to come, so while the
    period runs it may still be positive and is told apart ("left" or "overspent")."""
    scope = "all devices" if r.scope == "all" else f"{r.scope} {r.scope_ref}"
    unit = "min" if r.devices <= 1 else "device-min"
    down = r.down_s / 60.0
    allowed = (1.0 - r.target_pct / 100.0) * r.monitored_s / 60.0
    text = (f"SLA breached for {scope}: {r.achieved_pct or 0.0:.3f} % available this {r.period} so far "
            f"(target {r.target_pct:g} %): {_minutes(down)} {unit} of down time, over the {_minutes(allowed)} "
            f"{unit} the target allows for the time monitored so far")
    budget = r.error_budget_min
    if budget is None:
        return text
    if budget < 0:
        return f"{text}; the {r.period}'s error budget is overspent by {_minutes(-budget)} {unit}"
    return f"{text}; {_minutes(budget)} {unit} of error budget left for the rest of the {r.period}"


def apply_sla(conn: Any, org_id: uuid.UUID, results: Sequence[SlaResult], now: datetime) -> EngineReport:
    """An alert per breached SLA target and period (deduplicated like any other: a breach that
    persists bumps it), resolved once the target is met again or its period has ended. Routed by
    the target's severity like rule alerts: critical at once to tier 0 of the default policy."""
    report = EngineReport()
    breached = {f"sla:{r.target_id}:{r.period_start:%Y%m%dT%H%M}": r for r in results if r.breached}
    with conn.transaction():
        for fp, r in breached.items():
            message = sla_breach_message(r)
            row = conn.execute(
                "INSERT INTO alerts AS a (organization_id, alert_type, severity, fingerprint, message, value, "
                "threshold, started_at, created_at, last_seen) "
                "VALUES (%s, 'sla_breach', %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (organization_id, fingerprint) WHERE NOT resolved DO UPDATE SET "
                "occurrences = a.occurrences + 1, last_seen = EXCLUDED.last_seen, value = EXCLUDED.value, "
                "message = EXCLUDED.message RETURNING a.id, (xmax = 0)",
                (org_id, r.severity, fp, message, r.achieved_pct, r.target_pct, r.period_start, now, now)).fetchone()
            if not row[1]:
                report.repeated += 1
                continue
            report.opened.append(row[0])
            _events(conn, [(row[0], now, "opened", None, None, _json(
                {"target_id": r.target_id, "achieved_pct": r.achieved_pct, "target_pct": r.target_pct}))])
            if r.severity == "critical":
                steps = _policies(conn, org_id)[None][:1]
                route(conn, org_id, now, report, reason="sla", severity="critical", tier=0, alert_ids=(row[0],),
                      names=tuple(steps[0].get("channels", [])) if steps else (), fallback=True)
        for alert_id, fp in conn.execute(
                "UPDATE alerts SET status = 'resolved', resolved = true, resolved_at = %s, "
                "resolution_note = 'SLA target met again, or its period ended' "
                "WHERE organization_id = %s AND alert_type = 'sla_breach' AND NOT resolved "
                "AND NOT (fingerprint = ANY(%s)) RETURNING id, fingerprint", (now, org_id, list(breached))).fetchall():
            report.resolved.append(alert_id)
            _events(conn, [(alert_id, now, "resolved", None, "SLA target met again, or its period ended",
                            _json({"fingerprint": fp}))])
    return report


def _policies(conn: Any, org_id: uuid.UUID) -> dict[str | None, list[dict[str, Any]]]:
    """Escalation steps by policy name; rules without a policy use the one named 'default'."""
    rows = conn.execute("SELECT name, steps FROM escalation_policies WHERE organization_id = %s", (org_id,)).fetchall()
    policies: dict[str | None, list[dict[str, Any]]] = {name: steps for name, steps in rows}
    policies[None] = policies.get("default", [])
    return policies


def _tier_channels(conn: Any, org_id: uuid.UUID, rules: Sequence[Rule], tier: int, *,
                   cumulative: bool = False) -> dict[str | None, tuple[str, ...]]:
    """Channels of ``tier`` (or of tiers 0..tier) per policy name used by ``rules``."""
    policies = _policies(conn, org_id)
    out: dict[str | None, tuple[str, ...]] = {}
    for name in {r.escalation_policy for r in rules}:
        steps = policies.get(name, policies[None])
        chosen = steps[: tier + 1] if cumulative else steps[tier: tier + 1]
        out[name] = tuple(dict.fromkeys(c for s in chosen for c in s.get("channels", [])))
    return out


def escalate(conn: Any, org_id: uuid.UUID, now: datetime) -> list[Notify]:
    """Move unacknowledged critical alerts to their policy's next tier once its delay has passed,
    queueing the messages of that tier."""
    policies = _policies(conn, org_id)
    report = EngineReport()
    rows = conn.execute("""
        SELECT a.id, a.created_at, a.escalation_level, p.name
        FROM alerts a LEFT JOIN alert_rules r ON r.id = a.rule_id
        LEFT JOIN escalation_policies p ON p.id = r.escalation_policy_id
        WHERE a.organization_id = %s AND a.status = 'firing' AND a.severity = 'critical'
          AND NOT a.suppressed AND NOT a.flapping
        FOR UPDATE OF a""", (org_id,)).fetchall()
    for alert_id, created_at, level, policy in rows:
        steps = policies.get(policy, policies[None])
        nxt = level + 1
        # Catch up over tiers whose delays all passed (a scheduler that was down), notifying the last.
        while nxt < len(steps) and now - created_at >= timedelta(seconds=int(steps[nxt].get("after_s", 0))):
            nxt += 1
        reached = nxt - 1
        if reached <= level:
            continue
        channels = tuple(steps[reached].get("channels", []))
        conn.execute("UPDATE alerts SET escalation_level = %s WHERE id = %s", (reached, alert_id))
        _events(conn, [(alert_id, now, "escalated", None, None, _json({"tier": reached, "channels": list(channels)}))])
        if channels:
            # Tier 0 reached everyone already (or said it could not): a later tier adds people, no fallback.
            route(conn, org_id, now, report, reason="escalated", severity="critical", tier=reached,
                  alert_ids=(alert_id,), names=channels, fallback=False)
    return report.notify


def _digest_policies(conn: Any, org_id: uuid.UUID) -> dict[str | None, tuple[tuple[str, ...], int]]:
    """(digest channels, digest period) by policy name: the policy's warning channels, or its tier 0's
    when it has none set; rules without a policy use the one named 'default' (none: no channel, the
    default period)."""
    out: dict[str | None, tuple[tuple[str, ...], int]] = {}
    for name, steps, warning, every_s in conn.execute(
            "SELECT name, steps, warning_channels, digest_every_s FROM escalation_policies WHERE organization_id = %s",
            (org_id,)).fetchall():
        channels = tuple(warning) if warning is not None else tuple(steps[0].get("channels", []) if steps else ())
        out[name] = (channels, int(every_s))
    out[None] = out.get(DEFAULT_POLICY, ((), DIGEST_EVERY_S))
    return out


def digest(conn: Any, org_id: uuid.UUID, now: datetime) -> list[Notify]:
    """Open warnings not yet in a digest, each policy's on its own clock (``digest_every_s``: the
    digest at 10:15 of a 15-minute policy holds its warnings opened before 10:15; one opened at 10:07
    waits for it), one digest per channel set, queued in the outbox. Run it often (every minute): it
    sends only what a digest time has passed for. Warnings whose policy names no enabled channel are
    marked ``no_channel``."""
    policies = _digest_policies(conn, org_id)
    rows = conn.execute("""
        SELECT a.id, p.name, a.created_at FROM alerts a LEFT JOIN alert_rules r ON r.id = a.rule_id
        LEFT JOIN escalation_policies p ON p.id = r.escalation_policy_id
        WHERE a.organization_id = %s AND NOT a.resolved AND a.severity = 'warning' AND a.delivery_status IS NULL
          AND NOT a.suppressed AND NOT a.flapping
        ORDER BY a.created_at FOR UPDATE OF a""", (org_id,)).fetchall()
    groups: dict[tuple[str, ...], list[uuid.UUID]] = {}
    for alert_id, policy, created_at in rows:
        channels, every_s = policies.get(policy, policies[None])
        if created_at < digest_time(now, every_s):
            groups.setdefault(channels, []).append(alert_id)
    report = EngineReport()
    for channels, ids in groups.items():
        route(conn, org_id, now, report, reason="digest", severity="warning", tier=0, alert_ids=tuple(ids),
              names=channels, fallback=False)
    return report.notify


def route(conn: Any, org_id: uuid.UUID, now: datetime, report: EngineReport, *, reason: Reason, severity: str,
          tier: int, alert_ids: tuple[uuid.UUID, ...], names: Sequence[str], fallback: bool) -> None:
    """Queue the messages of one alert event (or one digest of ``alert_ids``) on the enabled channels
    ``names``, in the caller's transaction; with ``fallback``, on every enabled channel of the
    organization when none of ``names`` is usable. Records what was queued in ``report.notify``, and
    the alerts' delivery state and events."""
    by_name = {n: i for i, n in enabled_channels(conn, org_id, list(names))} if names else {}
    channels = [(by_name[n], n) for n in dict.fromkeys(names) if n in by_name]  # in the policy's order
    if not channels and fallback:
        channels = enabled_channels(conn, org_id)
        if channels:
            log.warning("netpulse.alerts.unrouted", org=str(org_id), reason=reason, alerts=[str(a) for a in alert_ids],
                        policy_channels=list(names), sent_to=[n for _, n in channels])
    if not channels and reason == "escalated":
        log.warning("netpulse.alerts.tier_unrouted", org=str(org_id), tier=tier, alerts=[str(a) for a in alert_ids],
                    policy_channels=list(names))
        return
    if not channels:
        _no_channel(conn, org_id, now, alert_ids)
        return
    ids = [c for c, _ in channels]
    outbox: list[int] = []
    if reason == "digest":
        digest_key = hashlib.sha256(",".join(sorted(map(str, alert_ids))).encode()).hexdigest()[:24]
        outbox += enqueue(conn, org_id, Message(
            kind="digest", key=f"digest:{org_id}:{digest_key}", reason=reason, tier=tier, alert_ids=alert_ids,
            notification=digest_notification(conn, org_id, alert_ids, now=now)), channel_ids=ids)
    else:
        for alert_id, notification in alert_notifications(conn, org_id, alert_ids).items():
            outbox += enqueue(conn, org_id, Message(
                kind="alert", key=f"alert:{alert_id}:{reason}:{tier}", reason=reason, tier=tier, alert_ids=(alert_id,),
                notification=notification), channel_ids=ids)
    conn.execute("UPDATE alerts SET delivery_status = CASE WHEN delivery_status = 'delivered' THEN 'delivered' "
                 "ELSE 'pending' END WHERE organization_id = %s AND id = ANY(%s)", (org_id, list(alert_ids)))
    names_used = [n for _, n in channels]
    kind = "digested" if reason == "digest" else "queued"
    _events(conn, [(a, now, kind, None, None, _json({"reason": reason, "tier": tier, "channels": names_used}
                                                    | ({"alerts": len(alert_ids)} if reason == "digest" else {})))
                   for a in alert_ids])
    report.notify.append(Notify(reason, severity, alert_ids, tuple(names_used), tuple(outbox)))


NO_CHANNEL_NOTE = "not delivered: no channel"


def _no_channel(conn: Any, org_id: uuid.UUID, now: datetime, alert_ids: Sequence[uuid.UUID]) -> None:
    marked = [r[0] for r in conn.execute(
        "UPDATE alerts SET delivery_status = 'no_channel' WHERE organization_id = %s AND id = ANY(%s) "
        "AND (delivery_status IS NULL OR delivery_status = 'failed') RETURNING id", (org_id, list(alert_ids)))]
    if marked:
        log.warning("netpulse.alerts.no_channel", org=str(org_id), alerts=[str(a) for a in marked])
        _events(conn, [(a, now, "undelivered", None, NO_CHANNEL_NOTE, _json({"reason": "no_channel"}))
                       for a in marked])


def _transition(conn: Any, org_id: uuid.UUID, alert_id: uuid.UUID, *, to: str, user_id: uuid.UUID | None,
                note: str | None, now: datetime) -> None:
    row = conn.execute("SELECT status FROM alerts WHERE id = %s AND organization_id = %s FOR UPDATE",
                       (alert_id, org_id)).fetchone()
    if row is None:
        raise NotFound(f"no alert {alert_id}", code="ALERT_NOT_FOUND", details={"alert_id": str(alert_id)})
    if row[0] == "resolved":
        raise Conflict(f"alert {alert_id} is already resolved", code="ALERT_ALREADY_RESOLVED",
                       details={"status": row[0]})
    if to == "acknowledged":
        if row[0] == "acknowledged":
            raise Conflict(f"alert {alert_id} is already acknowledged", code="ALERT_ALREADY_ACKNOWLEDGED",
                           details={"status": row[0]})
        conn.execute("UPDATE alerts SET status = 'acknowledged', acknowledged = true, acknowledged_by = %s, "
                     "acknowledged_at = %s, acknowledged_note = %s WHERE id = %s", (user_id, now, note, alert_id))
    else:
        conn.execute("UPDATE alerts SET status = 'resolved', resolved = true, resolved_at = %s, resolved_by = %s, "
                     "resolution_note = %s WHERE id = %s", (now, user_id, note, alert_id))
    _events(conn, [(alert_id, now, to, user_id, note, _json({}))])


def acknowledge(conn: Any, org_id: uuid.UUID, alert_id: uuid.UUID, user_id: uuid.UUID | None, note: str | None,
                now: datetime) -> None:
    """A person takes the alert: escalation stops; it still resolves when its condition clears."""
    with conn.transaction():
        _transition(conn, org_id, alert_id, to="acknowledged", user_id=user_id, note=note, now=now)


def resolve(conn: Any, org_id: uuid.UUID, alert_id: uuid.UUID, user_id: uuid.UUID | None, note: str,
            now: datetime) -> None:
    """Resolve by hand, with a note saying why."""
    if not note or not note.strip():
        from netpulse.errors import ValidationError

        raise ValidationError("resolving an alert by hand needs a note", details={"note": "required"})
    with conn.transaction():
        _transition(conn, org_id, alert_id, to="resolved", user_id=user_id, note=note, now=now)


def history(conn: Any, alert_id: uuid.UUID) -> list[tuple[datetime, str, str | None, dict[str, Any]]]:
    return [(r[0], r[1], r[2], r[3]) for r in conn.execute(
        "SELECT time, kind, note, details FROM alert_events WHERE alert_id = %s ORDER BY time, id",
        (alert_id,)).fetchall()]


# --- reads: the one alert list behind the CLI, the REST API and the dashboard ----------------------

AlertState = Literal["open", "firing", "acknowledged", "resolved", "all"]
ALERT_STATES: tuple[str, ...] = ("open", "firing", "acknowledged", "resolved", "all")  # open: not resolved
SEVERITIES: tuple[str, ...] = ("info", "warning", "critical")

_ALERT_COLUMNS = """
SELECT a.id, a.severity, a.status, a.device_id, d.name AS device, s.name AS site, p.name AS parent,
       a.alert_type, a.rule_id, a.message, a.metric, a.value, a.threshold, a.occurrences, a.started_at,
       a.created_at, a.last_seen, a.notified_at, a.acknowledged_at, a.acknowledged_by,
       ua.email AS acknowledged_by_email, a.acknowledged_note, a.resolved_at, a.resolved_by,
       ur.email AS resolved_by_email, a.resolution_note, a.suppressed, a.suppressed_reason, a.flapping,
       a.escalation_level, a.delivery_status
"""
_ALERT_FROM = """
FROM alerts a
LEFT JOIN devices d ON d.id = a.device_id AND d.organization_id = a.organization_id
LEFT JOIN sites s ON s.id = d.site_id
LEFT JOIN devices p ON p.id = d.parent_id
LEFT JOIN users ua ON ua.id = a.acknowledged_by
LEFT JOIN users ur ON ur.id = a.resolved_by
"""
# Every filter is a parameter (NULL: not filtered), so the statement text never varies.
_ALERT_WHERE = """
WHERE a.organization_id = %(org)s
  AND (%(state)s = 'all' OR (%(state)s = 'open' AND NOT a.resolved) OR a.status = %(state)s)
  AND (%(severities)s::text[] IS NULL OR a.severity = ANY(%(severities)s::text[]))
  AND (%(device)s::integer IS NULL OR a.device_id = %(device)s)
  AND (%(site)s::text IS NULL OR s.name = %(site)s)
  AND (%(rule)s::integer IS NULL OR a.rule_id = %(rule)s)
  AND (%(suppressed)s::boolean IS NULL OR a.suppressed = %(suppressed)s)
  AND (%(search)s::text IS NULL OR d.name ILIKE %(search)s OR a.message ILIKE %(search)s)
"""
_ALERT_PAGE = "ORDER BY a.created_at DESC, a.id DESC LIMIT %(limit)s OFFSET %(offset)s"


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertFilter:
    """Which alerts to list; ``None`` leaves a field unfiltered."""

    state: AlertState = "open"
    severities: Sequence[str] | None = None
    device_id: int | None = None
    site: str | None = None
    rule_id: int | None = None
    suppressed: bool | None = None  # False: hide suppressed alerts
    search: str | None = None  # substring of the device name or the message

    def params(self, org_id: uuid.UUID) -> dict[str, Any]:
        search = None
        if self.search:
            search = "%" + self.search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        return {"org": org_id, "state": self.state, "severities": list(self.severities) if self.severities else None,
                "device": self.device_id, "site": self.site, "rule": self.rule_id, "suppressed": self.suppressed,
                "search": search}


def list_alerts(conn: Any, org_id: uuid.UUID, where: AlertFilter = AlertFilter(), *, limit: int = 50,
                offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """One page of alerts, newest first, and how many match in all (no hidden cap)."""
    params = where.params(org_id) | {"limit": limit, "offset": offset}
    with conn.cursor(row_factory=dict_row) as cur:
        total = cur.execute("SELECT count(*) AS n " + _ALERT_FROM + _ALERT_WHERE, params).fetchone()
        rows = cur.execute(_ALERT_COLUMNS + _ALERT_FROM + _ALERT_WHERE + _ALERT_PAGE, params).fetchall()
    return list(rows), int(total["n"]) if total else 0


def get_alert(conn: Any, org_id: uuid.UUID, alert_id: uuid.UUID) -> dict[str, Any] | None:
    """One alert of this organization (None when it has no such alert)."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(_ALERT_COLUMNS + _ALERT_FROM + "WHERE a.organization_id = %s AND a.id = %s",
                          (org_id, alert_id)).fetchone()
    return dict(row) if row is not None else None


_COUNTS = """
SELECT count(*) AS open,
       count(*) FILTER (WHERE severity = 'critical') AS critical,
       count(*) FILTER (WHERE severity = 'critical' AND status = 'firing') AS critical_firing,
       count(*) FILTER (WHERE severity = 'warning') AS warning,
       count(*) FILTER (WHERE severity = 'warning' AND status = 'firing') AS warning_firing,
       count(*) FILTER (WHERE severity = 'info') AS info,
       count(*) FILTER (WHERE severity = 'info' AND status = 'firing') AS info_firing,
       count(*) FILTER (WHERE status = 'acknowledged') AS acknowledged,
       count(*) FILTER (WHERE suppressed) AS suppressed,
       count(*) FILTER (WHERE suppressed AND suppressed_reason = 'maintenance') AS maintenance,
       count(*) FILTER (WHERE suppressed AND suppressed_reason = 'parent_down') AS parent_down,
       count(*) FILTER (WHERE flapping) AS flapping,
       count(*) FILTER (WHERE delivery_status IN ('no_channel', 'failed')) AS undelivered
FROM alerts WHERE organization_id = %s AND NOT resolved
"""


def counts(conn: Any, org_id: uuid.UUID) -> dict[str, int]:
    """Open (not resolved) alerts: in all, by severity (and of those, still firing), acknowledged,
    suppressed (for maintenance, behind a down parent), flapping, and undelivered (no channel, or
    every channel failed)."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(_COUNTS, (org_id,)).fetchone()
    return {k: int(v or 0) for k, v in (row or {}).items()}


# --- root-cause groups: the alert list as a NOC reads it -------------------------------------------

_SEVERITY_RANK = "CASE a.severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END"
# Matching alerts keyed by root cause. An alert suppressed because its parent is down is folded under
# its top-most ancestor that is down now or has an open alert of its own; that ancestor's own alerts
# head the group. Every other alert is a group of one.
_GROUPED = """
WITH RECURSIVE m AS (
    SELECT a.id, a.device_id, a.created_at, a.suppressed_reason, """ + _SEVERITY_RANK + """ AS rank
    """ + _ALERT_FROM + _ALERT_WHERE + """
), chain (alert_id, ancestor, depth) AS (
    SELECT m.id, d.parent_id, 1 FROM m JOIN devices d ON d.id = m.device_id
    WHERE m.suppressed_reason = 'parent_down' AND d.parent_id IS NOT NULL
    UNION ALL
    SELECT c.alert_id, p.parent_id, c.depth + 1 FROM chain c JOIN devices p ON p.id = c.ancestor
    WHERE p.parent_id IS NOT NULL AND c.depth < 32
), root AS (
    SELECT DISTINCT ON (c.alert_id) c.alert_id, c.ancestor AS root_device
    FROM chain c JOIN devices r ON r.id = c.ancestor AND r.organization_id = %(org)s
    WHERE r.oper_status = 'down' OR EXISTS (
        SELECT 1 FROM alerts x WHERE x.organization_id = %(org)s AND x.device_id = r.id AND NOT x.resolved
        AND NOT x.suppressed)
    ORDER BY c.alert_id, c.depth DESC
), keyed AS (
    SELECT m.*, r.root_device,
           CASE WHEN r.root_device IS NOT NULL THEN 'd' || r.root_device
                WHEN m.device_id IN (SELECT root_device FROM root) THEN 'd' || m.device_id
                ELSE 'a' || m.id::text END AS key
    FROM m LEFT JOIN root r ON r.alert_id = m.id
), totals AS (
    SELECT count(*) AS alerts, count(DISTINCT key) AS groups FROM keyed
), page AS (
    SELECT key, count(*) AS size, min(rank) AS rank, max(created_at) AS newest FROM keyed GROUP BY key
    ORDER BY min(rank), count(*) DESC, max(created_at) DESC, key LIMIT %(limit)s OFFSET %(offset)s
)
SELECT t.alerts, t.groups, p.key, p.size, k.id, k.root_device, rd.name
FROM totals t
LEFT JOIN page p ON true
LEFT JOIN keyed k ON k.key = p.key
LEFT JOIN devices rd ON rd.id = k.root_device
ORDER BY p.rank, p.size DESC, p.newest DESC, p.key, k.root_device IS NOT NULL, k.rank, k.created_at DESC
"""


@dataclass(frozen=True, slots=True)
class AlertGroup:
    """A root cause and what it explains: ``head`` (the cause's own alert, or the alert itself) and the
    alerts suppressed because they sit behind it: ``folded_total`` of them, the first ``folded`` in
    full (each names the cause in ``root_cause``). ``alert_ids`` are every alert of the group."""

    key: str
    head: dict[str, Any]
    folded: list[dict[str, Any]]
    alert_ids: list[uuid.UUID]

    @property
    def folded_total(self) -> int:
        return len(self.alert_ids) - 1

    @property
    def size(self) -> int:
        return len(self.alert_ids)


@dataclass(frozen=True, slots=True)
class AlertGroupPage:
    groups: list[AlertGroup]
    total_groups: int
    total_alerts: int


def alert_groups(conn: Any, org_id: uuid.UUID, where: AlertFilter = AlertFilter(), *, limit: int = 25,
                 offset: int = 0, folded_rows: int = 1000) -> AlertGroupPage:
    """One page of the matching alerts grouped by root cause, with the totals (groups and alerts).

    Groups come most severe first, then the largest (a down parent with 31 devices behind it before
    a lone leaf), then the newest. Within a group the cause's own alerts lead; every folded alert
    carries ``root_cause`` (the device it sits behind) and ``root_cause_id``. Only the first
    ``folded_rows`` folded alerts of a group are read in full; the ids of all are in ``alert_ids``.
    """
    params = where.params(org_id) | {"limit": limit, "offset": offset}
    rows = conn.execute(_GROUPED, params).fetchall()
    total_alerts, total_groups = (int(rows[0][0]), int(rows[0][1])) if rows else (0, 0)
    members: dict[str, list[tuple[uuid.UUID, int | None, str | None]]] = {}
    for _, _, key, _, alert_id, root, root_name in rows:
        if key:
            members.setdefault(key, []).append((alert_id, root, root_name))
    if not members:
        return AlertGroupPage([], total_groups, total_alerts)
    # Heads first within a group (the query's order), then as many folded alerts as are shown.
    wanted = [m for items in members.values() for m in items[:1 + folded_rows]]
    with conn.cursor(row_factory=dict_row) as cur:
        full = {r["id"]: dict(r) for r in cur.execute(
            _ALERT_COLUMNS + _ALERT_FROM + "WHERE a.organization_id = %s AND a.id = ANY(%s)",
            (org_id, [m[0] for m in wanted])).fetchall()}
    groups = []
    for key, items in members.items():
        shown = [full[a] | {"root_cause_id": root, "root_cause": name}
                 for a, root, name in items[:1 + folded_rows] if a in full]  # resolved and deleted meanwhile
        if not shown:
            continue
        own = [r for r in shown if r["root_cause_id"] is None]
        head = own[0] if own else shown[0]
        groups.append(AlertGroup(key, head, [r for r in shown if r is not head],
                                 [head["id"], *(a for a, _, _ in items if a != head["id"])]))
    return AlertGroupPage(groups, total_groups, total_alerts)


def acknowledge_many(conn: Any, org_id: uuid.UUID, alert_ids: Sequence[uuid.UUID], user_id: uuid.UUID | None,
                     note: str | None, now: datetime) -> list[uuid.UUID]:
    """Acknowledge every alert of ``alert_ids`` that is still firing, in one transaction; the others
    (acknowledged or resolved meanwhile, or of another organization) are left alone. Returns the ids
    acknowledged."""
    with conn.transaction():
        rows = conn.execute(
            "UPDATE alerts SET status = 'acknowledged', acknowledged = true, acknowledged_by = %s, "
            "acknowledged_at = %s, acknowledged_note = %s "
            "WHERE organization_id = %s AND id = ANY(%s) AND status = 'firing' RETURNING id",
            (user_id, now, note, org_id, list(alert_ids))).fetchall()
        done = [r[0] for r in rows]
        _events(conn, [(a, now, "acknowledged", user_id, note, _json({"bulk": len(done)})) for a in done])
    return done


def opened_per_hour(conn: Any, org_id: uuid.UUID, since: datetime) -> list[tuple[datetime, str, int]]:
    """Alerts opened per UTC hour and severity since ``since`` (resolved ones too): (hour, severity, n)."""
    return [(r[0], r[1], int(r[2])) for r in conn.execute(
        "SELECT date_trunc('hour', created_at AT TIME ZONE 'UTC') AS hour, severity, count(*) FROM alerts"
        " WHERE organization_id = %s AND created_at >= %s GROUP BY 1, 2", (org_id, since)).fetchall()]


# --- alerts of a period as a frame: reports and notebooks -------------------------------------------

ALERT_FRAME_SCHEMA = pl.Schema({
    "id": pl.String(), "severity": pl.String(), "status": pl.String(), "alert_type": pl.String(),
    "rule": pl.String(), "device_id": pl.Int32(), "device": pl.String(), "site": pl.String(), "group": pl.String(),
    "created_at": pl.Datetime("us", "UTC"), "acknowledged_at": pl.Datetime("us", "UTC"),
    "resolved_at": pl.Datetime("us", "UTC"), "suppressed": pl.Boolean(), "suppressed_reason": pl.String(),
    "flapping": pl.Boolean(), "occurrences": pl.Int32(), "message": pl.String()})

_ALERT_FRAME = """
SELECT a.id::text, a.severity, a.status, a.alert_type, coalesce(r.name, a.alert_type), a.device_id, d.name, s.name,
       g.name, a.created_at, a.acknowledged_at, a.resolved_at, a.suppressed, a.suppressed_reason, a.flapping,
       a.occurrences, a.message
FROM alerts a
LEFT JOIN devices d ON d.id = a.device_id AND d.organization_id = a.organization_id
LEFT JOIN sites s ON s.id = d.site_id
LEFT JOIN device_groups g ON g.id = d.group_id
LEFT JOIN alert_rules r ON r.id = a.rule_id AND r.organization_id = a.organization_id
WHERE a.organization_id = %(org)s AND a.created_at >= %(start)s AND a.created_at < %(end)s
  AND (%(scope)s = 'all'
       OR (%(scope)s = 'device' AND d.name = %(ref)s)
       OR (%(scope)s = 'site' AND s.name = %(ref)s)
       OR (%(scope)s = 'group' AND g.name = %(ref)s)
       OR (%(scope)s = 'tag' AND EXISTS (SELECT 1 FROM device_tags dt JOIN tags t ON t.id = dt.tag_id
                                          WHERE dt.device_id = d.id AND t.name = %(ref)s)))
ORDER BY a.created_at, a.id
"""


def alerts_frame(conn: Any, org_id: uuid.UUID | str, start: datetime, end: datetime, *, scope: str = "all",
                 ref: str | None = None) -> pl.DataFrame:
    """The alerts that opened in ``[start, end)`` (``created_at``), oldest first, as ``ALERT_FRAME_SCHEMA``:
    with their device's name, site and group, the rule's name (``rule``: the alert type when the rule
    is gone), and when they were acknowledged and resolved (at any time, later ones included).
    ``scope``/``ref`` keep one device's, group's, site's or tag's alerts; alerts of no device (SLA
    breaches) are only in scope ``all``."""
    for name, ts in (("start", start), ("end", end)):
        if ts.tzinfo is None:
            raise ValueError(f"{name}={ts!r} is naive: pass a timezone-aware datetime (UTC)")
    if scope not in ("all", "device", "site", "group", "tag"):
        raise ValueError(f"scope {scope!r}: use one of all, device, site, group, tag")
    rows = conn.execute(_ALERT_FRAME, {"org": org_id, "start": start, "end": end, "scope": scope,
                                       "ref": ref}).fetchall()
    return pl.DataFrame(rows, schema=ALERT_FRAME_SCHEMA, orient="row")
