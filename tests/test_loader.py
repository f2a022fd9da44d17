from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
import pytest

from ingest.loader import Loader
from ingest.rows import MetricRows, to_micros
from netpulse.metrics import MetricKind
from tests.factories import grid_rows, make_devices, make_org, utc

START = utc(2026, 11, 20, 23, 30)  # the batch crosses midnight: two daily partitions, two 1d buckets


def _counts(conn: psycopg.Connection) -> dict[str, int]:
    return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("metrics", "metrics_1m", "metrics_1h", "metrics_1d")}


def _rollup(conn: psycopg.Connection, table: str) -> list[tuple]:
    return conn.execute(
        f"SELECT bucket, device_id, metric_id, ifindex, count, round(sum::numeric, 6), min, max, "
        f"round(avg::numeric, 6) FROM {table} ORDER BY 1, 2, 3, 4").fetchall()


def _expected(conn: psycopg.Connection, bucket_sql: str) -> list[tuple]:
    return conn.execute(
        f"SELECT {bucket_sql} AS b, device_id, metric_id, ifindex, count(*), round(sum(value)::numeric, 6), "
        f"min(value), max(value), round(avg(value)::numeric, 6) FROM metrics GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
    ).fetchall()


def assert_rollups_match_raw(conn: psycopg.Connection) -> None:
    assert _rollup(conn, "metrics_1m") == _expected(conn, "date_trunc('minute', time)")
    assert _rollup(conn, "metrics_1h") == _expected(conn, "date_trunc('hour', time)")
    assert _rollup(conn, "metrics_1d") == _expected(conn, "date_trunc('day', time, 'UTC')")


def test_rollups_equal_sql_aggregate_over_raw(db: psycopg.Connection) -> None:
    devices = make_devices(db, make_org(db), 5)
    loader = Loader()
    rows = grid_rows(devices, START, n_times=200, step_s=20)  # 66 minutes, 20 s apart
    result = loader.load(db, rows)
    assert result.inserted == len(rows) == 5 * 2 * 200
    assert _counts(db)["metrics"] == len(rows)
    assert_rollups_match_raw(db)
    # Two days in the 1d rollup, 2 hours, 67 minute buckets per series.
    assert db.execute("SELECT count(DISTINCT bucket) FROM metrics_1d").fetchone()[0] == 2


