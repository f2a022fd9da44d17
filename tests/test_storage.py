from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from ingest.loader import Loader
from netpulse.migrations import timescale_available
from netpulse.storage import existing_partitions, maintain
from tests.factories import grid_rows, make_devices, make_org

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.mark.plain_storage
def test_maintenance_creates_ahead_and_drops_only_expired_partitions(db: psycopg.Connection) -> None:
    devices = make_devices(db, make_org(db), 2)
    loader = Loader()
    # Rows 95, 91, 90 and 89 days old (retention 90 days) and today.
    for age in (95, 91, 90, 89, 0):
        loader.load(db, grid_rows(devices, NOW - timedelta(days=age), n_times=3))
    before = set(existing_partitions(db, "metrics"))
    assert {"metrics_p20260823", "metrics_p20260827", "metrics_p20260828", "metrics_p20260829",
            "metrics_p20261126"} <= before

    report = maintain(db, NOW, ahead_days=3, raw_retention_days=90)

    after = set(existing_partitions(db, "metrics"))
    # A partition goes only when its whole day is past the horizon (NOW - 90 days = 2026-08-28 12:00).
    assert {"metrics_p20260823", "metrics_p20260827"} <= set(report.dropped)
    assert "metrics_p20260828" in after and "metrics_p20260829" in after
    assert not any(name.startswith("metrics_p") and name < "metrics_p20260828" for name in after)
    for ahead in ("metrics_p20261127", "metrics_p20261128", "metrics_p20261129"):
        assert ahead in after
    # The rows of kept days are untouched.
    assert db.execute("SELECT count(*) FROM metrics WHERE time < %s", (NOW - timedelta(days=80),)
                      ).fetchone()[0] == 2 * (2 * 2 * 3)  # the 90- and 89-day-old loads
    assert "metrics_1m_mat_p20260823" in report.dropped  # minute rollups: 90 days too
    assert "metrics_1h_mat_p202608" in existing_partitions(db, "metrics_1h_mat")  # hourly rollups: two years
    assert maintain(db, NOW, ahead_days=3, raw_retention_days=90).dropped == []  # idempotent


@pytest.mark.plain_storage
def test_loader_recreates_a_partition_dropped_under_it(db: psycopg.Connection) -> None:
    devices = make_devices(db, make_org(db), 1)
    loader = Loader()
    loader.load(db, grid_rows(devices, NOW, n_times=2))
    db.execute("DROP TABLE metrics_p20261126")
    result = loader.load(db, grid_rows(devices, NOW + timedelta(minutes=5), n_times=2))
    assert result.inserted == 4


def test_timescale_variant(empty_db_url: str) -> None:
    """Runs the TimescaleDB migrations, loader and continuous aggregates when the extension exists."""
    with psycopg.connect(empty_db_url) as c:
        if not timescale_available(c):
            pytest.skip("TimescaleDB variant not tested: the timescaledb extension is not installed/preloaded "
                        "on this PostgreSQL server (it is not packaged for this Debian)")
    from netpulse.migrations import migrate
    from netpulse.storage import refresh_rollups

    migrate(empty_db_url, requested="timescale")
    with psycopg.connect(empty_db_url, autocommit=True) as c:
        devices = make_devices(c, make_org(c), 3)
        rows = grid_rows(devices, NOW, n_times=90)
        loader = Loader()
        assert loader.load(c, rows).inserted == len(rows)
        assert loader.load(c, rows).inserted == 0
        refresh_rollups(c, NOW - timedelta(days=1), NOW + timedelta(days=2))
        for view, bucket in (("metrics_1m", "minute"), ("metrics_1h", "hour"), ("metrics_1d", "day")):
            got = c.execute(f"SELECT bucket, device_id, metric_id, count, round(sum::numeric, 6) FROM {view} "
                            "ORDER BY 1, 2, 3").fetchall()
            want = c.execute(f"SELECT date_trunc('{bucket}', time, 'UTC'), device_id, metric_id, count(*), "
                             "round(sum(value)::numeric, 6) FROM metrics GROUP BY 1, 2, 3 ORDER BY 1, 2, 3").fetchall()
            assert got == want, view
        jobs = {r[0] for r in c.execute("SELECT proc_name FROM timescaledb_information.jobs").fetchall()}
        assert {"policy_refresh_continuous_aggregate", "policy_retention", "policy_compression"} <= jobs
