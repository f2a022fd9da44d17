"""Rules on the simulated fleet: each scripted incident opens exactly one alert of the right
severity at the right time and resolves it when the incident ends; a parent outage opens one alert
and suppresses its children's. Both the backtest replay and the live tick-by-tick engine."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import psycopg
import pytest
from psycopg.types.json import Jsonb

from analytics.alerts import AlertEngine
from analytics.evaluate import Evaluator, replay, split_key
from analytics.rules import Rule, save_rules
from ingest.loader import Loader
from ingest.rows import to_micros
from ingest.simulator import Fleet, IncidentKind
from ingest.status import Hysteresis
from netpulse.metrics import MetricKind
from tests.factories import make_org, utc

T0 = utc(2026, 11, 16, 0)
HOURS = 10
STEP = 60
FLEET = Fleet(n_devices=40, n_sites=2, seed=5, interval_s=STEP, incidents_per_device_day=0.0)
LOSS = Rule("packet loss", "threshold", "critical", metric=MetricKind.ICMP_LOSS_PCT, comparator=">=", value=8,
            clear_value=4, for_s=120)
SATURATION = Rule("link saturation", "threshold", "warning", metric=MetricKind.IF_UTIL_PCT, comparator=">",
                  value=90, clear_value=80, for_s=120)
DOWN = Rule("device down", "status", "critical")


def _seed(db: psycopg.Connection) -> tuple[object, np.ndarray]:
    org = make_org(db)
    ids = []
    for d in FLEET.devices:
        ids.append(db.execute("INSERT INTO devices (organization_id, name, address, device_type, simulated) "
                              "VALUES (%s, %s, %s, %s, true) RETURNING id",
                              (org, d.name, d.address, d.device_type)).fetchone()[0])
    for d in FLEET.devices:
        if d.parent_index is not None:
            db.execute("UPDATE devices SET parent_id = %s WHERE id = %s", (ids[d.parent_index], ids[d.index]))
    return org, np.array(ids, np.int32)


def _us(dt) -> int:  # noqa: ANN001
    return to_micros(dt)


def test_backtest_finds_each_scripted_loss_and_saturation_once(db: psycopg.Connection) -> None:
    org, ids = _seed(db)
    times = to_micros(T0) + np.arange(HOURS * 3600 // STEP, dtype=np.int64) * STEP * 1_000_000
    loader = Loader(hysteresis=Hysteresis(3, 2))
    for i in range(0, len(times), 60):
        loader.load(db, FLEET.sample(times[i:i + 60], device_ids=ids))
    incidents = FLEET.incidents(T0, T0 + timedelta(hours=HOURS))
    end = T0 + timedelta(hours=HOURS)
    for rule, kind, ifindex in ((LOSS, IncidentKind.PACKET_LOSS, 0), (SATURATION, IncidentKind.LINK_SATURATION, 1)):
        expected = [i for i in incidents if i.kind is kind and i.end <= end]
        assert expected, f"the window holds no {kind}"
        eps, _ = replay(db, org, rule, ids.tolist(), T0, end)
        got = sorted((split_key(k), o, r) for k, o, r in eps.frame.select("series", "opened_us", "resolved_us")
                     .iter_rows())
        want = sorted(((int(ids[i.device_index]), ifindex), _us(i.start) + rule.for_s * 1_000_000, _us(i.end))
                      for i in expected)
        assert len(got) == len(want), (rule.name, got, want)
        for (key, opened, resolved), (wkey, wopened, wresolved) in zip(got, want, strict=True):
            assert key == wkey
            assert abs(opened - wopened) <= STEP * 1_000_000, (rule.name, opened, wopened)
            assert abs(resolved - wresolved) <= STEP * 1_000_000, (rule.name, resolved, wresolved)


def test_live_engine_opens_one_alert_per_incident_and_suppresses_a_parents_children(
        db: psycopg.Connection) -> None:
    org, ids = _seed(db)
    db.execute("INSERT INTO escalation_policies (organization_id, name, steps) VALUES (%s, 'default', %s)",
               (org, Jsonb([{"after_s": 0, "channels": ["noc"]}])))
    db.execute("INSERT INTO notification_channels (organization_id, name, kind, config) "
               "VALUES (%s, 'noc', 'slack', %s)", (org, Jsonb({"url": "https://hooks.slack.com/services/T0/B0/x"})))
    rules = save_rules(db, org, [DOWN, LOSS])
    incidents = FLEET.incidents(T0, T0 + timedelta(hours=HOURS))
    parent = next(i for i in incidents if i.kind is IncidentKind.OUTAGE and FLEET.descendants(i.device_index))
    start, end = parent.start - timedelta(minutes=10), parent.end + timedelta(minutes=10)
    in_window = [i for i in incidents if i.start < end and i.end > start]
    loader, evaluator, engine = Loader(hysteresis=Hysteresis(3, 2)), Evaluator(), AlertEngine()
    # Let the loader know every device first (status up), then tick: load a minute, evaluate it.
    loader.load(db, FLEET.sample(np.array([_us(start) - 120_000_000, _us(start) - 60_000_000]), device_ids=ids))
    notified = []
    t = start
    while t < end:
        loader.load(db, FLEET.sample(np.array([_us(t)]), device_ids=ids))
        report = engine.apply(db, org, evaluator.evaluate(db, org, rules, t), t)
        notified += [a for n in report.notify if n.reason == "opened" for a in n.alert_ids]
        t += timedelta(seconds=STEP)
    rows = db.execute("SELECT device_id, rule_id, started_at, created_at, resolved_at, suppressed_reason, id "
                      "FROM alerts ORDER BY created_at").fetchall()
    down_rule = rules[0].id
    parent_id = int(ids[parent.device_index])
    children = {int(ids[c]) for c in FLEET.descendants(parent.device_index)}
    status_alerts = {r[0]: r for r in rows if r[1] == down_rule}
    own_outages = {int(ids[i.device_index]) for i in in_window if i.kind is IncidentKind.OUTAGE}
    assert set(status_alerts) == {parent_id} | children | own_outages
    assert len([r for r in rows if r[1] == down_rule]) == len(status_alerts)  # one alert per device
    p = status_alerts[parent_id]
    # Down from the first failed probe (dated back), opened at the third, resolved at the second answer.
    assert p[2] == parent.start and p[3] == parent.start + timedelta(minutes=2)
    assert p[4] == parent.end + timedelta(minutes=1) and p[5] is None
    for child in children:
        assert status_alerts[child][5] == "parent_down"
    assert p[6] in notified and not any(status_alerts[c][6] in notified for c in children)
    # The outage's 100 % loss is the status rule's: no packet-loss alert for the dark subtree.
    loss_alerts = [r for r in rows if r[1] == rules[1].id]
    assert not any(r[0] in children | {parent_id} for r in loss_alerts)
    expected_loss = [i for i in in_window if i.kind is IncidentKind.PACKET_LOSS]
    assert len(loss_alerts) == len(expected_loss)


@pytest.mark.parametrize("bad", ["7 days", "-1d"])
def test_backtest_command_rejects_a_bad_since(bad: str, tmp_path, db_url: str, db: psycopg.Connection,  # noqa: ANN001
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from cli import main
    from netpulse.config import get_settings

    make_org(db)
    rules_file = tmp_path / "r.toml"
    rules_file.write_text('[[rule]]\nname = "x"\nmetric = "icmp_rtt_ms"\ncomparator = ">"\nvalue = 1\n')
    monkeypatch.setenv("NETPULSE_DATABASE_URL", db_url)
    get_settings.cache_clear()
    result = CliRunner().invoke(main, ["rules", "backtest", str(rules_file), "--since", bad])
    get_settings.cache_clear()
    assert result.exit_code == 1 and "Error:" in result.output and "since" in result.output


def test_a_dynamic_rule_finds_each_latency_spike_against_last_weeks_baseline(db: psycopg.Connection) -> None:
    """Latency spikes multiply one device's RTT, whose normal level differs per device and hour: a
    fixed threshold cannot catch them all, the hour-of-week baseline can."""
    org, ids = _seed(db)
    step = 300
    day = T0 + timedelta(days=7)
    times = to_micros(T0) + np.arange(8 * 86400 // step, dtype=np.int64) * step * 1_000_000
    loader = Loader(hysteresis=Hysteresis(3, 2))
    for i in range(0, len(times), 288):
        loader.load(db, FLEET.sample(times[i:i + 288], device_ids=ids))
    rule = Rule("latency above baseline", "dynamic", "warning", metric=MetricKind.ICMP_RTT_MS, comparator=">",
                k_mad=8, baseline_weeks=1, for_s=step)
    eps, _ = replay(db, org, rule, ids.tolist(), day, day + timedelta(days=1), baseline_until=day)
    incidents = FLEET.incidents(day, day + timedelta(days=1))
    # Those long enough to hold the two samples (5 minutes apart) that ``for`` asks for.
    spikes = [i for i in incidents if i.kind is IncidentKind.LATENCY_SPIKE and i.end <= day + timedelta(days=1)
              and i.start >= day and i.duration >= timedelta(seconds=3 * step)]
    assert spikes
    found = [(split_key(k)[0], o, r) for k, o, r in eps.frame.select("series", "opened_us", "resolved_us").iter_rows()]
    for spike in spikes:
        device = int(ids[spike.device_index])
        mine = [(o, r) for d, o, r in found if d == device and _us(spike.start) <= o < _us(spike.end)]
        assert len(mine) == 1, (spike, found)
        opened, resolved = mine[0]
        assert opened - _us(spike.start) <= rule.for_s * 1_000_000 + step * 1_000_000
        assert resolved is not None and abs(resolved - _us(spike.end)) <= step * 1_000_000
    # Nothing else fires but what really raised the latency: spikes, and saturated links (queues fill).
    raised = [i for i in incidents if i.kind in (IncidentKind.LATENCY_SPIKE, IncidentKind.LINK_SATURATION)]
    for device, opened, _ in found:
        assert any(int(ids[i.device_index]) == device and _us(i.start) <= opened <= _us(i.end) for i in raised), \
            (device, opened)