@pytest.mark.plain_storage
def test_a_batch_across_midnight_gets_both_daily_partitions(db: psycopg.Connection) -> None:
    devices = make_devices(db, make_org(db), 1)
    Loader().load(db, grid_rows(devices, START, n_times=200, step_s=20))
    parts = {r[0] for r in db.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'metrics'::regclass").fetchall()}
    assert {"metrics_p20261120", "metrics_p20261121"} <= parts


def test_same_batch_twice_changes_nothing(db: psycopg.Connection) -> None:
    devices = make_devices(db, make_org(db), 3)
    loader = Loader()
    rows = grid_rows(devices, START, n_times=90)
    first = loader.load(db, rows)
    counts, r1m, r1d = _counts(db), _rollup(db, "metrics_1m"), _rollup(db, "metrics_1d")
    again = Loader().load(db, rows)  # a retry from another worker process
    assert first.inserted == len(rows)
    assert again.inserted == 0 and again.duplicates == len(rows)
    assert _counts(db) == counts
    assert _rollup(db, "metrics_1m") == r1m
    assert _rollup(db, "metrics_1d") == r1d


def test_overlapping_batches_count_each_row_once(db: psycopg.Connection) -> None:
    devices = make_devices(db, make_org(db), 4)
    loader = Loader()
    rows = grid_rows(devices, START, n_times=120)
    half = len(rows) // 2
    order = np.random.default_rng(7).permutation(len(rows))
    shuffled = MetricRows(*(getattr(rows, f)[order] for f in ("time_us", "device_id", "metric_id", "ifindex",
                                                              "value")))
    loader.load(db, shuffled.slice(0, half + 100))
    second = loader.load(db, shuffled.slice(half - 100, len(rows)))
    assert second.inserted == len(rows) - half - 100
    assert _counts(db)["metrics"] == len(rows)
    assert_rollups_match_raw(db)


def test_duplicates_inside_one_batch_are_stored_once(db: psycopg.Connection) -> None:
    devices = make_devices(db, make_org(db), 2)
    rows = grid_rows(devices, START, n_times=10)
    doubled = MetricRows.concat([rows, rows])
    result = Loader().load(db, doubled)
    assert result.inserted == len(rows)
    assert_rollups_match_raw(db)


def test_non_finite_values_are_rejected_not_stored(db: psycopg.Connection) -> None:
    devices = make_devices(db, make_org(db), 1)
    t = utc(2026, 11, 20, 12)
    rows = MetricRows.from_tuples([
        (t, devices[0], MetricKind.CPU_PCT, 0, 10.0),
        (t + timedelta(seconds=60), devices[0], MetricKind.CPU_PCT, 0, float("nan")),
        (t + timedelta(seconds=120), devices[0], MetricKind.CPU_PCT, 0, float("inf")),
    ])
    result = Loader().load(db, rows)
    assert (result.received, result.inserted, result.rejected) == (3, 1, 2)
    assert_rollups_match_raw(db)


def test_loader_works_inside_a_callers_transaction(db_url: str, db: psycopg.Connection) -> None:
    devices = make_devices(db, make_org(db), 2)
    rows = grid_rows(devices, START, n_times=5)
    with psycopg.connect(db_url) as conn:  # not autocommit: the load joins the open transaction
        Loader().load(conn, rows)
        Loader().load(conn, rows)
        conn.rollback()
    assert _counts(db)["metrics"] == 0


@pytest.mark.parametrize("n", [1, 5000])
def test_micro_timestamps_survive_round_trip(db: psycopg.Connection, n: int) -> None:
    devices = make_devices(db, make_org(db), 1)
    base = datetime(2026, 11, 20, 8, 0, 0, 123456, tzinfo=UTC)
    rows = MetricRows.from_tuples([(base + timedelta(seconds=i), devices[0], 1, 0, float(i)) for i in range(n)])
    Loader().load(db, rows)
    got = db.execute("SELECT time, value FROM metrics ORDER BY time LIMIT 1").fetchone()
    assert got == (base, 0.0)
    assert to_micros(base) == rows.time_us[0]


def test_consecutive_ticks_merge_into_shared_buckets(db: psycopg.Connection) -> None:
    """Live operation: each tick is its own batch, so every batch meets buckets earlier ones opened."""
    devices = make_devices(db, make_org(db), 6)
    rows = grid_rows(devices, START, n_times=12, step_s=15)
    order = np.argsort(rows.time_us, kind="stable")
    by_time = MetricRows(*(getattr(rows, f)[order] for f in ("time_us", "device_id", "metric_id", "ifindex",
                                                             "value")))
    loader = Loader()
    per_tick = len(devices) * 2
    results = [loader.load(db, by_time.slice(i, i + per_tick)) for i in range(0, len(rows), per_tick)]
    assert sum(r.inserted for r in results) == len(rows)
    assert_rollups_match_raw(db)


def _mat_counts(conn: psycopg.Connection) -> dict[str, int]:
    return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("metrics_1m_mat", "metrics_1h_mat", "metrics_1d_mat")}


