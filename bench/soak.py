"""Soak benchmark: a simulated fleet probed by real ``netpulse worker`` and ``netpulse scheduler``
processes for minutes, against this machine's PostgreSQL and Redis.

    python bench/soak.py [--devices 10000] [--interval 30] [--minutes 10] [--workers 2] [--threads 4]
                         [--redis-url redis://127.0.0.1:6379/8] [--flush-redis] [--keep]

Creates a fresh database (on NETPULSE_BENCH_ADMIN_URL, default the local PostgreSQL) with
``--devices`` simulated devices on a ``--interval`` s probe interval, starts one scheduler and
``--workers`` worker processes (each answering for the simulated fleet, ``--simulated-fleet``),
and samples every two seconds:

- probe lag: from a probe's slot (the tick its rows carry) to the commit that stored it, seen as
  each device's ``last_checked`` moving on between two samples (so to within the 2 s sampling);
- queue depth: messages waiting in the broker's probe and load queues;
- rows/s stored, and each worker's resident memory (RSS) and CPU time.

At the end it counts from the stored rows that every device was probed about once per interval
and never twice within one (probes closer than half an interval apart), and derives capacity
figures: probes and rows per second per busy worker core (from the workers' CPU time), loader
rows per second per busy database core (from the CPU time of the database backends serving the
soak database), and bytes per device-day of raw rows and of each rollup level. The run ends with a
one-line verdict: lag p95 below the interval, the queues not growing, worker RSS growth after the
warm-up (the first fifth, at least a minute) under 10 %, and no device probed twice in an interval.
The baseline of the ratio printed beside it is the schedule itself: probes stored / probes due.

The Redis database given by ``--redis-url`` must be empty (or pass ``--flush-redis`` to empty it):
the broker's queues and the probe leases live there. Figures from a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingest.simulator import Fleet  # noqa: E402
from netpulse.metrics import MetricKind  # noqa: E402
from netpulse.migrations import migrate  # noqa: E402

ADMIN_URL = os.environ.get("NETPULSE_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
NETPULSE = Path(sys.executable).with_name("netpulse")
SAMPLE_S = 2.0
TICKS_PER_S = os.sysconf("SC_CLK_TCK")
QUEUES = ("probes", "loads")


def _url_for(dbname: str) -> str:
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{dbname}"


def _proc_rss_cpu(pid: int) -> tuple[int, float]:
    """(resident bytes, CPU seconds) of a process from /proc; (0, 0) once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0, 0.0
    rss_kb = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    fields = stat.rsplit(")", 1)[1].split()
    return rss_kb * 1024, (int(fields[11]) + int(fields[12])) / TICKS_PER_S


@dataclass
class Sample:
    at: float                     # seconds since the start
    lags: list[float]             # probe lag of each device probe stored since the previous sample
    depth: int                    # messages waiting in the probe and load queues
    rows: int                     # rows inserted into metrics so far (statistics counter)
    rss: list[int]                # per worker
    cpu: list[float]              # per worker, seconds


