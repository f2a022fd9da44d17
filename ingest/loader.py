"""The bulk loader: metric rows into the raw table, idempotently, with rollups and device status.

One transaction per batch, all or nothing:

1. Fast path: binary COPY straight into ``metrics`` inside a savepoint. A batch that repeats rows
   already stored (a retried message, an overlapping batch) hits the primary key and the savepoint
   undoes the COPY; the slow path then copies the batch into a temp table and inserts only the new
   rows with ``INSERT ... ON CONFLICT DO NOTHING``, so nothing is stored twice.
2. Rollups (plain-PostgreSQL variant): rows at or after the rollup watermark are aggregated live by
   the ``metrics_1m/1h/1d`` views until the rollup job materializes them; rows that arrive behind
   it (late probes, backfills) are folded here as mergeable aggregates, pre-aggregated in numpy:
   into the ``*_mat`` tables when no job is materializing, otherwise into ``rollup_deltas``, which
   the views count and the job folds. Which rows go where is fixed at the start of the
   transaction (:func:`netpulse.rollups.load_bounds`); no load waits for a materialization.
   TimescaleDB keeps its continuous aggregates with refresh policies and real-time aggregation;
   rows that arrive after a policy may have materialized their bucket (older than ``LATE``) would
   stay out of the aggregates until a refresh covers them, so after such a batch commits the
   loader refreshes from their day on (:func:`netpulse.storage.refresh_rollups`; autocommit
   connections only, best effort: a failed refresh is logged and left to the policies).
3. Device status (with hysteresis, see ingest.status), status-change events and last_seen move
   forward from the batch's availability samples.
4. Probe outcomes (netpulse.probe_status): each probe's latest result and last error. A probe that
   starts failing, fails differently or recovers is logged once, after the commit (a warning for a
   failure, so a wrong SNMP password shows in the worker's log at the default level).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import psycopg
import structlog
from psycopg import errors as pg_errors

from ingest import copy_binary
from ingest.rollup import LEVELS, MINUTE_US, aggregate
from ingest.rows import MetricRows, to_micros
from ingest.status import DeviceState, Hysteresis, status_devices
from ingest.status import apply as apply_status
from netpulse import probe_status
from netpulse.metrics import MetricKind
from netpulse.migrations import Variant, storage_variant
from netpulse.probe_status import Change, ProbeOutcome
from netpulse.rollups import LoadBounds, load_bounds, merge_cte
from netpulse.storage import ensure_partitions, refresh_rollups

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
    them older than ``%(fold)s`` into the ``*_mat`` tables, and the others older than ``%(defer)s``
    into ``rollup_deltas``."""
    ctes = [f"""
ins AS (
    INSERT INTO metrics {_COLS} SELECT time, device_id, metric_id, ifindex, value FROM netpulse_stage
    ON CONFLICT DO NOTHING RETURNING time, device_id, metric_id, ifindex, value
)"""]
    if variant == "postgres":
        ctes += [merge_cte(f"m{n}", table, (
            f"SELECT {_SQL_BUCKETS[table]} AS bucket, device_id, metric_id, ifindex, count(*) AS count, "
            "sum(value) AS sum, min(value) AS min, max(value) AS max FROM ins "
            "WHERE time < coalesce(%(fold)s::timestamptz, '-infinity') GROUP BY 1, 2, 3, 4"))
            for n, (table, _) in enumerate(LEVELS)]
        ctes += ["""
deferred AS (
    INSERT INTO rollup_deltas (bucket, device_id, metric_id, ifindex, count, sum, min, max)
    SELECT date_trunc('minute', time), device_id, metric_id, ifindex, count(*), sum(value), min(value), max(value)
    FROM ins WHERE time >= coalesce(%(fold)s::timestamptz, '-infinity')
               AND time < coalesce(%(defer)s::timestamptz, '-infinity')
    GROUP BY 1, 2, 3, 4
)"""]
    return "WITH " + ",".join(ctes) + "\nSELECT count(*) FROM ins"


