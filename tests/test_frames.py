"""analytics.frames and analytics.copy_decode against the real database: frames equal plain SQL, the
resolution choice, tenancy, scope filters, validation, exact timestamps and a large decode."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
import psycopg
import pytest
from psycopg import sql

from analytics.copy_decode import decode, fetch_columns, fetch_columns_copy
from analytics.frames import (
    RAW_SCHEMA,
    ROLLUP_SCHEMA,
    SERIES_KEY,
    Level,
    device_frame,
    load_metrics,
    pick_resolution,
    select_metrics,
    wide,
)
from ingest import copy_binary
from ingest.loader import Loader
from ingest.rows import MetricRows
from netpulse.errors import ValidationError
from netpulse.metrics import MetricKind
from netpulse.rollups import materialize
from netpulse.storage import existing_partitions, partitioned_tables
from tests.factories import grid_rows, make_devices, make_org

RTT, CPU, IF_IN = MetricKind.ICMP_RTT_MS, MetricKind.CPU_PCT, MetricKind.IF_IN_BPS
T0 = datetime(2026, 11, 20, tzinfo=UTC)  # a midnight, so every rollup bucket starts on it
RAW_FIELDS = [(n, t) for n, t in zip(copy_binary.COLUMNS, ("timestamptz", "int4", "int2", "int4", "float8"),
                                     strict=True)]


def plain(db: psycopg.Connection, org: uuid.UUID, table: str, start: datetime, end: datetime,
          metrics: list[int]) -> list[tuple[Any, ...]]:
    """The same data as a plain SELECT, row by row."""
    cols, t = (("r.time, r.device_id, r.metric_id, r.ifindex, r.value", "time") if table == "metrics" else
               ("r.bucket, r.device_id, r.metric_id, r.ifindex, r.avg, r.count, r.min, r.max", "bucket"))
    return db.execute(sql.SQL(
        "SELECT {cols} FROM {table} r JOIN devices d ON d.id = r.device_id WHERE d.organization_id = %s"
        " AND r.metric_id = ANY(%s) AND r.{t} >= %s AND r.{t} < %s ORDER BY 2, 3, 4, 1"
    ).format(cols=sql.SQL(cols), table=sql.Identifier(table), t=sql.Identifier(t)),
        (org, metrics, start, end)).fetchall()


def rows_of(df: pl.DataFrame) -> list[tuple[Any, ...]]:
    return list(df.drop("metric").iter_rows())


def devices_in(df: pl.DataFrame) -> set[int]:
    return set(df["device_id"].to_list())


def history(devices: list[int], days: int = 3) -> MetricRows:
    """Every 15 minutes over ``days`` days: RTT and CPU per device, an interface counter, and a few
    samples off the grid by some microseconds."""
    grid = grid_rows(devices, T0, n_times=days * 96, step_s=900, metrics=(RTT, CPU))
    extra = [(T0 + timedelta(hours=h, minutes=7, microseconds=123_457 * h), d, int(IF_IN), 2, 1e9 + h * 0.5)
             for d in devices for h in range(0, days * 24, 5)]
    off = MetricRows.from_tuples(extra)
    return MetricRows(*(np.concatenate([getattr(grid, f.name), getattr(off, f.name)])
                        for f in dataclasses.fields(MetricRows)))


@pytest.fixture
def fleet(db: psycopg.Connection) -> tuple[uuid.UUID, list[int]]:
    """Three days of history for three devices of "acme" and one of "other", half of it materialized
    (the rest read live by the rollup views, with an hour and a day split between the two)."""
    org, other = make_org(db, "acme"), make_org(db, "other")
    mine, theirs = make_devices(db, org, 3), make_devices(db, other, 1)
    Loader().load(db, history(mine + theirs))
    materialize(db, T0 + timedelta(days=1, hours=12, minutes=30))
    return org, mine


@pytest.mark.parametrize(("resolution", "table"), [
    ("raw", "metrics"), ("1m", "metrics_1m"), ("1h", "metrics_1h"), ("1d", "metrics_1d")])
def test_frame_equals_plain_sql(db: psycopg.Connection, fleet: tuple[uuid.UUID, list[int]],
                                resolution: Level, table: str) -> None:
    org, mine = fleet
    end = T0 + timedelta(days=3)
    df = load_metrics(db, org, metrics=[RTT, "cpu_pct", IF_IN], start=T0, end=end, resolution=resolution)
    expected = plain(db, org, table, T0, end, [int(RTT), int(CPU), int(IF_IN)])
    assert df.schema == (RAW_SCHEMA if resolution == "raw" else ROLLUP_SCHEMA)
    assert df.height == len(expected) > 0
    got = rows_of(df)
    if resolution == "raw":
        assert got == expected  # times to the microsecond, values bit for bit
    else:
        # Live buckets sum floats in whatever order the plan reads them: the average may differ in the last bit.
        assert [r[:4] + r[5:] for r in got] == [r[:4] + r[5:] for r in expected]
        assert [r[4] for r in got] == pytest.approx([r[4] for r in expected], rel=1e-12)
        raw = plain(db, org, "metrics", T0, end, [int(RTT), int(CPU), int(IF_IN)])
        assert df["count"].sum() == len(raw)
    assert df["metric"].cast(pl.String).to_list() == [MetricKind(m).metric_name for m in df["metric_id"]]
    assert devices_in(df) == set(mine)
    assert df.equals(df.sort(*SERIES_KEY, "time"))


@pytest.mark.parametrize(("span", "level"), [
    (timedelta(minutes=30), "raw"), (timedelta(hours=1), "raw"), (timedelta(hours=1, seconds=1), "1m"),
    (timedelta(hours=6), "1m"), (timedelta(days=2), "1h"), (timedelta(days=30), "1d")])
def test_auto_picks_the_resolution_by_range(span: timedelta, level: str) -> None:
    assert pick_resolution(T0, T0 + span) == level
    assert pick_resolution(T0, T0 + span, "1d") == "1d"


def test_auto_reads_what_it_picks(db: psycopg.Connection, fleet: tuple[uuid.UUID, list[int]]) -> None:
    org, _ = fleet
    cases: list[tuple[timedelta, Level]] = [(timedelta(minutes=45), "raw"), (timedelta(hours=5), "1m"),
                                            (timedelta(days=2), "1h"), (timedelta(days=20), "1d")]
    for span, level in cases:
        auto = load_metrics(db, org, metrics=RTT, start=T0, end=T0 + span)
        forced = load_metrics(db, org, metrics=RTT, start=T0, end=T0 + span, resolution=level)
        assert auto.height > 0 and auto.equals(forced), level
    # Rollups keep the bucket that holds start; raw rows start at start itself.
    start = T0 + timedelta(hours=2, minutes=20)
    hourly = load_metrics(db, org, metrics=RTT, start=start, end=start + timedelta(days=1))
    assert hourly["time"].min() == T0 + timedelta(hours=2)
    raw = load_metrics(db, org, metrics=RTT, start=start, end=start + timedelta(minutes=30))
    assert raw["time"].min() == T0 + timedelta(hours=2, minutes=30)


def test_other_organizations_never_appear(db: psycopg.Connection) -> None:
    acme, other = make_org(db, "acme"), make_org(db, "other")
    mine, theirs = make_devices(db, acme, 2), make_devices(db, other, 2)  # the same names in both
    Loader().load(db, grid_rows(mine + theirs, T0, n_times=10))
    for org, devs in ((acme, mine), (other, theirs)):
        core = insert(db, "sites", org, "Core")
        edge = insert(db, "device_groups", org, "Edge")
        gold = insert(db, "tags", org, "Gold")
        db.execute("UPDATE devices SET site_id = %s, group_id = %s WHERE id = ANY(%s)", (core, edge, devs))
        db.execute("INSERT INTO device_tags SELECT unnest(%s::int[]), %s", (devs, gold))
    window: dict[str, Any] = {"metrics": [RTT, CPU], "start": T0, "end": T0 + timedelta(minutes=30)}
    assert devices_in(load_metrics(db, acme, **window)) == set(mine)
    assert devices_in(load_metrics(db, other, **window)) == set(theirs)
    for scope in ({"devices": ["dev-0", "dev-1"]}, {"site": "Core"}, {"group": "Edge"}, {"tag": "Gold"}):
        assert devices_in(load_metrics(db, acme, **window, **scope)) == set(mine), scope
    assert load_metrics(db, acme, **window, devices=theirs).is_empty()
    assert load_metrics(db, uuid.uuid4(), **window).is_empty()
    assert device_frame(db, acme)["device_id"].to_list() == mine


def insert(db: psycopg.Connection, table: str, org: uuid.UUID, name: str) -> int:
    row = db.execute(sql.SQL("INSERT INTO {} (organization_id, name, slug) VALUES (%s, %s, %s) RETURNING id").format(
        sql.Identifier(table)), (org, name, name.lower().replace(" ", "-"))).fetchone()
    assert row is not None
    return int(row[0])


def test_scope_filters(db: psycopg.Connection) -> None:
    org = make_org(db)
    d0, d1, d2, d3 = devs = make_devices(db, org, 4)
    Loader().load(db, grid_rows(devs, T0, n_times=5))
    core, branch = insert(db, "sites", org, "Core DC"), insert(db, "sites", org, "Branch")
    edge = insert(db, "device_groups", org, "Edge")
    gold, silver = insert(db, "tags", org, "gold"), insert(db, "tags", org, "silver")
    for dev, site_id, group_id in ((d0, core, edge), (d1, core, None), (d2, branch, edge)):
        db.execute("UPDATE devices SET site_id = %s, group_id = %s WHERE id = %s", (site_id, group_id, dev))
    db.execute("INSERT INTO device_tags VALUES (%s, %s), (%s, %s), (%s, %s)", (d0, gold, d2, gold, d2, silver))

    def scoped(**scope: Any) -> set[int]:
        return devices_in(load_metrics(db, org, metrics=RTT, start=T0, end=T0 + timedelta(hours=1), **scope))

    assert scoped() == {d0, d1, d2, d3}
    assert scoped(devices=[d1]) == {d1} and scoped(devices="dev-1") == {d1}
    assert scoped(devices=[d0, "dev-2"]) == {d0, d2}
    assert scoped(devices=[]) == set() and scoped(devices=["nope"]) == set()
    assert scoped(site="Core DC") == scoped(site="core-dc") == scoped(site=core) == {d0, d1}
    assert scoped(group="Edge") == scoped(group=edge) == {d0, d2}
    assert scoped(tag="gold") == scoped(tag=gold) == {d0, d2}
    assert scoped(tag="silver") == {d2}
    assert scoped(site="Core DC", tag="gold") == {d0}
    assert scoped(site="Core DC", group="Edge", devices=[d1]) == set()
    assert scoped(site="Nowhere") == set()
    names = device_frame(db, org)
    assert names.row(0) == (d0, "dev-0", "Core DC", "Edge") and names.row(3) == (d3, "dev-3", None, None)


@pytest.mark.parametrize(("kwargs", "field", "words"), [
    ({"metrics": ["icmp_rtt_ms", "bogus"]}, "metrics", ["'bogus'", "icmp_rtt_ms", "cpu_pct", "check_ok"]),
    ({"metrics": []}, "metrics", ["no metric", "cpu_pct"]),
    ({"start": datetime(2026, 11, 20)}, "start", ["naive"]),
    ({"end": datetime(2026, 11, 21)}, "end", ["naive"]),
    ({"end": T0}, "end", ["empty"]),
    ({"end": T0 - timedelta(hours=1)}, "end", ["not after start"]),
    ({"resolution": "5m"}, "resolution", ["'5m'", "raw, 1m, 1h, 1d"]),
    ({"devices": [1.5]}, "devices", ["1.5"]),
])
def test_bad_arguments_are_rejected_naming_the_field(kwargs: dict[str, Any], field: str, words: list[str]) -> None:
    args: dict[str, Any] = {"metrics": [RTT], "start": T0, "end": T0 + timedelta(hours=1)} | kwargs
    with pytest.raises(ValidationError) as info:
        select_metrics(uuid.uuid4(), **args)
    assert list(info.value.details) == [field]
    for word in words:
        assert word in info.value.details[field] and word in info.value.message


def test_unknown_metric_from_load_metrics(db: psycopg.Connection) -> None:
    with pytest.raises(ValidationError, match="unknown metric.*'rtt'.*known metrics: icmp_rtt_ms"):
        load_metrics(db, make_org(db), metrics="rtt", start=T0, end=T0 + timedelta(hours=1))


def test_empty_results_have_the_schema(db: psycopg.Connection) -> None:
    org = make_org(db)
    raw = load_metrics(db, org, metrics=RTT, start=T0, end=T0 + timedelta(minutes=5))
    daily = load_metrics(db, org, metrics=RTT, start=T0, end=T0 + timedelta(days=90))
    assert raw.schema == RAW_SCHEMA and raw.is_empty()
    assert daily.schema == ROLLUP_SCHEMA and daily.is_empty()
    assert wide(raw).columns == ["time", "device_id", "ifindex"]


STAMPS = [datetime(1900, 1, 1, tzinfo=UTC), datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
          datetime(1999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC), datetime(2000, 1, 1, tzinfo=UTC),
          datetime(2000, 1, 1, 0, 0, 0, 1, tzinfo=UTC), datetime(2038, 1, 19, 3, 14, 8, tzinfo=UTC),
          datetime(2262, 4, 12, 0, 0, 0, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)]


def test_decoded_timestamps_round_trip_exactly(db: psycopg.Connection) -> None:
    cols = fetch_columns(db, sql.SQL("SELECT t, i::int4 FROM unnest(%(ts)s::timestamptz[]) WITH ORDINALITY u(t, i)"
                                     " ORDER BY i"), {"ts": STAMPS}, [("t", "timestamptz"), ("i", "int4")])
    assert pl.Series(cols["t"]).cast(pl.Datetime("us", "UTC")).to_list() == STAMPS
    assert cols["i"].tolist() == list(range(1, len(STAMPS) + 1))


@pytest.fixture
def scratch_partitions(db: psycopg.Connection, storage: str) -> Iterator[None]:
    """Drops the partitions a test makes the loader create for far-off days (TimescaleDB's chunks go
    with the hypertable's truncation)."""
    if storage != "postgres":
        yield
        return
    tables = [t.name for t in partitioned_tables()]
    before = {t: set(existing_partitions(db, t)) for t in tables}
    yield
    for t in tables:
        for name in set(existing_partitions(db, t)) - before[t]:
            db.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))


