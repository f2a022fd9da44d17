"""Fleet-wide reads for the live views: status counts, raw-row counts and latency by site.

Every query filters by organization through ``devices.organization_id``. Charts read the rollups
(``metrics_1m``/``metrics_1h``/``metrics_1d``), never the raw table; :func:`rollup_for` picks the one
that fits the range. Averages over several devices are weighted by sample count
(``sum(sum) / sum(count)``), so a device probed twice as often weighs twice as much, exactly as if the
raw rows had been averaged.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
import psycopg
from psycopg import sql

from netpulse.inventory import status_counts
from netpulse.metrics import MetricKind

__all__ = ["ROLLUPS", "UNASSIGNED_SITE", "LATENCY_SCHEMA", "ATTENTION_SCHEMA", "FleetSummary", "rollup_for",
           "bucket_floor", "latency_series", "recent_rows", "fleet_summary", "devices_needing_attention",
           "site_status", "status_over_time", "worst_latency", "CAUSES_CTE", "SITE_STATUS_SCHEMA",
           "STATUS_OVER_TIME_SCHEMA", "WORST_SCHEMA"]

# (relation, bucket width, longest range it serves). Past the last one, the daily rollup.
ROLLUPS: tuple[tuple[str, timedelta, timedelta], ...] = (
    ("metrics_1m", timedelta(minutes=1), timedelta(hours=6)),
    ("metrics_1h", timedelta(hours=1), timedelta(days=14)),
)
_DAILY = ("metrics_1d", timedelta(days=1))
_WIDTH = {name: width for name, width, _ in ROLLUPS} | {_DAILY[0]: _DAILY[1]}

UNASSIGNED_SITE = "Unassigned"  # devices without a site are charted under this name
STATUS_KEYS = ("unknown", "up", "degraded", "down")
ATTENTION_SCHEMA = pl.Schema({"device_id": pl.Int32(), "name": pl.String(), "site": pl.String(),
                               "oper_status": pl.String(), "since": pl.Datetime("us", "UTC"),
                               "last_seen": pl.Datetime("us", "UTC"), "behind": pl.Int64(), "total": pl.Int64()})
LATENCY_SCHEMA = pl.Schema({"bucket": pl.Datetime("us", "UTC"), "site": pl.String(), "rtt_ms": pl.Float64()})

Conn = psycopg.Connection[Any]


def rollup_for(start: datetime, end: datetime) -> str:
    """The rollup relation for a chart of ``start``..``end``: 1 min up to 6 h, 1 h up to 14 days, else 1 day.

    >>> from datetime import datetime, UTC
    >>> rollup_for(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 6, tzinfo=UTC))
    'metrics_1m'
    >>> rollup_for(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 3, tzinfo=UTC))
    'metrics_1h'
    >>> rollup_for(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC))
    'metrics_1d'
    """
    if end <= start:
        raise ValueError(f"empty time range: start {start.isoformat()} is not before end {end.isoformat()}")
    span = end - start
    for name, _, longest in ROLLUPS:
        if span <= longest:
            return name
    return _DAILY[0]


def bucket_floor(ts: datetime, rollup: str) -> datetime:
    """The start of the rollup bucket that holds ``ts`` (buckets are aligned to UTC)."""
    width = _WIDTH[rollup]
    ts = ts.astimezone(UTC)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((ts - epoch) // width) * width


def _require_aware(**times: datetime) -> None:
    for name, ts in times.items():
        if ts.tzinfo is None:
            raise ValueError(f"{name}={ts!r} is naive: pass a timezone-aware datetime (UTC)")


def latency_series(conn: Conn, org_id: uuid.UUID | str, start: datetime, end: datetime, *,
                   site_id: int | None = None) -> pl.DataFrame:
    """Average ICMP round-trip time per site and bucket, from the rollup that fits ``start``..``end``.

    Returns a frame with columns ``bucket`` (datetime, UTC), ``site`` (site name; devices without a
    site count under ``UNASSIGNED_SITE``) and ``rtt_ms``, sorted by site then bucket. The bucket that
    holds ``start`` is included; ``end`` is exclusive. ``site_id`` narrows it to one site.
    """
    _require_aware(start=start, end=end)
    table = rollup_for(start, end)
    query = sql.SQL(
        "SELECT r.bucket, coalesce(s.name, %(unassigned)s) AS site, sum(r.sum) / sum(r.count) AS rtt_ms"
        " FROM {table} r"
        " JOIN devices d ON d.id = r.device_id"
        " LEFT JOIN sites s ON s.id = d.site_id"
        " WHERE d.organization_id = %(org)s AND r.metric_id = %(metric)s AND r.ifindex = 0"
        " AND r.bucket >= %(start)s AND r.bucket < %(end)s{site_filter}"
        " GROUP BY 1, 2 ORDER BY 2, 1"
    ).format(
        table=sql.Identifier(table),
        site_filter=sql.SQL(" AND d.site_id = %(site)s") if site_id is not None else sql.SQL(""),
    )
    params = {"unassigned": UNASSIGNED_SITE, "org": org_id, "metric": int(MetricKind.ICMP_RTT_MS),
              "start": bucket_floor(start, table), "end": end, "site": site_id}
    with conn.cursor() as cur:
        rows = cur.execute(query, params).fetchall()
    return pl.DataFrame(rows, schema=LATENCY_SCHEMA, orient="row")


def recent_rows(conn: Conn, org_id: uuid.UUID | str, since: datetime) -> int:
    """How many raw metric rows of the organization's devices have a time at or after ``since``."""
    _require_aware(since=since)
    row = conn.execute(
        "SELECT count(*) FROM metrics m JOIN devices d ON d.id = m.device_id"
        " WHERE d.organization_id = %s AND m.time >= %s",
        (org_id, since),
    ).fetchone()
    return int(row[0]) if row else 0


