"""Analytics benchmark: rule evaluation per tick, and anomaly scoring, against plain Python loops.

    python bench/analytics.py [--devices 10000] [--metrics 10] [--series 1000]

Creates its own database on NETPULSE_BENCH_ADMIN_URL (default: the local PostgreSQL) and drops it.

(a) rule evaluation: one threshold rule per metric (``for`` 2 min, a clear value) over ``devices``
    devices x ``metrics`` metrics, six probes a minute apart per series, 5 % of the series breaching.
    One tick = read every rule's window (analytics.frames, binary COPY), replay it vectorised
    (analytics.rules.episodes) and apply the findings to the alerts table (analytics.alerts).
    Baseline, same run: the same windows read with ``fetchall`` and each series replayed by a plain
    Python state machine, one sample at a time (findings only, no alert writes).
(b) anomaly scoring: analytics.anomaly.score_frame over ``series`` series of a week at 5 minutes,
    against the streaming path computing the same score one sample per call (timed on a few series).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analytics.alerts import AlertEngine  # noqa: E402
from analytics.anomaly import StreamScorer, score_frame  # noqa: E402
from analytics.evaluate import Evaluator  # noqa: E402
from analytics.rules import Rule, breach_and_clear, save_rules  # noqa: E402
from ingest.loader import Loader  # noqa: E402
from ingest.rows import MetricRows, to_micros  # noqa: E402
from netpulse.metrics import MetricKind  # noqa: E402
from netpulse.migrations import migrate  # noqa: E402

ADMIN_URL = os.environ.get("NETPULSE_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
# Not icmp_loss_pct: loss rules skip unanswered probes (100 %), which the synthetic values would hit.
METRICS = [MetricKind.ICMP_RTT_MS, MetricKind.ICMP_RTT_MIN_MS, MetricKind.ICMP_RTT_MAX_MS, MetricKind.ICMP_JITTER_MS,
           MetricKind.IF_IN_BPS, MetricKind.TCP_CONNECT_MS, MetricKind.CPU_PCT, MetricKind.MEM_PCT,
           MetricKind.IF_UTIL_PCT, MetricKind.IF_ERRORS_PS, MetricKind.HTTP_RESPONSE_MS, MetricKind.DNS_RESOLVE_MS]


def build(url: str, n_devices: int, metrics: list[MetricKind], now: datetime) -> tuple[uuid.UUID, list[Rule]]:
    with psycopg.connect(url, autocommit=True) as conn:
        org = conn.execute("INSERT INTO organizations (name, slug) VALUES ('Bench', 'bench') RETURNING id"
                           ).fetchone()[0]
        conn.execute("INSERT INTO devices (organization_id, name, address, device_type) SELECT %s, 'd' || g, "
                     "'10.' || (g / 65536) || '.' || (g / 256 %% 256) || '.' || (g %% 256), 'router' "
                     "FROM generate_series(1, %s) g", (org, n_devices))
        ids = np.array([r[0] for r in conn.execute("SELECT id FROM devices ORDER BY id")], np.int32)
        rng = np.random.default_rng(1)
        times = to_micros(now) - np.arange(5, -1, -1, dtype=np.int64) * 60_000_000
        d, m, t = np.meshgrid(ids, np.array([int(k) for k in metrics], np.int16), times, indexing="ij")
        values = rng.uniform(10, 60, d.shape)
        breaching = rng.random(d.shape[:2]) < 0.05
        values[breaching] += 100.0   # the whole window above 100: these fire
        rows = MetricRows(t.ravel(), d.ravel(), m.ravel(), np.zeros(d.size, np.int32), values.ravel())
        Loader().load(conn, rows)
        rules = save_rules(conn, org, [Rule(f"{k.metric_name} high", "threshold", "warning", metric=k, comparator=">",
                                            value=100.0, clear_value=80.0, for_s=120) for k in metrics])
    return org, rules


def baseline_tick(conn: psycopg.Connection, org: uuid.UUID, rules: list[Rule], now: datetime) -> int:
    """The same decision, the plain way: fetch rows, walk each series sample by sample."""
    firing = 0
    start = now - timedelta(minutes=5)
    for rule in rules:
        assert rule.metric is not None and rule.value is not None
        rows = conn.execute(
            "SELECT m.device_id, m.ifindex, m.time, m.value FROM metrics m JOIN devices d ON d.id = m.device_id "
            "WHERE d.organization_id = %s AND m.metric_id = %s AND m.time >= %s AND m.time <= %s "
            "ORDER BY 1, 2, 3", (org, int(rule.metric), start, now)).fetchall()
        state: dict[tuple[int, int], tuple[bool, datetime | None]] = {}
        for device_id, ifindex, t, v in rows:
            on, run_start = state.get((device_id, ifindex), (False, None))
            breach = v > rule.value
            clear = rule.clear_value is not None and v < rule.clear_value
            if breach:
                run_start = run_start or t
                if (t - run_start).total_seconds() >= rule.for_s:
                    on = True
            else:
                run_start = None
                if clear:
                    on = False
            state[(device_id, ifindex)] = (on, run_start)
        firing += sum(1 for on, _ in state.values() if on)
    return firing


def bench_rules(url: str, n_devices: int, n_metrics: int) -> float:
    now = datetime.now(UTC).replace(microsecond=0)
    metrics = METRICS[:n_metrics]
    t = time.perf_counter()
    org, rules = build(url, n_devices, metrics, now)
    print(f"setup: {n_devices:,} devices x {n_metrics} metrics x 6 probes = {n_devices * n_metrics * 6:,} rows "
          f"({time.perf_counter() - t:.1f} s)")
    assert breach_and_clear(rules[0], np.array([150.0]))[0][0]
    evaluator, engine = Evaluator(), AlertEngine()
    with psycopg.connect(url, autocommit=True) as conn:
        ticks = []
        for k in range(3):
            t = time.perf_counter()
            findings = evaluator.evaluate(conn, org, rules, now + timedelta(microseconds=k))
            report = engine.apply(conn, org, findings, now + timedelta(microseconds=k))
            ticks.append(time.perf_counter() - t)
            firing = sum(1 for f in findings if f.firing)
            print(f"  tick {k + 1}: {len(findings):,} findings ({firing:,} firing), opened {len(report.opened):,}, "
                  f"repeated {report.repeated:,} in {ticks[-1]:.2f} s")
        base = []
        for _ in range(2):
            t = time.perf_counter()
            base_firing = baseline_tick(conn, org, rules, now)
            base.append(time.perf_counter() - t)
    assert base_firing == firing, (base_firing, firing)
    vec, loop = min(ticks), min(base)
    n_series = n_devices * n_metrics
    print(f"(a) rule evaluation, vectorised + alert writes  {1 / vec:>6.2f} ticks/s  ({n_series:,} series, "
          f"{n_series / vec:,.0f} series/s)")
    print(f"    plain per-series loop (no writes)          {1 / loop:>6.2f} ticks/s  ({n_series / loop:,.0f} series/s)")
    print(f"rules vectorised/loop ratio: {loop / vec:.2f}")
    return loop / vec


def bench_anomaly(n_series: int) -> float:
    points = 7 * 288
    rng = np.random.default_rng(3)
    t = np.arange(points) * 300.0
    season = 10 * np.sin(2 * np.pi * t / 86400)
    values = 50 + season[None, :] + rng.normal(0, 2, (n_series, points))
    values[:, -30] += 60   # one spike each, in the last day
    frame = pl.DataFrame({"series": np.repeat(np.arange(n_series), points), "time": np.tile(t, n_series),
                          "value": values.ravel()})
    best = float("inf")
    for _ in range(2):
        t0 = time.perf_counter()
        scored = score_frame(frame)
        best = min(best, time.perf_counter() - t0)
    flagged = int((scored["anomaly_score"].to_numpy().reshape(n_series, points)[:, -30] >= 0.5).sum())
    k = 3
    live = StreamScorer()
    t_us = (t * 1_000_000).astype(np.int64)
    t0 = time.perf_counter()
    for i in range(k):
        for j in range(points):
            live.update(i, int(t_us[j]), float(values[i, j]))
    loop = (time.perf_counter() - t0) / (k * points)
    vec_rate = n_series * points / best
    print(f"(b) anomaly score_frame           {vec_rate:>12,.0f} points/s  ({n_series:,} series x {points:,} points "
          f"in {best:.2f} s; {flagged:,} of {n_series:,} injected spikes scored >= 0.5)")
    print(f"    streaming, one call a sample  {1 / loop:>12,.0f} points/s  ({k} series timed)")
    print(f"anomaly vectorised/streaming ratio: {vec_rate * loop:.1f}")
    return vec_rate * loop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--metrics", type=int, default=10, choices=range(1, len(METRICS) + 1))
    parser.add_argument("--series", type=int, default=1_000, help="series for the anomaly scoring part")
    args = parser.parse_args()
    name = f"netpulse_bench_analytics_{uuid.uuid4().hex[:8]}"
    base, _, _ = ADMIN_URL.rpartition("/")
    url = f"{base}/{name}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    try:
        migrate(url, requested="postgres")
        bench_rules(url, args.devices, args.metrics)
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    bench_anomaly(args.series)


if __name__ == "__main__":
    main()