@pytest.mark.usefixtures("scratch_partitions")
def test_metric_times_round_trip_before_2000_and_far_ahead(db: psycopg.Connection) -> None:
    org = make_org(db)
    dev = make_devices(db, org, 1)[0]
    stamps = [STAMPS[1], STAMPS[2], STAMPS[4], datetime(2150, 6, 1, 12, 0, 0, 123_456, tzinfo=UTC)]
    loader = Loader()
    for group in ([stamps[0]], stamps[1:3], [stamps[3]]):  # one batch per era: partitions only for those days
        loader.load(db, MetricRows.from_tuples([(ts, dev, int(RTT), 0, float(ts.year)) for ts in group]))
    df = load_metrics(db, org, metrics=RTT, start=datetime(1969, 1, 1, tzinfo=UTC),
                      end=datetime(2151, 1, 1, tzinfo=UTC), resolution="raw")
    assert df["time"].to_list() == stamps
    assert df["value"].to_list() == [float(ts.year) for ts in stamps]


def test_large_frame_decodes_exactly(db: psycopg.Connection) -> None:
    org = make_org(db)
    devs = make_devices(db, org, 100)
    rows = grid_rows(devs, T0, n_times=1000, step_s=20, seed=3)  # 200,000 rows
    Loader().load(db, rows)
    df = load_metrics(db, org, metrics=[RTT, CPU], start=T0, end=T0 + timedelta(hours=6), resolution="raw")
    assert df.height == len(rows) == 200_000
    order = np.lexsort((rows.time_us, rows.ifindex, rows.metric_id, rows.device_id))
    assert np.array_equal(df["time"].dt.epoch("us").to_numpy(), rows.time_us[order])
    assert np.array_equal(df["device_id"].to_numpy(), rows.device_id[order])
    assert np.array_equal(df["metric_id"].to_numpy(), rows.metric_id[order])
    assert np.array_equal(df["value"].to_numpy(), rows.value[order])
    assert df["metric"].value_counts().sort("metric")["count"].to_list() == [100_000, 100_000]


