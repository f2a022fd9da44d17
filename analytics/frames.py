"""The analytics data API: an organization's metrics as Polars frames, for notebooks, reports and pages.

:func:`load_metrics` reads the raw ``metrics`` table or one of the ``metrics_1m``/``metrics_1h``/
``metrics_1d`` rollups through binary COPY and decodes the stream with numpy in one pass
(:mod:`analytics.copy_decode`), so a million rows cost no Python object each. Every read joins the
devices table on the organization (tenant isolation), whatever the scope filters say.

Frames have one row per sample (raw) or per bucket (rollups), sorted by ``SERIES_KEY`` then time:

- ``time``: Datetime(us, UTC), the sample time or the bucket start;
- ``device_id`` (Int32), ``metric`` (an Enum of the metric catalogue, in id order), ``metric_id``
  (Int16), ``ifindex`` (Int32; 0 is the device itself, see :mod:`netpulse.metrics`);
- ``value`` (Float64): the sample, or the bucket's average for rollups;
- rollups only: ``count`` (Int64), ``min`` and ``max`` (Float64).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args

import numpy as np
import polars as pl
import psycopg
from psycopg import sql

from analytics.copy_decode import PgType, fetch_columns
from analytics.fleet import bucket_floor, rollup_for
from netpulse.errors import ValidationError
from netpulse.inventory import slugify
from netpulse.metrics import MetricKind

__all__ = ["Resolution", "Level", "RAW_SPAN", "METRIC", "RAW_SCHEMA", "ROLLUP_SCHEMA", "SERIES_KEY", "MetricsSelect",
           "pick_resolution", "select_metrics", "load_metrics", "wide", "device_frame", "INTERFACE_SCHEMA",
           "interface_frame"]

Resolution = Literal["auto", "raw", "1m", "1h", "1d"]
Level = Literal["raw", "1m", "1h", "1d"]  # what "auto" resolves to
_RESOLUTIONS: tuple[str, ...] = get_args(Resolution)
# "auto" reads raw rows up to this span (a few hundred points per series at the usual 10-20 s probe
# interval); past it, the rollup that analytics.fleet.rollup_for picks for charts of that range.
RAW_SPAN = timedelta(hours=1)
_ROLLUP_RESOLUTION: dict[str, Level] = {"metrics_1m": "1m", "metrics_1h": "1h", "metrics_1d": "1d"}

# An Enum, not a Categorical: the catalogue is fixed, so frames from different reads share it, sort
# in metric-id order and compare to plain names (pl.col("metric") == "cpu_pct").
_KINDS = sorted(MetricKind)
METRIC = pl.Enum([k.metric_name for k in _KINDS])
_METRIC_NAMES = pl.Series("metric", [k.metric_name for k in _KINDS], dtype=METRIC)
_METRIC_INDEX = np.zeros(max(_KINDS) + 1, np.uint32)  # metric_id -> position in METRIC
_METRIC_INDEX[[int(k) for k in _KINDS]] = np.arange(len(_KINDS), dtype=np.uint32)

RAW_SCHEMA = pl.Schema({"time": pl.Datetime("us", "UTC"), "device_id": pl.Int32(), "metric": METRIC,
                        "metric_id": pl.Int16(), "ifindex": pl.Int32(), "value": pl.Float64()})
ROLLUP_SCHEMA = pl.Schema({**RAW_SCHEMA, "count": pl.Int64(), "min": pl.Float64(), "max": pl.Float64()})
SERIES_KEY = ("device_id", "metric", "ifindex")  # one time series per key: group_by(SERIES_KEY)
_ORDER = ["device_id", "metric_id", "ifindex", "time"]  # SERIES_KEY then time (METRIC is in id order)

# (output name, source column, wire type). Every column is cast in the SELECT so the decoder's fixed
# tuple layout holds on both storage variants.
_RAW_COLUMNS: tuple[tuple[str, str, PgType], ...] = (
    ("time", "time", "timestamptz"), ("device_id", "device_id", "int4"), ("metric_id", "metric_id", "int2"),
    ("ifindex", "ifindex", "int4"), ("value", "value", "float8"))
_ROLLUP_COLUMNS: tuple[tuple[str, str, PgType], ...] = (
    ("time", "bucket", "timestamptz"), *_RAW_COLUMNS[1:4], ("value", "avg", "float8"),
    ("count", "count", "int8"), ("min", "min", "float8"), ("max", "max", "float8"))

Conn = psycopg.Connection[Any]


@dataclass(frozen=True, slots=True)
class MetricsSelect:
    """The SELECT behind a :func:`load_metrics` call, to run elsewhere as is (EXPLAIN, a baseline).

    It has no ORDER BY: with ``metric_id = ANY(...)`` no index yields the series order, and a server
    sort of a large read spills to disk on the shared database; the client sorts instead."""

    query: sql.Composed
    params: dict[str, Any]
    resolution: Level
    fields: tuple[tuple[str, PgType], ...]


def _invalid(errors: dict[str, str]) -> ValidationError:
    return ValidationError("; ".join(f"{k}: {v}" for k, v in errors.items()), details=errors)


def _check_window(start: datetime, end: datetime) -> None:
    errors: dict[str, str] = {}
    for name, ts in (("start", start), ("end", end)):
        if not isinstance(ts, datetime):
            errors[name] = f"{ts!r} is not a datetime"
        elif ts.utcoffset() is None:
            errors[name] = f"{ts.isoformat()} is naive; pass a timezone-aware datetime (tzinfo=UTC)"
    if not errors and end <= start:
        errors["end"] = (f"{end.isoformat()} is not after start {start.isoformat()}: the range is empty; "
                         "end is exclusive and must be later than start")
    if errors:
        raise _invalid(errors)


def pick_resolution(start: datetime, end: datetime, resolution: Resolution = "auto") -> Level:
    """The resolution :func:`load_metrics` reads for ``start``..``end``: ``resolution`` itself when forced,
    else raw up to ``RAW_SPAN`` and past it the rollup of :func:`analytics.fleet.rollup_for`.

    >>> from datetime import datetime, UTC
    >>> pick_resolution(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 1, tzinfo=UTC))
    'raw'
    >>> pick_resolution(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC))
    '1h'
    """
    _check_window(start, end)
    if resolution not in _RESOLUTIONS:
        raise _invalid({"resolution": f"{resolution!r} is not one of {', '.join(_RESOLUTIONS)}"})
    if resolution != "auto":
        return resolution
    if end - start <= RAW_SPAN:
        return "raw"
    return _ROLLUP_RESOLUTION[rollup_for(start, end)]


def _metric_ids(metrics: MetricKind | str | Iterable[MetricKind | str]) -> list[int]:
    items = [metrics] if isinstance(metrics, (str, MetricKind)) else list(metrics)
    known = ", ".join(k.metric_name for k in _KINDS)
    if not items:
        raise _invalid({"metrics": f"no metric given; choose from: {known}"})
    ids: list[int] = []
    unknown: list[str] = []
    for m in items:
        if isinstance(m, MetricKind):
            ids.append(int(m))
        elif isinstance(m, str) and m.upper() in MetricKind.__members__:
            ids.append(int(MetricKind[m.upper()]))
        else:
            unknown.append(repr(m))
    if unknown:
        raise _invalid({"metrics": f"unknown metric(s) {', '.join(unknown)}; known metrics: {known}"})
    return sorted(set(ids))


def _scope(devices: int | str | Sequence[int | str] | None, group: int | str | None, site: int | str | None,
           tag: int | str | None, params: dict[str, Any]) -> list[sql.Composable]:
    """Conditions on ``d`` (devices) for the scope filters; ints are ids, strings names (or slugs)."""
    conds: list[sql.Composable] = []
    if devices is not None:
        if isinstance(devices, str | int):
            devices = [devices]
        bad = [repr(d) for d in devices if isinstance(d, bool) or not isinstance(d, int | str)]
        if bad:
            raise _invalid({"devices": f"{', '.join(bad)}: give device ids (int) or names (str)"})
        params["device_ids"] = [d for d in devices if isinstance(d, int)]
        params["device_names"] = [d for d in devices if isinstance(d, str)]
        conds.append(sql.SQL("(d.id = ANY(%(device_ids)s::int4[]) OR d.name = ANY(%(device_names)s::text[]))"))
        if not params["device_names"]:
            # Also on the rollup itself: the planner pushes it into the views' live aggregate and the
            # primary key (device first), instead of aggregating every device and joining after.
            conds.append(sql.SQL("r.device_id = ANY(%(device_ids)s::int4[])"))
    # An unknown site, group or tag matches nothing, as in netpulse.inventory.list_devices.
    for key, value, column, table in (("group", group, "group_id", "device_groups"),
                                      ("site", site, "site_id", "sites")):
        if value is None:
            continue
        if isinstance(value, int):
            params[key] = value
            conds.append(sql.SQL("d.{} = %({})s").format(sql.Identifier(column), sql.SQL(key)))
        else:
            params[key], params[f"{key}_slug"] = value, slugify(value)
            conds.append(sql.SQL(
                "d.{column} IN (SELECT id FROM {table} WHERE organization_id = %(org)s"
                " AND (name = %({key})s OR slug = %({key}_slug)s))"
            ).format(column=sql.Identifier(column), table=sql.Identifier(table), key=sql.SQL(key)))
    if tag is not None:
        if isinstance(tag, int):
            params["tag"] = tag
            match = sql.SQL("t.id = %(tag)s")
        else:
            params["tag"], params["tag_slug"] = tag, slugify(tag)
            match = sql.SQL("(t.name = %(tag)s OR t.slug = %(tag_slug)s)")
        conds.append(sql.SQL(
            "d.id IN (SELECT dt.device_id FROM device_tags dt JOIN tags t ON t.id = dt.tag_id"
            " WHERE t.organization_id = %(org)s AND {})").format(match))
    return conds


def select_metrics(org_id: uuid.UUID | str, *, metrics: MetricKind | str | Iterable[MetricKind | str],
                   start: datetime, end: datetime, devices: int | str | Sequence[int | str] | None = None,
                   group: int | str | None = None, site: int | str | None = None, tag: int | str | None = None,
                   resolution: Resolution = "auto") -> MetricsSelect:
    """The validated SELECT of :func:`load_metrics` (same arguments), without running it."""
    chosen = pick_resolution(start, end, resolution)
    params: dict[str, Any] = {"org": org_id, "metrics": _metric_ids(metrics), "end": end.astimezone(UTC)}
    if chosen == "raw":
        table, columns = "metrics", _RAW_COLUMNS
        params["start"] = start.astimezone(UTC)
    else:
        table, columns = f"metrics_{chosen}", _ROLLUP_COLUMNS
        params["start"] = bucket_floor(start, table)  # the bucket that holds start counts
    time_col = sql.Identifier("r", columns[0][1])
    conds = [sql.SQL("d.organization_id = %(org)s"), sql.SQL("r.metric_id = ANY(%(metrics)s::int2[])"),
             sql.SQL("{} >= %(start)s AND {} < %(end)s").format(time_col, time_col),
             *_scope(devices, group, site, tag, params)]
    query = sql.SQL("SELECT {columns} FROM {table} r JOIN devices d ON d.id = r.device_id WHERE {conds}").format(
        columns=sql.SQL(", ").join(sql.SQL("{}::{} AS {}").format(sql.Identifier("r", source), sql.SQL(pg_type),
                                                                  sql.Identifier(name))
                                   for name, source, pg_type in columns),
        table=sql.Identifier(table), conds=sql.SQL(" AND ").join(conds),
    )
    return MetricsSelect(query, params, chosen, tuple((name, pg_type) for name, _, pg_type in columns))


def load_metrics(conn: Conn, org_id: uuid.UUID | str, *, metrics: MetricKind | str | Iterable[MetricKind | str],
                 start: datetime, end: datetime, devices: int | str | Sequence[int | str] | None = None,
                 group: int | str | None = None, site: int | str | None = None, tag: int | str | None = None,
                 resolution: Resolution = "auto") -> pl.DataFrame:
    """The organization's samples of ``metrics`` over ``start`` (inclusive) to ``end`` (exclusive).

    Parameters:
        metrics: one or several :class:`~netpulse.metrics.MetricKind` or names (``"icmp_rtt_ms"``).
        start, end: timezone-aware datetimes. Rollups include the bucket that holds ``start``.
        devices: device ids and/or names. group, site, tag: an id, or a name or slug. Filters combine
            with AND; an unknown name matches nothing. Devices of other organizations never match.
        resolution: ``"raw"``, ``"1m"``, ``"1h"``, ``"1d"``, or ``"auto"`` (see :func:`pick_resolution`).

    Returns:
        A frame of ``RAW_SCHEMA`` or, for rollups, ``ROLLUP_SCHEMA`` (see the module docstring),
        sorted by device, metric, ifindex and time.

    Raises:
        ValidationError: a naive time, an empty range, an unknown metric or resolution; ``details``
            is keyed by the argument's name.
    """
    select = select_metrics(org_id, metrics=metrics, start=start, end=end, devices=devices, group=group,
                            site=site, tag=tag, resolution=resolution)
    columns = fetch_columns(conn, select.query, select.params, select.fields)
    schema = RAW_SCHEMA if select.resolution == "raw" else ROLLUP_SCHEMA
    series = [pl.Series("time", columns["time"]).cast(schema["time"]),
              _METRIC_NAMES.gather(_METRIC_INDEX[columns["metric_id"]])]
    series += [pl.Series(name, columns[name], dtype=dtype) for name, dtype in schema.items()
               if name not in ("time", "metric")]
    return pl.DataFrame(series).select(schema.names()).sort(_ORDER)


def wide(df: pl.DataFrame, *, values: str = "value") -> pl.DataFrame:
    """One column per metric (named by it, in catalogue order) holding ``values``, one row per
    device, ifindex and time: a device's metrics side by side. A metric without a sample at that
    time is null. Columns: ``time``, ``device_id``, ``ifindex``, then the metrics."""
    index = ["time", "device_id", "ifindex"]
    names = [str(m) for m in df["metric"].unique().sort().to_list()]
    if df.is_empty():
        return df.select(index)
    out = df.pivot(on="metric", index=index, values=values)
    return out.select(*index, *names).sort("device_id", "ifindex", "time")


def device_frame(conn: Conn, org_id: uuid.UUID | str) -> pl.DataFrame:
    """The organization's devices to join onto metric frames: ``device_id``, ``name``, ``site`` and
    ``group`` (names; null when unset), by id."""
    with conn.cursor() as cur:
        rows = cur.execute(
            "SELECT d.id, d.name, s.name, g.name FROM devices d LEFT JOIN sites s ON s.id = d.site_id"
            " LEFT JOIN device_groups g ON g.id = d.group_id WHERE d.organization_id = %s ORDER BY d.id",
            (org_id,),
        ).fetchall()
    return pl.DataFrame(rows, schema={"device_id": pl.Int32, "name": pl.String, "site": pl.String,
                                      "group": pl.String}, orient="row")


INTERFACE_SCHEMA = pl.Schema({"device_id": pl.Int32(), "device": pl.String(), "ifindex": pl.Int32(),
                              "name": pl.String(), "speed_bps": pl.Int64(), "oper_status": pl.String(),
                              "last_seen": pl.Datetime("us", "UTC")})


def interface_frame(conn: Conn, org_id: uuid.UUID | str) -> pl.DataFrame:
    """The organization's interfaces as SNMP polls last found them (``INTERFACE_SCHEMA``): ``device_id``,
    ``device`` (its name), ``ifindex`` (the key of if_* metric rows), ``name`` (ifName or ifDescr),
    ``speed_bps`` (null: unknown), ``oper_status`` and ``last_seen``, by device and ifindex."""
    with conn.cursor() as cur:
        rows = cur.execute(
            "SELECT i.device_id, d.name, i.ifindex, i.name, i.speed_bps, i.oper_status, i.last_seen"
            " FROM interfaces i JOIN devices d ON d.id = i.device_id WHERE d.organization_id = %s"
            " ORDER BY i.device_id, i.ifindex", (org_id,)).fetchall()
    return pl.DataFrame(rows, schema=INTERFACE_SCHEMA, orient="row")