@dataclass
class Soak:
    args: argparse.Namespace
    dbname: str = field(default_factory=lambda: f"netpulse_soak_{uuid.uuid4().hex[:8]}")
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    db_cpu: dict[int, float] = field(default_factory=dict)   # backend pid -> CPU seconds seen last

    @property
    def url(self) -> str:
        return _url_for(self.dbname)

    def setup(self) -> Fleet:
        import redis

        client = redis.Redis.from_url(self.args.redis_url)
        if client.dbsize():
            if not self.args.flush_redis:
                raise SystemExit(f"{self.args.redis_url} is not empty; give an empty Redis database or --flush-redis")
            client.flushdb()
        with psycopg.connect(ADMIN_URL, autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{self.dbname}"')
        variant, _ = migrate(self.url, requested=self.args.storage)
        fleet = Fleet(n_devices=self.args.devices, n_sites=max(1, self.args.devices // 500), seed=7,
                      interval_s=self.args.interval)
        with psycopg.connect(self.url, autocommit=True) as c:
            org = c.execute("INSERT INTO organizations (name, slug) VALUES ('Soak', 'soak') RETURNING id").fetchone()
            assert org is not None
            with c.cursor() as cur, cur.copy("COPY devices (organization_id, name, address, ip_address, device_type, "
                                             "simulated) FROM STDIN") as copy:
                for d in fleet.devices:
                    copy.write_row((org[0], d.name, d.address, d.address, d.device_type, True))
        print(f"database {self.dbname} ({variant} storage): {len(fleet.devices):,} simulated devices, "
              f"probed every {self.args.interval} s by {self.args.workers} worker process(es) of "
              f"{self.args.threads} threads and one scheduler, for {self.args.minutes:g} min")
        return fleet

    def start(self, fleet: Fleet) -> None:
        env = {**os.environ, "NETPULSE_DATABASE_URL": self.url, "NETPULSE_REDIS_URL": self.args.redis_url,
               "NETPULSE_PROBE_INTERVAL_S": str(self.args.interval), "NETPULSE_SECRET_KEY": secrets.token_urlsafe(48),
               "NETPULSE_ENV_FILE": "/nonexistent"}
        spec = f"devices={fleet.n_devices},sites={fleet.n_sites},seed={fleet.seed},interval={fleet.interval_s}"
        for _ in range(self.args.workers):
            self.procs.append(subprocess.Popen(
                [str(NETPULSE), "worker", "--threads", str(self.args.threads), "--simulated-fleet", spec],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        self.procs.append(subprocess.Popen([str(NETPULSE), "scheduler"], env=env, stdout=subprocess.DEVNULL,
                                           stderr=subprocess.PIPE))

    @property
    def workers(self) -> list[subprocess.Popen[bytes]]:
        return self.procs[:-1]

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def _db_backend_cpu(self, conn: psycopg.Connection) -> None:
        for (pid,) in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                                   (self.dbname,)).fetchall():
            _, cpu = _proc_rss_cpu(pid)
            if cpu:
                self.db_cpu[pid] = max(cpu, self.db_cpu.get(pid, 0.0))

    def run(self) -> None:
        import redis

        client = redis.Redis.from_url(self.args.redis_url)
        seen: dict[int, int] = {}
        t0 = time.monotonic()
        deadline = t0 + self.args.minutes * 60
        with psycopg.connect(self.url, autocommit=True) as conn:
            next_at = t0
            while time.monotonic() < deadline:
                next_at += SAMPLE_S
                time.sleep(max(0.0, next_at - time.monotonic()))
                for p in self.procs:
                    if p.poll() is not None:
                        err = p.stderr.read().decode(errors="replace")[-2000:] if p.stderr else ""
                        raise SystemExit(f"{p.args[1]} exited with {p.returncode}:\n{err}")
                now_us = time.time_ns() // 1000
                lags = []
                for dev, checked in conn.execute(
                        "SELECT id, (extract(epoch FROM last_checked) * 1e6)::bigint FROM devices "
                        "WHERE last_checked IS NOT NULL").fetchall():
                    if seen.get(dev) != checked:
                        if dev in seen:
                            lags.append((now_us - checked) / 1e6)
                        seen[dev] = checked
                depth = sum(int(client.llen(f"netpulse:{q}")) for q in QUEUES)
                row = conn.execute("SELECT coalesce(sum(n_tup_ins), 0) FROM pg_stat_user_tables "
                                   "WHERE relname = 'metrics' OR relname LIKE 'metrics\\_p%%' "
                                   "OR relname LIKE '\\_hyper\\_%%'").fetchone()
                stats = [_proc_rss_cpu(p.pid) for p in self.workers]
                self._db_backend_cpu(conn)
                self.samples.append(Sample(time.monotonic() - t0, lags, depth, int(row[0]) if row else 0,
                                           [s[0] for s in stats], [s[1] for s in stats]))
                if len(self.samples) % int(30 / SAMPLE_S) == 0:
                    self._print_window(self.samples[-int(30 / SAMPLE_S):])

    @staticmethod
    def _print_window(window: list[Sample]) -> None:
        lags = [x for s in window for x in s.lags]
        p95 = np.percentile(lags, 95) if lags else float("nan")
        span = window[-1].at - window[0].at or 1.0
        rows = (window[-1].rows - window[0].rows) / span
        rss = ", ".join(f"{r / 2**20:.0f}" for r in window[-1].rss)
        print(f"  t={window[-1].at:5.0f} s  lag p95 {p95:5.1f} s  queue {window[-1].depth:5d}  "
              f"{rows:8,.0f} rows/s  worker RSS MiB [{rss}]", flush=True)

    def report(self, fleet: Fleet) -> bool:
        a = self.args
        samples = self.samples
        duration = samples[-1].at
        warm = max(60.0, duration / 5)
        after = [s for s in samples if s.at >= warm]
        lags = np.array([x for s in after for x in s.lags])
        p50, p95, p99 = (np.percentile(lags, q) for q in (50, 95, 99)) if len(lags) else (np.nan,) * 3
        depths = [s.depth for s in after]
        half = len(depths) // 2
        growing = bool(depths) and np.mean(depths[half:]) > 2 * max(np.mean(depths[:half]), 50)
        rss_warm = np.array(after[0].rss, float)
        rss_end = np.array(samples[-1].rss, float)
        growth = (rss_end / rss_warm - 1) * 100
        with psycopg.connect(self.url, autocommit=True) as conn:
            avail = int(MetricKind.AVAILABLE)
            probes, devices, rows, first, last = conn.execute(
                "SELECT count(*) FILTER (WHERE metric_id = %s), "
                "count(DISTINCT device_id) FILTER (WHERE metric_id = %s), count(*), min(time), max(time) "
                "FROM metrics", (avail, avail)).fetchone()  # type: ignore[misc]
            # Probes due against probes stored, over the whole intervals between the first and last.
            inner = conn.execute(
                "SELECT count(*) FROM metrics WHERE metric_id = %s AND time >= %s AND time < %s",
                (avail, first + timedelta(seconds=a.interval), last - timedelta(seconds=a.interval))).fetchone()[0]
            twice = conn.execute(
                "SELECT count(*) FROM (SELECT time - lag(time) OVER (PARTITION BY device_id ORDER BY time) AS gap "
                "FROM metrics WHERE metric_id = %s) g WHERE gap < %s * interval '1 second'",
                (avail, a.interval / 2)).fetchone()[0]  # type: ignore[index]
            self._db_backend_cpu(conn)
            sizes = self._sizes(conn)
        inner_s = (last - first).total_seconds() - 2 * a.interval
        due = max(len(fleet.devices) * inner_s / a.interval, 1.0)
        kept = inner / due
        worker_cpu = sum(samples[-1].cpu)
        db_cpu = sum(self.db_cpu.values())
        rows_per_probe = rows / max(probes, 1)
        print(f"\nafter a warm-up of {warm:.0f} s, over {duration - warm:.0f} s:")
        print(f"  probe lag (slot -> stored, sampled every {SAMPLE_S:g} s): p50 {p50:.1f} s, p95 {p95:.1f} s, "
              f"p99 {p99:.1f} s, max {lags.max() if len(lags) else float('nan'):.1f} s")
        print(f"  queue depth: max {max(depths) if depths else 0}, last {depths[-1] if depths else 0}"
              f"{' (growing)' if growing else ''}")
        print("  worker RSS MiB at warm-up -> end: " + ", ".join(
            f"{w / 2**20:.0f} -> {e / 2**20:.0f} ({g:+.1f} %)"
            for w, e, g in zip(rss_warm, rss_end, growth, strict=True)))
        print("  worker CPU s: " + ", ".join(f"{c:.0f}" for c in samples[-1].cpu)
              + f"  (the load is shared: each worker {min(samples[-1].cpu) / max(max(samples[-1].cpu), 1e-9):.0%} "
                "of the busiest)")
        print(f"stored: {probes:,} device probes of {devices:,} devices ({rows:,} rows, {rows_per_probe:.1f} per "
              f"probe) from {first:%H:%M:%S} to {last:%H:%M:%S}; over the whole intervals between, probes stored / "
              f"probes due = {kept:.3f}; devices probed twice within half an interval: {twice}")
        print("capacity (from CPU time; busy cores, not wall time):")
        print(f"  per worker core: {probes / max(worker_cpu, 1e-9):,.0f} probes/s, "
              f"{rows / max(worker_cpu, 1e-9):,.0f} rows/s  ({worker_cpu:.1f} CPU s over {a.workers} worker(s))")
        print(f"  database per core: {rows / max(db_cpu, 1e-9):,.0f} rows/s stored ({db_cpu:.1f} CPU s of the "
              "backends serving the soak: loads, status, rollup job, scheduler, alert jobs)")
        # Rows per device-day at a 60 s interval: one raw row per series and probe, one rollup row per
        # series and bucket (a minute holds one probe at 60 s).
        per_day = {"raw rows": 1440, "1m rollup": 1440, "1h rollup": 24, "1d rollup": 1}
        for label, (size, count) in sizes.items():
            if count:
                per_row = size / count
                print(f"  {label}: {size / 2**20:,.1f} MiB for {count:,} rows, {per_row:,.0f} B a row -> "
                      f"{per_row * per_day[label.split(' (')[0]] * rows_per_probe / 2**20:,.2f} MiB per device-day "
                      "at a 60 s interval")
        ok = (p95 < a.interval and not growing and bool((growth < 10).all()) and twice == 0 and kept >= 0.95)
        verdict = "PASS" if ok else "FAIL"
        print(f"\nVERDICT: {verdict}: {len(fleet.devices):,} devices every {a.interval} s on {a.workers} worker(s) "
              f"for {duration / 60:.1f} min: probe lag p95 {p95:.1f} s (< {a.interval} s), queue "
              f"{'growing' if growing else 'bounded'} (max {max(depths) if depths else 0}), worker RSS growth after "
              f"warm-up {growth.max():+.1f} % (< 10 %), {twice} device(s) probed twice in one interval; "
              f"probes stored / due {kept:.3f}")
        return ok

    @staticmethod
    def _sizes(conn: psycopg.Connection) -> dict[str, tuple[int, int]]:
        """label -> (bytes on disk with indexes and TOAST, rows) of the raw table and each rollup level.
        On TimescaleDB the raw chunks are compressed first (as the policy does after 7 days), and the
        compressed size is reported beside the uncompressed one."""
        variant = conn.execute("SELECT variant FROM netpulse_migrations WHERE variant <> 'common' LIMIT 1").fetchone()
        out: dict[str, tuple[int, int]] = {}
        levels = {"1m rollup": "metrics_1m", "1h rollup": "metrics_1h", "1d rollup": "metrics_1d"}
        raw_rows = int(conn.execute("SELECT count(*) FROM metrics").fetchone()[0])  # type: ignore[index]
        if variant and variant[0] == "timescale":
            out["raw rows"] = (int(conn.execute("SELECT hypertable_size('metrics')").fetchone()[0]), raw_rows)  # type: ignore[index]
            conn.execute("SELECT count(compress_chunk(c, if_not_compressed => true)) FROM show_chunks('metrics') c")
            out["raw rows (compressed)"] = (
                int(conn.execute("SELECT hypertable_size('metrics')").fetchone()[0]), raw_rows)  # type: ignore[index]
            for label, view in levels.items():
                size = conn.execute(
                    "SELECT hypertable_size(format('%I.%I', materialization_hypertable_schema, "
                    "materialization_hypertable_name)::regclass) FROM timescaledb_information.continuous_aggregates "
                    "WHERE view_name = %s", (view,)).fetchone()
                count = conn.execute(f"SELECT count(*) FROM {view}").fetchone()
                out[label] = (int(size[0] or 0) if size else 0, int(count[0]) if count else 0)
            return out
        out["raw rows"] = (int(conn.execute("SELECT coalesce(sum(pg_total_relation_size(relid)), 0) "
                                            "FROM pg_partition_tree('metrics')").fetchone()[0]), raw_rows)  # type: ignore[index]
        for label, view in levels.items():
            # A partitioned level sums its partitions; the 1d level is one table.
            size = conn.execute("SELECT greatest((SELECT coalesce(sum(pg_total_relation_size(relid)), 0) "
                                "FROM pg_partition_tree(%s::regclass)), pg_total_relation_size(%s::regclass))",
                                (view + "_mat", view + "_mat")).fetchone()
            count = conn.execute(f"SELECT count(*) FROM {view}_mat").fetchone()
            out[label] = (int(size[0]) if size else 0, int(count[0]) if count else 0)
        return out

    def drop(self) -> None:
        with psycopg.connect(ADMIN_URL, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument("--interval", type=int, default=30, help="probe interval, seconds")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--workers", type=int, default=2, help="worker processes")
    ap.add_argument("--threads", type=int, default=4, help="threads per worker process")
    ap.add_argument("--storage", choices=("auto", "postgres", "timescale"), default="auto")
    ap.add_argument("--redis-url", default=os.environ.get("NETPULSE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"))
    ap.add_argument("--flush-redis", action="store_true", help="empty the Redis database first")
    ap.add_argument("--keep", action="store_true", help="keep the soak database afterwards")
    args = ap.parse_args()
    soak = Soak(args)
    print(f"soak started {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} CPU(s)")
    ok = False
    try:
        fleet = soak.setup()
        soak.start(fleet)
        soak.run()
        soak.stop()
        ok = soak.report(fleet)
    finally:
        soak.stop()
        if not args.keep:
            soak.drop()
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
