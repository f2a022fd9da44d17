"""Both storage variants everywhere: the suite runs on either (``--storage`` / NETPULSE_TEST_STORAGE),
fixtures and tests stay variant-neutral, and both variants' rollups answer alike on one scripted
history (when TimescaleDB is available here)."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
import pytest

from ingest.loader import Loader
from ingest.rows import MetricRows
from netpulse.migrations import migrate, storage_variant, timescale_available
from netpulse.rollups import advance
from tests.conftest import create_database, drop_database
from tests.factories import grid_rows, make_devices, make_org

TESTS = Path(__file__).parent
PLAIN_NAMES = re.compile(r"\b(metrics_1[mhd]_mat|rollup_watermark|rollup_fence|rollup_deltas)\b")


def test_the_session_database_has_the_requested_variant(db: psycopg.Connection, storage: str) -> None:
    assert storage_variant(db) == storage


def _is_plain_marked(node: ast.FunctionDef, module_marked: bool) -> bool:
    return module_marked or any("plain_storage" in ast.unparse(d) for d in node.decorator_list)


def _is_fixture(node: ast.FunctionDef) -> bool:
    return any("fixture" in ast.unparse(d) for d in node.decorator_list)


def test_no_fixture_or_test_names_the_plain_variants_tables() -> None:
    """Outside tests marked ``plain_storage``, no test or fixture reads or writes a ``*_mat`` table or
    the rollup watermark: what they check must hold on TimescaleDB too."""
    offenders = []
    for path in sorted(TESTS.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        module_marked = any(isinstance(n, ast.Assign) and "plain_storage" in ast.unparse(n) for n in tree.body)
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef):
                continue
            if not (node.name.startswith("test_") or _is_fixture(node)):
                continue
            if PLAIN_NAMES.search(ast.unparse(node)) and not _is_plain_marked(node, module_marked):
                offenders.append(f"{path.name}::{node.name}")
    assert offenders == []


# --- one scripted history, both variants ------------------------------------------------------------------

VIEWS = ("metrics_1m", "metrics_1h", "metrics_1d")


@pytest.fixture
def both_variants() -> Iterator[tuple[str, str]]:
    """A fresh database of each variant (TimescaleDB's background policies paused: the test runs them)."""
    plain_name, plain_url = create_database("netpulse_plain")
    ts_name, ts_url = create_database("netpulse_ts")
    try:
        with psycopg.connect(ts_url) as c:
            if not timescale_available(c):
                pytest.skip("both variants not compared: the timescaledb extension is not installed and preloaded "
                            "on this PostgreSQL server")
        migrate(plain_url, requested="postgres")
        migrate(ts_url, requested="timescale")
        with psycopg.connect(ts_url, autocommit=True) as c:
            c.execute("SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs "
                      "WHERE proc_name LIKE 'policy%'")
        yield plain_url, ts_url
    finally:
        drop_database(plain_name)
        drop_database(ts_name)


def _rollups(conn: psycopg.Connection) -> dict[str, list[tuple]]:
    return {view: conn.execute(
        f"SELECT bucket, device_id, metric_id, ifindex, count, round(sum::numeric, 6), min, max, "
        f"round(avg::numeric, 6) FROM {view} ORDER BY 1, 2, 3, 4").fetchall() for view in VIEWS}


def _raw_aggregates(conn: psycopg.Connection) -> dict[str, list[tuple]]:
    return {view: conn.execute(
        f"SELECT date_trunc('{unit}', time, 'UTC'), device_id, metric_id, ifindex, count(*), "
        "round(sum(value)::numeric, 6), min(value), max(value), round(avg(value)::numeric, 6) "
        "FROM metrics GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4").fetchall()
        for view, unit in zip(VIEWS, ("minute", "hour", "day"), strict=True)}


def _run_policies(conn: psycopg.Connection) -> None:
    """Each refresh policy once, lowest level first, as the scheduler would run them."""
    jobs = conn.execute(
        "SELECT j.job_id FROM timescaledb_information.jobs j "
        "JOIN timescaledb_information.continuous_aggregates c "
        "  ON j.hypertable_name IN (c.view_name, c.materialization_hypertable_name) "
        "WHERE j.proc_name = 'policy_refresh_continuous_aggregate' "
        "ORDER BY array_position(ARRAY['metrics_1m', 'metrics_1h', 'metrics_1d']::name[], c.view_name)").fetchall()
    assert len(jobs) == 3
    for (job_id,) in jobs:
        conn.execute("CALL run_job(%s)", (job_id,))


@pytest.mark.timescale
def test_both_variants_give_the_same_rollups_on_one_scripted_history(both_variants: tuple[str, str]) -> None:
    """A backfill of the last two days, live ticks, the plain variant's rollup job and TimescaleDB's
    refresh policies, late rows behind what both materialized, a retried batch and rows of the last
    seconds (real-time aggregation): at each step both variants' rollups equal each other and an
    aggregate of the raw rows."""
    plain_url, ts_url = both_variants
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(days=2)
    with psycopg.connect(plain_url, autocommit=True) as plain, psycopg.connect(ts_url, autocommit=True) as ts:
        ids = [make_devices(c, make_org(c), 4) for c in (plain, ts)]
        assert ids[0] == ids[1]
        devices = ids[0]
        loaders = (Loader(), Loader())

        def load(rows: MetricRows) -> None:
            for conn, loader in zip((plain, ts), loaders, strict=True):
                loader.load(conn, rows)

        def check(step: str) -> None:
            got = [_rollups(plain), _rollups(ts)]
            assert got[0] == got[1], step
            assert got[0] == _raw_aggregates(plain), step

        backfill = grid_rows(devices, start, n_times=2 * 24 * 60, step_s=60, seed=5)  # one a minute, two days
        for i in range(0, len(backfill), 5000):
            load(backfill.slice(i, i + 5000))
        check("backfill")

        advance(plain, now - timedelta(minutes=1), grace=timedelta(0))     # the plain variant's rollup job
        _run_policies(ts)
        check("materialized")

        late = grid_rows(devices, start + timedelta(hours=7, seconds=30), n_times=20, step_s=60, seed=6)
        load(late)                                                             # behind both watermarks
        check("late rows")

        load(MetricRows.concat([late, backfill.slice(100, 300)]))            # a retried batch: nothing new
        check("retried batch")

        recent = grid_rows(devices, now - timedelta(seconds=20), n_times=2, step_s=10, seed=7)
        load(recent)                                                           # not materialized anywhere yet
        check("real-time rows")
        assert int(np.sum([r[4] for r in _rollups(ts)["metrics_1d"]])) == len(backfill) + len(late) + len(recent)
