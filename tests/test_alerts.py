"""The alert lifecycle against the real database: dedupe, resolve, flapping, suppression by a
down parent and by maintenance, routing by severity, escalation, digests, and history."""

from __future__ import annotations

import uuid
from datetime import timedelta

import psycopg
import pytest
from psycopg.types.json import Jsonb

from analytics.alerts import AlertEngine, Finding, acknowledge, digest, escalate, history, resolve
from analytics.rules import Rule, save_rules
from netpulse.errors import Conflict, NotFound, ValidationError
from netpulse.metrics import MetricKind
from tests.factories import make_devices, make_org, utc

NOW = utc(2026, 11, 20, 12)
RTT = MetricKind.ICMP_RTT_MS


CHANNELS = {"noc-email": ("sendgrid", {"to": ["noc@acme.test"]}),
            "noc-slack": ("slack", {"url": "https://hooks.slack.com/services/T0/B0/x"}),
            "oncall-sms": ("africastalking", {"to": ["+254711000111"]}),
            "manager-email": ("sendgrid", {"to": ["boss@acme.test"]})}


def add_channels(db: psycopg.Connection, org: uuid.UUID, names: list[str] | None = None) -> None:
    for name in names or list(CHANNELS):
        kind, config = CHANNELS[name]
        db.execute("INSERT INTO notification_channels (organization_id, name, kind, config) VALUES (%s, %s, %s, %s)",
                   (org, name, kind, Jsonb(config)))


@pytest.fixture
def org(db: psycopg.Connection) -> uuid.UUID:
    org = make_org(db)
    db.execute("INSERT INTO escalation_policies (organization_id, name, steps) VALUES (%s, 'default', %s)",
               (org, Jsonb([{"after_s": 0, "channels": ["noc-email", "noc-slack"]},
                            {"after_s": 600, "channels": ["oncall-sms"]},
                            {"after_s": 1800, "channels": ["manager-email"]}])))
    add_channels(db, org)
    return org


def rule(db: psycopg.Connection, org: uuid.UUID, severity: str = "critical", name: str = "latency") -> Rule:
    (saved,) = save_rules(db, org, [Rule(name, "threshold", severity, metric=RTT, comparator=">", value=100,
                                         clear_value=80)])
    return saved


def fire(r: Rule, device: int, at, value: float = 150.0, firing: bool = True) -> Finding:  # noqa: ANN001
    return Finding(r, device, firing, at, value=value, started_at=at - timedelta(minutes=2))


def test_a_repeat_bumps_the_open_alert_and_a_clear_resolves_it(db: psycopg.Connection, org: uuid.UUID) -> None:
    r = rule(db, org)
    (dev,) = make_devices(db, org, 1)
    engine = AlertEngine()
    first = engine.apply(db, org, [fire(r, dev, NOW)], NOW)
    again = engine.apply(db, org, [fire(r, dev, NOW + timedelta(minutes=1), 170.0)], NOW + timedelta(minutes=1))
    assert len(first.opened) == 1 and again.opened == [] and again.repeated == 1
    rows = db.execute("SELECT id, status, occurrences, last_seen, value, started_at FROM alerts").fetchall()
    assert len(rows) == 1
    alert_id, status, occurrences, last_seen, value, started = rows[0]
    assert (status, occurrences, last_seen, value, started) == ("firing", 2, NOW + timedelta(minutes=1), 170.0,
                                                                 NOW - timedelta(minutes=2))
    done = engine.apply(db, org, [fire(r, dev, NOW + timedelta(minutes=2), 50.0, firing=False)],
                        NOW + timedelta(minutes=2))
    assert done.resolved == [alert_id]
    assert db.execute("SELECT status, resolved, resolved_at FROM alerts").fetchone() == (
        "resolved", True, NOW + timedelta(minutes=2))
    # Clearing again changes nothing; firing again opens a new alert.
    assert engine.apply(db, org, [fire(r, dev, NOW, firing=False)], NOW + timedelta(minutes=3)).resolved == []
    assert len(engine.apply(db, org, [fire(r, dev, NOW)], NOW + timedelta(minutes=4)).opened) == 1
    kinds = [k for _, k, _, _ in history(db, alert_id)]
    assert kinds == ["opened", "queued", "resolved", "queued"]  # the recovery is queued too


