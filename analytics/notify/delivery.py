"""Deliveries: queue them for an alert, make one attempt, decide what comes next. No broker here.

Every attempt is a ``notification_deliveries`` row that starts ``queued`` and ends ``sent``,
``failed`` or ``rate_limited``. :func:`attempt_delivery` makes the attempt for one queued row and,
when another is due (a retryable failure within the retry budget, or a wait for the rate limit),
adds the next ``queued`` row and hands its id and delay to ``schedule``. The broker side (the
``workers.deliver_notification`` actor) is only that callback.

Schedule: after failed attempt *n* (1-based) the next comes :meth:`RetryPolicy.delay_ms` later:
``min_backoff * 2^(n-1)`` plus up to 25 % jitter, capped at ``max_backoff`` and never sooner than
the provider's Retry-After; after attempt ``1 + max_retries`` it stays failed. A rate-limited
attempt keeps its number (it was never made) and waits until the window has room.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from analytics.notify.base import Notification, ProviderAnswer, TransportError, truncate
from analytics.notify.channels import build_channel, get_channel
from analytics.notify.ratelimit import RateLimiter
from netpulse.config import Settings
from netpulse.errors import NetPulseError, NotFound
from netpulse.schema import (
    Alert,
    DeliveryStatus,
    Device,
    NotificationChannel,
    NotificationDelivery,
    Site,
)

__all__ = ["RetryPolicy", "AttemptResult", "Schedule", "ANSWER_LIMIT", "notification_for_alert",
           "make_test_notification", "queue_alert_deliveries", "queue_delivery", "attempt_delivery", "send_test",
           "digest_notification", "queue_digest_deliveries"]

ANSWER_LIMIT = 2000  # characters of a provider's answer kept per attempt
# Called with (next delivery id, delay in ms) before the transaction that created that row commits.
Schedule = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_retries: int = 5
    min_backoff_ms: int = 15_000
    max_backoff_ms: int = 3_600_000
    jitter: float = 0.25  # spreads retries of many deliveries that failed together; < 1 keeps delays growing

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(settings.notify_max_retries, settings.notify_min_backoff_ms, settings.notify_max_backoff_ms)

    def may_retry(self, attempt: int) -> bool:
        """Whether a retryable failure of attempt ``attempt`` gets another attempt."""
        return attempt <= self.max_retries

    def base_delay_ms(self, attempt: int) -> int:
        return min(self.max_backoff_ms, self.min_backoff_ms * 2 ** min(attempt - 1, 32))

    def delay_ms(self, attempt: int, *, retry_after_ms: int | None = None,
                 rng: Callable[[], float] = random.random) -> int:
        """How long after failed attempt ``attempt`` the next one is made."""
        base = self.base_delay_ms(attempt)
        delay = min(self.max_backoff_ms, base + int(base * self.jitter * rng()))
        return max(delay, min(retry_after_ms or 0, self.max_backoff_ms))


@dataclass(frozen=True, slots=True)
class AttemptResult:
    delivery_id: int
    status: DeliveryStatus
    answer: ProviderAnswer | None = None
    error: str | None = None
    next_delivery_id: int | None = None  # the attempt scheduled after this one
    next_delay_ms: int | None = None
    skipped: bool = False  # the row was no longer queued (a redelivered message): nothing was done

    @property
    def ok(self) -> bool:
        return self.status == DeliveryStatus.SENT


def _title(alert_type: str, device: str | None) -> str:
    what = alert_type.replace("_", " ").strip().capitalize() or "Alert"
    return f"{what} on {device}" if device else what


def notification_for_alert(session: Session, alert_id: uuid.UUID, *, link_base: str | None) -> Notification:
    row = session.execute(
        select(Alert, Device.name, Site.name)
        .outerjoin(Device, Device.id == Alert.device_id)
        .outerjoin(Site, Site.id == Device.site_id)
        .where(Alert.id == alert_id)).one_or_none()
    if row is None:
        raise NotFound(f"no alert {alert_id}", code="ALERT_NOT_FOUND", details={"alert_id": str(alert_id)})
    alert, device, site = row
    return Notification(title=_title(alert.alert_type, device), severity=alert.severity, message=alert.message,
                        started_at=alert.created_at, device=device, site=site, alert_id=str(alert.id),
                        resolved=alert.resolved,
                        link=f"{link_base.rstrip('/')}/alerts/{alert.id}" if link_base else None)


def make_test_notification(channel_name: str, now: datetime | None = None) -> Notification:
    return Notification(
        title=f"Test notification for channel {channel_name}", severity="info",
        message=f"This is a test sent with `netpulse notify test {channel_name}`. If you can read it, the channel "
                "works; no action is needed.",
        started_at=now or datetime.now(UTC), test=True)


def queue_delivery(session: Session, channel: NotificationChannel, alert_id: uuid.UUID | None, *, attempt: int = 1,
                   scheduled_at: datetime | None = None) -> NotificationDelivery:
    row = NotificationDelivery(organization_id=channel.organization_id, channel_id=channel.id, alert_id=alert_id,
                               attempt=attempt, status=DeliveryStatus.QUEUED.value, provider_ids=[],
                               scheduled_at=scheduled_at or datetime.now(UTC))
    session.add(row)
    session.flush()
    return row


def queue_alert_deliveries(session: Session, alert_id: uuid.UUID, *, link_base: str | None,
                           channel_ids: Sequence[int] | None = None,
                           channel_names: Sequence[str] | None = None) -> list[tuple[int, Notification]]:
    """A queued first attempt per enabled channel of the alert's organization, or of those of them named
    by ``channel_ids`` / ``channel_names`` (the alert engine routes by name). Unknown names are skipped.

    Returns (delivery id, notification) pairs for the caller to hand to the broker after committing.
    """
    notification = notification_for_alert(session, alert_id, link_base=link_base)
    org = session.scalar(select(Alert.organization_id).where(Alert.id == alert_id))
    query = select(NotificationChannel).where(NotificationChannel.organization_id == org,
                                              NotificationChannel.enabled.is_(True))
    if channel_ids is not None:
        query = query.where(NotificationChannel.id.in_(list(channel_ids)))
    if channel_names is not None:
        query = query.where(NotificationChannel.name.in_(list(channel_names)))
    channels = session.scalars(query.order_by(NotificationChannel.id)).all()
    return [(queue_delivery(session, channel, alert_id).id, notification) for channel in channels]


def digest_notification(session: Session, alert_ids: Sequence[uuid.UUID], *, link_base: str | None,
                        now: datetime | None = None) -> Notification:
    """One notification listing several alerts (the warning digest): the worst first, at most 20 named."""
    rows = session.execute(
        select(Alert.message, Device.name, Alert.created_at)
        .outerjoin(Device, Device.id == Alert.device_id)
        .where(Alert.id.in_(list(alert_ids))).order_by(Alert.created_at)).all()
    lines = [f"- {device or '-'}: {message}" for message, device, _ in rows[:20]]
    if len(rows) > 20:
        lines.append(f"- ... and {len(rows) - 20} more")
    return Notification(title=f"{len(rows)} warning(s) in the last digest period", severity="warning",
                        message="\n".join(lines) or "no alerts",
                        started_at=rows[0][2] if rows else now or datetime.now(UTC),
                        link=f"{link_base.rstrip('/')}/alerts" if link_base else None)


def queue_digest_deliveries(session: Session, organization_id: uuid.UUID, alert_ids: Sequence[uuid.UUID], *,
                            channel_names: Sequence[str], link_base: str | None) -> list[tuple[int, Notification]]:
    """One queued delivery of the digest per enabled named channel (recorded without an alert: it
    covers several)."""
    notification = digest_notification(session, alert_ids, link_base=link_base)
    channels = session.scalars(select(NotificationChannel).where(
        NotificationChannel.organization_id == organization_id, NotificationChannel.enabled.is_(True),
        NotificationChannel.name.in_(list(channel_names))).order_by(NotificationChannel.id)).all()
    return [(queue_delivery(session, channel, None).id, notification) for channel in channels]


def _finish(row: NotificationDelivery, status: DeliveryStatus, answer: ProviderAnswer | None,
            error: str | None) -> None:
    row.status = status.value
    row.finished_at = datetime.now(UTC)  # not now(): that is the start of a transaction that spans the send
    row.error = truncate(error, ANSWER_LIMIT) if error else None
    if answer is not None:
        row.provider_status = answer.status
        row.provider_answer = truncate(answer.body, ANSWER_LIMIT)
        row.provider_ids = list(answer.ids)


def attempt_delivery(session: Session, delivery_id: int, notification: Notification, *, settings: Settings,
                     policy: RetryPolicy, limiter: RateLimiter | None = None,
                     schedule: Schedule | None = None, allow_disabled: bool = False) -> AttemptResult:
    """Make the attempt recorded as queued row ``delivery_id``, inside the caller's transaction.

    The row is locked for the whole attempt, so a redelivered message for it waits and then finds it
    finished (``skipped``). Without ``schedule`` nothing is retried or postponed (a synchronous test
    send); without ``limiter`` the channel's rate limit is not applied. Provider refusals, transport
    errors and channel misconfiguration all end as a finished row, never as an exception.
    """
    row = session.get(NotificationDelivery, delivery_id, with_for_update=True, populate_existing=True)
    if row is None:
        raise NotFound(f"no notification delivery {delivery_id} (yet)", code="DELIVERY_NOT_FOUND")
    if row.status != DeliveryStatus.QUEUED:
        return AttemptResult(delivery_id, DeliveryStatus(row.status), skipped=True)
    channel = session.get(NotificationChannel, row.channel_id)
    assert channel is not None  # the foreign key is RESTRICT

    def follow_up(attempt: int, delay_ms: int) -> NotificationDelivery | None:
        if schedule is None:
            return None
        nxt = queue_delivery(session, channel, row.alert_id, attempt=attempt,
                             scheduled_at=datetime.now(UTC) + timedelta(milliseconds=delay_ms))
        schedule(nxt.id, delay_ms)
        return nxt

    if not channel.enabled and not allow_disabled:
        error = f"channel {channel.name!r} is disabled"
        _finish(row, DeliveryStatus.FAILED, None, error)
        return AttemptResult(row.id, DeliveryStatus.FAILED, error=error)
    try:
        sender = build_channel(channel.kind, channel.config, settings)
    except NetPulseError as exc:  # missing setting or bad stored config: no retry will fix it
        _finish(row, DeliveryStatus.FAILED, None, exc.message)
        return AttemptResult(row.id, DeliveryStatus.FAILED, error=exc.message)

    if limiter is not None and (wait_ms := limiter.acquire(channel.id, channel.rate_limit_per_minute)):
        error = f"over {channel.rate_limit_per_minute}/min for channel {channel.name!r}; next try in {wait_ms} ms"
        _finish(row, DeliveryStatus.RATE_LIMITED, None, error)
        nxt = follow_up(row.attempt, wait_ms)
        return AttemptResult(row.id, DeliveryStatus.RATE_LIMITED, error=error,
                             next_delivery_id=nxt.id if nxt else None, next_delay_ms=wait_ms if nxt else None)

    answer: ProviderAnswer | None = None
    failure: str | None = None
    try:
        answer = sender.send(notification)
    except TransportError as exc:
        failure = exc.message
    if answer is not None and answer.ok:
        _finish(row, DeliveryStatus.SENT, answer, None)
        return AttemptResult(row.id, DeliveryStatus.SENT, answer)

    _finish(row, DeliveryStatus.FAILED, answer, failure)
    retryable = answer.retryable if answer is not None else True
    nxt, delay = None, None
    if retryable and policy.may_retry(row.attempt):
        delay = policy.delay_ms(row.attempt, retry_after_ms=answer.retry_after_ms if answer else None)
        nxt = follow_up(row.attempt + 1, delay)
    return AttemptResult(row.id, DeliveryStatus.FAILED, answer, failure, next_delivery_id=nxt.id if nxt else None,
                         next_delay_ms=delay if nxt else None)


def send_test(session: Session, organization_id: uuid.UUID, channel_name: str, *,
              settings: Settings) -> AttemptResult:
    """Send a test notification through the named channel now, once, recorded as a delivery without alert.

    Works on a disabled channel too (check it before enabling it). The rate limit is not applied (an operator
    checking a channel should not wait a minute) and a failure is not retried: the answer is what the caller
    reports.
    """
    channel = get_channel(session, organization_id, channel_name)
    row = queue_delivery(session, channel, None)
    return attempt_delivery(session, row.id, make_test_notification(channel.name), settings=settings,
                            policy=RetryPolicy(max_retries=0), allow_disabled=True)
