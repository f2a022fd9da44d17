"""analytics.fleet against the real database: rollup choice, weighted averages, tenancy, summaries."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import polars as pl
import psycopg
import pytest

from analytics.fleet import (
    UNASSIGNED_SITE,
    bucket_floor,
    devices_needing_attention,
    fleet_summary,
    latency_series,
    recent_rows,
    rollup_for,
)
from ingest.loader import Loader
from ingest.rows import MetricRows
from ingest.status import Hysteresis
from netpulse.metrics import MetricKind
from tests.factories import make_org

RTT = int(MetricKind.ICMP_RTT_MS)
T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def site(db: psycopg.Connection, org: uuid.UUID, name: str) -> int:
    row = db.execute("INSERT INTO sites (organization_id, name, slug) VALUES (%s, %s, %s) RETURNING id",
                     (org, name, name.lower())).fetchone()
    assert row is not None
    return int(row[0])


def device(db: psycopg.Connection, org: uuid.UUID, name: str, site_id: int | None) -> int:
    row = db.execute("INSERT INTO devices (organization_id, name, address, device_type, site_id)"
                     " VALUES (%s, %s, %s, 'router', %s) RETURNING id", (org, name, name, site_id)).fetchone()
    assert row is not None
    return int(row[0])


def series(dev: int, start: datetime, minutes: int, every_s: int, value: float,
           metric: int = RTT, ifindex: int = 0) -> list[tuple[datetime, int, int, int, float]]:
    n = minutes * 60 // every_s
    return [(start + timedelta(seconds=i * every_s), dev, metric, ifindex, value) for i in range(n)]


@pytest.mark.parametrize(("span", "table"), [
    (timedelta(minutes=60), "metrics_1m"), (timedelta(hours=6), "metrics_1m"),
    (timedelta(hours=6, seconds=1), "metrics_1h"), (timedelta(days=14), "metrics_1h"),
    (timedelta(days=14, seconds=1), "metrics_1d"), (timedelta(days=365), "metrics_1d"),
])
def test_rollup_for_picks_by_range(span: timedelta, table: str) -> None:
    assert rollup_for(T0, T0 + span) == table


def test_rollup_for_rejects_empty_ranges_and_naive_times() -> None:
    with pytest.raises(ValueError, match="empty time range"):
        rollup_for(T0, T0)
    with pytest.raises(ValueError, match="naive"):
        latency_series(None, uuid.uuid4(), T0.replace(tzinfo=None), T0)  # type: ignore[arg-type]
    assert bucket_floor(T0 + timedelta(minutes=59, seconds=59), "metrics_1h") == T0


def test_latency_is_weighted_by_samples_per_site_and_bucket(db: psycopg.Connection) -> None:
    org, other = make_org(db, "acme"), make_org(db, "other")
    a, b = site(db, org, "Alpha"), site(db, org, "Bravo")
    a1, a2 = device(db, org, "a1", a), device(db, org, "a2", a)
    b1, loose = device(db, org, "b1", b), device(db, org, "loose", None)
    theirs = device(db, other, "theirs", site(db, other, "Alpha"))
    rows = (series(a1, T0, 5, 20, 10.0) + series(a2, T0, 5, 60, 40.0) + series(b1, T0, 5, 30, 5.0)
            + series(loose, T0, 5, 60, 7.0) + series(theirs, T0, 5, 20, 999.0)
            + series(a1, T0, 5, 20, 555.0, metric=int(MetricKind.CPU_PCT))    # another metric
            + series(a1, T0, 5, 20, 777.0, ifindex=3))                         # an interface, not the device
    Loader().load(db, MetricRows.from_tuples(rows))

    df = latency_series(db, org, T0, T0 + timedelta(minutes=60))
    assert df.schema == pl.Schema({"bucket": pl.Datetime("us", "UTC"), "site": pl.String(),
                                   "rtt_ms": pl.Float64()})
    assert df["site"].unique().sort().to_list() == ["Alpha", "Bravo", UNASSIGNED_SITE]
    alpha = df.filter(pl.col("site") == "Alpha")
    assert alpha["bucket"].to_list() == [T0 + timedelta(minutes=m) for m in range(5)]
    # Per minute: a1 gives 3 samples of 10 ms, a2 one of 40 ms -> (30 + 40) / 4, not (10 + 40) / 2.
    assert alpha["rtt_ms"].to_list() == pytest.approx([17.5] * 5)
    assert df.filter(pl.col("site") == "Bravo")["rtt_ms"].to_list() == pytest.approx([5.0] * 5)
    assert df.filter(pl.col("site") == UNASSIGNED_SITE)["rtt_ms"].to_list() == pytest.approx([7.0] * 5)

    only_b = latency_series(db, org, T0, T0 + timedelta(minutes=60), site_id=b)
    assert only_b["site"].unique().to_list() == ["Bravo"]
    # A two-day range reads the hourly rollup: one bucket, the same weighted mean over the 5 minutes.
    hourly = latency_series(db, org, T0 - timedelta(days=1), T0 + timedelta(days=1)).filter(
        pl.col("site") == "Alpha")
    assert hourly["bucket"].to_list() == [T0] and hourly["rtt_ms"].to_list() == pytest.approx([17.5])
    # The window is [bucket of start, end): a start inside minute 2 keeps minute 2; end at minute 4 drops it.
    window = latency_series(db, org, T0 + timedelta(minutes=2, seconds=30), T0 + timedelta(minutes=4))
    assert sorted(set(window["bucket"].to_list())) == [T0 + timedelta(minutes=2), T0 + timedelta(minutes=3)]
    assert latency_series(db, uuid.uuid4(), T0, T0 + timedelta(hours=1)).is_empty()


def test_recent_rows_counts_the_organizations_raw_rows(db: psycopg.Connection) -> None:
    org, other = make_org(db, "acme"), make_org(db, "other")
    mine, theirs = device(db, org, "mine", None), device(db, other, "theirs", None)
    Loader().load(db, MetricRows.from_tuples(series(mine, T0, 10, 60, 1.0) + series(theirs, T0, 10, 60, 1.0)))
    assert recent_rows(db, org, T0) == 10
    assert recent_rows(db, org, T0 + timedelta(minutes=7)) == 3
    assert recent_rows(db, other, T0 + timedelta(minutes=10)) == 0


def test_fleet_summary_counts_and_last_data(db: psycopg.Connection) -> None:
    org = make_org(db, "acme")
    empty = fleet_summary(db, org)
    assert empty.status_counts == {"unknown": 0, "up": 0, "degraded": 0, "down": 0}
    assert empty.total_devices == 0 and empty.last_metric_at is None
    devs = [device(db, org, f"d{i}", None) for i in range(3)]
    # Only latency rows, no availability samples: no device was ever checked, so the raw rows answer.
    recent = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
    Loader().load(db, MetricRows.from_tuples(series(devs[0], recent - timedelta(minutes=1), 1, 20, 3.0)))
    summary = fleet_summary(db, org)
    assert summary.status_counts["unknown"] == 3 and summary.total_devices == 3
    assert summary.last_metric_at == recent - timedelta(seconds=20)
    # Availability samples move status and last_checked; that is what "last data" reads then.
    # (No hysteresis here: one failed probe is enough to be down.)
    Loader(hysteresis=Hysteresis(down_after=1, degraded_after=1)).load(db, MetricRows.from_tuples([
        (recent, devs[1], int(MetricKind.AVAILABLE), 0, 1.0), (recent, devs[2], int(MetricKind.AVAILABLE), 0, 0.0)]))
    summary = fleet_summary(db, org)
    assert summary.status_counts == {"unknown": 1, "up": 1, "degraded": 0, "down": 1}
    assert summary.last_metric_at == recent
    assert summary.as_dict()["last_metric_at"] == recent.isoformat().replace("+00:00", "Z")


def test_devices_needing_attention_lists_down_then_degraded(db: psycopg.Connection) -> None:
    org, other = make_org(db, "acme"), make_org(db, "other")
    core = site(db, org, "Core")
    for name, status, since_min in [("a-down-new", "down", 5), ("b-down-old", "down", 50),
                                    ("c-degraded", "degraded", 90), ("d-up", "up", 10), ("e-unknown", "unknown", 1)]:
        dev = device(db, org, name, core if name != "b-down-old" else None)
        db.execute("UPDATE devices SET oper_status = %s, oper_status_since = %s WHERE id = %s",
                   (status, T0 - timedelta(minutes=since_min), dev))
    db.execute("UPDATE devices SET oper_status = 'down' WHERE id = %s", (device(db, other, "theirs", None),))

    df = devices_needing_attention(db, org)
    assert df["name"].to_list() == ["b-down-old", "a-down-new", "c-degraded"]
    assert df["site"].to_list() == [UNASSIGNED_SITE, "Core", "Core"]
    assert df["since"].to_list()[0] == T0 - timedelta(minutes=50)
    assert devices_needing_attention(db, org, limit=1)["name"].to_list() == ["b-down-old"]