def test_critical_notifies_tier_zero_at_once_and_recovery_too(db: psycopg.Connection, org: uuid.UUID) -> None:
    r = rule(db, org)
    (dev,) = make_devices(db, org, 1)
    report = AlertEngine().apply(db, org, [fire(r, dev, NOW)], NOW)
    assert [(n.reason, n.channels) for n in report.notify] == [("opened", ("noc-email", "noc-slack"))]
    closed = AlertEngine().apply(db, org, [fire(r, dev, NOW, 10.0, firing=False)], NOW + timedelta(minutes=5))
    assert [(n.reason, n.channels) for n in closed.notify] == [("resolved", ("noc-email", "noc-slack"))]


def test_warning_waits_for_the_digest_and_info_is_only_logged(db: psycopg.Connection, org: uuid.UUID) -> None:
    warn, info = rule(db, org, "warning", "warn"), rule(db, org, "info", "info")
    devs = make_devices(db, org, 3)
    report = AlertEngine().apply(db, org, [fire(warn, d, NOW) for d in devs] + [fire(info, devs[0], NOW)], NOW)
    assert len(report.opened) == 4 and report.notify == []
    with db.transaction():
        first = digest(db, org, NOW + timedelta(minutes=15))
    assert [(n.reason, n.severity, len(n.alert_ids), n.channels) for n in first] == [
        ("digest", "warning", 3, ("noc-email", "noc-slack"))]
    with db.transaction():
        assert digest(db, org, NOW + timedelta(minutes=30)) == []  # each warning goes into one digest


def test_unacknowledged_critical_escalates_tier_by_tier(db: psycopg.Connection, org: uuid.UUID) -> None:
    r = rule(db, org)
    a, b = make_devices(db, org, 2)
    report = AlertEngine().apply(db, org, [fire(r, a, NOW), fire(r, b, NOW)], NOW)
    alert_a, alert_b = report.opened
    acknowledge(db, org, alert_b, None, "looking at it", NOW + timedelta(minutes=1))
    with db.transaction():
        assert escalate(db, org, NOW + timedelta(minutes=9)) == []
    with db.transaction():
        step1 = escalate(db, org, NOW + timedelta(minutes=10))
    assert [(n.reason, n.alert_ids, n.channels) for n in step1] == [("escalated", (alert_a,), ("oncall-sms",))]
    with db.transaction():
        assert escalate(db, org, NOW + timedelta(minutes=11)) == []
    with db.transaction():
        step2 = escalate(db, org, NOW + timedelta(minutes=31))
    assert [n.channels for n in step2] == [("manager-email",)]
    with db.transaction():
        assert escalate(db, org, NOW + timedelta(hours=5)) == []  # no tier left
    assert [k for _, k, _, _ in history(db, alert_b)] == ["opened", "queued", "acknowledged"]


def test_a_down_parent_suppresses_its_childrens_alerts(db: psycopg.Connection, org: uuid.UUID) -> None:
    r = rule(db, org)
    parent, child, grandchild, other = make_devices(db, org, 4)
    db.execute("UPDATE devices SET parent_id = %s WHERE id = %s", (parent, child))
    db.execute("UPDATE devices SET parent_id = %s WHERE id = %s", (child, grandchild))
    db.execute("UPDATE devices SET oper_status = 'down' WHERE id = %s", (parent,))
    report = AlertEngine().apply(db, org, [fire(r, d, NOW) for d in (parent, child, grandchild, other)], NOW)
    assert len(report.opened) == 4
    by_device = dict(db.execute("SELECT device_id, suppressed_reason FROM alerts").fetchall())
    assert by_device == {parent: None, child: "parent_down", grandchild: "parent_down", other: None}
    notified = {a for n in report.notify for a in n.alert_ids}
    assert len(notified) == 2  # the parent's and the unrelated device's
    # A parent whose probes are failing (not yet confirmed down) counts too.
    db.execute("UPDATE devices SET oper_status = 'up', fail_streak = 1 WHERE id = %s", (parent,))
    r2 = rule(db, org, name="other rule")
    again = AlertEngine().apply(db, org, [fire(r2, child, NOW)], NOW)
    assert list(again.suppressed.values()) == ["parent_down"]