_NO_BOUNDS = LoadBounds(None, None)  # TimescaleDB: its policies and refreshes keep the aggregates

# Times travel as epoch microseconds (bigint) both ways: no datetime object per device and value.
_US = "(extract(epoch FROM {0}) * 1000000)::bigint"
_LOCK_DEVICES = f"""
SELECT id, oper_status, fail_streak, ok_streak, {_US.format('streak_since')}, {_US.format('last_checked')},
       loss_streak, clean_streak, quality
FROM devices WHERE id = ANY(%s::integer[]) ORDER BY id FOR NO KEY UPDATE
"""
_TS = "'epoch'::timestamptz + {0} * interval '1 microsecond'"

_UPDATE_STATUS = f"""
UPDATE devices d SET
    oper_status = v.status,
    oper_status_since = coalesce({_TS.format('v.since')}, d.oper_status_since),
    fail_streak = v.fail_streak, ok_streak = v.ok_streak, streak_since = {_TS.format('v.streak_since')},
    last_checked = {_TS.format('v.checked')},
    last_seen = GREATEST(d.last_seen, {_TS.format('v.seen')}),
    loss_streak = v.loss_streak, clean_streak = v.clean_streak, quality = v.quality,
    last_rtt_ms = coalesce(v.rtt, d.last_rtt_ms),
    last_loss_pct = coalesce(v.loss, d.last_loss_pct)
FROM unnest(%s::integer[], %s::text[], %s::bigint[], %s::integer[], %s::integer[], %s::bigint[],
            %s::bigint[], %s::bigint[], %s::integer[], %s::integer[], %s::text[], %s::real[], %s::real[])
     AS v(device_id, status, since, fail_streak, ok_streak, streak_since, checked, seen, loss_streak, clean_streak,
          quality, rtt, loss)
WHERE d.id = v.device_id
"""

_INSERT_EVENTS = f"""
INSERT INTO device_status_events (organization_id, device_id, time, confirmed_at, from_status, to_status)
SELECT d.organization_id, e.device_id, {_TS.format('e.time')}, {_TS.format('e.confirmed_at')}, e.from_status,
       e.to_status
FROM unnest(%s::integer[], %s::bigint[], %s::bigint[], %s::text[], %s::text[])
     AS e(device_id, time, confirmed_at, from_status, to_status)
JOIN devices d ON d.id = e.device_id
ON CONFLICT (device_id, confirmed_at) DO NOTHING
"""


def _words(values: list[str]) -> str:
    """A text array literal of plain words (the status names)."""
    return "{" + ",".join(values) + "}"


def _array(values: list[int | None] | list[int] | list[float | None]) -> str:
    """A numeric array literal: psycopg dumps list elements one by one in Python, a string is one value."""
    return "{" + ",".join("NULL" if v is None else repr(v) for v in values) + "}"