def test_wide_puts_a_devices_metrics_side_by_side(db: psycopg.Connection, fleet: tuple[uuid.UUID, list[int]]) -> None:
    org, mine = fleet
    df = load_metrics(db, org, metrics=[IF_IN, CPU, RTT], start=T0, end=T0 + timedelta(hours=1), devices=[mine[0]])
    w = wide(df)
    assert w.columns == ["time", "device_id", "ifindex", "icmp_rtt_ms", "cpu_pct", "if_in_bps"]
    device_rows, if_rows = w.filter(pl.col("ifindex") == 0), w.filter(pl.col("ifindex") == 2)
    assert device_rows["time"].to_list() == [T0 + timedelta(minutes=m) for m in (0, 15, 30, 45)]
    assert device_rows["if_in_bps"].null_count() == device_rows.height
    assert if_rows["if_in_bps"].to_list() == [1e9] and if_rows["cpu_pct"].to_list() == [None]
    rtt = df.filter(pl.col("metric") == "icmp_rtt_ms")["value"].to_list()
    assert device_rows["icmp_rtt_ms"].to_list() == rtt


def test_decoder_reads_the_encoders_stream_header_extension_and_empty() -> None:
    rows = grid_rows([1, 2], datetime(1990, 5, 1, tzinfo=UTC), n_times=50, step_s=7)
    payload = copy_binary.encode(rows)
    cols = decode(payload, RAW_FIELDS)
    for name, got in zip(copy_binary.COLUMNS, (rows.time_us, rows.device_id, rows.metric_id, rows.ifindex,
                                               rows.value), strict=True):
        assert cols[name].dtype == got.dtype and np.array_equal(cols[name], got), name
    # A header extension (length, then its bytes) is skipped.
    extended = payload[:15] + (4).to_bytes(4, "big") + b"\x01\x02\x03\x04" + payload[19:]
    assert np.array_equal(decode(extended, RAW_FIELDS)["value"], rows.value)
    empty = decode(copy_binary.encode(MetricRows.empty()), RAW_FIELDS)
    assert [(len(a), a.dtype) for a in empty.values()] == [
        (0, np.dtype(np.int64)), (0, np.dtype(np.int32)), (0, np.dtype(np.int16)), (0, np.dtype(np.int32)),
        (0, np.dtype(np.float64))]
    with pytest.raises(ValueError, match="signature"):
        decode(b"COPY" + payload[4:], RAW_FIELDS)
    with pytest.raises(ValueError, match="cut short"):
        decode(payload[:-2], RAW_FIELDS)


