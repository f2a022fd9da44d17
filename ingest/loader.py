"""The bulk loader: metric rows into the raw table, idempotently, with rollups and device status.

One transaction per batch, all or nothing:

1. Fast path: binary COPY straight into ``metrics`` inside a savepoint. A batch that repeats rows
   already stored (a retried message, an overlapping batch) hits the primary key and the savepoint
   undoes the COPY; the slow path then copies the batch into a temp table and inserts only the new
   rows with ``INSERT ... ON CONFLICT DO NOTHING``, so nothing is stored twice.
2. Rollups (plain-PostgreSQL variant): rows at or after the rollup watermark are aggregated live by
   the ``metrics_1m/1h/1d`` views until the rollup job materializes them; rows that arrive behind
   the watermark (late probes, backfills) are folded here into the ``*_mat`` tables as mergeable
   aggregates, pre-aggregated in numpy. The watermark row is share-locked for the transaction, so
   the job cannot move it between the two (netpulse.rollups). TimescaleDB maintains its
   continuous aggregates itself.
3. Device status and last_seen move forward from the batch's availability samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import psycopg
import structlog
from psycopg import errors as pg_errors

from ingest import copy_binary
from ingest.rollup import LEVELS, aggregate
from ingest.rows import MetricRows, to_micros
from netpulse.metrics import MetricKind
from netpulse.migrations import Variant, storage_variant
from netpulse.rollups import merge_cte, watermark
from netpulse.storage import ensure_partitions

log = structlog.get_logger("netpulse.ingest.loader")

_COLS = "(time, device_id, metric_id, ifindex, value)"
_COPY_RAW = f"COPY metrics {_COLS} FROM STDIN (FORMAT BINARY)"
_STAGE_DDL = (
    "CREATE TEMP TABLE IF NOT EXISTS netpulse_stage ("
    " time timestamptz NOT NULL, device_id integer NOT NULL, metric_id smallint NOT NULL,"
    " ifindex integer NOT NULL, value double precision NOT NULL) ON COMMIT DELETE ROWS"
)
_COPY_STAGE = f"COPY netpulse_stage {_COLS} FROM STDIN (FORMAT BINARY)"
_ROLLUP_STAGE_DDL = (
    "CREATE TEMP TABLE IF NOT EXISTS netpulse_stage_rollup ("
    " level smallint NOT NULL, bucket timestamptz NOT NULL, device_id integer NOT NULL,"
    " metric_id smallint NOT NULL, ifindex integer NOT NULL, count bigint NOT NULL,"
    " sum double precision NOT NULL, min double precision NOT NULL, max double precision NOT NULL)"
    " ON COMMIT DELETE ROWS"
)
_COPY_ROLLUP_STAGE = (f"COPY netpulse_stage_rollup ({', '.join(copy_binary.ROLLUP_COLUMNS)}) "
                      "FROM STDIN (FORMAT BINARY)")

_SQL_BUCKETS = {"metrics_1m_mat": "date_trunc('minute', time)", "metrics_1h_mat": "date_trunc('hour', time)",
                "metrics_1d_mat": "date_trunc('day', time, 'UTC')"}


def _merge_from_stage_rollup(levels: tuple[int, ...]) -> str:
    ctes = [merge_cte(f"m{n}", LEVELS[n][0], (
        "SELECT bucket, device_id, metric_id, ifindex, count, sum, min, max "
        f"FROM netpulse_stage_rollup WHERE level = {n}")) for n in levels]
    return "WITH " + ",".join(ctes) + "\nSELECT 1"


def _insert_from_stage(variant: Variant) -> str:
    """Slow path: insert the staged rows that are new, and (plain variant) fold exactly those of
    them that lie behind the watermark ``%(w)s``."""
    ctes = [f"""
ins AS (
    INSERT INTO metrics {_COLS} SELECT time, device_id, metric_id, ifindex, value FROM netpulse_stage
    ON CONFLICT DO NOTHING RETURNING time, device_id, metric_id, ifindex, value
)"""]
    if variant == "postgres":
        ctes += [merge_cte(f"m{n}", table, (
            f"SELECT {_SQL_BUCKETS[table]} AS bucket, device_id, metric_id, ifindex, count(*) AS count, "
            "sum(value) AS sum, min(value) AS min, max(value) AS max FROM ins "
            "WHERE time < coalesce(%(w)s::timestamptz, '-infinity') GROUP BY 1, 2, 3, 4"))
            for n, (table, _) in enumerate(LEVELS)]
    return "WITH " + ",".join(ctes) + "\nSELECT count(*) FROM ins"


_UPDATE_STATUS = """
UPDATE devices d SET
    oper_status = v.st,
    oper_status_since = CASE WHEN d.oper_status = v.st THEN d.oper_status_since ELSE v.since END,
    last_checked = v.time,
    last_seen = GREATEST(d.last_seen, v.seen)
