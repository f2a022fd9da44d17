"""Rules: parsing and validation, and the vectorised replay against a sequential state machine."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from analytics.rulefile import RuleFileError, load_rule_file, rule_from_mapping
from analytics.rules import Rule, breach_and_clear, episodes, parse_duration
from netpulse.errors import ValidationError
from netpulse.metrics import MetricKind

RTT = MetricKind.ICMP_RTT_MS


def reference(rule: Rule, times: list[int], values: list[float], carried: bool = False) -> list[tuple]:
    """One sample at a time: (started, opened, resolved or None, worst)."""
    out: list[tuple] = []
    firing, prev_breach, run_start = carried, False, 0
    current: list = [-1, -1, None, None] if carried else []
    for t, v in zip(times, values, strict=True):
        b, c = (bool(x[0]) for x in breach_and_clear(rule, np.array([v])))
        if b and not prev_breach:
            run_start = t
        prev_breach = b
        if b and t - run_start >= rule.for_s * 1_000_000 and not firing:
            firing, current = True, [run_start, t, None, v]
        elif c and firing:
            firing = False
            current[2] = t
            out.append(tuple(current))
            current = []
            continue
        if firing:
            current[3] = v if current[3] is None else max(current[3], v) if rule.above else min(current[3], v)
    if firing:
        out.append(tuple(current))
    return out


def run(rule: Rule, per_series: dict[int, tuple[list[int], list[float]]], carried: set[int] = frozenset()) -> dict:
    keys = sorted(per_series)
    series = np.concatenate([np.full(len(per_series[k][0]), k) for k in keys])
    times = np.concatenate([np.array(per_series[k][0], np.int64) for k in keys])
    values = np.concatenate([np.array(per_series[k][1], float) for k in keys])
    before = np.isin(series, list(carried))
    frame = episodes(rule, series, times, values, firing_before=before).frame
    got: dict[int, list[tuple]] = {}
    for r in frame.iter_rows(named=True):
        worst = None if r["worst"] is None or np.isnan(r["worst"]) else r["worst"]  # no firing sample: none
        got.setdefault(r["series"], []).append((r["started_us"], r["opened_us"], r["resolved_us"], worst))
    return got


@pytest.mark.parametrize("seed", range(30))
def test_replay_equals_the_sequential_state_machine(seed: int) -> None:
    rng = np.random.default_rng(seed)
    cmp = str(rng.choice([">", ">=", "<", "<="]))
    value = 50.0
    clear = None if rng.random() < 0.3 else (40.0 if cmp.startswith(">") else 60.0)
    rule = Rule("r", "threshold", "warning", metric=RTT, comparator=cmp, value=value, clear_value=clear,
                for_s=int(rng.choice([0, 60, 180])))
    per_series = {}
    for k in range(int(rng.integers(1, 6))):
        n = int(rng.integers(1, 80))
        times = np.cumsum(rng.integers(30, 90, n)) * 1_000_000
        # Regimes of quiet, in-between and breaching values, with integer values hitting the edges.
        values = np.repeat(rng.choice([30.0, 45.0, 50.0, 55.0, 70.0], size=n // 3 + 1), 3)[:n]
        values = values + rng.integers(-2, 3, n)
        per_series[k] = (times.tolist(), values.tolist())
    carried = {k for k in per_series if rng.random() < 0.3}
    expected = {k: reference(rule, *per_series[k], carried=k in carried) for k in per_series}
    assert run(rule, per_series, carried) == {k: v for k, v in expected.items() if v}


def test_for_duration_and_clear_hysteresis() -> None:
    rule = Rule("lat", "threshold", "critical", metric=RTT, comparator=">", value=100, clear_value=80, for_s=120)
    t = [k * 60_000_000 for k in range(12)]
    #       0    1    2    3    4    5   6   7    8   9   10   11
    v = [50, 150, 160, 170, 90, 120, 85, 79, 150, 50, 150, 150]
    # Breach from t1; fires at t3 (120 s later); 90 and 85 are between clear and threshold: still firing;
    # clears at t7 (79 < 80). The lone 150 at t8 never lasts 120 s; t10-t11 lasts only 60 s.
    assert run(rule, {1: (t, v)}) == {1: [(t[1], t[3], t[7], 170.0)]}


def test_durations() -> None:
    assert [parse_duration(x) for x in ("90", "90s", "5m", "2h", "7d", "1w", 30)] == [90, 90, 300, 7200, 604800,
                                                                                       604800, 30]
    with pytest.raises(ValidationError, match="not a duration"):
        parse_duration("5 minutes")


@pytest.mark.parametrize(("data", "message"), [
    ({"name": "x", "metric": "icmp_rtt_ms", "value": 1}, "needs a comparator"),
    ({"name": "x", "metric": "rtt", "comparator": ">", "value": 1}, "unknown metric 'rtt'"),
    ({"name": "x", "metric": "icmp_rtt_ms", "comparator": "=>", "value": 1}, "comparator '=>'"),
    ({"name": "x", "metric": "icmp_rtt_ms", "comparator": ">", "value": 100, "clear": 120}, "must not be above"),
    ({"name": "x", "metric": "icmp_rtt_ms", "comparator": ">", "value": 1, "scope": "site"}, "needs a name"),
    ({"name": "x", "metric": "icmp_rtt_ms", "comparator": ">", "value": 1, "for": "soon"}, "not a duration"),
    ({"name": "x", "metric": "icmp_rtt_ms", "comparator": ">", "value": 1, "severity": "high"}, "severity 'high'"),
    ({"name": "x", "metric": "icmp_rtt_ms", "k": 0}, "k > 0"),
    ({"name": "x", "metric": "icmp_rtt_ms", "comparator": ">", "value": 1, "colour": "red"}, "unknown key"),
])
def test_invalid_rules_say_what_is_wrong(data: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        rule_from_mapping(data)


def test_rule_files_in_toml_and_json(tmp_path: Path) -> None:
    toml = tmp_path / "rules.toml"
    toml.write_text('[[rule]]\nname = "latency"\nmetric = "icmp_rtt_ms"\ncomparator = ">"\nvalue = 100\n'
                    'clear = 80\nfor = "5m"\nseverity = "critical"\nscope = "site:Nairobi"\n\n'
                    '[[rule]]\nname = "cpu baseline"\nmetric = "cpu_pct"\nk = 4\ncomparator = ">"\n')
    latency, cpu = load_rule_file(toml)
    assert (latency.kind, latency.for_s, latency.scope, latency.scope_ref, latency.clear_value) == (
        "threshold", 300, "site", "Nairobi", 80.0)
    assert (cpu.kind, cpu.k_mad, cpu.severity, cpu.scope) == ("dynamic", 4.0, "warning", "all")
    js = tmp_path / "rules.json"
    js.write_text(json.dumps([{"name": "down", "kind": "status", "severity": "critical"}]))
    assert load_rule_file(js)[0].kind == "status"
    js.write_text(json.dumps([{"name": "a", "kind": "status", "severity": "critical"}] * 2))
    with pytest.raises(RuleFileError, match="rule a: the name is already used by the rule on line 1"):
        load_rule_file(js)
    js.write_text("{not json")
    with pytest.raises(ValidationError, match="not valid JSON"):
        load_rule_file(js)
    with pytest.raises(ValidationError, match="cannot read"):
        load_rule_file(tmp_path / "missing.toml")
