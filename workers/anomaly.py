"""Anomaly scoring job: each organization's recent minutes scored and stored.

Thin: :func:`analytics.anomaly.store.score_recent` reads, scores and upserts; this runs it for each
organization on its own (``workers.alerting.for_each_organization``: one organization's failure is
logged and counted, the others go on, the next run covers it). Scores are keyed by (device, metric,
interface, minute) and upserted, so a retry or an overlapping run rewrites the same rows. The
database away retries the run quietly (``retry_on_outage``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import dramatiq
import structlog

from analytics.anomaly.store import score_recent
from netpulse.rollups import floor_minute
from workers.alerting import ALERTING, for_each_organization
from workers.outage import retry_on_outage
from workers.runtime import Runtime, current

log = structlog.get_logger("netpulse.workers.anomaly")


def _organizations(rt: Runtime) -> list[uuid.UUID]:
    with rt.connection() as conn:
        return [r[0] for r in conn.execute("SELECT DISTINCT organization_id FROM devices ORDER BY 1")]


# A run reads ~3 days of minutes per series: the time limit is generous, and a message older than
# a quarter of an hour is dropped (a newer one scores the same window).
@dramatiq.actor(actor_name="workers.score_anomalies", queue_name=ALERTING, max_retries=3, max_age=900_000,
                time_limit=1_800_000)
@retry_on_outage
def score_anomalies() -> None:
    """Every few minutes (the scheduler sends it): the last hour of every organization's series."""
    rt = current()
    # Closed minutes only: the current minute's average is still filling.
    now = floor_minute(datetime.now(UTC))

    def score(org_id: uuid.UUID) -> None:
        with rt.connection() as conn:
            report = score_recent(conn, org_id, now)
        (log.info if report.anomalous else log.debug)(
            "netpulse.workers.anomalies_scored", org=str(org_id), series=report.series,
            points=report.points_stored, changed=report.rows_changed, anomalous=report.anomalous,
            seconds=round(report.seconds, 3))

    for_each_organization(rt, "score_anomalies", _organizations(rt), score)


ACTORS = (score_anomalies,)
