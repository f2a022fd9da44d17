"""Notification actors over the outbox; ``analytics.notify.outbox`` does the work.

Every message is an outbox row, written in the transaction that decided it. Two actors send rows:

- ``workers.sweep_outbox``, sent by the scheduler every ``NETPULSE_NOTIFY_SWEEP_S``: sends every due
  row (new, retry due, or claimed by a sender that died). It is what makes a lost broker message, a
  Redis restart or a killed worker only a delay;
- ``workers.deliver_outbox(ids)``, the fast path: :func:`send_soon` after a commit, and a delayed one
  for a retry that falls due within :data:`FAST_RETRY_MS`.

Both claim rows with ``FOR UPDATE SKIP LOCKED`` and a lease, so a row is never sent by two workers at
once; the same message delivered twice sends nothing the second time. Provider failures are not
Dramatiq retries: the row records them and falls due again after its backoff.
"""

from __future__ import annotations

from collections.abc import Sequence

import dramatiq
import structlog

from analytics.notify.outbox import RetryPolicy, SweepReport, send_due
from analytics.notify.ratelimit import RateLimiter
from netpulse.config import Settings, get_settings
from workers.outage import retry_on_outage
from workers.runtime import current

__all__ = ["NOTIFICATIONS", "ACTORS", "FAST_RETRY_MS", "configure", "deliver_outbox", "sweep_outbox", "send_soon"]

log = structlog.get_logger("netpulse.workers")

NOTIFICATIONS = "notifications"
FAST_RETRY_MS = 300_000  # retries due later than this are left to the sweeper (no long-delayed messages)
SWEEP_BUDGET_S = 60.0  # one sweep sends for at most this long; the next one goes on

_settings: Settings | None = None


def configure(settings: Settings | None) -> None:
    """Settings for the actors in this process (tests, the embedded stack); None: :func:`get_settings`."""
    global _settings
    _settings = settings


def _current_settings() -> Settings:
    # The worker process (`netpulse worker`) configures nothing here: it runs on the environment's settings.
    return _settings if _settings is not None else get_settings()


def _limiter() -> RateLimiter | None:
    client = current().redis
    return RateLimiter(client) if client is not None else None


def _retry_soon(outbox_id: int, delay_ms: int) -> None:
    if delay_ms <= FAST_RETRY_MS:
        # A little after the row is due, so the claim finds it due even with some clock skew.
        deliver_outbox.send_with_options(args=([outbox_id],), delay=delay_ms + 250)


def _send(ids: Sequence[int] | None, budget_s: float | None) -> SweepReport:
    settings = _current_settings()
    report = send_due(current().connection, settings=settings, policy=RetryPolicy.from_settings(settings),
                      limiter=_limiter(), ids=ids, budget_s=budget_s, on_retry=_retry_soon)
    with current().telemetry.batch() as t:
        for r in report.results:
            t.count("netpulse_notification_deliveries", (r.status.value,))
    for r in report.results:
        log.info("netpulse.workers.notification_attempted", outbox_id=r.outbox_id, attempt=r.attempt,
                 status=r.status.value, provider=r.answer.summary(120) if r.answer else None, error=r.error,
                 retry_in_ms=r.retry_in_ms, lost_claim=r.lost_claim or None)
    return report


@dramatiq.actor(actor_name="workers.deliver_outbox", queue_name=NOTIFICATIONS, max_retries=5, max_age=3_600_000,
                time_limit=600_000)
@retry_on_outage
def deliver_outbox(outbox_ids: list[int]) -> None:
    """Send these outbox rows if they are due and nobody else holds them (else: nothing to do)."""
    _send(outbox_ids, None)


@dramatiq.actor(actor_name="workers.sweep_outbox", queue_name=NOTIFICATIONS, max_retries=0, max_age=120_000,
                time_limit=600_000)
@retry_on_outage
def sweep_outbox() -> None:
    """Every few seconds (the scheduler sends it): every due row of the outbox, for up to a minute."""
    report = _send(None, SWEEP_BUDGET_S)
    if report.results:
        log.info("netpulse.workers.outbox_swept", sent=report.sent, retrying=report.retrying, failed=report.failed,
                 rate_limited=report.rate_limited)


def send_soon(outbox_ids: Sequence[int]) -> bool:
    """After the commit that wrote them: ask a worker to send these rows now. Best effort: when the
    broker cannot take the message, the sweeper sends them on its next run. False when not sent."""
    if not outbox_ids:
        return True
    try:
        for outbox_id in outbox_ids:  # one message each: several workers share a burst
            deliver_outbox.send([outbox_id])
    except Exception as exc:  # the rows are committed; only the shortcut is lost
        log.warning("netpulse.workers.send_soon_failed", rows=len(outbox_ids), error=str(exc))
        return False
    return True


ACTORS = (deliver_outbox, sweep_outbox)