@pytest.mark.plain_storage
def test_rollups_stay_exact_across_the_watermark(db: psycopg.Connection) -> None:
    """Live rows, the rollup job, late rows and retried batches: the views always equal the raw
    aggregate, whichever side of the watermark each row fell on."""
    from netpulse.rollups import advance, watermark

    devices = make_devices(db, make_org(db), 4)
    loader = Loader()
    rows = grid_rows(devices, START, n_times=180, step_s=20)  # 23:30 to 00:30, across midnight
    order = np.argsort(rows.time_us, kind="stable")
    ticks = MetricRows(*(getattr(rows, f)[order] for f in ("time_us", "device_id", "metric_id", "ifindex",
                                                           "value")))
    per_tick = len(devices) * 2
    first_half = ticks.slice(0, 90 * per_tick)
    loader.load(db, first_half)
    assert_rollups_match_raw(db)
    assert sum(_mat_counts(db).values()) == 0  # nothing materialized yet: all live

    report = advance(db, START + timedelta(minutes=25), grace=timedelta(seconds=0))
    assert report.end == START + timedelta(minutes=25)
    assert watermark(db) == report.end
    mat = _mat_counts(db)
    assert mat["metrics_1m_mat"] == 25 * len(devices) * 2 and mat["metrics_1h_mat"] > 0
    assert_rollups_match_raw(db)

    # Late rows (a delayed probe batch, behind W) and the rest of the hour (ahead of W).
    late = grid_rows(devices, START + timedelta(minutes=3, seconds=10), n_times=3, step_s=20, seed=9)
    assert loader.load(db, late).inserted == len(late)
    loader.load(db, ticks.slice(90 * per_tick, len(ticks)))
    assert_rollups_match_raw(db)

    # A retried batch that straddles W takes the slow path and adds nothing.
    again = MetricRows.concat([late, ticks.slice(80 * per_tick, 100 * per_tick)])
    assert loader.load(db, again).inserted == 0
    assert_rollups_match_raw(db)

    # Catch up past midnight and the hour: the open hour and day are split between mat and live.
    advance(db, START + timedelta(minutes=45), grace=timedelta(seconds=0))
    assert_rollups_match_raw(db)
    advance(db, START + timedelta(hours=2), grace=timedelta(seconds=0))
    assert_rollups_match_raw(db)
    assert db.execute("SELECT count(*) FROM metrics WHERE time >= %s", (watermark(db),)).fetchone()[0] == 0


@pytest.mark.plain_storage
def test_loaders_and_the_rollup_job_running_concurrently_lose_nothing(db_url: str, db: psycopg.Connection) -> None:
    import threading

    from netpulse.rollups import advance

    devices = make_devices(db, make_org(db), 30)
    rows = grid_rows(devices, START, n_times=120, step_s=10, seed=3)
    order = np.argsort(rows.time_us, kind="stable")
    ticks = MetricRows(*(getattr(rows, f)[order] for f in ("time_us", "device_id", "metric_id", "ifindex",
                                                           "value")))
    per_tick = len(devices) * 2
    batches = [ticks.slice(i, i + per_tick) for i in range(0, len(ticks), per_tick)]
    stop = threading.Event()
    errors: list[BaseException] = []

    def load(part: list[MetricRows]) -> None:
        try:
            loader = Loader()
            with psycopg.connect(db_url, autocommit=True) as conn:
                for b in part:
                    loader.load(conn, b)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    def job() -> None:
        with psycopg.connect(db_url, autocommit=True) as conn:
            minute = 0
            while not stop.is_set():
                minute = min(minute + 1, 25)
                advance(conn, START + timedelta(minutes=minute), grace=timedelta(seconds=0))

    threads = [threading.Thread(target=load, args=(batches[k::3],)) for k in range(3)]
    runner = threading.Thread(target=job)
    runner.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    runner.join()
    assert not errors, errors
    assert _counts(db)["metrics"] == len(rows)
    assert sum(_mat_counts(db).values()) > 0
    assert_rollups_match_raw(db)


