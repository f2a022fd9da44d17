"""Stored anomaly scores: an organization's recent minutes scored into ``anomaly_scores``, and read back.

:func:`score_recent` reads the 1-minute rollup averages of an organization's series over the scored
window plus the history the score needs (:func:`history_for`), scores every series at once with
:func:`~analytics.anomaly.score.score_frame` and upserts the window's scores, keyed by (device,
metric, interface, minute): a repeated or overlapping run rewrites the same rows, and a minute whose
average moved since (late samples) gets its new score. :func:`load_scores` and :func:`top_anomalies`
read them back, always through the organization's devices.

Each run scores from a fresh detector state over ``history_for(params)`` before the window (three
days by default): the warm-up, two seasonal periods and the slow scales have settled by then, and
the novelty window (five days) is cut at the start of the read, which costs a little precision but
keeps a run to one read of ~4,400 minutes per series. (The detector itself is streaming, with O(1)
state per series: :class:`~analytics.anomaly.detector.StreamScorer`; the batch store recomputes
because a 15-minute job over rollups needs no state kept between runs.)
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from time import perf_counter
from typing import Any, Final

import numpy as np
import polars as pl
import psycopg
from psycopg import sql

from analytics.anomaly.score import DEFAULT_PARAMS, SCORE_COLUMN, AnomalyParams, score_frame
from analytics.copy_decode import PG_EPOCH_OFFSET_US, SIGNATURE, TRAILER, PgType, fetch_columns, tuple_dtype
from analytics.frames import METRIC, load_metrics
from netpulse.errors import ValidationError
from netpulse.metrics import MetricKind

__all__ = ["ANOMALOUS", "DEFAULT_METRICS", "SCORES_SCHEMA", "TOP_SCHEMA", "ScoreReport", "history_for",
           "load_scores", "score_recent", "top_anomalies"]

Conn = psycopg.Connection[Any]

ANOMALOUS: Final = 0.5   # a score at or above this is an anomaly (score_frame's g = 1)
# Continuous performance metrics. Left out: state-like series (available, http_status, check_ok), whose
# every change is news to the score, and if_in/out_bps, which if_util_pct already follows per interface.
DEFAULT_METRICS: Final = (MetricKind.ICMP_RTT_MS, MetricKind.ICMP_JITTER_MS, MetricKind.ICMP_LOSS_PCT,
                          MetricKind.CPU_PCT, MetricKind.MEM_PCT, MetricKind.IF_UTIL_PCT, MetricKind.IF_ERRORS_PS,
                          MetricKind.HTTP_RESPONSE_MS)
SERIES: Final = ("device_id", "metric_id", "ifindex")   # the key of a stored series

SCORES_SCHEMA = pl.Schema({"time": pl.Datetime("us", "UTC"), "device_id": pl.Int32(), "metric": METRIC,
                           "metric_id": pl.Int16(), "ifindex": pl.Int32(), "score": pl.Float32()})
TOP_SCHEMA = pl.Schema({"device_id": pl.Int32(), "name": pl.String(), "metric": METRIC, "metric_id": pl.Int16(),
                        "ifindex": pl.Int32(), "max_score": pl.Float32(), "peak_time": pl.Datetime("us", "UTC"),
                        "anomalous": pl.Int64(), "points": pl.Int64()})
_METRIC_NAMES = {int(k): k.metric_name for k in MetricKind}

# (column, wire type) of the staged rows and of load_scores' read: score is real in the table.
_FIELDS: tuple[tuple[str, PgType], ...] = (("time", "timestamptz"), ("device_id", "int4"), ("metric_id", "int2"),
                                           ("ifindex", "int4"), ("score", "float4"))
_COPY_HEADER = SIGNATURE + bytes(8)   # flags 0, no header extension

_STAGE_DDL = (
    "CREATE TEMP TABLE IF NOT EXISTS netpulse_anomaly_stage ("
    " time timestamptz NOT NULL, device_id integer NOT NULL, metric_id smallint NOT NULL,"
    " ifindex integer NOT NULL, score real NOT NULL) ON COMMIT DELETE ROWS"
)
_COPY_STAGE = "COPY netpulse_anomaly_stage (time, device_id, metric_id, ifindex, score) FROM STDIN (FORMAT BINARY)"
# Key order, so concurrent runs lock rows in the same order; an unchanged score is not rewritten (most
# of a window was stored by the previous run), so the count is of rows new or changed. The device
# check keeps a write inside the organization whatever the frame held.
_UPSERT = """
WITH up AS (
    INSERT INTO anomaly_scores AS a (time, device_id, metric_id, ifindex, score)
    SELECT s.time, s.device_id, s.metric_id, s.ifindex, s.score FROM netpulse_anomaly_stage s
    WHERE s.device_id IN (SELECT id FROM devices WHERE organization_id = %(org)s)
    ORDER BY s.device_id, s.metric_id, s.ifindex, s.time
    ON CONFLICT (device_id, metric_id, ifindex, time) DO UPDATE SET score = EXCLUDED.score
    WHERE a.score IS DISTINCT FROM EXCLUDED.score
    RETURNING 1
)
SELECT count(*) FROM up
"""

# The worst series first; the peak is looked up per listed series only, on the primary key.
_TOP = """
WITH worst AS (
    SELECT a.device_id, a.metric_id, a.ifindex, max(a.score) AS max_score,
           count(*) FILTER (WHERE a.score >= %(anomalous)s) AS anomalous, count(*) AS points
    FROM anomaly_scores a JOIN devices d ON d.id = a.device_id
    WHERE d.organization_id = %(org)s AND a.time >= %(start)s AND a.time < %(end)s
    GROUP BY a.device_id, a.metric_id, a.ifindex
    ORDER BY max_score DESC, anomalous DESC, a.device_id, a.metric_id, a.ifindex
    LIMIT %(limit)s
)
SELECT w.device_id, d.name, w.metric_id, w.ifindex, w.max_score,
       (SELECT min(a.time) FROM anomaly_scores a
        WHERE a.device_id = w.device_id AND a.metric_id = w.metric_id AND a.ifindex = w.ifindex
          AND a.time >= %(start)s AND a.time < %(end)s AND a.score = w.max_score) AS peak_time,
       w.anomalous, w.points