@pytest.mark.parametrize(("select", "fields", "match"), [
    ("SELECT v FROM (VALUES (1.0::float8), (NULL), (2.0)) t(v)", [("v", "float8")], "NULL"),
    ("SELECT 1::int4 AS a, 2::int4 AS b", [("a", "int8")], "tuples are not"),
    ("SELECT 1::int4 AS a, 2::int8 AS b", [("a", "int4"), ("b", "int4")], "tuples are not"),
    ("SELECT 1::int8 AS a", [("a", "int2"), ("b", "int2")], "do not all have 2 fields"),
    ("SELECT 'infinity'::timestamptz AS t", [("t", "timestamptz")], "infinite"),
])
def test_decoder_rejects_what_it_cannot_read(db: psycopg.Connection, select: str, fields: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        fetch_columns_copy(db, sql.SQL(select), None, fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(("select", "fields", "match"), [
    ("SELECT v FROM (VALUES (1.0::float8), (NULL), (2.0)) t(v)", [("v", "float8")], "NULL"),
    ("SELECT 'infinity'::timestamptz AS t", [("t", "timestamptz")], "infinite"),
])
def test_the_aggregate_path_rejects_nulls_and_infinity(db: psycopg.Connection, select: str, fields: Any,
                                                        match: str) -> None:
    with pytest.raises(ValueError, match=match):
        fetch_columns(db, sql.SQL(select), None, fields)


def test_both_fetch_paths_give_the_same_columns(db: psycopg.Connection) -> None:
    query = sql.SQL("SELECT now() + g * interval '1 ms' AS t, g::int4 AS d, (g % 7)::int2 AS m, random() AS v "
                    "FROM generate_series(-5000, 5000) g")
    fields: Any = [("t", "timestamptz"), ("d", "int4"), ("m", "int2"), ("v", "float8")]
    with db.transaction():  # one snapshot and one now() for both reads
        db.execute("SELECT setseed(0.5)")
        a = fetch_columns(db, query, None, fields)
        db.execute("SELECT setseed(0.5)")
        b = fetch_columns_copy(db, query, None, fields)
    for name, _ in fields:
        assert a[name].dtype == b[name].dtype and np.array_equal(a[name], b[name]), name
