"""Rules of kind ``anomaly``: parsed from rule files, saved and read back, and replayed over the stored
anomaly scores by both the backtest and the live evaluator (real database; the fleet and its spikes are
test_anomaly_store's)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import polars as pl
import psycopg
import pytest

from analytics.alerts import AlertEngine
from analytics.anomaly import ANOMALOUS, load_scores, score_recent
from analytics.evaluate import Evaluator, replay, split_key
from analytics.rulefile import load_rule_file, rule_from_mapping
from analytics.rules import Rule, breach_and_clear, load_rules, save_rules
from netpulse.errors import ValidationError
from netpulse.metrics import MetricKind
from tests.factories import make_org
from tests.test_anomaly_store import NOW, Fleet, load

RTT, CPU = MetricKind.ICMP_RTT_MS, MetricKind.CPU_PCT
ODD_RTT = Rule("odd latency", "anomaly", "warning", metric=RTT, k_mad=ANOMALOUS)
ODD_CPU = Rule("odd cpu", "anomaly", "critical", metric=CPU, k_mad=0.5)


@pytest.fixture
def fleet(db: psycopg.Connection) -> Fleet:
    fleet = load(db, NOW)
    score_recent(db, fleet.org, NOW)          # the hour before NOW, as the 15-minute job stores it
    return fleet


def test_anomaly_rules_are_parsed_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text('[[rule]]\nname = "odd latency"\nkind = "anomaly"\nmetric = "icmp_rtt_ms"\nk = 0.6\n'
                    'for = "2m"\nseverity = "critical"\nscope = "site:Nairobi"\n')
    (rule,) = load_rule_file(path)
    assert (rule.kind, rule.metric, rule.k_mad, rule.for_s, rule.scope_ref) == ("anomaly", RTT, 0.6, 120, "Nairobi")
    assert rule.describe() == "icmp_rtt_ms anomaly score >= 0.6 for 120 s (site Nairobi)"
    assert rule.summary(0.93) == "icmp_rtt_ms anomaly score is 0.93 (>= 0.6)"
    json_path = tmp_path / "rules.json"
    json_path.write_text(json.dumps([{"name": "a", "kind": "anomaly", "metric": "cpu_pct", "k": 0.5}]))
    assert load_rule_file(json_path)[0].k_mad == 0.5
    for bad, words in [({"k": 1.5}, "k in (0, 1]"), ({"k": 0}, "k in (0, 1]"), ({}, "k in (0, 1]"),
                       ({"k": 0.5, "comparator": ">"}, "takes no comparator"),
                       ({"k": 0.5, "metric": None}, "needs a metric")]:
        data = {"name": "r", "kind": "anomaly", "metric": "icmp_rtt_ms", **bad}
        with pytest.raises(ValidationError, match=words.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
                           .replace("]", r"\]")):
            rule_from_mapping(data)


def test_breach_is_score_at_or_above_k_and_clear_is_below() -> None:
    import numpy as np

    breach, clear = breach_and_clear(ODD_RTT, np.array([0.1, 0.5, 0.49, 0.99, np.nan]))
    assert breach.tolist() == [False, True, False, True, False]
    assert clear.tolist() == [True, False, True, False, False]


def test_anomaly_rules_are_saved_and_loaded(db: psycopg.Connection) -> None:
    org = make_org(db)
    saved = save_rules(db, org, [ODD_RTT, ODD_CPU])
    loaded = load_rules(db, org)
    assert [(r.name, r.kind, r.metric, r.k_mad) for r in loaded] == [(r.name, r.kind, r.metric, r.k_mad)
                                                                       for r in saved]
    with pytest.raises(psycopg.errors.CheckViolation):
        with db.transaction():
            db.execute("INSERT INTO alert_rules (organization_id, name, kind, metric, k_mad, severity) "
                       "VALUES (%s, 'too big', 'anomaly', 'cpu_pct', 3, 'warning')", (org,))


def test_backtest_replays_stored_scores_and_finds_each_spike(db: psycopg.Connection, fleet: Fleet) -> None:
    spikes = {k: t for k, t in fleet.spikes.items() if k[0] in fleet.mine}
    for rule in (ODD_RTT, ODD_CPU):
        eps, samples = replay(db, fleet.org, rule, fleet.mine, NOW - timedelta(hours=1), NOW)
        assert len(samples.keys) == 60 * len(set(samples.keys.tolist())) > 0   # one stored score a minute
        opened = {split_key(k): us for k, us in eps.frame.select("series", "opened_us").iter_rows()}
        expected = {(k[0], k[2]): t for k, t in spikes.items() if k[1] == int(rule.metric)}
        assert expected, rule.name
        for (device, ifindex), at in expected.items():
            assert (device, ifindex) in opened and opened[(device, ifindex)] == int(at.timestamp() * 1e6)
        stored = load_scores(db, fleet.org, start=NOW - timedelta(hours=1), end=NOW, metrics=[rule.metric],
                             min_score=rule.k_mad)
        assert len(eps) == stored.select("device_id", "ifindex").n_unique() or len(eps) >= len(expected)


def test_live_evaluation_opens_each_anomaly_once_and_resolves_it(db: psycopg.Connection, fleet: Fleet) -> None:
    rules = save_rules(db, fleet.org, [ODD_RTT, ODD_CPU])
    engine, evaluator = AlertEngine(), Evaluator()
    findings = evaluator.evaluate(db, fleet.org, rules, NOW)
    report = engine.apply(db, fleet.org, findings, NOW)
    spiked = {(k[0], k[1]) for k in fleet.spikes if k[0] in fleet.mine}
    alerts = db.execute("SELECT device_id, metric, started_at, resolved FROM alerts WHERE organization_id = %s",
                        (fleet.org,)).fetchall()
    got = {(d, int(MetricKind.from_name(m))) for d, m, _, _ in alerts}
    assert spiked <= got and len(report.opened) == len(alerts)
    for device, metric, started, resolved in alerts:
        key = next((k for k in fleet.spikes if k[0] == device and k[1] == int(MetricKind.from_name(metric))), None)
        if key is not None:
            assert started == fleet.spikes[key] and resolved      # the spike's minute; over by NOW
    # The next ticks see the same stored scores: nothing opens again.
    for minutes in (1, 2):
        later = NOW + timedelta(minutes=minutes)
        again = engine.apply(db, fleet.org, evaluator.evaluate(db, fleet.org, rules, later), later)
        assert again.opened == []
    assert db.execute("SELECT count(*) FROM alerts WHERE organization_id = %s", (fleet.org,)).fetchone() == (
        len(alerts),)
    # Another organization's scores never reach these rules.
    assert not pl.DataFrame(alerts, schema=["device", "metric", "started", "resolved"], orient="row").filter(
        pl.col("device") == fleet.theirs).height