FROM worst w JOIN devices d ON d.id = w.device_id
ORDER BY w.max_score DESC, w.anomalous DESC, w.device_id, w.metric_id, w.ifindex
"""


@dataclass(frozen=True, slots=True)
class ScoreReport:
    """What one :func:`score_recent` run did."""

    start: datetime        # the scored window, [start, end)
    end: datetime
    series: int            # series with at least one minute in the window
    points_scored: int     # minutes read and scored, history included
    points_stored: int     # the window's minutes upserted
    rows_changed: int      # of those, rows new or with another score than stored (0 on an exact re-run)
    anomalous: int         # the window's minutes scoring >= ANOMALOUS
    seconds: float


def history_for(params: AnomalyParams = DEFAULT_PARAMS) -> timedelta:
    """How far before the scored window a read starts: past the warm-up (a series' first ``warmup``
    scores 0), two seasonal periods (the profile), and the residual scales' time constant."""
    return max(params.warmup, 2 * params.season, params.scale_tau)


def _invalid(errors: dict[str, str]) -> ValidationError:
    return ValidationError("; ".join(f"{k}: {v}" for k, v in errors.items()), details=errors)


def _check_aware(**values: datetime) -> None:
    errors = {name: f"{ts!r} is not a timezone-aware datetime; pass one with tzinfo=UTC"
              for name, ts in values.items() if not isinstance(ts, datetime) or ts.utcoffset() is None}
    if errors:
        raise _invalid(errors)


def _check_range(start: datetime, end: datetime) -> None:
    _check_aware(start=start, end=end)
    if end <= start:
        raise _invalid({"end": f"{end.isoformat()} is not after start {start.isoformat()}: end is exclusive"})


def _metric_ids(metrics: MetricKind | str | Iterable[MetricKind | str]) -> list[int]:
    items = [metrics] if isinstance(metrics, str | MetricKind) else list(metrics)
    known = ", ".join(k.metric_name for k in MetricKind)
    if not items:
        raise _invalid({"metrics": f"no metric given; choose from: {known}"})
    unknown = [repr(m) for m in items
               if not isinstance(m, MetricKind) and not (isinstance(m, str) and m.upper() in MetricKind.__members__)]
    if unknown:
        raise _invalid({"metrics": f"unknown metric(s) {', '.join(unknown)}; known metrics: {known}"})
    return sorted({int(m) if isinstance(m, MetricKind) else int(MetricKind[m.upper()]) for m in items})


