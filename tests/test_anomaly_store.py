"""analytics.anomaly.store and the workers.score_anomalies actor against the real database (and Redis):
a seasonal fleet with injected spikes is scored from its 1-minute rollup, stored idempotently, and
read back per organization."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import psycopg
import pytest
from dramatiq import Worker

from analytics.anomaly import (
    ANOMALOUS,
    SCORE_COLUMN,
    history_for,
    load_scores,
    score_frame,
    score_recent,
    top_anomalies,
)
from analytics.anomaly.store import SCORES_SCHEMA, TOP_SCHEMA
from ingest.loader import Loader
from ingest.rows import MetricRows, to_micros
from netpulse.errors import ValidationError
from netpulse.metrics import MetricKind
from netpulse.rollups import advance_all, floor_minute
from tests.factories import make_devices, make_org
from workers import broker as broker_mod
from workers import runtime

RTT, CPU, UTIL = MetricKind.ICMP_RTT_MS, MetricKind.CPU_PCT, MetricKind.IF_UTIL_PCT
NOW = datetime(2026, 11, 24, tzinfo=UTC)
DAYS = 4
HOUR = timedelta(hours=1)
MINUTE_US = 60_000_000
# (mean, daily amplitude, noise sigma) per metric.
SHAPE = {RTT: (20.0, 5.0, 0.3), CPU: (40.0, 15.0, 1.0), UTIL: (30.0, 10.0, 0.8)}

Key = tuple[int, int, int]   # device_id, metric_id, ifindex


@dataclass
class Fleet:
    org: uuid.UUID
    other: uuid.UUID
    mine: list[int]
    theirs: int
    spikes: dict[Key, datetime]   # the spiked minute of each spiked series
    frame: pl.DataFrame           # every series at 1-minute steps, as loaded (one sample a minute)


def seasonal(keys: list[Key], end: datetime, spikes: dict[Key, tuple[datetime, float]], seed: int = 7) -> pl.DataFrame:
    """DAYS days of one sample a minute (at second 17) per series: a daily sine plus noise, and the spikes."""
    rng = np.random.default_rng(seed)
    minutes = to_micros(end - timedelta(days=DAYS)) + np.arange(DAYS * 1440, dtype=np.int64) * MINUTE_US
    parts = []
    for i, (device, metric, ifindex) in enumerate(keys):
        mean, amp, sigma = SHAPE[MetricKind(metric)]
        phase = i * 0.7
        values = (mean + amp * np.sin(2 * np.pi * minutes / (86_400 * 1e6) + phase)
                  + rng.normal(0, sigma, len(minutes)))
        if (device, metric, ifindex) in spikes:
            at, size = spikes[(device, metric, ifindex)]
            values[np.searchsorted(minutes, to_micros(at))] += size
        parts.append(pl.DataFrame({"time_us": minutes + 17_000_000, "device_id": device, "metric_id": metric,
                                   "ifindex": ifindex, "value": values},
                                  schema={"time_us": pl.Int64, "device_id": pl.Int32, "metric_id": pl.Int16,
                                          "ifindex": pl.Int32, "value": pl.Float64}))
    return pl.concat(parts)


def load(db: psycopg.Connection, end: datetime) -> Fleet:
    """Org "acme": 3 devices with RTT and CPU, the third also two interfaces' utilisation; org "other":
    one device, named like acme's first. Spikes half an hour before ``end`` (acme RTT, other RTT) and a
    smaller one a quarter of an hour before it (acme CPU)."""
    org, other = make_org(db, "acme"), make_org(db, "other")
    mine, (theirs,) = make_devices(db, org, 3), make_devices(db, other, 1)
    keys = [(d, int(m), 0) for d in mine for m in (RTT, CPU)] + [(mine[2], int(UTIL), i) for i in (1, 2)]
    keys.append((theirs, int(RTT), 0))
    spikes = {(mine[0], int(RTT), 0): (end - timedelta(minutes=30), 40.0),
              (mine[1], int(CPU), 0): (end - timedelta(minutes=15), 20.0),
              (theirs, int(RTT), 0): (end - timedelta(minutes=30), 40.0)}
    frame = seasonal(keys, end, spikes)
    Loader().load(db, MetricRows(*(frame[c].to_numpy() for c in ("time_us", "device_id", "metric_id", "ifindex",
                                                                  "value"))))
    advance_all(db, end, grace=timedelta(0))
    return Fleet(org, other, mine, theirs, {k: floor_minute(at) for k, (at, _) in spikes.items()}, frame)


@pytest.fixture
def fleet(db: psycopg.Connection) -> Fleet:
    return load(db, NOW)


def expected_scores(fleet: Fleet, devices: list[int], end: datetime) -> pl.DataFrame:
    """score_frame over the same 1-minute data (one sample a minute: the bucket's average is the sample),
    the window's minutes as stored (real)."""
    start = end - HOUR - history_for()
    minutes = (fleet.frame.filter(pl.col("device_id").is_in(devices))
               .with_columns(pl.from_epoch(pl.col("time_us") // MINUTE_US * MINUTE_US, time_unit="us")
                             .dt.replace_time_zone("UTC").alias("time"))
               .filter(pl.col("time") >= start, pl.col("time") < end))
    scored = score_frame(minutes, series_col=["device_id", "metric_id", "ifindex"])
    return (scored.filter(pl.col("time") >= end - HOUR)
            .select("time", "device_id", "metric_id", "ifindex", pl.col(SCORE_COLUMN).cast(pl.Float32).alias("score"))
            .sort("device_id", "metric_id", "ifindex", "time"))


def test_recent_minutes_are_scored_stored_and_equal_score_frame(db: psycopg.Connection, fleet: Fleet) -> None:
    report = score_recent(db, fleet.org, NOW)
    assert (report.start, report.end) == (NOW - HOUR, NOW)
    assert report.series == 8 and report.points_stored == 8 * 60 == report.rows_changed
    assert report.points_scored == 8 * (60 + 3 * 1440)   # the window plus three days of history
    stored = load_scores(db, fleet.org, start=NOW - timedelta(days=1), end=NOW + HOUR)
    assert stored.schema == SCORES_SCHEMA and stored.height == report.points_stored
    assert stored["time"].min() == NOW - HOUR and stored["time"].max() == NOW - timedelta(minutes=1)
    assert set(stored["device_id"]) == set(fleet.mine)   # the other organization's series were not written

    # Each spike's minute is anomalous; the rest of the hour almost never.
    at = {k: v for k, v in fleet.spikes.items() if k[0] in fleet.mine}
    is_spike = pl.any_horizontal([(pl.col("device_id") == k[0]) & (pl.col("metric_id") == k[1])
                                  & (pl.col("ifindex") == k[2]) & (pl.col("time") == t) for k, t in at.items()])
    spikes, rest = stored.filter(is_spike), stored.filter(~is_spike)
    assert spikes.height == 2 and (spikes["score"] >= ANOMALOUS).all()
    assert (rest["score"] >= ANOMALOUS).sum() <= 0.02 * rest.height
    assert report.anomalous == int((stored["score"] >= ANOMALOUS).sum())
    assert stored["metric"].cast(pl.String).to_list() == [MetricKind(m).metric_name for m in stored["metric_id"]]

    # Stored scores are score_frame's over the same minutes, rounded to real (bit for bit: one sample a
    # minute makes each bucket's average the sample itself).
    expected = expected_scores(fleet, fleet.mine, NOW)
    assert stored.select(expected.columns).equals(expected)


def test_a_rerun_is_idempotent_and_a_changed_score_is_rewritten(db: psycopg.Connection, fleet: Fleet) -> None:
    first = score_recent(db, fleet.org, NOW)
    before = load_scores(db, fleet.org, start=NOW - HOUR, end=NOW)
    again = score_recent(db, fleet.org, NOW, device_batch=1)   # series never span batches: same scores
    assert (again.series, again.points_stored, again.anomalous) == (first.series, first.points_stored,
                                                                     first.anomalous)
    assert again.rows_changed == 0
    assert db.execute("SELECT count(*) FROM anomaly_scores").fetchone() == (first.points_stored,)
    assert load_scores(db, fleet.org, start=NOW - HOUR, end=NOW).equals(before)

    # A stored score that differs (as after late samples) is updated, not duplicated.
    touched = db.execute("UPDATE anomaly_scores SET score = 0.25 WHERE device_id = %s AND score <> 0.25",
                         (fleet.mine[0],)).rowcount
    assert touched > 0
    third = score_recent(db, fleet.org, NOW)
    assert third.rows_changed == touched
    assert load_scores(db, fleet.org, start=NOW - HOUR, end=NOW).equals(before)

    # A later run stores its own hour and leaves the earlier minutes in place.
    later = score_recent(db, fleet.org, NOW + timedelta(minutes=10))
    assert later.points_stored == 8 * 50   # no data after NOW
    assert db.execute("SELECT count(*) FROM anomaly_scores").fetchone() == (first.points_stored,)


def test_scores_are_read_per_organization_and_ranked(db: psycopg.Connection, fleet: Fleet) -> None:
    score_recent(db, fleet.org, NOW)
    other = score_recent(db, fleet.other, NOW)
    assert other.series == 1 and other.anomalous >= 1
    span = {"start": NOW - HOUR, "end": NOW}
    mine = load_scores(db, fleet.org, **span)
    theirs = load_scores(db, fleet.other, **span)
    assert set(mine["device_id"]) == set(fleet.mine) and set(theirs["device_id"]) == {fleet.theirs}
    # Names are per organization: both have a "dev-0".
    assert set(load_scores(db, fleet.org, devices="dev-0", **span)["device_id"]) == {fleet.mine[0]}
    assert load_scores(db, fleet.org, devices=[fleet.theirs], **span).is_empty()
    assert load_scores(db, fleet.org, devices=["nope"], **span).is_empty()
    rtt = load_scores(db, fleet.org, metrics="icmp_rtt_ms", **span)
    assert set(rtt["metric_id"]) == {int(RTT)} and rtt.height == 3 * 60
    hot = load_scores(db, fleet.org, min_score=ANOMALOUS, **span)
    assert hot.height >= 2 and (hot["score"] >= ANOMALOUS).all()
    assert load_scores(db, fleet.org, start=NOW, end=NOW + HOUR).is_empty()

    top = top_anomalies(db, fleet.org, NOW - HOUR, NOW, limit=5)
    assert top.schema == TOP_SCHEMA and top.height == 5
    assert top["max_score"].to_list() == sorted(top["max_score"].to_list(), reverse=True)
    assert set(top["device_id"]) <= set(fleet.mine)
    worst = {(r["device_id"], r["metric_id"], r["ifindex"]) for r in top.head(2).iter_rows(named=True)}
    assert worst == {k for k in fleet.spikes if k[0] in fleet.mine}
    first = top.row(0, named=True)
    assert first["peak_time"] == fleet.spikes[(first["device_id"], first["metric_id"], first["ifindex"])]
    assert first["name"] == f"dev-{fleet.mine.index(first['device_id'])}"
    assert first["points"] == 60 and first["anomalous"] >= 1
    # The ranking is the per-series maximum of the stored scores.
    per_series = (mine.group_by("device_id", "metric_id", "ifindex").agg(pl.col("score").max())
                  .sort("score", descending=True))
    assert top["max_score"].to_list() == per_series["score"].head(5).to_list()
    assert top_anomalies(db, fleet.other, NOW - HOUR, NOW)["device_id"].to_list() == [fleet.theirs]


def test_bad_arguments_are_named(db: psycopg.Connection) -> None:
    org = make_org(db)
    cases = [
        (lambda: score_recent(db, org, datetime(2026, 1, 1)), "now"),
        (lambda: score_recent(db, org, NOW, window=timedelta(0)), "window"),
        (lambda: score_recent(db, org, NOW, metrics=["cpu", RTT]), "metrics"),
        (lambda: load_scores(db, org, start=NOW, end=NOW), "end"),
        (lambda: load_scores(db, org, start=NOW - HOUR, end=NOW, min_score=2), "min_score"),
        (lambda: top_anomalies(db, org, NOW - HOUR, NOW, limit=0), "limit"),
    ]
    for call, field in cases:
        with pytest.raises(ValidationError) as info:
            call()
        assert field in info.value.details, info.value.message
    empty = score_recent(db, org, NOW)   # an organization without devices: nothing to do
    assert (empty.series, empty.points_scored, empty.points_stored) == (0, 0, 0)


@pytest.fixture
def broker(redis_url: str, db_url: str, db: psycopg.Connection) -> Iterator[object]:
    rt = runtime.configure(runtime.Runtime(db_url))
    b = broker_mod.install(broker_mod.make_broker(url=redis_url))
    from workers.anomaly import ACTORS

    for actor in ACTORS:   # install() only moves the actors it knows
        actor.broker = b
        b.declare_actor(actor)
    worker = Worker(b, worker_threads=1, worker_timeout=100)
    worker.start()
    yield b
    worker.stop()
    b.close()
    rt.engine.dispose()


def test_the_actor_scores_every_organization_through_redis(broker, db: psycopg.Connection) -> None:
    from workers.alerting import ALERTING
    from workers.anomaly import score_anomalies

    end = floor_minute(datetime.now(UTC))
    fleet = load(db, end)
    score_anomalies.send()
    broker.join(ALERTING, timeout=60_000)
    # The actor's hour ends at its own minute (this one, or the next if the clock turned meanwhile).
    stored = {org: load_scores(db, org, start=end - 2 * HOUR, end=end + HOUR) for org in (fleet.org, fleet.other)}
    assert set(stored[fleet.org]["device_id"]) == set(fleet.mine)
    assert set(stored[fleet.other]["device_id"]) == {fleet.theirs}
    assert stored[fleet.org].height in (8 * 60, 8 * 59)
    for (device, metric, ifindex), at in fleet.spikes.items():
        frame = next(f for f in stored.values() if device in f["device_id"])
        spike = frame.filter(pl.col("device_id") == device, pl.col("metric_id") == metric,
                             pl.col("ifindex") == ifindex, pl.col("time") == at)
        assert spike["score"].to_list()[0] >= ANOMALOUS
