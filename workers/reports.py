"""Report actors: every minute the scheduler's tick claims the runs that came due and hands them out;
one message per run makes it (``reports.runs`` holds the guarantees: once per schedule and period,
one worker at a time, its emails queued in the notification outbox with its file and sent from
there, failures retried and then recorded).

``schedule_reports`` also hands out again the unfinished runs no worker holds (a lost message, a
worker killed mid-run), so nothing waits on Redis redelivering a dead worker's message.
"""

from __future__ import annotations

from datetime import UTC, datetime

import dramatiq
import structlog

from netpulse.config import Settings, get_settings
from reports.runs import claim_due, execute_run, mark_enqueued, runs_to_resume
from workers.client import GENERATE_REPORT, REPORTS
from workers.notify import send_soon
from workers.outage import retry_on_outage
from workers.runtime import current

__all__ = ["REPORTS", "ACTORS", "configure", "generate_report", "schedule_reports", "tick"]

log = structlog.get_logger("netpulse.workers.reports")

_settings: Settings | None = None


def configure(settings: Settings | None) -> None:
    """Settings for the actors in this process (tests, the embedded stack); None: :func:`get_settings`."""
    global _settings
    _settings = settings


def _current_settings() -> Settings:
    return _settings if _settings is not None else get_settings()


@dramatiq.actor(actor_name=GENERATE_REPORT, queue_name=REPORTS, max_retries=20, min_backoff=1_000,
                max_backoff=3_600_000, time_limit=1_800_000)
@retry_on_outage
def generate_report(run_id: int) -> None:
    """Make report run ``run_id`` and queue its emails (sent at once, or by the outbox's sweeper); a
    failure that may pass is tried again later."""
    settings = _current_settings()
    with current().connection() as conn:
        outcome = execute_run(conn, run_id, max_attempts=settings.report_max_attempts)
    send_soon(outcome.outbox_ids)
    log.info("netpulse.workers.report_run", run_id=run_id, status=outcome.status, error=outcome.error)
    if outcome.status == "retry":
        raise dramatiq.Retry(f"report run {run_id}: {outcome.error}", delay=settings.report_retry_delay_ms)


def tick(now: datetime) -> list[int]:
    """Claim the runs due at ``now``, pick up the abandoned ones, and send a message for each."""
    with current().connection() as conn:
        run_ids = claim_due(conn, now)
        run_ids += [r for r in runs_to_resume(conn, now) if r not in run_ids]
        for run_id in run_ids:
            generate_report.send(run_id)
        mark_enqueued(conn, run_ids, now)
    return run_ids


@dramatiq.actor(actor_name="workers.schedule_reports", queue_name=REPORTS, max_retries=0, max_age=120_000)
@retry_on_outage
def schedule_reports() -> None:
    """Every minute (the scheduler sends it): the report runs that came due."""
    run_ids = tick(datetime.now(UTC))
    if run_ids:
        log.info("netpulse.workers.reports_scheduled", runs=run_ids)


ACTORS = (generate_report, schedule_reports)