def _encode(frame: pl.DataFrame) -> bytes:
    """A binary COPY payload of ``frame``'s ``_FIELDS`` columns, built as one numpy structured array
    (analytics may not use ingest.copy_binary; the layout is copy_decode's, read the other way)."""
    buf = np.empty(frame.height, dtype=tuple_dtype(_FIELDS))
    buf["_nfields"] = len(_FIELDS)
    for name, _ in _FIELDS:
        buf[f"_len_{name}"] = buf.dtype[name].itemsize
        column = frame[name].dt.epoch("us") if name == "time" else frame[name]
        buf[name] = column.to_numpy()
    buf["time"] -= PG_EPOCH_OFFSET_US
    return _COPY_HEADER + buf.tobytes() + TRAILER


def _upsert(conn: Conn, org_id: uuid.UUID | str, frame: pl.DataFrame) -> int:
    """Stage ``frame`` (columns of ``_FIELDS``) by binary COPY and upsert it in one statement; returns
    the rows inserted or changed."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(_STAGE_DDL)
        cur.execute("DELETE FROM netpulse_anomaly_stage")  # empty after a commit; guards a caller's transaction
        with cur.copy(_COPY_STAGE) as copy:
            copy.write(_encode(frame))
        row = cur.execute(_UPSERT, {"org": org_id}).fetchone()
    assert row is not None
    return int(row[0])


def _batches(ids: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    for i in range(0, len(ids), size):
        yield ids[i:i + size]


def score_recent(conn: Conn, org_id: uuid.UUID | str, now: datetime, *,
                 metrics: MetricKind | str | Iterable[MetricKind | str] = DEFAULT_METRICS,
                 window: timedelta = timedelta(hours=1), params: AnomalyParams = DEFAULT_PARAMS,
                 history: timedelta | None = None, device_batch: int = 200) -> ScoreReport:
    """Score the organization's 1-minute averages in ``[now - window, now)`` and upsert them into
    ``anomaly_scores``.

    Parameters:
        now: timezone-aware; pass a minute boundary to score closed minutes only (a minute still
            filling is scored as it stands and rescored by the next run that covers it).
        metrics: the metrics whose series are scored (every device and interface of each).
        window: the minutes stored. The read starts ``history`` earlier (default
            :func:`history_for` ``(params)``), so the window's first minute is past the warm-up.
        device_batch: devices read and scored together, which bounds memory (~4,400 minutes per
            series at the defaults); series never span batches, so the scores do not depend on it.

    Returns:
        A :class:`ScoreReport`. Nothing is written for an organization without devices or data.

    Raises:
        ValidationError: a naive ``now``, a window or history that is not positive, an unknown metric.
    """
    began = perf_counter()
    _check_aware(now=now)
    history = history_for(params) if history is None else history
    errors = {name: f"{value} must be positive" for name, value in (("window", window), ("history", history))
              if value <= timedelta(0)}
    if device_batch < 1:
        errors["device_batch"] = f"{device_batch} must be at least 1"
    if errors:
        raise _invalid(errors)
    metric_ids = _metric_ids(metrics)
    kinds = [MetricKind(m) for m in metric_ids]
    start = now - window
    devices = [r[0] for r in conn.execute("SELECT id FROM devices WHERE organization_id = %s ORDER BY id",
                                          (org_id,))]
    series = scored = stored = changed = anomalous = 0
    for batch in _batches(devices, device_batch):
        frame = load_metrics(conn, org_id, metrics=kinds, start=start - history, end=now, devices=batch,
                             resolution="1m")
        if frame.is_empty():
            continue
        scores = score_frame(frame.select(*SERIES, "time", "value"), series_col=SERIES, params=params)
        fresh = (scores.filter(pl.col("time") >= start)
                 .select("time", *SERIES, pl.col(SCORE_COLUMN).clip(0.0, 1.0).cast(pl.Float32).alias("score")))
        scored += scores.height
        if fresh.is_empty():
            continue
        series += fresh.select(SERIES).n_unique()
        stored += fresh.height
        anomalous += int((fresh["score"] >= ANOMALOUS).sum())
        changed += _upsert(conn, org_id, fresh)
    return ScoreReport(start.astimezone(UTC), now.astimezone(UTC), series, scored, stored, changed, anomalous,
                       perf_counter() - began)


def load_scores(conn: Conn, org_id: uuid.UUID | str, *, start: datetime, end: datetime,
                devices: int | str | Sequence[int | str] | None = None,
                metrics: MetricKind | str | Iterable[MetricKind | str] | None = None,
                min_score: float = 0.0) -> pl.DataFrame:
    """The organization's stored scores in ``[start, end)``, as a frame of ``SCORES_SCHEMA`` sorted by
    device, metric, interface and time.

    ``devices``: ids and/or names (an unknown one matches nothing; another organization's never
    does). ``metrics``: kinds or names, all when None. ``min_score``: keep scores at or above it
    (``ANOMALOUS`` for the anomalies only).
    """
    _check_range(start, end)
    if not 0.0 <= min_score <= 1.0:
        raise _invalid({"min_score": f"{min_score} is not in [0, 1]"})
    params: dict[str, Any] = {"org": org_id, "start": start, "end": end, "min": min_score}
    conds = [sql.SQL("d.organization_id = %(org)s"), sql.SQL("a.time >= %(start)s AND a.time < %(end)s")]
    if min_score > 0:
        conds.append(sql.SQL("a.score >= %(min)s"))
    if metrics is not None:
        params["metrics"] = _metric_ids(metrics)
        conds.append(sql.SQL("a.metric_id = ANY(%(metrics)s::int2[])"))
    if devices is not None:
        chosen = [devices] if isinstance(devices, int | str) else list(devices)
        bad = [repr(d) for d in chosen if isinstance(d, bool) or not isinstance(d, int | str)]
        if bad:
            raise _invalid({"devices": f"{', '.join(bad)}: give device ids (int) or names (str)"})
        params["ids"] = [d for d in chosen if isinstance(d, int)]
        params["names"] = [d for d in chosen if isinstance(d, str)]
        conds.append(sql.SQL("(d.id = ANY(%(ids)s::int4[]) OR d.name = ANY(%(names)s::text[]))"))
        if not params["names"]:
            conds.append(sql.SQL("a.device_id = ANY(%(ids)s::int4[])"))  # the primary key leads with it
    query = sql.SQL("SELECT a.time, a.device_id, a.metric_id, a.ifindex, a.score FROM anomaly_scores a"
                    " JOIN devices d ON d.id = a.device_id WHERE {}").format(sql.SQL(" AND ").join(conds))
    columns = fetch_columns(conn, query, params, _FIELDS)
    frame = pl.DataFrame({
        "time": pl.Series(columns["time"], dtype=pl.Int64).cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
        "device_id": pl.Series(columns["device_id"], dtype=pl.Int32),
        "metric_id": pl.Series(columns["metric_id"], dtype=pl.Int16),
        "ifindex": pl.Series(columns["ifindex"], dtype=pl.Int32),
        "score": pl.Series(columns["score"], dtype=pl.Float32),
    })
    return (frame.with_columns(pl.col("metric_id").replace_strict(_METRIC_NAMES, return_dtype=METRIC).alias("metric"))
            .select(SCORES_SCHEMA.names()).sort(*SERIES, "time"))


def top_anomalies(conn: Conn, org_id: uuid.UUID | str, start: datetime, end: datetime,
                  limit: int = 20) -> pl.DataFrame:
    """The organization's ``limit`` worst series in ``[start, end)`` by their highest score, as a frame
    of ``TOP_SCHEMA``: the device's ``name``, ``max_score``, ``peak_time`` (the first minute at it),
    ``anomalous`` (minutes >= ``ANOMALOUS``) and ``points`` (minutes scored). Ties go to the series
    with more anomalous minutes, then by key."""
    _check_range(start, end)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise _invalid({"limit": f"{limit!r} must be a positive integer"})
    rows = conn.execute(_TOP, {"org": org_id, "start": start, "end": end, "limit": limit,
                               "anomalous": ANOMALOUS}).fetchall()
    frame = pl.DataFrame(rows, schema={k: v for k, v in TOP_SCHEMA.items() if k != "metric"}, orient="row")
    return (frame.with_columns(pl.col("metric_id").replace_strict(_METRIC_NAMES, return_dtype=METRIC).alias("metric"))
            .select(TOP_SCHEMA.names()))


def count_series(conn: Conn, org_id: uuid.UUID | str, start: datetime, end: datetime) -> int:
    """How many series of the organization have scores in ``[start, end)``: the length of the whole
    ranking :func:`top_anomalies` pages through."""
    _check_range(start, end)
    row = conn.execute(
        "SELECT count(*) FROM (SELECT DISTINCT a.device_id, a.metric_id, a.ifindex FROM anomaly_scores a"
        " JOIN devices d ON d.id = a.device_id WHERE d.organization_id = %(org)s AND a.time >= %(start)s"
        " AND a.time < %(end)s) s", {"org": org_id, "start": start, "end": end}).fetchone()
    return int(row[0]) if row else 0
