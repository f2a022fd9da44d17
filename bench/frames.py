"""Read benchmark: analytics.frames.load_metrics (columns packed by the server, read by numpy) against fetchall.

    python bench/frames.py [--rows 1000000] [--devices 1000] [--repeat 3]

Creates its own database on NETPULSE_BENCH_ADMIN_URL (default: the local PostgreSQL) and drops it
afterwards. Loads ``rows`` raw metric rows (``devices`` devices x 5 metrics, 10 s apart) with the
loader, then reads all of them back at raw resolution:

(a) baseline: the very SELECT that load_metrics runs, through ``cursor.fetchall()`` and
    ``pl.DataFrame(rows)`` (then sorted the same way): one Python tuple per row;
(b) frames: ``load_metrics``: the server packs each column's binary values into one bytea
    (analytics.copy_decode.fetch_columns), numpy reads them and Polars wraps them, without a Python
    object per row.

Each is run ``--repeat`` times, alternating, and the best run counts (the machine is shared).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analytics.frames import load_metrics, select_metrics  # noqa: E402
from ingest.loader import Loader  # noqa: E402
from ingest.rows import MetricRows, to_micros  # noqa: E402
from netpulse.metrics import MetricKind  # noqa: E402
from netpulse.migrations import migrate  # noqa: E402

ADMIN_URL = os.environ.get("NETPULSE_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
STEP_S = 10
METRICS = (MetricKind.ICMP_RTT_MS, MetricKind.ICMP_JITTER_MS, MetricKind.ICMP_LOSS_PCT, MetricKind.CPU_PCT,
           MetricKind.MEM_PCT)
BATCH = 100_000


def make_rows(n_rows: int, device_ids: np.ndarray, t0: datetime) -> MetricRows:
    """Device x metric x tick, tick-major as probes emit them, cut to ``n_rows``."""
    n_ticks = -(-n_rows // (len(device_ids) * len(METRICS)))
    times = to_micros(t0) + np.arange(n_ticks, dtype=np.int64) * STEP_S * 1_000_000
    t, d, m = np.meshgrid(times, device_ids, np.array([int(k) for k in METRICS], np.int16), indexing="ij")
    n = t.size
    rng = np.random.default_rng(11)
    rows = MetricRows(t.ravel(), d.ravel(), m.ravel(), np.zeros(n, np.int32), rng.uniform(0, 100, n))
    return rows.slice(0, n_rows)


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:>12,.0f} rows/s  ({n:,} rows in {seconds:.2f} s)"


def main() -> None:
    from netpulse.logs import configure

    configure("warning")
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--devices", type=int, default=1_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    name = f"netpulse_bench_{uuid.uuid4().hex[:8]}"
    url = f"{ADMIN_URL.rpartition('/')[0]}/{name}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    try:
        migrate(url, requested="postgres")
        with psycopg.connect(url, autocommit=True) as c:
            row = c.execute("INSERT INTO organizations (name, slug) VALUES ('Bench', 'bench') RETURNING id").fetchone()
            assert row is not None
            org = row[0]
            ids = np.array([r[0] for r in c.execute(
                "INSERT INTO devices (organization_id, name, address, device_type) "
                "SELECT %s, 'd' || g, 'h' || g, 'router' FROM generate_series(1, %s) g RETURNING id",
                (org, args.devices)).fetchall()], np.int32)
            t0 = datetime.now(UTC).replace(hour=1, minute=0, second=0, microsecond=0)
            rows = make_rows(args.rows, ids, t0)
            n = len(rows)
            start = time.perf_counter()
            loader = Loader()
            for i in range(0, n, BATCH):
                loader.load(c, rows.slice(i, i + BATCH))
            c.execute("VACUUM ANALYZE")  # fresh statistics, as autovacuum keeps them
            print(f"rows: {n:,} raw rows of {args.devices:,} devices x {len(METRICS)} metrics, {STEP_S} s apart "
                  f"(loaded in {time.perf_counter() - start:.1f} s)")

            window: dict[str, Any] = {"metrics": METRICS, "start": t0, "end": t0 + timedelta(days=1),
                                      "resolution": "raw"}
            select = select_metrics(org, **window)
            best_fetch = best_frames = float("inf")
            for _ in range(args.repeat):
                start = time.perf_counter()
                with c.cursor() as cur:
                    fetched = cur.execute(select.query, select.params).fetchall()
                # Sorted as load_metrics sorts (the SELECT has no ORDER BY), so both build the same frame.
                baseline = pl.DataFrame(fetched, schema=[f for f, _ in select.fields], orient="row").sort(
                    "device_id", "metric_id", "ifindex", "time")
                best_fetch = min(best_fetch, time.perf_counter() - start)
                del fetched

                start = time.perf_counter()
                df = load_metrics(c, org, **window)
                best_frames = min(best_frames, time.perf_counter() - start)
            assert df.height == baseline.height == n, (df.height, baseline.height, n)
            assert df.select(baseline.columns).equals(baseline.with_columns(
                pl.col("time").dt.convert_time_zone("UTC"), pl.col("device_id").cast(pl.Int32),
                pl.col("metric_id").cast(pl.Int16), pl.col("ifindex").cast(pl.Int32))), "the two reads differ"
            print(f"(a) fetchall + DataFrame  {rate(n, best_fetch)}")
            print(f"(b) load_metrics           {rate(n, best_frames)}")
            print(f"frames/fetchall ratio: {best_fetch / best_frames:.2f}")
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