FROM (
    SELECT device_id, 'epoch'::timestamptz + time_us * interval '1 microsecond' AS time,
           'epoch'::timestamptz + seen_us * interval '1 microsecond' AS seen,
           'epoch'::timestamptz + since_us * interval '1 microsecond' AS since, st
    FROM unnest(%s::integer[], %s::bigint[], %s::bigint[], %s::bigint[], %s::text[])
         AS u(device_id, time_us, seen_us, since_us, st)
) v
WHERE d.id = v.device_id AND (d.last_checked IS NULL OR d.last_checked <= v.time)
"""

_NEVER = np.iinfo(np.int64).min


@dataclass(frozen=True, slots=True)
class DeviceVerdicts:
    """Per device, in epoch microseconds: the latest probe, the latest answered probe (None: none
    in the batch), the start of the run of probes ending in the current status; and that status."""

    device_id: list[int]
    time_us: list[int]
    seen_us: list[int | None]
    since_us: list[int]
    status: list[str]


_STATUS_NAMES = np.array(["up", "degraded", "down"])


def device_verdicts(rows: MetricRows) -> DeviceVerdicts:
    """Status from each availability sample: down when the device did not answer, degraded when it
    answered but lost packets, up otherwise; the device takes its latest. Vectorised."""
    sel = (rows.metric_id == int(MetricKind.AVAILABLE)) & (rows.ifindex == 0)
    dev, t, v = rows.device_id[sel], rows.time_us[sel], rows.value[sel]
    if len(dev) == 0:
        return DeviceVerdicts([], [], [], [], [])
    order = np.lexsort((t, dev))
    dev, t, v = dev[order], t[order], v[order]
    # Loss of each sample, found by binary search over the batch's (device, time) loss keys.
    lsel = (rows.metric_id == int(MetricKind.ICMP_LOSS_PCT)) & (rows.ifindex == 0)
    ld, lt, lv = rows.device_id[lsel], rows.time_us[lsel], rows.value[lsel]
    lorder = np.lexsort((lt, ld))
    keys = np.rec.fromarrays([ld[lorder].astype(np.int64), lt[lorder]])
    want = np.rec.fromarrays([dev.astype(np.int64), t])
    loss = np.zeros(len(dev))
    if len(keys):
        pos = np.minimum(np.searchsorted(keys, want), len(keys) - 1)
        hit = keys[pos] == want
        loss[hit] = lv[lorder][pos[hit]]
    code = np.where(v <= 0, 2, np.where(loss > 0, 1, 0))
    new_device = np.append(True, dev[1:] != dev[:-1])
    run_start = np.where(new_device | np.append(True, code[1:] != code[:-1]), np.arange(len(dev)), 0)
    run_start = np.maximum.accumulate(run_start)
    last = np.flatnonzero(np.append(dev[1:] != dev[:-1], True))
    first = np.flatnonzero(new_device)
    seen = np.maximum.reduceat(np.where(v > 0, t, _NEVER), first)
    return DeviceVerdicts(dev[last].tolist(), t[last].tolist(),
                          [None if x == _NEVER else x for x in seen.tolist()],
                          t[run_start[last]].tolist(), _STATUS_NAMES[code[last]].tolist())


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
    """Loads batches over connections it is handed; caches the variant and the known partitions.

    One Loader per process is enough; it holds no connection. Give it autocommit connections (each
    load is then its own transaction) or call it inside your transaction (it uses a savepoint).
    """

    MAX_ATTEMPTS = 3  # deadlocks between concurrent loaders are retried whole

    def __init__(self, variant: Variant | None = None):
        self._variant = variant
        self._known_days: set[date] = set()

    def variant(self, conn: psycopg.Connection) -> Variant:
        if self._variant is None:
            self._variant = storage_variant(conn)
        return self._variant

    def load(self, conn: psycopg.Connection, rows: MetricRows) -> LoadResult:
        """Store one batch. Safe to call again with the same rows: nothing is added twice."""
        received = len(rows)
        finite = np.isfinite(rows.value)
        if not finite.all():
            rows = MetricRows(rows.time_us[finite], rows.device_id[finite], rows.metric_id[finite],
                              rows.ifindex[finite], rows.value[finite])
        rejected = received - len(rows)
        if len(rows) == 0:
            return LoadResult(received, 0, rejected, 0)
        variant = self.variant(conn)
        payload = copy_binary.encode(rows)
        verdicts = device_verdicts(rows)
        for attempt in range(1, self.MAX_ATTEMPTS + 1):
            if variant == "postgres":
                self._ensure_partitions(conn, rows)
            try:
                with conn.transaction():
                    # Shared lock: the rollup job cannot move the watermark under this batch.
                    w = watermark(conn, lock="FOR SHARE") if variant == "postgres" else None
                    inserted = self._copy_direct(conn, rows, payload, variant, w)
                    if inserted is None:
                        inserted = self._insert_new_only(conn, payload, variant, w)
                    updated = self._update_status(conn, verdicts)
                return LoadResult(received, inserted, rejected, updated)
            except pg_errors.DeadlockDetected:
                if attempt == self.MAX_ATTEMPTS:
                    raise
                log.warning("netpulse.ingest.load_deadlock_retry", attempt=attempt, rows=len(rows))
            except pg_errors.CheckViolation as exc:
                # "no partition of relation ... found for row": maintenance dropped one we knew.
                if "no partition" not in str(exc) or attempt == self.MAX_ATTEMPTS:
                    raise
                self._known_days.clear()
        raise AssertionError("unreachable")

    def _copy_direct(self, conn: psycopg.Connection, rows: MetricRows, payload: bytes,
                     variant: Variant, w: datetime | None) -> int | None:
        try:
            with conn.transaction(), conn.cursor() as cur:
                with cur.copy(_COPY_RAW) as copy:
                    copy.write(payload)
        except pg_errors.UniqueViolation:
            return None
        if variant == "postgres" and w is not None:
            late = rows.time_us < to_micros(w)
            if late.any():
                self._fold_deltas(conn, rows if late.all() else MetricRows(
                    rows.time_us[late], rows.device_id[late], rows.metric_id[late], rows.ifindex[late],
                    rows.value[late]))
        return len(rows)

    @staticmethod
    def _fold_deltas(conn: psycopg.Connection, rows: MetricRows) -> None:
        """Fold late rows (all inserted) into the materialized rollups. A level whose buckets are all
        new takes a plain COPY (a backfill, about twice as fast as an upsert); one that meets
        existing buckets is merged."""
        to_merge = []
        for n, (table, width) in enumerate(LEVELS):
            delta = aggregate(rows, width)
            try:
                with conn.transaction(), conn.cursor() as cur:
                    with cur.copy(f"COPY {table} (bucket, device_id, metric_id, ifindex, count, sum, min, max) "
                                  "FROM STDIN (FORMAT BINARY)") as copy:
                        copy.write(copy_binary.encode_rollups([(n, delta)], with_level=False))
            except pg_errors.UniqueViolation:
                to_merge.append((n, delta))
        if not to_merge:
            return
        conn.execute(_ROLLUP_STAGE_DDL)
        conn.execute("DELETE FROM netpulse_stage_rollup")
        with conn.cursor() as cur:
            with cur.copy(_COPY_ROLLUP_STAGE) as copy:
                copy.write(copy_binary.encode_rollups(to_merge))
            cur.execute(_merge_from_stage_rollup(tuple(n for n, _ in to_merge)).encode())

    def _insert_new_only(self, conn: psycopg.Connection, payload: bytes, variant: Variant,
                         w: datetime | None) -> int:
        conn.execute(_STAGE_DDL)
        conn.execute("DELETE FROM netpulse_stage")  # empty after a commit; guards a caller's transaction
        with conn.cursor() as cur:
            with cur.copy(_COPY_STAGE) as copy:
                copy.write(payload)
            statement = _insert_from_stage(variant)
            row = (cur.execute(statement.encode(), {"w": w}) if variant == "postgres"
                   else cur.execute(statement.encode())).fetchone()
        assert row is not None
        return int(row[0])

    @staticmethod
    def _update_status(conn: psycopg.Connection, v: DeviceVerdicts) -> int:
        if not v.device_id:
            return 0
        cur = conn.execute(_UPDATE_STATUS, (v.device_id, v.time_us, v.seen_us, v.since_us, v.status))
        return cur.rowcount

    def _ensure_partitions(self, conn: psycopg.Connection, rows: MetricRows) -> None:
        days = {date(1970, 1, 1) + timedelta(days=int(d)) for d in np.unique(rows.time_us // 86_400_000_000)}
        missing = days - self._known_days
        if not missing:
            return
        first, last = min(missing), max(missing)
        ensure_partitions(conn, datetime(first.year, first.month, first.day, tzinfo=UTC),
                          datetime(last.year, last.month, last.day, tzinfo=UTC))
        self._known_days |= days
