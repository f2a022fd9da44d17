"""Ingest benchmark: the loader and the Dramatiq pipeline against a raw binary COPY baseline.

    python bench/ingest.py [--rows 1000000] [--devices 10000] [--batch 50000]

Creates its own database on NETPULSE_BENCH_ADMIN_URL (default: the local PostgreSQL) and a Redis
namespace on NETPULSE_BENCH_REDIS_URL, and drops both afterwards. Rows are simulated probe results:
``devices`` devices x 5 metrics x enough 10-second ticks to make ``rows``.

(a) raw_copy: binary COPY of the rows into a table identical to ``metrics`` (partitioned by day,
    same primary key): the baseline.
(b) loader: ``ingest.loader.Loader`` in batches of ``--batch`` rows, rollups and status included.
(c) end to end: the same rows as ``workers.load_batch`` messages through Dramatiq on Redis,
    drained by a Worker (2 threads) into the loader.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingest import copy_binary  # noqa: E402
from ingest.loader import Loader  # noqa: E402
from ingest.rows import MetricRows  # noqa: E402
from netpulse.metrics import MetricKind  # noqa: E402
from netpulse.migrations import migrate  # noqa: E402
from netpulse.storage import ensure_partitions  # noqa: E402

ADMIN_URL = os.environ.get("NETPULSE_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("NETPULSE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
METRICS = (MetricKind.AVAILABLE, MetricKind.ICMP_RTT_MS, MetricKind.ICMP_LOSS_PCT, MetricKind.CPU_PCT,
           MetricKind.MEM_PCT)
STEP_S = 10


def make_rows(n_rows: int, n_devices: int, t0_us: int) -> MetricRows:
    """Tick-major rows (as probes produce them): every device's metrics for tick 0, then tick 1..."""
    n_ticks = max(1, n_rows // (n_devices * len(METRICS)))
    rng = np.random.default_rng(1)
    t, d, m = np.meshgrid(t0_us + np.arange(n_ticks, dtype=np.int64) * STEP_S * 1_000_000,
                          np.arange(1, n_devices + 1, dtype=np.int32),
                          np.array([int(x) for x in METRICS], np.int16), indexing="ij")
    n = t.size
    value = rng.gamma(2.0, 10.0, n)
    value[m.ravel() == int(MetricKind.AVAILABLE)] = 1.0
    return MetricRows(t.ravel(), d.ravel(), m.ravel(), np.zeros(n, np.int32), value)


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
        n_ticks = n // (args.devices * len(METRICS))
        print(f"rows: {n:,} = {args.devices:,} devices x {len(METRICS)} metrics x {n_ticks} ticks "
              f"{STEP_S} s apart; batches of {args.batch:,} rows (tick-major)")
        with psycopg.connect(url, autocommit=True) as c:
            c.execute(f"WITH o AS (INSERT INTO organizations (name, slug) VALUES ('Bench', 'bench') RETURNING id) "
                      f"INSERT INTO devices (organization_id, name, address, device_type) "
                      f"SELECT o.id, 'd' || g, 'h' || g, 'router' FROM o, generate_series(1, {args.devices}) g")
            lo, hi = rows.time_us.min(), rows.time_us.max()
            from ingest.rows import from_micros
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
            c.execute("TRUNCATE metrics, metrics_1m, metrics_1h, metrics_1d")

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
        print(f"loader/raw_copy ratio: {raw_s / load_s:.2f}")
        print(f"end_to_end/raw_copy ratio: {raw_s / e2e_s:.2f}")
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
