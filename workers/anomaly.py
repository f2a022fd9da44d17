"""Anomaly scoring job: each organization's recent minutes scored and stored.

Thin: :func:`analytics.anomaly.store.score_recent` reads, scores and upserts; this runs it per
organization. Scores are keyed by (device, metric, interface, minute) and upserted, so a retry or an
overlapping run rewrites the same rows.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import dramatiq
import structlog

from analytics.anomaly.store import score_recent
from netpulse.rollups import floor_minute
from workers.alerting import ALERTING
from workers.runtime import Runtime, current

log = structlog.get_logger("netpulse.workers.anomaly")


def _organizations(rt: Runtime) -> list[uuid.UUID]:
    with rt.connection() as conn:
        return [r[0] for r in conn.execute("SELECT DISTINCT organization_id FROM devices ORDER BY 1")]


# A run reads ~3 days of minutes per series: the time limit is generous, and a message older than
# a quarter of an hour is dropped (a newer one scores the same window).
@dramatiq.actor(actor_name="workers.score_anomalies", queue_name=ALERTING, max_retries=3, max_age=900_000,
                time_limit=1_800_000)
def score_anomalies() -> None:
    """Every few minutes (the scheduler sends it): the last hour of every organization's series."""
    rt = current()
    # Closed minutes only: the current minute's average is still filling.
    now = floor_minute(datetime.now(UTC))
    failure: Exception | None = None
    for org_id in _organizations(rt):
        try:
            with rt.connection() as conn:
                report = score_recent(conn, org_id, now)
        except Exception as exc:
            # One organization's failure does not starve the others; raising afterwards lets
            # Retries run the message again (the upsert makes that harmless).
            log.critical("netpulse.workers.anomaly_scoring_failed", org=str(org_id), exc_info=True)
            failure = failure or exc
            continue
        (log.info if report.anomalous else log.debug)(
            "netpulse.workers.anomalies_scored", org=str(org_id), series=report.series,
            points=report.points_stored, changed=report.rows_changed, anomalous=report.anomalous,
            seconds=round(report.seconds, 3))
    if failure is not None:
        raise failure


ACTORS = (score_anomalies,)
