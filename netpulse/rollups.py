"""Materialized rollups of the plain-PostgreSQL variant (TimescaleDB's continuous aggregates, by hand).

``metrics_1m/1h/1d`` are views: the ``*_mat`` tables hold mergeable aggregates (count, sum, min,
max) of every raw row older than the watermark W, and rows at or after W are aggregated live (see
``sql/postgres/0004_realtime_rollups.sql``). :func:`advance` moves W forward over closed minutes;
the loader folds rows that arrive behind W into the ``*_mat`` tables itself. Both hold the
watermark row lock (the job exclusively, loaders shared), so no row is ever counted twice or lost
between the two.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg

from netpulse.migrations import storage_variant
from netpulse.storage import ensure_partitions, refresh_rollups

MAT_TABLES = ("metrics_1m_mat", "metrics_1h_mat", "metrics_1d_mat")
_BUCKET_OF_MINUTE = {"metrics_1m_mat": "bucket", "metrics_1h_mat": "date_trunc('hour', bucket)",
                     "metrics_1d_mat": "date_trunc('day', bucket, 'UTC')"}

# Fold aggregates into a *_mat table; a bucket that already holds rows absorbs the new ones.
# Sorted by key so concurrent writers take row locks in the same order.
_MERGE = """
{cte} AS (
    INSERT INTO {table} AS r (bucket, device_id, metric_id, ifindex, count, sum, min, max)
    SELECT bucket, device_id, metric_id, ifindex, count, sum, min, max FROM ({source}) s
    ORDER BY device_id, metric_id, ifindex, bucket
    ON CONFLICT (device_id, metric_id, ifindex, bucket) DO UPDATE SET
        count = r.count + EXCLUDED.count, sum = r.sum + EXCLUDED.sum,
        min = LEAST(r.min, EXCLUDED.min), max = GREATEST(r.max, EXCLUDED.max)
)"""


def merge_cte(cte: str, table: str, source: str) -> str:
    """A data-modifying CTE folding ``source`` (bucket, device_id, metric_id, ifindex, count, sum,
    min, max) into ``table``."""
    return _MERGE.format(cte=cte, table=table, source=source)


def fold_minutes_statement(minutes: str) -> str:
    """One statement folding per-minute aggregates (the CTE named ``minutes``, defined by the
    caller) into all three levels."""
    ctes = [merge_cte(f"fold_{n}", table, (
        f"SELECT {_BUCKET_OF_MINUTE[table]} AS bucket, device_id, metric_id, ifindex, sum(count)::bigint AS count, "
        f"sum(sum) AS sum, min(min) AS min, max(max) AS max FROM {minutes} GROUP BY 1, 2, 3, 4"))
        for n, table in enumerate(MAT_TABLES)]
    return ",".join(ctes)


_WATERMARK = ("SELECT CASE WHEN isfinite(materialized_until) THEN materialized_until END "
              "FROM rollup_watermark")


def watermark(conn: psycopg.Connection, *, lock: str = "") -> datetime | None:
    """W, or None before anything was materialized. ``lock``: "" , "FOR SHARE" or "FOR UPDATE"."""
    row = conn.execute(f"{_WATERMARK} {lock}").fetchone()  # type: ignore[arg-type]
    return row[0] if row else None


def floor_minute(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(second=0, microsecond=0)


@dataclass(frozen=True, slots=True)
class AdvanceReport:
    start: datetime | None
    end: datetime | None
    minute_rows: int


_ADVANCE = """
WITH minutes AS MATERIALIZED (
    SELECT date_trunc('minute', time) AS bucket, device_id, metric_id, ifindex, count(*) AS count,
           sum(value) AS sum, min(value) AS min, max(value) AS max
    FROM metrics WHERE time >= %(lo)s AND time < %(hi)s
    GROUP BY 1, 2, 3, 4
), {folds}
SELECT count(*) FROM minutes
"""


def advance(conn: psycopg.Connection, now: datetime, *, grace: timedelta = timedelta(seconds=30),
            max_span: timedelta = timedelta(hours=6)) -> AdvanceReport:
    """Materialize closed minutes up to ``now - grace`` (at most ``max_span`` per call, so a
    catch-up after downtime proceeds in bounded steps). A no-op on TimescaleDB, whose refresh
    policies do this. ``conn`` should be in autocommit mode: this runs its own transaction."""
    if storage_variant(conn) != "postgres":
        return AdvanceReport(None, None, 0)
    target = floor_minute(now - grace)
    start = watermark(conn)
    if start is None:
        row = conn.execute("SELECT min(time) FROM metrics").fetchone()
        start = floor_minute(row[0]) if row and row[0] else target
    if start < target:
        ensure_partitions(conn, start, min(target, start + max_span))
    with conn.transaction():
        locked = watermark(conn, lock="FOR UPDATE")
        if locked is None:
            # The first materialization starts at the oldest row stored by now: loaders that committed
            # between the look above and the lock must not end up behind W unfolded. (Their days'
            # partitions exist: the loader created them.)
            row = conn.execute("SELECT min(time) FROM metrics").fetchone()
            start = min(start, floor_minute(row[0])) if row and row[0] else start
        lo = locked if locked is not None else start
        hi = min(target, lo + max_span)
        if hi <= lo:
            if locked is None:
                conn.execute("UPDATE rollup_watermark SET materialized_until = %s, advanced_at = now()", (hi,))
            return AdvanceReport(lo, lo, 0)
        row = conn.execute(_ADVANCE.format(folds=fold_minutes_statement("minutes")).encode(),  # type: ignore[arg-type]
                           {"lo": lo, "hi": hi}).fetchone()
        conn.execute("UPDATE rollup_watermark SET materialized_until = %s, advanced_at = now()", (hi,))
    return AdvanceReport(lo, hi, int(row[0]) if row else 0)


def advance_all(conn: psycopg.Connection, now: datetime, **kwargs: object) -> list[AdvanceReport]:
    """Advance in ``max_span`` steps until W has caught up with ``now - grace``."""
    reports = []
    while True:
        report = advance(conn, now, **kwargs)  # type: ignore[arg-type]
        reports.append(report)
        if report.start is None or report.start == report.end:
            return reports


def materialize(conn: psycopg.Connection, until: datetime) -> None:
    """Materialize the rollups of every row before ``until``, whichever the variant: the rollup job's
    catch-up on plain PostgreSQL, a refresh of the continuous aggregates on TimescaleDB (up to their
    last complete bucket but one). Reads give the same answers before and after; this only moves
    work from read time to now (after a backfill, say). ``conn`` must be in autocommit mode."""
    if storage_variant(conn) == "postgres":
        advance_all(conn, until, grace=timedelta(0))
    else:
        refresh_rollups(conn, None, until, variant="timescale")


# TimescaleDB: the minute aggregate's refresh job; its last successful run materialized up to one
# bucket (its end_offset, a minute) short of when it ran.
_TIMESCALE_LAST_REFRESH = """
SELECT max(s.last_successful_finish) FROM timescaledb_information.continuous_aggregates c
JOIN timescaledb_information.jobs j ON j.hypertable_schema = c.materialization_hypertable_schema
     AND j.hypertable_name = c.materialization_hypertable_name
JOIN timescaledb_information.job_stats s ON s.job_id = j.job_id
WHERE c.view_name = 'metrics_1m'
"""


def lag_seconds(conn: psycopg.Connection) -> float | None:
    """How far the minute rollup is behind now, in seconds: now - W on plain PostgreSQL; on
    TimescaleDB, since the minute aggregate's refresh last succeeded, plus its one-minute end offset.
    None before anything was materialized. Two small reads; cheap enough for every scrape."""
    if storage_variant(conn) == "postgres":
        row = conn.execute("SELECT extract(epoch FROM now() - materialized_until) FROM rollup_watermark "
                           "WHERE isfinite(materialized_until)").fetchone()
    else:
        row = conn.execute(f"SELECT extract(epoch FROM now() - ({_TIMESCALE_LAST_REFRESH})) + 60").fetchone()
    return float(row[0]) if row and row[0] is not None else None
