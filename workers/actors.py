"""Actors: parse arguments, call the library, persist. Rows are keyed, so retries are harmless.

An outage of the database or Redis makes an actor retry quietly (``retry_on_outage``: one log line per
attempt, no traceback). A probe is worth nothing once its slot has passed, so a probe message retried
past its devices' interval is dropped and counted rather than dead-lettered; a batch of rows is worth
loading late, so it is retried for about a quarter of an hour.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import dramatiq
import structlog

from ingest.rows import MetricRows
from netpulse.probe_status import outcomes_from_message, outcomes_to_message
from netpulse.rollups import advance_all
from netpulse.storage import maintain
from workers.outage import retry_on_outage
from workers.probes import probe, stale
from workers.runtime import current

log = structlog.get_logger("netpulse.workers")

PROBES, LOADS, MAINTENANCE = "probes", "loads", "maintenance"


# Retried (0.5 s doubling) until its tick is older than the devices' interval: then dropped, counted.
@dramatiq.actor(actor_name="workers.probe_batch", queue_name=PROBES, max_retries=10, time_limit=120_000,
                max_age=300_000)
@retry_on_outage
def probe_batch(devices: list[dict[str, Any]], tick_us: int) -> None:
    """Probe a batch of devices for one tick and hand the rows to the loader queue.

    ``devices``: dicts with id, name, address, simulated, count, timeout_s, interval_s. Devices
    whose tick is already older than their interval are skipped (the next slot's probe is due);
    their probe leases are given back either way.
    """
    rt = current()
    late = {d["id"] for d in stale(devices, tick_us)}
    try:
        if late:
            log.warning("netpulse.workers.probes_stale", devices=len(late))
        todo = [d for d in devices if d["id"] not in late]
        lag_s = max(0.0, time.time() - tick_us / 1e6)
        probed = probe(rt, todo, tick_us)
        if len(probed.rows) or probed.outcomes:
            load_batch.send({**probed.rows.to_message(), "p": outcomes_to_message(probed.outcomes)})
        with rt.telemetry.batch() as t:
            t.count("netpulse_probes_skipped", ("stale",), len(late))
            t.observe("netpulse_probe_lag_seconds", lag_s, n=len(todo))
            for (kind, ok), n in Counter((o.kind, o.ok) for o in probed.outcomes).items():
                t.count("netpulse_probes", (str(kind), "ok" if ok else "failed"), n)
    finally:
        if rt.leases is not None:
            rt.leases.release([d["id"] for d in devices], tick_us)


@dramatiq.actor(actor_name="workers.load_batch", queue_name=LOADS, max_retries=20, time_limit=300_000)
@retry_on_outage
def load_batch(batch: dict[str, Any]) -> None:
    """Store one batch of rows and probe outcomes (idempotent: a retry after a failure adds nothing twice)."""
    rt = current()
    with rt.connection() as conn:
        result = rt.loader.load(conn, MetricRows.from_message(batch), outcomes_from_message(batch.get("p", ())))
    with rt.telemetry.batch() as t:
        for name, n in (("inserted", result.inserted), ("duplicate", result.duplicates),
                        ("rejected", result.rejected)):
            t.count("netpulse_loader_rows", (name,), n)
    log.debug("netpulse.workers.batch_loaded", inserted=result.inserted, duplicates=result.duplicates)


@dramatiq.actor(actor_name="workers.advance_rollups", queue_name=MAINTENANCE, max_retries=3, max_age=120_000)
@retry_on_outage
def advance_rollups() -> None:
    """Materialize closed minutes into the rollup tables (plain variant; TimescaleDB refreshes its own)."""
    from datetime import UTC, datetime

    rt = current()
    with rt.connection() as conn:
        for report in advance_all(conn, datetime.now(UTC)):
            if report.minute_rows:
                log.debug("netpulse.workers.rollups_advanced", until=str(report.end), rows=report.minute_rows)


@dramatiq.actor(actor_name="workers.maintain_storage", queue_name=MAINTENANCE, max_retries=3, max_age=3_600_000)
@retry_on_outage
def maintain_storage() -> None:
    """Create partitions ahead and drop expired ones (plain variant; TimescaleDB needs nothing)."""
    from datetime import UTC, datetime

    rt = current()
    with rt.connection() as conn:
        report = maintain(conn, datetime.now(UTC), ahead_days=rt.partitions_ahead_days,
                          raw_retention_days=rt.retention_days)
    if report.created or report.dropped:
        log.info("netpulse.workers.storage_maintained", created=report.created, dropped=report.dropped)


ACTORS = (probe_batch, load_batch, advance_rollups, maintain_storage)
