"""The notification actor: one delivery attempt per message; ``analytics.notify.delivery`` does the work.

Provider failures are not retried by Dramatiq's Retries middleware: a retryable failure adds the
next attempt's ``queued`` row and sends a new message for it, delayed by the backoff of
:class:`RetryPolicy` (settings ``NETPULSE_NOTIFY_*``). So every attempt has its own row, the schedule
is a plain function, and a wait for the rate limit does not use up the retry budget. The follow-up
message is sent before the attempt's transaction commits: if Redis refuses it, the transaction rolls
back and this message is retried as a whole, so no attempt is lost between the two stores.

Dramatiq's own retries (``max_retries`` below) only cover what the attempt cannot record itself:
the database or Redis failing mid-attempt. The attempt's transaction then rolls back, its row stays
``queued``, and the redelivered message makes it again.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import dramatiq
import structlog

from analytics.notify.base import Notification
from analytics.notify.delivery import RetryPolicy, attempt_delivery, queue_alert_deliveries, queue_digest_deliveries
from analytics.notify.ratelimit import RateLimiter
from netpulse.config import Settings, get_settings
from netpulse.db import make_sessionmaker
from netpulse.errors import ConfigError, NotFound
from workers.runtime import current

__all__ = ["NOTIFICATIONS", "configure", "deliver_notification", "notify_alert", "notify_digest"]

log = structlog.get_logger("netpulse.workers")

NOTIFICATIONS = "notifications"

_settings: Settings | None = None


def configure(settings: Settings | None) -> None:
    """Settings for the actor in this process (tests, the embedded stack); None: :func:`get_settings`."""
    global _settings
    _settings = settings


def _current_settings() -> Settings:
    # The worker process (`netpulse worker`) configures nothing here: it runs on the environment's settings.
    return _settings if _settings is not None else get_settings()


def _limiter() -> RateLimiter:
    client = getattr(deliver_notification.broker, "client", None)
    if client is None:
        raise ConfigError("notification rate limits are kept in Redis: run the workers on a Redis broker "
                          "(NETPULSE_REDIS_URL)")
    return RateLimiter(client)


@dramatiq.actor(actor_name="workers.deliver_notification", queue_name=NOTIFICATIONS, max_retries=10,
                min_backoff=1_000, max_backoff=300_000)
def deliver_notification(delivery_id: int, notification: dict[str, Any]) -> None:
    """Make queued delivery attempt ``delivery_id`` of ``notification`` (a :meth:`Notification.to_dict`)."""
    settings = _current_settings()

    def schedule(next_id: int, delay_ms: int) -> None:
        deliver_notification.send_with_options(args=(next_id, notification), delay=delay_ms)

    try:
        with make_sessionmaker(current().engine).begin() as session:
            result = attempt_delivery(session, delivery_id, Notification.from_dict(notification), settings=settings,
                                      policy=RetryPolicy.from_settings(settings), limiter=_limiter(),
                                      schedule=schedule)
    except NotFound:
        # Sent just before the row's transaction committed; it is there a moment later.
        raise dramatiq.Retry(f"delivery {delivery_id} not visible yet", delay=1_000) from None
    if result.skipped:
        log.info("netpulse.workers.notification_skipped", delivery_id=delivery_id, status=result.status.value)
        return
    with current().telemetry.batch() as t:
        t.count("netpulse_notification_deliveries", (result.status.value,))
    log.info("netpulse.workers.notification_attempted", delivery_id=delivery_id, status=result.status.value,
             provider=result.answer.summary(120) if result.answer else None, error=result.error,
             next_delivery_id=result.next_delivery_id, next_delay_ms=result.next_delay_ms)


def notify_alert(alert_id: uuid.UUID, *, channel_ids: Sequence[int] | None = None,
                 channel_names: Sequence[str] | None = None) -> list[int]:
    """Queue a delivery of the alert on every enabled channel of its organization (or those named).

    Returns the ids of the queued first attempts. The messages are sent after the rows are committed.
    """
    settings = _current_settings()
    with make_sessionmaker(current().engine).begin() as session:
        queued = queue_alert_deliveries(session, alert_id, link_base=settings.notify_link_base(),
                                        channel_ids=channel_ids, channel_names=channel_names)
    for delivery_id, notification in queued:
        deliver_notification.send(delivery_id, notification.to_dict())
    return [delivery_id for delivery_id, _ in queued]


def notify_digest(organization_id: uuid.UUID, alert_ids: Sequence[uuid.UUID],
                  channel_names: Sequence[str]) -> list[int]:
    """Queue one digest of ``alert_ids`` on each named channel; returns the queued delivery ids."""
    settings = _current_settings()
    with make_sessionmaker(current().engine).begin() as session:
        queued = queue_digest_deliveries(session, organization_id, alert_ids, channel_names=channel_names,
                                         link_base=settings.notify_link_base())
    for delivery_id, notification in queued:
        deliver_notification.send(delivery_id, notification.to_dict())
    return [delivery_id for delivery_id, _ in queued]