@pytest.mark.plain_storage
def test_a_load_commits_without_waiting_while_a_materialization_is_in_progress(db_url: str,
                                                                               db: psycopg.Connection) -> None:
    """The rollup job is held inside its materializing transaction (a test lock keeps it from setting
    W); a loader with a lock_timeout stores late rows, rows of the range being materialized and
    on-time rows. It waits for nothing; the views stay exact before and after the job commits, and
    the next run folds the deltas the job could not see."""
    import threading
    import time

    from netpulse.rollups import advance, watermark

    devices = make_devices(db, make_org(db), 6)
    loader = Loader()
    loader.load(db, grid_rows(devices, START, n_times=120, step_s=10, seed=4))  # START to START + 20 min
    advance(db, START + timedelta(minutes=10), grace=timedelta(seconds=0))
    assert watermark(db) == START + timedelta(minutes=10)

    holder = psycopg.connect(db_url)  # not autocommit: holds the row lock until commit
    holder.execute("SELECT 1 FROM rollup_watermark FOR UPDATE")
    job_pid: list[int] = []
    errors: list[BaseException] = []

    def job() -> None:
        try:
            with psycopg.connect(db_url, autocommit=True) as conn:
                job_pid.append(conn.info.backend_pid)
                advance(conn, START + timedelta(minutes=20), grace=timedelta(seconds=0))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    runner = threading.Thread(target=job)
    runner.start()
    try:
        # Wait until the job has materialized [W, W + 10 min) and waits to move W.
        for _ in range(600):
            if job_pid and db.execute("SELECT count(*) FROM pg_locks WHERE pid = %s AND NOT granted",
                                      (job_pid[0],)).fetchone()[0]:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the rollup job never reached the update of the watermark")

        late = grid_rows(devices, START + timedelta(minutes=3, seconds=5), n_times=3, step_s=10, seed=5)
        in_range = grid_rows(devices, START + timedelta(minutes=12, seconds=5), n_times=3, step_s=10, seed=6)
        on_time = grid_rows(devices, START + timedelta(minutes=21), n_times=3, step_s=10, seed=7)
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute("SET lock_timeout = '5s'")  # a wait on the job would last until the holder commits
            for batch in (late, in_range, on_time):
                assert loader.load(conn, batch).inserted == len(batch)
            # A retried batch (slow path) adds nothing, and waits for nothing either.
            assert loader.load(conn, MetricRows.concat([late, on_time])).inserted == 0
        deferred = db.execute("SELECT sum(count) FROM rollup_deltas").fetchone()[0]
        assert deferred == len(late) + len(in_range)
        assert_rollups_match_raw(db)  # the job has not committed: W is where it was
    finally:
        holder.commit()
        holder.close()
        runner.join()
    assert not errors, errors
    assert watermark(db) == START + timedelta(minutes=20)
    assert_rollups_match_raw(db)  # the deltas the job did not see count beside its aggregate

    advance(db, START + timedelta(minutes=20), grace=timedelta(seconds=0))
    assert db.execute("SELECT count(*) FROM rollup_deltas").fetchone()[0] == 0
    assert_rollups_match_raw(db)


def test_latest_rtt_and_loss_land_on_the_device_row(db: psycopg.Connection) -> None:
    """The device grid reads the latest probe's RTT and loss from the device row: the answered probe's
    RTT, kept while the device stops answering; the loss of the latest probe whatever it was."""
    org = make_org(db)
    (dev,) = make_devices(db, org, 1)
    t0 = utc(2026, 5, 1, 12)
    avail, rtt, loss = int(MetricKind.AVAILABLE), int(MetricKind.ICMP_RTT_MS), int(MetricKind.ICMP_LOSS_PCT)

    def probe(at: datetime, answered: bool, rtt_ms: float, loss_pct: float) -> list[tuple[datetime, int, int, int,
                                                                                       float]]:
        rows = [(at, dev, avail, 0, 1.0 if answered else 0.0), (at, dev, loss, 0, loss_pct)]
        return rows + ([(at, dev, rtt, 0, rtt_ms)] if answered else [])

    loader = Loader()
    loader.load(db, MetricRows.from_tuples(probe(t0, True, 9.0, 0.0) + probe(t0 + timedelta(seconds=10), True,
                                                                             12.5, 20.0)))
    latest = "SELECT last_rtt_ms, last_loss_pct FROM devices WHERE id = %s"
    assert db.execute(latest, (dev,)).fetchone() == (12.5, 20.0)
    loader.load(db, MetricRows.from_tuples(probe(t0 + timedelta(seconds=20), False, 0.0, 100.0)))
    assert db.execute(latest, (dev,)).fetchone() == (12.5, 100.0)
