"""Metrics storage upkeep that depends on the variant: partitions (plain PostgreSQL) and rollup
refreshes (TimescaleDB). Readers never need this module: both variants expose the same relations."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Literal

import psycopg
from psycopg import sql

from netpulse.migrations import Variant, storage_variant

Span = Literal["day", "month"]
_LOCK_ID = 0x6E70_7074  # "nppt": one partition creator at a time


@dataclass(frozen=True, slots=True)
class PartitionedTable:
    name: str
    span: Span
    retention_days: int | None  # None: kept forever
    fillfactor: int = 100       # below 100 leaves room for HOT updates of merged rollup rows


def partitioned_tables(raw_retention_days: int = 90) -> tuple[PartitionedTable, ...]:
    """The partitioned relations of the plain variant with their retention (rollups outlive raw rows)."""
    return (
        PartitionedTable("metrics", "day", raw_retention_days),
        PartitionedTable("metrics_1m_mat", "day", max(raw_retention_days, 90), fillfactor=90),
        PartitionedTable("metrics_1h_mat", "month", max(raw_retention_days, 730), fillfactor=70),
    )


def _span_start(d: date, span: Span) -> date:
    return d if span == "day" else d.replace(day=1)


def _next(d: date, span: Span) -> date:
    if span == "day":
        return d + timedelta(days=1)
    return (d.replace(day=28) + timedelta(days=4)).replace(day=1)


def partition_name(table: str, start: date, span: Span) -> str:
    return f"{table}_p{start:%Y%m%d}" if span == "day" else f"{table}_p{start:%Y%m}"


def _parse_partition(table: str, name: str, span: Span) -> date | None:
    m = re.fullmatch(re.escape(table) + (r"_p(\d{8})" if span == "day" else r"_p(\d{6})"), name)
    if not m:
        return None
    s = m.group(1)
    return date(int(s[:4]), int(s[4:6]), int(s[6:]) if span == "day" else 1)


def _at_midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def existing_partitions(conn: psycopg.Connection, table: str) -> list[str]:
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = %s AND p.relnamespace = "
        "to_regnamespace(current_schema())::oid ORDER BY 1",
        (table,),
    ).fetchall()
    return [r[0] for r in rows]


@dataclass
class MaintenanceReport:
    created: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)


def ensure_partitions(
    conn: psycopg.Connection, start: datetime, end: datetime, tables: tuple[PartitionedTable, ...] | None = None
) -> list[str]:
    """Create the missing partitions covering [start, end] (plain variant). Runs in its own
    transaction: partition DDL locks the parent, which must not be held through a long load."""
    tables = tables or partitioned_tables()
    created: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
        for t in tables:
            have = set(existing_partitions(conn, t.name))
            d = _span_start(start.astimezone(UTC).date(), t.span)
            last = end.astimezone(UTC).date()
            while d <= last:
                name = partition_name(t.name, d, t.span)
                if name not in have:
                    conn.execute(sql.SQL(
                        "CREATE TABLE {} PARTITION OF {} FOR VALUES FROM ({}) TO ({}) WITH (fillfactor = {})"
                    ).format(sql.Identifier(name), sql.Identifier(t.name), sql.Literal(_at_midnight(d)),
                             sql.Literal(_at_midnight(_next(d, t.span))), sql.Literal(t.fillfactor)))
                    created.append(name)
                d = _next(d, t.span)
    return created


def drop_expired_partitions(
    conn: psycopg.Connection, now: datetime, tables: tuple[PartitionedTable, ...] | None = None
) -> list[str]:
    """Drop partitions whose whole range is older than their table's retention (plain variant)."""
    tables = tables or partitioned_tables()
    dropped: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
        for t in tables:
            if t.retention_days is None:
                continue
            horizon = now - timedelta(days=t.retention_days)
            for name in existing_partitions(conn, t.name):
                start = _parse_partition(t.name, name, t.span)
                if start is not None and _at_midnight(_next(start, t.span)) <= horizon:
                    conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
                    dropped.append(name)
    return dropped


def maintain(
    conn: psycopg.Connection, now: datetime, *, ahead_days: int = 3, raw_retention_days: int = 90
) -> MaintenanceReport:
    """The periodic upkeep: partitions ahead, expired ones dropped. TimescaleDB does both itself
    (chunks and retention policies), so there it does nothing."""
    report = MaintenanceReport()
    if storage_variant(conn) != "postgres":
        return report
    tables = partitioned_tables(raw_retention_days)
    report.created = ensure_partitions(conn, now - timedelta(days=1), now + timedelta(days=ahead_days), tables)
    report.dropped = drop_expired_partitions(conn, now, tables)
    return report


ROLLUPS = ("metrics_1m", "metrics_1h", "metrics_1d")
# Each continuous aggregate's bucket; a refresh policy materializes a bucket once the next one has
# ended too (end_offset = one bucket), so writes still arriving for the latest bucket stay live.
_WIDTHS = (timedelta(minutes=1), timedelta(hours=1), timedelta(days=1))
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _floor(ts: datetime, width: timedelta) -> datetime:
    return _EPOCH + ((ts.astimezone(UTC) - _EPOCH) // width) * width


def refresh_rollups(conn: psycopg.Connection, start: datetime | None, end: datetime,
                    variant: Variant | None = None) -> None:
    """Bring the rollups up to date for [start, end) after a backfill or late rows (``start`` None:
    from the first row).

    Plain variant: nothing to do, the loader and the rollup job maintain them. TimescaleDB: refresh
    each continuous aggregate, lowest first (1h is built on 1m, 1d on 1h), each only up to its last
    complete bucket but one, as its policy would: materializing a bucket that is still being written
    puts the aggregate's watermark ahead of rows still to come, which real-time aggregation then
    never shows. ``refresh_continuous_aggregate`` cannot run inside a transaction block, so ``conn``
    must be in autocommit mode.
    """
    variant = variant or storage_variant(conn)
    if variant != "timescale":
        return
    if not conn.autocommit:
        raise ValueError("refresh_rollups needs an autocommit connection on TimescaleDB")
    row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    now: datetime = row[0]
    # An upper level is built from the level below, so every level starts at the day of ``start``:
    # the hours and the day that the new rows fall in are rebuilt from complete lower levels.
    begin = _floor(start, timedelta(days=1)) if start is not None else None
    for view, width in zip(ROLLUPS, _WIDTHS, strict=True):
        stop = min(end, _floor(now, width) - width)
        if begin is None or begin < stop:
            conn.execute("CALL refresh_continuous_aggregate(%s::regclass, %s::timestamptz, %s::timestamptz)",
                         (view, begin, stop))
