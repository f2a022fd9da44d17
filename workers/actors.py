"""Actors: parse arguments, call the library, persist. Rows are keyed, so retries are harmless."""

from __future__ import annotations

from typing import Any

import dramatiq
import numpy as np
import structlog

from ingest.icmp import PingTarget, ping_rows
from ingest.rows import MetricRows
from ingest.tcp import TcpTarget, connect_rows
from netpulse.rollups import advance_all
from netpulse.storage import maintain
from workers.runtime import current

log = structlog.get_logger("netpulse.workers")

PROBES, LOADS, MAINTENANCE = "probes", "loads", "maintenance"


@dramatiq.actor(actor_name="workers.probe_batch", queue_name=PROBES, max_retries=2, time_limit=120_000,
                max_age=300_000)
def probe_batch(devices: list[dict[str, Any]], tick_us: int) -> None:
    """Probe a batch of devices for one tick and hand the rows to the loader queue.

    ``devices``: dicts with id, name, address, simulated, count, timeout_s.
    """
    rt = current()
    parts: list[MetricRows] = []
    simulated = [d for d in devices if d["simulated"]]
    real = [d for d in devices if not d["simulated"]]
    if simulated and rt.fleet is not None:
        index = rt.fleet_index
        known = [d for d in simulated if d["name"] in index]
        if known:
            parts.append(rt.fleet.sample(
                np.array([tick_us], np.int64),
                device_indices=np.array([index[d["name"]] for d in known]),
                device_ids=_id_map(len(rt.fleet.devices), [(index[d["name"]], d["id"]) for d in known])))
    if real:
        if rt.icmp_allowed:
            parts.append(ping_rows([PingTarget(d["id"], d["address"], d.get("count", 3), d.get("timeout_s", 2.0))
                                    for d in real], tick_us, privileged=rt.icmp_privileged))
        else:
            parts.append(connect_rows([TcpTarget(d["id"], d["address"], rt.tcp_fallback_port,
                                                 d.get("timeout_s", 2.0)) for d in real], tick_us))
    rows = MetricRows.concat(parts)
    if len(rows):
        load_batch.send(rows.to_message())


def _id_map(size: int, pairs: list[tuple[int, int]]) -> np.ndarray:
    ids = np.zeros(size, np.int32)
    for idx, device_id in pairs:
        ids[idx] = device_id
    return ids


@dramatiq.actor(actor_name="workers.load_batch", queue_name=LOADS, max_retries=20, time_limit=300_000)
def load_batch(batch: dict[str, Any]) -> None:
    """Store one batch of rows (idempotent: a retry after a failure adds nothing twice)."""
    rt = current()
    with rt.connection() as conn:
        result = rt.loader.load(conn, MetricRows.from_message(batch))
    log.debug("netpulse.workers.batch_loaded", inserted=result.inserted, duplicates=result.duplicates)


@dramatiq.actor(actor_name="workers.advance_rollups", queue_name=MAINTENANCE, max_retries=3, max_age=120_000)
def advance_rollups() -> None:
    """Materialize closed minutes into the rollup tables (plain variant; TimescaleDB refreshes its own)."""
    from datetime import UTC, datetime

    rt = current()
    with rt.connection() as conn:
        for report in advance_all(conn, datetime.now(UTC)):
            if report.minute_rows:
                log.debug("netpulse.workers.rollups_advanced", until=str(report.end), rows=report.minute_rows)


@dramatiq.actor(actor_name="workers.maintain_storage", queue_name=MAINTENANCE, max_retries=3)
def maintain_storage() -> None:
    """Create partitions ahead and drop expired ones (plain variant; TimescaleDB needs nothing)."""
    from datetime import UTC, datetime

    rt = current()
    with rt.connection() as conn:
        report = maintain(conn, datetime.now(UTC), ahead_days=rt.partitions_ahead_days,
                          raw_retention_days=rt.retention_days)
    if report.created or report.dropped:
        log.info("netpulse.workers.storage_maintained", created=report.created, dropped=report.dropped)