@pytest.mark.parametrize("scope", ["device", "site", "group", "tag", "all"])
def test_maintenance_windows_silence_by_scope(db: psycopg.Connection, org: uuid.UUID, scope: str) -> None:
    r = rule(db, org)
    inside, outside = make_devices(db, org, 2)
    site = db.execute("INSERT INTO sites (organization_id, name, slug) VALUES (%s, 'Nairobi', 'nairobi') "
                      "RETURNING id", (org,)).fetchone()[0]
    group = db.execute("INSERT INTO device_groups (organization_id, name, slug) VALUES (%s, 'core', 'core') "
                       "RETURNING id", (org,)).fetchone()[0]
    tag = db.execute("INSERT INTO tags (organization_id, name, slug) VALUES (%s, 'pop', 'pop') RETURNING id",
                     (org,)).fetchone()[0]
    db.execute("UPDATE devices SET site_id = %s, group_id = %s WHERE id = %s", (site, group, inside))
    db.execute("INSERT INTO device_tags VALUES (%s, %s)", (inside, tag))
    ref = {"device": "dev-0", "site": "Nairobi", "group": "core", "tag": "pop", "all": None}[scope]
    db.execute("INSERT INTO maintenance_windows (organization_id, scope, scope_ref, starts_at, ends_at) "
               "VALUES (%s, %s, %s, %s, %s)", (org, scope, ref, NOW - timedelta(hours=1), NOW + timedelta(hours=1)))
    report = AlertEngine().apply(db, org, [fire(r, inside, NOW), fire(r, outside, NOW)], NOW)
    reasons = dict(db.execute("SELECT device_id, suppressed_reason FROM alerts").fetchall())
    assert reasons[inside] == "maintenance"
    assert reasons[outside] == ("maintenance" if scope == "all" else None)
    assert len(report.notify) == (0 if scope == "all" else 1)
    # After the window, a new alert is not silenced.
    db.execute("UPDATE alerts SET status = 'resolved', resolved = true")
    later = AlertEngine().apply(db, org, [fire(r, inside, NOW)], NOW + timedelta(hours=2))
    assert later.suppressed == {} and len(later.notify) == 1


def test_a_flapping_series_is_marked_and_not_notified_again(db: psycopg.Connection, org: uuid.UUID) -> None:
    r = rule(db, org)
    (dev,) = make_devices(db, org, 1)
    engine = AlertEngine(flap_window=timedelta(minutes=30), flap_threshold=3)
    notified = []
    for k in range(8):  # up and down every minute
        t = NOW + timedelta(minutes=2 * k)
        notified += engine.apply(db, org, [fire(r, dev, t)], t).notify
        engine.apply(db, org, [fire(r, dev, t, 10.0, firing=False)], t + timedelta(minutes=1))
    opened_notifications = [n for n in notified if n.reason == "opened"]
    assert len(opened_notifications) == 2  # the first two; from the third opening on it is flapping
    flags = [f for (f,) in db.execute("SELECT flapping FROM alerts ORDER BY created_at").fetchall()]
    assert flags == [False, False] + [True] * 6


def test_manual_transitions_and_their_errors(db: psycopg.Connection, org: uuid.UUID) -> None:
    r = rule(db, org)
    (dev,) = make_devices(db, org, 1)
    user = db.execute("INSERT INTO users (organization_id, email, hashed_password, role) "
                      "VALUES (%s, 'noc@acme.test', 'x', 'operator') RETURNING id", (org,)).fetchone()[0]
    (alert_id,) = AlertEngine().apply(db, org, [fire(r, dev, NOW)], NOW).opened
    acknowledge(db, org, alert_id, user, "on it", NOW + timedelta(minutes=1))
    with pytest.raises(Conflict, match="already acknowledged"):
        acknowledge(db, org, alert_id, user, None, NOW)
    with pytest.raises(ValidationError, match="needs a note"):
        resolve(db, org, alert_id, user, " ", NOW)
    resolve(db, org, alert_id, user, "replaced the uplink", NOW + timedelta(minutes=5))
    with pytest.raises(Conflict, match="already resolved"):
        resolve(db, org, alert_id, user, "again", NOW)
    with pytest.raises(NotFound):
        acknowledge(db, make_org(db, "other"), alert_id, user, None, NOW)  # another tenant's alert
    row = db.execute("SELECT status, acknowledged_by, acknowledged_note, resolved_by, resolution_note FROM alerts"
                     ).fetchone()
    assert row == ("resolved", user, "on it", user, "replaced the uplink")
    assert [(k, n) for _, k, n, _ in history(db, alert_id)] == [
        ("opened", None), ("queued", None), ("acknowledged", "on it"), ("resolved", "replaced the uplink")]


