"""The bulk loader: metric rows into the raw table, idempotently, with rollups and device status.

One transaction per batch: binary COPY into a session temp table, then one statement that inserts
the new rows into ``metrics`` (``ON CONFLICT DO NOTHING``, so a retried or overlapping batch adds
nothing twice), folds exactly the rows it inserted into the rollup tables (plain variant; TimescaleDB
maintains its continuous aggregates itself) and moves each device's status and last_seen forward.
Either all of it commits or none of it does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import psycopg
import structlog
from psycopg import errors as pg_errors

from ingest import copy_binary
from ingest.rows import MetricRows
from netpulse.metrics import MetricKind
from netpulse.migrations import Variant, storage_variant
from netpulse.storage import ensure_partitions

log = structlog.get_logger("netpulse.ingest.loader")

_STAGE_DDL = (
    "CREATE TEMP TABLE IF NOT EXISTS netpulse_stage ("
    " time timestamptz NOT NULL, device_id integer NOT NULL, metric_id smallint NOT NULL,"
    " ifindex integer NOT NULL, value double precision NOT NULL) ON COMMIT DELETE ROWS"
)
_COPY = "COPY netpulse_stage (time, device_id, metric_id, ifindex, value) FROM STDIN (FORMAT BINARY)"

_INSERT_RAW = """
ins AS (
    INSERT INTO metrics (time, device_id, metric_id, ifindex, value)
    SELECT time, device_id, metric_id, ifindex, value FROM netpulse_stage
    ON CONFLICT DO NOTHING
    RETURNING time, device_id, metric_id, ifindex, value
)"""

# Mergeable aggregates: a bucket that already holds rows from an earlier batch absorbs the new ones.
_ROLLUP = """
{name} AS (
    INSERT INTO {table} AS r (bucket, device_id, metric_id, ifindex, count, sum, min, max)
    SELECT {bucket} AS b, device_id, metric_id, ifindex, count(*), sum(value), min(value), max(value)
    FROM ins GROUP BY b, device_id, metric_id, ifindex
    ORDER BY device_id, metric_id, ifindex, b
    ON CONFLICT (device_id, metric_id, ifindex, bucket) DO UPDATE SET
        count = r.count + EXCLUDED.count, sum = r.sum + EXCLUDED.sum,
        min = LEAST(r.min, EXCLUDED.min), max = GREATEST(r.max, EXCLUDED.max)
    RETURNING 1
)"""
_ROLLUPS = (
    ("r1m", "metrics_1m", "date_trunc('minute', time)"),
    ("r1h", "metrics_1h", "date_trunc('hour', time)"),
    ("r1d", "metrics_1d", "date_trunc('day', time, 'UTC')"),
)

# Status from the latest availability sample per device (degraded when that probe lost packets);
# last_seen is the latest answered probe. A late batch never moves a device back in time.
_STATUS = f"""
probe AS (
    SELECT device_id, max(time) AS time, max(time) FILTER (WHERE value > 0) AS seen
    FROM netpulse_stage WHERE metric_id = {int(MetricKind.AVAILABLE)} AND ifindex = 0
    GROUP BY device_id
), verdict AS (
    SELECT DISTINCT ON (p.device_id) p.device_id, p.time, p.seen,
           CASE WHEN a.value <= 0 THEN 'down' WHEN coalesce(l.value, 0) > 0 THEN 'degraded' ELSE 'up' END AS st
    FROM probe p
    JOIN netpulse_stage a ON a.device_id = p.device_id AND a.time = p.time
         AND a.metric_id = {int(MetricKind.AVAILABLE)} AND a.ifindex = 0
    LEFT JOIN netpulse_stage l ON l.device_id = p.device_id AND l.time = p.time
         AND l.metric_id = {int(MetricKind.ICMP_LOSS_PCT)} AND l.ifindex = 0
    ORDER BY p.device_id
), upd AS (
    UPDATE devices d SET
        oper_status = v.st,
        oper_status_since = CASE WHEN d.oper_status = v.st THEN d.oper_status_since ELSE v.time END,
        last_checked = v.time,
        last_seen = GREATEST(d.last_seen, v.seen)
    FROM verdict v
    WHERE d.id = v.device_id AND (d.last_checked IS NULL OR d.last_checked <= v.time)
    RETURNING 1
)"""


def build_load_statement(variant: Variant) -> str:
    ctes = [_INSERT_RAW]
    if variant == "postgres":
        ctes += [_ROLLUP.format(name=n, table=t, bucket=b) for n, t, b in _ROLLUPS]
    ctes.append(_STATUS)
    return "WITH " + ",".join(ctes) + "\nSELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM upd)"


@dataclass(frozen=True, slots=True)
class LoadResult:
    received: int
    inserted: int
    rejected: int           # rows with a non-finite value, dropped before loading
    devices_updated: int

    @property
    def duplicates(self) -> int:
        return self.received - self.rejected - self.inserted


class Loader:
    """Loads batches over connections it is handed; keeps the variant and known partitions cached.

    One Loader per process is enough; it holds no connection itself.
    """

    MAX_ATTEMPTS = 3  # deadlocks between concurrent loaders are retried whole

    def __init__(self, variant: Variant | None = None):
        self._variant = variant
        self._statement: str | None = None
        self._known_days: set[date] = set()

    def variant(self, conn: psycopg.Connection) -> Variant:
        if self._variant is None:
            self._variant = storage_variant(conn)
        return self._variant

    def load(self, conn: psycopg.Connection, rows: MetricRows) -> LoadResult:
        """Store one batch. Safe to call again with the same rows (nothing is added twice)."""
        received = len(rows)
        finite = np.isfinite(rows.value)
        if not finite.all():
            rows = MetricRows(rows.time_us[finite], rows.device_id[finite], rows.metric_id[finite],
                              rows.ifindex[finite], rows.value[finite])
        rejected = received - len(rows)
        if len(rows) == 0:
            return LoadResult(received, 0, rejected, 0)
        variant = self.variant(conn)
        if self._statement is None:
            self._statement = build_load_statement(variant)
        payload = copy_binary.encode(rows)
        for attempt in range(1, self.MAX_ATTEMPTS + 1):
            if variant == "postgres":
                self._ensure_partitions(conn, rows)
            try:
                with conn.transaction():
                    conn.execute(_STAGE_DDL)
                    # Empty already after a commit; this guards loads nested in a caller's transaction.
                    conn.execute("DELETE FROM netpulse_stage")
                    with conn.cursor() as cur:
                        with cur.copy(_COPY) as copy:
                            copy.write(payload)
                        row = cur.execute(self._statement.encode()).fetchone()
                assert row is not None
                return LoadResult(received, int(row[0]), rejected, int(row[1]))
            except pg_errors.DeadlockDetected:
                if attempt == self.MAX_ATTEMPTS:
                    raise
                log.warning("netpulse.ingest.load_deadlock_retry", attempt=attempt, rows=len(rows))
            except pg_errors.CheckViolation as exc:
                # "no partition of relation ... found for row": maintenance dropped or never made one.
                if "no partition" not in str(exc) or attempt == self.MAX_ATTEMPTS:
                    raise
                self._known_days.clear()
        raise AssertionError("unreachable")

    def _ensure_partitions(self, conn: psycopg.Connection, rows: MetricRows) -> None:
        days = {date(1970, 1, 1) + timedelta(days=int(d))
                for d in np.unique(rows.time_us // 86_400_000_000)}
        missing = days - self._known_days
        if not missing:
            return
        first, last = min(missing), max(missing)
        ensure_partitions(conn, datetime(first.year, first.month, first.day, tzinfo=UTC),
                          datetime(last.year, last.month, last.day, tzinfo=UTC))
        self._known_days |= days
