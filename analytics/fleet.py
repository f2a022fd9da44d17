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

import polars as pl
import psycopg
from psycopg import sql

from netpulse.inventory import status_counts
from netpulse.metrics import MetricKind

__all__ = ["ROLLUPS", "UNASSIGNED_SITE", "LATENCY_SCHEMA", "ATTENTION_SCHEMA", "FleetSummary", "rollup_for",
           "bucket_floor", "latency_series", "recent_rows", "fleet_summary", "devices_needing_attention"]

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
                               "last_seen": pl.Datetime("us", "UTC")})
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


def devices_needing_attention(conn: Conn, org_id: uuid.UUID | str, *, limit: int = 10) -> pl.DataFrame:
    """Devices that are down, then degraded; within each, the longest in that state first.

    Columns: ``device_id``, ``name``, ``site`` (``UNASSIGNED_SITE`` when none), ``oper_status``, ``since``
    (when the status began, UTC) and ``last_seen`` (last answered probe, UTC). At most ``limit`` rows.
    """
    with conn.cursor() as cur:
        rows = cur.execute(
            "SELECT d.id, d.name, coalesce(s.name, %(unassigned)s), d.oper_status, d.oper_status_since,"
            " d.last_seen"
            " FROM devices d LEFT JOIN sites s ON s.id = d.site_id"
            " WHERE d.organization_id = %(org)s AND d.oper_status IN ('down', 'degraded')"
            " ORDER BY d.oper_status = 'degraded', d.oper_status_since NULLS LAST, d.name"
            " LIMIT %(limit)s",
            {"unassigned": UNASSIGNED_SITE, "org": org_id, "limit": limit},
        ).fetchall()
    return pl.DataFrame(rows, schema=ATTENTION_SCHEMA, orient="row")


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