def test_an_sla_breach_opens_one_alert_until_the_target_is_met(db: psycopg.Connection, org: uuid.UUID) -> None:
    from analytics.alerts import apply_sla
    from analytics.sla import evaluate_targets

    (dev,) = make_devices(db, org, 1)
    day = utc(2026, 11, 20)
    # Up from midnight, down 01:00-02:00: 1 h of 12 h down by noon is far below 99.9 %.
    for t, a, b in ((day, "unknown", "up"), (day + timedelta(hours=1), "up", "down"),
                    (day + timedelta(hours=2), "down", "up")):
        db.execute("INSERT INTO device_status_events (organization_id, device_id, time, confirmed_at, from_status, "
                   "to_status) VALUES (%s, %s, %s, %s, %s, %s)", (org, dev, t, t, a, b))
    db.execute("INSERT INTO sla_targets (organization_id, scope, target_pct, period, severity) "
               "VALUES (%s, 'all', 99.9, 'day', 'critical')", (org,))
    first = apply_sla(db, org, evaluate_targets(db, org, NOW), NOW)
    assert len(first.opened) == 1 and [(n.reason, n.channels) for n in first.notify] == [
        ("sla", ("noc-email", "noc-slack"))]
    again = apply_sla(db, org, evaluate_targets(db, org, NOW + timedelta(minutes=5)), NOW + timedelta(minutes=5))
    assert again.opened == [] and again.repeated == 1
    message, value, threshold = db.execute("SELECT message, value, threshold FROM alerts").fetchone()
    assert "SLA breached for all devices" in message and threshold == 99.9
    assert value == pytest.approx(100 * (12 + 5 / 60 - 1) / (12 + 5 / 60), abs=0.001)  # as of the last check
    # The next day starts clean: the breach of yesterday is resolved.
    tomorrow = day + timedelta(days=1, hours=1)
    done = apply_sla(db, org, evaluate_targets(db, org, tomorrow), tomorrow)
    assert done.resolved == first.opened and done.opened == []


def test_an_sla_breach_early_in_its_period_says_how_far_over_the_allowance_it_is(db: psycopg.Connection,
                                                                                   org: uuid.UUID) -> None:
    """Early in a month the month's error budget is still positive while the availability so far is below
    the target: the message names the down time against what the target allows so far, and the budget
    left, never a negative number "over budget"."""
    from analytics.alerts import apply_sla
    from analytics.sla import evaluate_targets

    (dev,) = make_devices(db, org, 1)
    day = utc(2026, 11, 20)
    # Monitored from midnight, down 01:00-02:00: by noon 1 h of 12 h is down, far below 99 %, while the
    # month's budget (1 % of the 12 h so far and the 10.5 days left) still allows ~98 minutes more.
    for t, a, b in ((day, "unknown", "up"), (day + timedelta(hours=1), "up", "down"),
                    (day + timedelta(hours=2), "down", "up")):
        db.execute("INSERT INTO device_status_events (organization_id, device_id, time, confirmed_at, from_status, "
                   "to_status) VALUES (%s, %s, %s, %s, %s, %s)", (org, dev, t, t, a, b))
    db.execute("INSERT INTO sla_targets (organization_id, scope, target_pct, period, severity) "
               "VALUES (%s, 'all', 99, 'month', 'warning')", (org,))
    (result,) = evaluate_targets(db, org, NOW)
    assert result.breached and result.error_budget_min == pytest.approx(0.01 * (12 * 60 + 10.5 * 24 * 60) - 60)
    assert len(apply_sla(db, org, [result], NOW).opened) == 1
    (message,) = db.execute("SELECT message FROM alerts WHERE alert_type = 'sla_breach'").fetchone()
    assert message == ("SLA breached for all devices: 91.667 % available this month so far (target 99 %): 60.0 min "
                       "of down time, over the 7.2 min the target allows for the time monitored so far; 98.4 min of "
                       "error budget left for the rest of the month")
    assert "-" not in message.split(":", 1)[1]
