"""Ingest benchmark: the loader and the Dramatiq pipeline against a raw binary COPY baseline.

    python bench/ingest.py [--rows 1000000] [--devices 10000] [--batch 50000]

Creates its own database on NETPULSE_BENCH_ADMIN_URL (default: the local PostgreSQL) and a Redis
namespace on NETPULSE_BENCH_REDIS_URL, and drops both afterwards. Rows are simulated probe results:
the simulated fleet's ``devices`` devices (ingest.simulator) over as many 10-second ticks as make
``rows``, in the order probes produce them (tick by tick).

(a) raw_copy: binary COPY of the rows into a table identical to ``metrics`` (partitioned by day,
    same primary key): the baseline.
(b) loader: ``ingest.loader.Loader`` in batches of ``--batch`` rows, rollups and status included.
(c) end to end: the same rows as ``workers.load_batch`` messages through Dramatiq on Redis,
    drained by a Worker (2 threads) into the loader.
(d) the rollup job (netpulse.rollups.advance) materializing the loaded rows into the 1m/1h/1d
    tables, which the loader leaves to it for rows newer than the watermark.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import numpy as np
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingest import copy_binary  # noqa: E402
from ingest.loader import Loader  # noqa: E402
from ingest.rows import MetricRows, from_micros  # noqa: E402
from ingest.simulator import Fleet  # noqa: E402
from netpulse.migrations import migrate  # noqa: E402
from netpulse.rollups import advance_all  # noqa: E402
from netpulse.storage import ensure_partitions  # noqa: E402

ADMIN_URL = os.environ.get("NETPULSE_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("NETPULSE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
STEP_S = 10


def make_rows(n_rows: int, n_devices: int, t0_us: int) -> MetricRows:
    """Probe results of the simulated fleet, tick-major as the probers emit them: every device's
    rows for one tick (about 11 metrics each), then the next tick, until ``n_rows``."""
    fleet = Fleet(n_devices=n_devices, n_sites=6, seed=7, interval_s=STEP_S)
    per_tick = len(fleet.sample(np.array([t0_us], np.int64)))
    n_ticks = -(-n_rows // per_tick)
    rows = fleet.sample(t0_us + np.arange(n_ticks, dtype=np.int64) * STEP_S * 1_000_000)
    return rows.slice(0, n_rows)


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:>12,.0f} rows/s  ({n:,} rows in {seconds:.2f} s)"


def main() -> None:
    from netpulse.logs import configure

    configure("warning")
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=50_000, help="rows per loader call / per message")
    args = ap.parse_args()

    name = f"netpulse_bench_{uuid.uuid4().hex[:8]}"
    base = ADMIN_URL.rpartition("/")[0]
    url = f"{base}/{name}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    try:
        migrate(url, requested="postgres")
        t0 = (int(time.time()) // 86_400) * 86_400 * 1_000_000 + 3_600 * 1_000_000  # 01:00 UTC today
        rows = make_rows(args.rows, args.devices, t0)
        n = len(rows)
        n_ticks = len(np.unique(rows.time_us))
        print(f"rows: {n:,} simulated probe results of {args.devices:,} devices over {n_ticks} ticks "
              f"{STEP_S} s apart ({n / n_ticks / args.devices:.1f} rows per device and tick); "
              f"batches of {args.batch:,} rows")
        with psycopg.connect(url, autocommit=True) as c:
            c.execute(f"WITH o AS (INSERT INTO organizations (name, slug) VALUES ('Bench', 'bench') RETURNING id) "
                      f"INSERT INTO devices (organization_id, name, address, device_type) "
                      f"SELECT o.id, 'd' || g, 'h' || g, 'router' FROM o, generate_series(1, {args.devices}) g")
            lo, hi = rows.time_us.min(), rows.time_us.max()
            ensure_partitions(c, from_micros(int(lo)), from_micros(int(hi)))

            # (a) baseline: raw binary COPY into an identical partitioned table.
            c.execute("CREATE TABLE raw_copy (LIKE metrics INCLUDING ALL) PARTITION BY RANGE (time)")
            c.execute("CREATE TABLE raw_copy_p PARTITION OF raw_copy DEFAULT")
            payloads = [copy_binary.encode(rows.slice(i, i + args.batch)) for i in range(0, n, args.batch)]
            start = time.perf_counter()
            for p in payloads:
                with c.transaction(), c.cursor() as cur, cur.copy(
                        "COPY raw_copy (time, device_id, metric_id, ifindex, value) FROM STDIN (FORMAT BINARY)") as cp:
                    cp.write(p)
            raw_s = time.perf_counter() - start
            print(f"(a) raw binary COPY     {rate(n, raw_s)}")

            # (b) the loader, rollups and device status included.
            loader = Loader()
            start = time.perf_counter()
            for i in range(0, n, args.batch):
                loader.load(c, rows.slice(i, i + args.batch))
            load_s = time.perf_counter() - start
            print(f"(b) loader              {rate(n, load_s)}")
            got = c.execute("SELECT count(*) FROM metrics").fetchone()[0]
            assert got == n, f"loader stored {got} of {n} rows"

            # (d) the rollup job materializing what the loader left live (runs beside it, per minute).
            start = time.perf_counter()
            reports = advance_all(c, from_micros(int(hi)) + timedelta(minutes=2), grace=timedelta(0))
            roll_s = time.perf_counter() - start
            minute_rows = sum(r.minute_rows for r in reports)
            live = c.execute("SELECT count(*) FROM metrics WHERE time >= "
                             "(SELECT materialized_until FROM rollup_watermark)").fetchone()[0]
            assert live == 0, f"{live} rows left unmaterialized"
            print(f"(d) rollup job          {rate(n, roll_s)}  [{minute_rows:,} minute buckets, 1h and 1d folded]")
            c.execute("TRUNCATE metrics, metrics_1m_mat, metrics_1h_mat, metrics_1d_mat, rollup_deltas")
            c.execute("UPDATE rollup_watermark SET materialized_until = '-infinity'")
            c.execute("UPDATE rollup_fence SET fenced_until = '-infinity'")

        # (c) end to end through Dramatiq on Redis.
        import logging

        import redis
        from dramatiq import Worker

        logging.getLogger("dramatiq").setLevel(logging.CRITICAL)  # failures would print whole batches

        from workers import broker as broker_mod
        from workers import runtime

        client = redis.Redis.from_url(REDIS_URL)
        client.flushdb()
        runtime.configure(runtime.Runtime(url))
        broker = broker_mod.install(broker_mod.make_broker(client=client))
        from workers.actors import LOADS, load_batch

        messages = [rows.slice(i, i + args.batch).to_message() for i in range(0, n, args.batch)]
        worker = Worker(broker, worker_threads=2, worker_timeout=100)
        start = time.perf_counter()
        worker.start()
        for msg in messages:
            load_batch.send(msg)
        broker.join(LOADS)
        worker.join()
        e2e_s = time.perf_counter() - start
        worker.stop()
        client.flushdb()
        with psycopg.connect(url) as c:
            got = c.execute("SELECT count(*) FROM metrics").fetchone()[0]
        assert got == n, f"pipeline stored {got} of {n} rows"
        print(f"(c) Dramatiq -> loader  {rate(n, e2e_s)}  [{len(messages)} messages]")
        print(f"end to end: {n / e2e_s:,.0f} rows/s (target 50,000)")
        print(f"loader/raw_copy ratio: {raw_s / load_s:.2f}")
        print(f"end_to_end/raw_copy ratio: {raw_s / e2e_s:.2f}")
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