@dataclass(frozen=True, slots=True)
class FleetSummary:
    """Operational status counts of an organization's devices and when data last arrived."""

    status_counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUS_KEYS, 0))
    total_devices: int = 0
    last_metric_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the time as ISO 8601 UTC with a ``Z``."""
        last = self.last_metric_at
        return {
            "status_counts": dict(self.status_counts),
            "total_devices": self.total_devices,
            "last_metric_at": last.astimezone(UTC).isoformat().replace("+00:00", "Z") if last else None,
        }


def fleet_summary(conn: Conn, org_id: uuid.UUID | str, *,
                  lookback: timedelta = timedelta(hours=1)) -> FleetSummary:
    """Status counts (unknown/up/degraded/down), the device total and the time of the latest data.

    Counts come from :func:`netpulse.inventory.status_counts`. The latest time is the newest
    ``devices.last_checked``, which the loader moves forward with every probe result in the same
    transaction as the rows, so it reads the devices table, not the metrics.
    Only when no device was ever checked (rows loaded without availability samples) does it look at
    the raw rows, and then only within ``lookback``.
    """
    counts = status_counts(conn, uuid.UUID(str(org_id)))
    total = sum(counts.values())
    row = conn.execute("SELECT max(last_checked) FROM devices WHERE organization_id = %s", (org_id,)).fetchone()
    last = row[0] if row else None
    if last is None and total:
        found = conn.execute(
            "SELECT max(m.time) FROM metrics m JOIN devices d ON d.id = m.device_id"
            " WHERE d.organization_id = %s AND m.time >= now() - %s",
            (org_id, lookback),
        ).fetchone()
        last = found[0] if found else None
    return FleetSummary(status_counts=counts, total_devices=total, last_metric_at=last)


# The organization's down and degraded devices (``bad``) and, for each behind a down ancestor, its
# top-most down ancestor (``behind``: id, cause). Callers append the SELECT; parameter ``org``.
CAUSES_CTE = """
WITH RECURSIVE bad AS (
    SELECT d.id, d.parent_id FROM devices d
    WHERE d.organization_id = %(org)s AND d.oper_status IN ('down', 'degraded')
), chain (id, ancestor, depth) AS (
    SELECT b.id, b.parent_id, 1 FROM bad b WHERE b.parent_id IS NOT NULL
    UNION ALL
    SELECT c.id, p.parent_id, c.depth + 1 FROM chain c JOIN devices p ON p.id = c.ancestor
    WHERE p.parent_id IS NOT NULL AND c.depth < 32
), behind AS (
    SELECT DISTINCT ON (c.id) c.id, c.ancestor AS cause FROM chain c JOIN devices a ON a.id = c.ancestor
    WHERE a.oper_status = 'down' AND a.organization_id = %(org)s
    ORDER BY c.id, c.depth DESC
)"""


def devices_needing_attention(conn: Conn, org_id: uuid.UUID | str, *, limit: int = 10) -> pl.DataFrame:
    """Root causes first: the down and degraded devices that are not behind a down ancestor, each with
    ``behind``, the count of devices down behind it (unreachable because of it).

    Order: down before degraded, then the most devices behind first, then the longest in that state.
    Columns: ``device_id``, ``name``, ``site`` (``UNASSIGNED_SITE`` when none), ``oper_status``, ``since``
    (when the status began, UTC), ``last_seen`` (last answered probe, UTC), ``behind`` and ``total``
    (how many root causes there are in all; the same on every row). At most ``limit`` rows.
    """
    with conn.cursor() as cur:
        rows = cur.execute(
            CAUSES_CTE + """
            SELECT d.id, d.name, coalesce(s.name, %(unassigned)s), d.oper_status, d.oper_status_since, d.last_seen,
                   (SELECT count(*) FROM behind x WHERE x.cause = d.id) AS n_behind, count(*) OVER () AS total
            FROM bad b JOIN devices d ON d.id = b.id LEFT JOIN sites s ON s.id = d.site_id
            WHERE b.id NOT IN (SELECT id FROM behind)
            ORDER BY d.oper_status = 'degraded', n_behind DESC, d.oper_status_since NULLS LAST, d.name
            LIMIT %(limit)s""",
            {"unassigned": UNASSIGNED_SITE, "org": org_id, "limit": limit},
        ).fetchall()
    return pl.DataFrame(rows, schema=ATTENTION_SCHEMA, orient="row")


SITE_STATUS_SCHEMA = pl.Schema({"site_id": pl.Int32(), "site": pl.String(), "devices": pl.Int64(), "up": pl.Int64(),
                                "degraded": pl.Int64(), "down": pl.Int64(), "unreachable": pl.Int64(),
                                "unknown": pl.Int64()})


def site_status(conn: Conn, org_id: uuid.UUID | str) -> pl.DataFrame:
    """Per site: devices up, degraded, down (a cause) and unreachable (down behind a down ancestor), and
    not yet known. Sites with a problem first, then by name; devices without a site under
    ``UNASSIGNED_SITE`` (``site_id`` null), sites without devices left out."""
    with conn.cursor() as cur:
        rows = cur.execute(
            CAUSES_CTE + """
            SELECT s.id, coalesce(s.name, %(unassigned)s), count(*),
                   count(*) FILTER (WHERE d.oper_status = 'up'),
                   count(*) FILTER (WHERE d.oper_status = 'degraded'),
                   count(*) FILTER (WHERE d.oper_status = 'down' AND x.id IS NULL),
                   count(*) FILTER (WHERE d.oper_status = 'down' AND x.id IS NOT NULL),
                   count(*) FILTER (WHERE d.oper_status = 'unknown')
            FROM devices d LEFT JOIN sites s ON s.id = d.site_id LEFT JOIN behind x ON x.id = d.id
            WHERE d.organization_id = %(org)s
            GROUP BY s.id, s.name
            ORDER BY count(*) FILTER (WHERE d.oper_status IN ('down', 'degraded')) = 0, s.name IS NULL, s.name""",
            {"unassigned": UNASSIGNED_SITE, "org": org_id},
        ).fetchall()
    return pl.DataFrame(rows, schema=SITE_STATUS_SCHEMA, orient="row")


STATUS_OVER_TIME_SCHEMA = pl.Schema({"bucket": pl.Datetime("us", "UTC"), "down": pl.Int64(), "degraded": pl.Int64()})


def status_over_time(conn: Conn, org_id: uuid.UUID | str, start: datetime, end: datetime,
                     step: timedelta) -> pl.DataFrame:
    """How many devices were down and degraded in each ``step`` of ``start``..``end``: the most at any
    moment of the bucket, so an outage shorter than a bucket still shows at its height.

    Read from the status-change events in the range and the devices' current status (a device's
    status at ``start`` is the ``from_status`` of its first event after it, else its status now), so
    the cost follows the changes, not the fleet or the range.
    """
    _require_aware(start=start, end=end)
    if end <= start or step <= timedelta(0):
        raise ValueError("status_over_time needs start < end and a positive step")
    with conn.cursor() as cur:
        events = cur.execute(
            "SELECT device_id, (extract(epoch FROM time) * 1000000)::int8, from_status, to_status"
            " FROM device_status_events WHERE organization_id = %(org)s AND time > %(start)s"
            " ORDER BY time, confirmed_at",
            {"org": org_id, "start": start}).fetchall()
        now_rows = cur.execute(
            "SELECT id, oper_status FROM devices WHERE organization_id = %(org)s"
            " AND oper_status IN ('down', 'degraded')", {"org": org_id}).fetchall()
    t0, t1, w = _micros(start), _micros(end), int(step / timedelta(microseconds=1))
    n = max(1, -(-(t1 - t0) // w))
    initial: dict[int, str] = {dev: status for dev, status in now_rows}
    first_seen: set[int] = set()
    for dev, _, before, _ in events:
        if dev not in first_seen:
            first_seen.add(dev)
            initial[dev] = before
    out = {}
    for kind in ("down", "degraded"):
        level = sum(1 for s in initial.values() if s == kind)
        times = np.array([t for _, t, _, _ in events], np.int64)
        delta = np.array([(b2 == kind) - (b1 == kind) for _, _, b1, b2 in events], np.int64)
        values = level + np.cumsum(delta) if len(delta) else np.zeros(0, np.int64)
        # Each bucket's most: what it started with, and every value a change inside it reached.
        idx = np.clip((times - t0) // w, -1, n)
        carried = np.full(n, level, np.int64)
        if len(values):
            after = np.searchsorted(idx, np.arange(n), side="left")  # first change at or after each bucket
            carried = np.where(after > 0, values[np.maximum(after - 1, 0)], level)
        peak = carried.copy()
        inside = (idx >= 0) & (idx < n)
        np.maximum.at(peak, idx[inside], values[inside])
        out[kind] = peak
    buckets = [datetime.fromtimestamp((t0 + i * w) / 1e6, UTC) for i in range(n)]
    return pl.DataFrame({"bucket": buckets, "down": out["down"], "degraded": out["degraded"]},
                        schema=STATUS_OVER_TIME_SCHEMA)


def _micros(ts: datetime) -> int:
    return (ts.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


WORST_SCHEMA = pl.Schema({"bucket": pl.Datetime("us", "UTC"), "device_id": pl.Int32(), "device": pl.String(),
                          "rtt_ms": pl.Float64(), "rtt_max_ms": pl.Float64()})


def worst_latency(conn: Conn, org_id: uuid.UUID | str, start: datetime, end: datetime, *,
                  n: int = 5) -> pl.DataFrame:
    """The ``n`` devices with the highest average ICMP round-trip time over ``start``..``end``, and their
    series at the chart's rollup: columns ``bucket``, ``device_id``, ``device`` (name), ``rtt_ms`` (the
    bucket's average) and ``rtt_max_ms``, worst device first.

    The ranking reads the next coarser rollup (hours up to 6 h, else days) over the buckets that
    cover the range, so it costs a few rows per device whatever the range; the series are then
    read for those devices only.
    """
    _require_aware(start=start, end=end)
    table = rollup_for(start, end)
    coarse = "metrics_1h" if end - start <= timedelta(hours=6) else "metrics_1d"
    metric = int(MetricKind.ICMP_RTT_MS)
    with conn.cursor() as cur:
        # Aggregated by device id alone (an integer hash), the names joined for the few kept.
        ranked = cur.execute(sql.SQL(
            "SELECT r.device_id FROM {coarse} r"
            " WHERE r.device_id IN (SELECT id FROM devices WHERE organization_id = %(org)s)"
            " AND r.metric_id = %(metric)s AND r.ifindex = 0 AND r.bucket >= %(start)s AND r.bucket < %(end)s"
            " GROUP BY r.device_id ORDER BY sum(r.sum) / sum(r.count) DESC, r.device_id LIMIT %(n)s"
        ).format(coarse=sql.Identifier(coarse)),
            {"org": org_id, "metric": metric, "start": bucket_floor(start, coarse), "end": end, "n": n}).fetchall()
        if not ranked:
            return pl.DataFrame(schema=WORST_SCHEMA)
        found = dict(cur.execute("SELECT id, name FROM devices WHERE organization_id = %s AND id = ANY(%s)",
                                 (org_id, [r[0] for r in ranked])).fetchall())
        names = {r[0]: found[r[0]] for r in ranked}
        rows = cur.execute(sql.SQL(
            "SELECT r.bucket, r.device_id, r.sum / r.count, r.max FROM {table} r"
            " WHERE r.device_id = ANY(%(ids)s) AND r.metric_id = %(metric)s AND r.ifindex = 0"
            " AND r.bucket >= %(start)s AND r.bucket < %(end)s"
        ).format(table=sql.Identifier(table)),
            {"ids": list(names), "metric": metric, "start": bucket_floor(start, table), "end": end}).fetchall()
    order = {dev: i for i, dev in enumerate(names)}
    frame = pl.DataFrame([(b, dev, names[dev], avg, top) for b, dev, avg, top in rows],
                         schema=WORST_SCHEMA, orient="row")
    return frame.sort(pl.col("device_id").replace_strict(order, return_dtype=pl.Int32), "bucket")


def availability_by_site(conn: Conn, org_id: uuid.UUID | str, start: datetime, end: datetime) -> pl.DataFrame:
    """Share of answered probes per site over ``start``..``end`` (from the availability samples):
    columns ``site``, ``devices``, ``probes`` and ``availability_pct``, worst site first."""
    _require_aware(start=start, end=end)
    table = rollup_for(start, end)
    query = sql.SQL(
        "SELECT coalesce(s.name, %(unassigned)s) AS site, count(DISTINCT r.device_id) AS devices,"
        " sum(r.count)::bigint AS probes, 100.0 * sum(r.sum) / sum(r.count) AS availability_pct"
        " FROM {table} r JOIN devices d ON d.id = r.device_id LEFT JOIN sites s ON s.id = d.site_id"
        " WHERE d.organization_id = %(org)s AND r.metric_id = %(metric)s AND r.ifindex = 0"
        " AND r.bucket >= %(start)s AND r.bucket < %(end)s GROUP BY 1 ORDER BY 4, 1"
    ).format(table=sql.Identifier(table))
    params = {"unassigned": UNASSIGNED_SITE, "org": org_id, "metric": int(MetricKind.AVAILABLE),
              "start": bucket_floor(start, table), "end": end}
    with conn.cursor() as cur:
        rows = cur.execute(query, params).fetchall()
    return pl.DataFrame(rows, schema={"site": pl.String, "devices": pl.Int64, "probes": pl.Int64,
                                      "availability_pct": pl.Float64}, orient="row")