def _at(rows: MetricRows, metric: MetricKind, device_ids: list[int], times_us: list[int]) -> list[float | None]:
    """The device-level value of ``metric`` at each (device, time) pair of the batch; None where absent."""
    sel = (rows.metric_id == int(metric)) & (rows.ifindex == 0)
    if not sel.any() or not device_ids:
        return [None] * len(device_ids)
    dev, t, v = rows.device_id[sel].astype(np.int64), rows.time_us[sel], rows.value[sel]
    order = np.lexsort((t, dev))
    keys = np.rec.fromarrays([dev[order], t[order]])
    want = np.rec.fromarrays([np.asarray(device_ids, np.int64), np.asarray(times_us, np.int64)])
    pos = np.minimum(np.searchsorted(keys, want), len(keys) - 1)
    hit = keys[pos] == want
    return [round(float(x), 3) if h else None for x, h in zip(v[order][pos].tolist(), hit.tolist(), strict=True)]


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
    # TimescaleDB: a refresh policy materializes a minute bucket one minute after it ended at the
    # earliest; rows older than this (with room for clock skew) may land in a materialized bucket.
    LATE = timedelta(seconds=30)

    def __init__(self, variant: Variant | None = None, hysteresis: Hysteresis | None = None):
        self._variant = variant
        self.hysteresis = hysteresis or Hysteresis()
        self._known_days: set[date] = set()

    def variant(self, conn: psycopg.Connection) -> Variant:
        if self._variant is None:
            self._variant = storage_variant(conn)
        return self._variant

    def load(self, conn: psycopg.Connection, rows: MetricRows,
             outcomes: Sequence[ProbeOutcome] = (), *, status: bool = True) -> LoadResult:
        """Store one batch and its probe outcomes. Safe to call again with the same batch: nothing
        is added twice, and the outcomes' states do not move.

        ``status=False`` stores the rows (and rollups) without moving device status on: for batches
        loaded out of time order (a parallel backfill), whose status goes through :meth:`update_status`
        afterwards, in time order.
        """
        received = len(rows)
        finite = np.isfinite(rows.value)
        if not finite.all():
            rows = MetricRows(rows.time_us[finite], rows.device_id[finite], rows.metric_id[finite],
                              rows.ifindex[finite], rows.value[finite])
        rejected = received - len(rows)
        if len(rows) == 0 and not outcomes:
            return LoadResult(received, 0, rejected, 0)
        variant = self.variant(conn)
        payload = copy_binary.encode(rows) if len(rows) else b""
        probed = status_devices(rows) if len(rows) and status else []
        for attempt in range(1, self.MAX_ATTEMPTS + 1):
            if variant == "postgres" and len(rows):
                self._ensure_partitions(conn, rows)
            try:
                inserted = updated = 0
                with conn.transaction():
                    if len(rows):
                        bounds = load_bounds(conn) if variant == "postgres" else _NO_BOUNDS
                        found = self._copy_direct(conn, rows, payload, bounds)
                        inserted = found if found is not None else self._insert_new_only(conn, payload, variant,
                                                                                          bounds)
                        updated = self._update_status(conn, rows, probed)
                    changes = probe_status.record(conn, outcomes) if outcomes else []
                _log_changes(changes)
                if variant == "timescale" and inserted:
                    self._refresh_after_late_rows(conn, rows)
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

    def update_status(self, conn: psycopg.Connection, rows: MetricRows) -> int:
        """Move device status on from ``rows``' availability samples (loss and RTT ride along), in one
        transaction; the rows themselves are not stored. Returns the devices updated."""
        with conn.transaction():
            return self._update_status(conn, rows, status_devices(rows))

    def _refresh_after_late_rows(self, conn: psycopg.Connection, rows: MetricRows) -> None:
        oldest = datetime.fromtimestamp(int(rows.time_us.min()) / 1e6, UTC)
        in_transaction = conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE
        if not conn.autocommit or in_transaction or oldest >= datetime.now(UTC) - self.LATE:
            return
        try:
            refresh_rollups(conn, oldest, datetime.now(UTC) + timedelta(days=1), variant="timescale")
        except psycopg.Error as exc:
            log.warning("netpulse.ingest.rollup_refresh_failed", oldest=oldest.isoformat(),
                        error=str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)

    def _copy_direct(self, conn: psycopg.Connection, rows: MetricRows, payload: bytes,
                     bounds: LoadBounds) -> int | None:
        try:
            with conn.transaction(), conn.cursor() as cur:
                with cur.copy(_COPY_RAW) as copy:
                    copy.write(payload)
        except pg_errors.UniqueViolation:
            return None
        fold = rows.time_us < to_micros(bounds.fold_below) if bounds.fold_below is not None else None
        if fold is not None and fold.any():
            self._fold_deltas(conn, rows if fold.all() else _select(rows, fold))
        if bounds.defer_below is not None:
            defer = rows.time_us < to_micros(bounds.defer_below)
            if fold is not None:
                defer &= ~fold
            if defer.any():
                self._defer(conn, rows if defer.all() else _select(rows, defer))
        return len(rows)

    @staticmethod
    def _defer(conn: psycopg.Connection, rows: MetricRows) -> None:
        """Append the rows' per-minute aggregates to ``rollup_deltas`` (the rollup job folds them)."""
        with conn.cursor() as cur, cur.copy("COPY rollup_deltas (bucket, device_id, metric_id, ifindex, count, sum, "
                                            "min, max) FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(copy_binary.encode_rollups([(0, aggregate(rows, MINUTE_US))], with_level=False))

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
                         bounds: LoadBounds) -> int:
        conn.execute(_STAGE_DDL)
        conn.execute("DELETE FROM netpulse_stage")  # empty after a commit; guards a caller's transaction
        with conn.cursor() as cur:
            with cur.copy(_COPY_STAGE) as copy:
                copy.write(payload)
            statement = _insert_from_stage(variant)
            row = (cur.execute(statement.encode(), {"fold": bounds.fold_below, "defer": bounds.defer_below})
                   if variant == "postgres"
                   else cur.execute(statement.encode())).fetchone()
        assert row is not None
        return int(row[0])

    def _update_status(self, conn: psycopg.Connection, rows: MetricRows, probed: list[int]) -> int:
        """Move the probed devices' status on, with hysteresis, and record the changes. The device
        rows are locked in id order, so concurrent batches for one device take turns."""
        if not probed:
            return 0
        states = {r[0]: DeviceState(*r) for r in conn.execute(_LOCK_DEVICES, (_array(probed),)).fetchall()}
        result = apply_status(rows, states, self.hysteresis)
        if not result.updates:
            return 0
        u = result.updates
        devices, checked = [x.device_id for x in u], [x.last_checked_us for x in u]
        conn.execute(_UPDATE_STATUS, (
            _array(devices), _words([x.status for x in u]), _array([x.status_since_us for x in u]),
            _array([x.fail_streak for x in u]), _array([x.ok_streak for x in u]),
            _array([x.streak_since_us for x in u]), _array(checked),
            _array([x.last_seen_us for x in u]), _array([x.loss_streak for x in u]),
            _array([x.clean_streak for x in u]), _words([x.quality for x in u]),
            _array(_at(rows, MetricKind.ICMP_RTT_MS, devices, checked)),
            _array(_at(rows, MetricKind.ICMP_LOSS_PCT, devices, checked))))
        if result.events:
            e = result.events
            conn.execute(_INSERT_EVENTS, (
                _array([x.device_id for x in e]), _array([x.time_us for x in e]), _array([x.confirmed_us for x in e]),
                _words([x.from_status for x in e]), _words([x.to_status for x in e])))
        return len(u)

    def _ensure_partitions(self, conn: psycopg.Connection, rows: MetricRows) -> None:
        days = {date(1970, 1, 1) + timedelta(days=int(d)) for d in np.unique(rows.time_us // 86_400_000_000)}
        missing = days - self._known_days
        if not missing:
            return
        first, last = min(missing), max(missing)
        ensure_partitions(conn, datetime(first.year, first.month, first.day, tzinfo=UTC),
                          datetime(last.year, last.month, last.day, tzinfo=UTC))
        self._known_days |= days


def _select(rows: MetricRows, mask: np.ndarray) -> MetricRows:
    return MetricRows(rows.time_us[mask], rows.device_id[mask], rows.metric_id[mask], rows.ifindex[mask],
                      rows.value[mask])


def _log_changes(changes: Sequence[Change]) -> None:
    """Once per change of a probe's state: failing at warning (with the agent's words), recovered at info."""
    for c in changes:
        where = {"device_id": c.device_id, "device": c.device, "probe": c.kind}
        if c.check_id:
            where["check_id"] = c.check_id
        if c.recovered:
            log.info("netpulse.ingest.probe_recovered", **where, last_error=c.previous_error)
        else:
            log.warning("netpulse.ingest.probe_failing", **where, error=c.error, detail=c.detail,
                        previous_error=c.previous_error)
