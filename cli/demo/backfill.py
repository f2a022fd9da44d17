"""The demo's history: simulated samples for the past days, stored with their rollups as they load.

Plain PostgreSQL: the rollup watermark is first moved to the end of the history (materializing what
came before it, as the rollup job would), so every backfilled row lies behind it and the loader
folds each batch's 1m/1h/1d aggregates into the ``*_mat`` tables in the transaction that stores the
rows (numpy aggregates, plain COPY into new buckets): the rollups equal an aggregate of the raw rows
as soon as a batch commits, and nothing is left to roll up afterwards. TimescaleDB: the continuous
aggregates are refreshed over the range at the end instead.

Speed, measured on this kind of machine (2 cores): rows COPY'd in key order rather than time order
cost a third as much index work; days load on two connections at once (disjoint buckets, so no lock
waits), and the device status goes through the loader's status step afterwards, day by day in time
order. History samples are minutes apart, so each one stands for its interval: one failed sample
marks a device down and one answer up again.

A fleet too large for :data:`ROW_BUDGET` rows at the fine step keeps the fine step for the last
``FINE_SPAN`` and samples the older days more sparsely (the charts of those days use hourly buckets
anyway).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt

from ingest.loader import Loader
from ingest.rows import MetricRows, to_micros
from ingest.simulator import Fleet
from ingest.status import Hysteresis
from netpulse.db import connect
from netpulse.metrics import MetricKind
from netpulse.migrations import storage_variant
from netpulse.rollups import advance_all
from netpulse.storage import refresh_rollups

__all__ = ["FINE_SPAN", "ROW_BUDGET", "HistoryPlan", "plan_history", "backfill"]

FINE_SPAN = timedelta(hours=12)
ROW_BUDGET = 10_000_000
ROWS_PER_DEVICE_STEP = 11          # the simulator's rows per device and time, on average
COARSE_STEPS_S = (300, 600, 900, 1200, 1800, 3600)
BATCH_ROWS = 1_000_000
WORKERS = 2
_MINUTE_US, _HOUR_US, _DAY_US = 60_000_000, 3_600_000_000, 86_400_000_000
_STATUS_METRICS = np.array([int(MetricKind.AVAILABLE), int(MetricKind.ICMP_LOSS_PCT), int(MetricKind.ICMP_RTT_MS)],
                           np.int16)


@dataclass(frozen=True, slots=True)
class HistoryPlan:
    """Sample times (epoch microseconds, ascending) and the steps that made them."""

    times: npt.NDArray[np.int64]
    fine_step_s: int
    coarse_step_s: int
    fine_from: datetime

    @property
    def steps(self) -> int:
        return len(self.times)


def plan_history(n_devices: int, start: datetime, end: datetime, *, fine_step_s: int = 300,
                 row_budget: int = ROW_BUDGET) -> HistoryPlan:
    """Times from ``start`` to ``end`` (exclusive, cut to a whole minute): every ``fine_step_s`` over the
    last ``FINE_SPAN``, and before it the finest step of ``COARSE_STEPS_S`` (at least the fine one)
    that keeps the whole history within ``row_budget`` rows."""
    end_us = to_micros(end) // _MINUTE_US * _MINUTE_US
    fine_us = fine_step_s * 1_000_000
    fine_from_us = max(to_micros(start), end_us - int(FINE_SPAN.total_seconds()) * 1_000_000) // fine_us * fine_us
    fine = np.arange(fine_from_us, end_us, fine_us, dtype=np.int64)
    per_step = max(1, n_devices * ROWS_PER_DEVICE_STEP)
    older_s = max(0, (fine_from_us - to_micros(start)) // 1_000_000)
    coarse_s = next((s for s in COARSE_STEPS_S if s >= fine_step_s
                     and (older_s // s + len(fine)) * per_step <= row_budget), COARSE_STEPS_S[-1])
    coarse_us = coarse_s * 1_000_000
    coarse = np.arange(-(-to_micros(start) // coarse_us) * coarse_us, fine_from_us, coarse_us, dtype=np.int64)
    return HistoryPlan(np.concatenate([coarse, fine]), fine_step_s, coarse_s,
                       datetime.fromtimestamp(fine_from_us / 1e6, UTC))


def _batches(times: npt.NDArray[np.int64], n_devices: int) -> list[list[npt.NDArray[np.int64]]]:
    """Times grouped by UTC day, each day cut into batches of whole hours and about ``BATCH_ROWS`` rows."""
    days: list[list[npt.NDArray[np.int64]]] = []
    if not len(times):
        return days
    per_step = max(1, n_devices * ROWS_PER_DEVICE_STEP)
    for day in np.unique(times // _DAY_US):
        in_day = times[times // _DAY_US == day]
        batches: list[npt.NDArray[np.int64]] = []
        current: list[int] = []
        for hour in np.unique(in_day // _HOUR_US):
            steps = in_day[in_day // _HOUR_US == hour]
            if current and (len(current) + len(steps)) * per_step > BATCH_ROWS:
                batches.append(np.array(current, np.int64))
                current = []
            current.extend(steps.tolist())
        if current:
            batches.append(np.array(current, np.int64))
        days.append(batches)
    return days


def _in_key_order(rows: MetricRows) -> MetricRows:
    """Rows sorted by the primary key: each index page takes its rows in one visit (a third of the
    index work of time order)."""
    order = np.lexsort((rows.time_us, rows.ifindex, rows.metric_id, rows.device_id))
    return MetricRows(rows.time_us[order], rows.device_id[order], rows.metric_id[order], rows.ifindex[order],
                      rows.value[order])


def backfill(database_url: str, fleet: Fleet, ids: dict[str, int], plan: HistoryPlan,
             progress: Callable[[int], None] | None = None, *, workers: int = WORKERS) -> int:
    """Store ``plan``'s history of ``fleet`` (``ids``: device name -> id) with its rollups and status
    history; returns the rows stored."""
    device_ids = np.array([ids[d.name] for d in fleet.devices], np.int32)
    days = _batches(plan.times, len(fleet.devices))
    if not days:
        return 0
    end = datetime.fromtimestamp((int(plan.times[-1]) // _MINUTE_US + 1) * _MINUTE_US / 1e6, UTC)
    with connect(database_url, autocommit=True) as conn:
        variant = storage_variant(conn)
        if variant == "postgres":
            advance_all(conn, end, grace=timedelta(0))
    status_rows: dict[int, list[MetricRows]] = {}
    lock = threading.Lock()
    local = threading.local()

    def load_day(index: int) -> int:
        if not hasattr(local, "conn"):
            local.conn = connect(database_url, autocommit=True)
            local.loader = Loader()
            opened.append(local.conn)
        stored = 0
        for batch in days[index]:
            rows = fleet.sample(batch, device_ids=device_ids)
            keep = np.isin(rows.metric_id, _STATUS_METRICS) & (rows.ifindex == 0)
            with lock:
                status_rows.setdefault(index, []).append(MetricRows(
                    rows.time_us[keep], rows.device_id[keep], rows.metric_id[keep], rows.ifindex[keep],
                    rows.value[keep]))
            stored += local.loader.load(local.conn, _in_key_order(rows), status=False).inserted
            if progress:
                progress(len(batch))
        return stored

    opened: list[object] = []
    try:
        with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="backfill") as pool:
            stored = sum(pool.map(load_day, range(len(days))))
    finally:
        for c in opened:
            c.close()  # type: ignore[attr-defined]
    # Status moves on in time order: day by day, on one connection.
    status_loader = Loader(hysteresis=Hysteresis(down_after=1, up_after=1))
    with connect(database_url, autocommit=True) as conn:
        for index in range(len(days)):
            status_loader.update_status(conn, MetricRows.concat(status_rows.pop(index, [])))
        if variant == "timescale":
            refresh_rollups(conn, datetime.fromtimestamp(int(plan.times[0]) / 1e6, UTC), end, variant)
    return stored
