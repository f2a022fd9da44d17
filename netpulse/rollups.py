"""Materialized rollups of the plain-PostgreSQL variant (TimescaleDB's continuous aggregates, by hand).

``metrics_1m/1h/1d`` are views over three parts (``sql/postgres/0004`` and ``0052``): the ``*_mat``
tables (mergeable aggregates: count, sum, min, max), the per-minute ``rollup_deltas`` behind the
watermark W, and the raw rows at or after W, aggregated when read. Every raw row is counted by
exactly one part in every snapshot. :func:`advance` moves W forward over closed minutes; loaders
never wait for it (see :func:`load_bounds` for their side of the protocol):

1. The job raises the fence F (>= W) to the end ``hi`` of the range it will materialize, in a short
   transaction of its own. Loaders share-lock the fence row for their whole transaction, so once
   this commits every loader that saw the old F has committed, and every later one sees the new F
   and sends its rows older than F to ``rollup_deltas`` rather than leave them to the job.
2. Holding the job lock J (an advisory lock; loaders only *try* it, shared), the job takes a
   REPEATABLE READ snapshot S and, in one transaction: aggregates the raw rows of [W, hi) seen in S
   into the ``*_mat`` tables; deletes the deltas of [W, hi) seen in S (their rows committed before
   S, so the aggregate has them) and folds those behind W into ``*_mat``; sets W = hi. Deltas
   committed after S stay, and the views count them: nothing lost, nothing twice. No loader holds
   a lock this transaction needs, and it holds none that loaders need.
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
_JOB_LOCK = 0x6E70_726A  # "nprj": the rollup job while it materializes; loaders try it shared


def watermark(conn: psycopg.Connection) -> datetime | None:
    """W, or None before anything was materialized."""
    row = conn.execute(_WATERMARK).fetchone()
    return row[0] if row else None


def _finite(column: str) -> str:
    """SQL: the timestamp column, or NULL for +-infinity (which psycopg cannot load)."""
    return f"CASE WHEN isfinite({column}) THEN {column} END"


@dataclass(frozen=True, slots=True)
class LoadBounds:
    """Where a loader's rows go (plain variant), fixed for the rest of its transaction: rows older
    than ``fold_below`` into the ``*_mat`` tables, the other rows older than ``defer_below`` into
    ``rollup_deltas``, the rest nowhere (the views aggregate them live). None: no row is."""

    fold_below: datetime | None
    defer_below: datetime | None


def load_bounds(conn: psycopg.Connection) -> LoadBounds:
    """A loader's first step, inside its transaction. Never waits on a materialization:

    - J tried shared: held, no job is materializing or can start before this commits, so W stays
      put and rows behind it fold straight into ``*_mat`` (the fast path of late rows and of the
      demo's backfill); not held, a job is at work on the ``*_mat`` rows, so late rows go to
      ``rollup_deltas`` instead (append-only: nothing to wait for).
    - F read after the try, share-locked: a job that holds J raised F before it took J, so this
      sees its range; and F cannot move until this commits, so rows at or after F are the job's to
      find in its snapshot. (The share lock waits only for step 1 of a job: one UPDATE.)
    """
    free = conn.execute("SELECT pg_try_advisory_xact_lock_shared(%s)", (_JOB_LOCK,)).fetchone()
    row = conn.execute(f"SELECT {_finite('f.fenced_until')}, {_finite('w.materialized_until')} "  # type: ignore[arg-type]
                       "FROM rollup_fence f, rollup_watermark w FOR SHARE OF f").fetchone()
    assert free is not None and row is not None
    fence, w = row
    return LoadBounds(w if free[0] else None, fence)


def floor_minute(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(second=0, microsecond=0)


@dataclass(frozen=True, slots=True)
class AdvanceReport:
    start: datetime | None
    end: datetime | None
    minute_rows: int


# One statement in the job's snapshot: the closed minutes [lo, hi) from the raw rows, plus the deltas
# behind lo (taken out of rollup_deltas); the deltas of [lo, hi) are dropped: the raw rows have them.
_ADVANCE = """
WITH dropped AS (
    DELETE FROM rollup_deltas WHERE bucket >= %(lo)s AND bucket < %(hi)s
), folded AS (
    DELETE FROM rollup_deltas WHERE bucket < %(lo)s RETURNING bucket, device_id, metric_id, ifindex, count, sum,
                                                              min, max
), minutes AS MATERIALIZED (
    SELECT date_trunc('minute', time) AS bucket, device_id, metric_id, ifindex, count(*) AS count,
           sum(value) AS sum, min(value) AS min, max(value) AS max
    FROM metrics WHERE time >= %(lo)s AND time < %(hi)s
    GROUP BY 1, 2, 3, 4
    UNION ALL
    SELECT bucket, device_id, metric_id, ifindex, count, sum, min, max FROM folded
), {folds}
SELECT count(*) FROM minutes
"""


def advance(conn: psycopg.Connection, now: datetime, *, grace: timedelta = timedelta(seconds=30),
            max_span: timedelta = timedelta(hours=6)) -> AdvanceReport:
    """Materialize closed minutes up to ``now - grace`` (at most ``max_span`` per call, so a
    catch-up after downtime proceeds in bounded steps), and fold the deltas behind W. A no-op on
    TimescaleDB, whose refresh policies do this. ``conn`` must be in autocommit mode: this runs its
    own transactions (the module docstring gives the protocol)."""
    if storage_variant(conn) != "postgres":
        return AdvanceReport(None, None, 0)
    if not conn.autocommit:
        raise ValueError("advance() commits the fence before it materializes: give it an autocommit connection")
    target = floor_minute(now - grace)
    start = watermark(conn)
    if start is None:
        row = conn.execute("SELECT min(time) FROM metrics").fetchone()
        start = floor_minute(row[0]) if row and row[0] else target
    upto = min(target, start + max_span)
    oldest = conn.execute("SELECT min(bucket) FROM rollup_deltas").fetchone()
    first = min(start, oldest[0]) if oldest and oldest[0] else start
    if first < upto:
        ensure_partitions(conn, first, upto)
    # Step 1: waits for the loaders in flight (short transactions), and they for this one UPDATE.
    conn.execute("UPDATE rollup_fence SET fenced_until = %s WHERE fenced_until < %s", (upto, upto))
    # Step 2: a session lock, taken before the snapshot (a transaction's first query would take the
    # snapshot before the lock is granted, and miss the loaders that held J until then).
    conn.execute("SELECT pg_advisory_lock(%s)", (_JOB_LOCK,))
    try:
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            row = conn.execute(f"SELECT {_finite('w.materialized_until')}, {_finite('f.fenced_until')} "  # type: ignore[arg-type]
                               "FROM rollup_watermark w, rollup_fence f").fetchone()
            assert row is not None and row[1] is not None  # step 1 made F finite
            w, fence = row
            if w is None:
                # The first materialization starts at the oldest row in the snapshot; rows committed
                # after it are older than F, so they are deltas.
                oldest_row = conn.execute("SELECT min(time) FROM metrics").fetchone()
                lo = min(floor_minute(oldest_row[0]) if oldest_row and oldest_row[0] else target, fence)
            else:
                lo = w
            hi = min(target, lo + max_span, fence)
            statement = _ADVANCE.format(folds=fold_minutes_statement("minutes")).encode()
            if hi <= lo:  # nothing closed to materialize: fold the deltas behind W, if any
                if w is None:
                    lo = hi
                    conn.execute("UPDATE rollup_watermark SET materialized_until = %s, advanced_at = now()", (hi,))
                conn.execute(statement, {"lo": lo, "hi": lo})  # type: ignore[arg-type]
                return AdvanceReport(lo, lo, 0)
            row = conn.execute(statement, {"lo": lo, "hi": hi}).fetchone()  # type: ignore[arg-type]
            conn.execute("UPDATE rollup_watermark SET materialized_until = %s, advanced_at = now()", (hi,))
    finally:
        if not conn.closed:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_JOB_LOCK,))
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
