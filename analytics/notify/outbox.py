"""The notification outbox: messages written in the transaction that decided them, and sent from there.

A message (an alert event, a digest, a report, a test) becomes one ``notification_outbox`` row per
channel, inserted by :func:`enqueue` inside the caller's transaction: the rows commit with the
decision or not at all. Nothing here needs the broker; :func:`send_due` sends what is due:

1. **claim**, in a short transaction: ``FOR UPDATE SKIP LOCKED`` picks due rows nobody holds and
   marks them ``sending`` with a claim token until ``claimed_until`` (the lease, :func:`lease_s`);
2. **send**, with no transaction open, carrying the row's idempotency key;
3. **record** the outcome in a short transaction, only while the claim is still this sender's.

So two senders never send one row at once, and a row recorded ``sent`` is never sent again. A
sender that dies between 1 and 3 leaves a claim that expires; the row is then due again, its lost
attempt is logged as ``unknown``, and the next attempt carries the same key, so a provider that
takes keys drops the repeat. A failed attempt is retried after the backoff of :class:`RetryPolicy`
while attempts remain; an answer that no retry can change (a 4xx, a missing setting) fails at once.

Any process may enqueue; the workers' sweeper (``workers.sweep_outbox``, every
``NETPULSE_NOTIFY_SWEEP_S``) sends whatever is due, and ``workers.notify.send_soon(ids)`` after the
commit gets new rows out at once. A scheduled report, mailed with its PDF in the transaction that
records the run::

    with conn.transaction():
        ...  # record the report run
        ids = enqueue(conn, org_id, Message(
            kind="report", key=f"report:{run_id}",
            notification=Notification(title="Weekly SLA report", severity="info", message=summary,
                                      started_at=period_start, link=f"/reports/{run_id}", kind="report",
                                      attachments=(Attachment("sla-2026-w47.pdf", "application/pdf", pdf),)),
            channel_ids=[c for c, _ in enabled_channels(conn, org_id, ["managers-email"])])
    send_soon(ids)  # optional: the sweeper sends them anyway

The same ``key`` enqueued twice adds nothing (a retried report job mails once). Email channels
carry the attachments; the other channels send the text and its link.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

import psycopg
import structlog
from psycopg.types.json import Jsonb

from analytics.notify.base import Attachment, Notification, ProviderAnswer, TransportError, truncate
from analytics.notify.channels import build_channel
from analytics.notify.ratelimit import RateLimiter
from netpulse import crypto
from netpulse.config import Settings
from netpulse.errors import NetPulseError, ValidationError
from netpulse.schema import DeliveryStatus, map_config_secrets

__all__ = ["Kind", "KINDS", "Message", "Claimed", "SendResult", "SweepReport", "Backlog", "RetryPolicy", "Connect",
           "OnRetry", "enqueue", "enabled_channels", "psycopg_connection", "claim", "deliver", "send_due", "lease_s",
           "backlog", "ANSWER_LIMIT"]

log = structlog.get_logger("netpulse.analytics.notify")

Kind = Literal["alert", "digest", "report", "test"]
KINDS: tuple[str, ...] = ("alert", "digest", "report", "test")
ANSWER_LIMIT = 2000  # characters of a provider's answer kept per attempt
MAX_KEY = 180  # the row's key is the message's key plus "/<channel id>", within varchar(200)
RECORD_GRACE_S = 120.0  # how long past its lease a sender keeps trying to record an outcome

# A context manager lending an autocommit psycopg connection (workers.runtime.Runtime.connection).
Connect = Callable[[], AbstractContextManager[psycopg.Connection]]
# Called with (outbox id, ms until its next attempt) after a retry or a wait was recorded.
OnRetry = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When a failed attempt is made again: after attempt *n* (1-based), ``min_backoff * 2^(n-1)`` plus
    up to 25 % jitter, capped at ``max_backoff`` and never sooner than the provider's Retry-After;
    a message gets ``1 + max_retries`` attempts unless its row says otherwise."""

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


def lease_s(settings: Settings) -> float:
    """How long a claim holds: longer than any send can take (SMTP makes up to four timed exchanges),
    short enough that a dead sender's rows go out again soon."""
    return 4 * settings.notify_timeout_s + 5


@dataclass(frozen=True, slots=True)
class Message:
    """What to send, before it has channels. ``key`` names the message (unique across the
    installation, e.g. ``alert:<uuid>:opened:0``); each channel's row gets ``<key>/<channel id>``."""

    kind: Kind
    key: str
    notification: Notification  # its attachments are kept beside the row (notification_attachments)
    alert_ids: Sequence[uuid.UUID] = ()
    reason: str | None = None  # the alert event: opened, escalated, resolved, sla, digest
    tier: int | None = None  # the escalation tier it goes to
    max_attempts: int | None = None  # None: 1 + NETPULSE_NOTIFY_MAX_RETRIES
    not_before: datetime | None = None

    def payload(self) -> dict[str, Any]:
        bare = replace(self.notification, attachments=())  # files go to their own table, not into JSON
        return {"notification": bare.to_dict(), "reason": self.reason, "tier": self.tier}


@dataclass(frozen=True, slots=True)
class Claimed:
    """A row this sender holds until ``claimed_until``; ``attempt`` is the number its attempt gets."""

    id: int
    organization_id: uuid.UUID
    channel_id: int
    kind: str
    key: str
    alert_ids: tuple[uuid.UUID, ...]
    payload: dict[str, Any]
    attempt: int
    max_attempts: int | None
    due_at: datetime
    claimed_at: datetime
    token: uuid.UUID
    held_until: float  # time.monotonic() when the claim runs out

    @property
    def notification(self) -> Notification:
        return Notification.from_dict(self.payload["notification"])


@dataclass(frozen=True, slots=True)
class SendResult:
    outbox_id: int
    status: DeliveryStatus  # sent, failed or rate_limited
    attempt: int
    answer: ProviderAnswer | None = None
    error: str | None = None
    delivery_id: int | None = None  # the attempt's notification_deliveries row
    retry_in_ms: int | None = None  # when the next attempt comes; None: no further attempt
    lost_claim: bool = False  # the lease ran out before the outcome was recorded: another sender has it

    @property
    def ok(self) -> bool:
        return self.status == DeliveryStatus.SENT


@dataclass
class SweepReport:
    sent: int = 0
    failed: int = 0  # for good
    retrying: int = 0
    rate_limited: int = 0
    results: list[SendResult] = field(default_factory=list)

    def add(self, r: SendResult) -> None:
        self.results.append(r)
        if r.ok:
            self.sent += 1
        elif r.status == DeliveryStatus.RATE_LIMITED:
            self.rate_limited += 1
        elif r.retry_in_ms is not None:
            self.retrying += 1
        else:
            self.failed += 1


# --- writing ---------------------------------------------------------------------------------------

def psycopg_connection(db: Any) -> psycopg.Connection:
    """The psycopg connection behind ``db`` (a psycopg connection or an SQLAlchemy session), so rows
    are written in the caller's transaction either way."""
    if isinstance(db, psycopg.Connection):
        return db
    from sqlalchemy.orm import Session

    if isinstance(db, Session):
        db.flush()
        raw = db.connection().connection.driver_connection
        assert isinstance(raw, psycopg.Connection)
        return raw
    raise TypeError(f"expected a psycopg connection or an SQLAlchemy session, not {type(db).__name__}")


def enabled_channels(db: Any, organization_id: uuid.UUID,
                     names: Sequence[str] | None = None) -> list[tuple[int, str]]:
    """(id, name) of the organization's enabled channels, or of those of them named (unknown names
    are left out), in name order."""
    conn = psycopg_connection(db)
    return [(int(r[0]), str(r[1])) for r in conn.execute(
        "SELECT id, name FROM notification_channels WHERE organization_id = %s AND enabled "
        "AND (%s::text[] IS NULL OR name = ANY(%s::text[])) ORDER BY name",
        (organization_id, None if names is None else list(names), None if names is None else list(names)))]


def enqueue(db: Any, organization_id: uuid.UUID, message: Message, *, channel_ids: Sequence[int]) -> list[int]:
    """Queue ``message`` on each of the organization's ``channel_ids`` in the caller's transaction.

    Returns the ids of the new rows; a channel that already has this message (same key) gets none,
    and ids of other organizations' channels are ignored.
    """
    if message.kind not in KINDS:
        raise ValidationError(f"unknown message kind {message.kind!r}; one of: {', '.join(KINDS)}")
    if not message.key or len(message.key) > MAX_KEY:
        raise ValidationError(f"a message key is 1 to {MAX_KEY} characters", details={"key": message.key[:MAX_KEY]})
    if not channel_ids:
        return []
    conn = psycopg_connection(db)
    ids = [int(r[0]) for r in conn.execute(
        "INSERT INTO notification_outbox (organization_id, channel_id, kind, idempotency_key, alert_ids, payload, "
        "max_attempts, next_attempt_at) "
        "SELECT %s, c.id, %s, %s || '/' || c.id, %s::uuid[], %s, %s, coalesce(%s, now()) "
        "FROM notification_channels c WHERE c.organization_id = %s AND c.id = ANY(%s) ORDER BY c.id "
        "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
        (organization_id, message.kind, message.key, list(message.alert_ids), Jsonb(message.payload()),
         message.max_attempts, message.not_before, organization_id, list(channel_ids))).fetchall()]
    if ids and message.notification.attachments:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO notification_attachments (outbox_id, filename, content_type, content) "
                "VALUES (%s, %s, %s, %s)",
                [(i, a.file_name, a.content_type, a.content) for i in ids for a in message.notification.attachments])
    return ids


# --- claiming --------------------------------------------------------------------------------------

_RETURNING = """
RETURNING o.id, o.organization_id, o.channel_id, o.kind, o.idempotency_key, o.alert_ids, o.payload, o.attempts,
          o.max_attempts, o.next_attempt_at, now(), p.was
"""
# Rows whose sender's lease ran out: the attempt it made (or not) counts, and they are due again.
_CLAIM_EXPIRED = """
WITH p AS (SELECT id, status AS was FROM notification_outbox
           WHERE status = 'sending' AND claimed_until < now() {ids}
           ORDER BY claimed_until LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
UPDATE notification_outbox o SET claim_token = %(token)s, claimed_until = now() + make_interval(secs => %(lease)s),
    attempts = o.attempts + 1
FROM p WHERE o.id = p.id
""" + _RETURNING
_CLAIM_DUE = """
WITH p AS (SELECT id, status AS was FROM notification_outbox
           WHERE status IN ('queued', 'failed') AND next_attempt_at <= now() {ids}
           ORDER BY next_attempt_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
UPDATE notification_outbox o SET status = 'sending', claim_token = %(token)s,
    claimed_until = now() + make_interval(secs => %(lease)s)
FROM p WHERE o.id = p.id
""" + _RETURNING
_ATTEMPT = """
INSERT INTO notification_deliveries (organization_id, channel_id, alert_id, attempt, status, provider_status,
    provider_answer, provider_ids, error, scheduled_at, created_at, finished_at, outbox_id)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, clock_timestamp(), %s) RETURNING id
"""


def claim(conn: psycopg.Connection, *, lease: float, policy: RetryPolicy, ids: Sequence[int] | None = None,
          limit: int = 1) -> list[Claimed]:
    """Take up to ``limit`` due rows (of ``ids`` only, when given) for ``lease`` seconds.

    A row whose previous sender's lease ran out has that attempt logged as ``unknown``; when it was
    the last one allowed, the row fails instead of being claimed again.
    """
    token = uuid.uuid4()
    params = {"token": token, "lease": float(lease), "limit": limit, "ids": list(ids) if ids is not None else None}
    where = "AND id = ANY(%(ids)s)" if ids is not None else ""
    claimed: list[Claimed] = []
    with conn.transaction():
        rows = conn.execute(_CLAIM_EXPIRED.format(ids=where), params).fetchall()
        if len(rows) < limit:
            rows += conn.execute(_CLAIM_DUE.format(ids=where), params | {"limit": limit - len(rows)}).fetchall()
        for r in rows:
            row = Claimed(id=r[0], organization_id=r[1], channel_id=r[2], kind=r[3], key=r[4], alert_ids=tuple(r[5]),
                          payload=r[6], attempt=r[7] + 1, max_attempts=r[8], due_at=r[9], claimed_at=r[10],
                          token=token, held_until=time.monotonic() + lease)
            if r[11] != "sending":
                claimed.append(row)
                continue
            lost = row.attempt - 1  # counted by the claim above
            error = ("the sender stopped before recording the outcome (its claim ran out); the provider may "
                     "or may not have it")
            conn.execute(_ATTEMPT, (row.organization_id, row.channel_id, _single(row.alert_ids), lost,
                                    DeliveryStatus.UNKNOWN.value, None, None, [], error, row.due_at, row.due_at,
                                    row.id))
            log.warning("netpulse.analytics.notify.claim_expired", outbox_id=row.id, attempt=lost)
            if lost >= (row.max_attempts or 1 + policy.max_retries):
                _record(conn, row, "failed", attempts=lost, retry_in_ms=None, error=error)
            else:
                claimed.append(row)
    return claimed


def _single(alert_ids: Sequence[uuid.UUID]) -> uuid.UUID | None:
    return alert_ids[0] if len(alert_ids) == 1 else None


# --- sending ---------------------------------------------------------------------------------------

def _absolute(n: Notification, link_base: str) -> Notification:
    # Links are stored relative ("/alerts/<id>"), so a changed NETPULSE_NOTIFY_LINK_BASE_URL holds for queued rows.
    if n.link and n.link.startswith("/"):
        return replace(n, link=link_base.rstrip("/") + n.link)
    return n


def _attachments(conn: psycopg.Connection, outbox_id: int) -> list[Attachment]:
    return [Attachment(r[0], r[1], bytes(r[2])) for r in conn.execute(
        "SELECT filename, content_type, content FROM notification_attachments WHERE outbox_id = %s ORDER BY id",
        (outbox_id,))]


_limiter_down = False  # one log line per change, not one per send


def _wait_ms(limiter: RateLimiter | None, channel_id: int, per_minute: int) -> int:
    """0 when the send may go now. A limiter that cannot be asked (Redis down) lets it go: a critical
    alert must not wait for Redis; a provider that is sent too much answers 429, which is retried."""
    global _limiter_down
    if limiter is None:
        return 0
    try:
        wait = limiter.acquire(channel_id, per_minute)
    except Exception as exc:  # any client error: the limiter is advice, not a gate
        if not _limiter_down:
            log.warning("netpulse.analytics.notify.rate_limiter_unavailable", error=str(exc))
        _limiter_down = True
        return 0
    if _limiter_down:
        log.info("netpulse.analytics.notify.rate_limiter_available")
    _limiter_down = False
    return wait


def deliver(connect: Connect, row: Claimed, *, settings: Settings, policy: RetryPolicy,
            limiter: RateLimiter | None = None, on_retry: OnRetry | None = None) -> SendResult:
    """Make the attempt of claimed ``row`` and record it. Provider refusals, transport errors and
    channel misconfiguration all end as a recorded outcome, never as an exception; an exception
    (the database gone) leaves the claim to run out, after which the row is due again."""
    with connect() as conn:
        found = conn.execute("SELECT name, kind, config, enabled, rate_limit_per_minute FROM notification_channels "
                             "WHERE id = %s", (row.channel_id,)).fetchone()
        assert found is not None  # the foreign key is RESTRICT
        name, kind, stored, enabled, per_minute = found
        config = map_config_secrets(stored, crypto.decrypt)  # secrets are stored encrypted (netpulse.crypto)
        if not enabled and row.kind != "test":
            return _finish(connect, row, name, None, f"channel {name!r} is disabled", retryable=False,
                           policy=policy, on_retry=on_retry)
        try:
            sender = build_channel(kind, config, settings)
        except NetPulseError as exc:  # a missing setting or bad stored config: no retry will fix it
            return _finish(connect, row, name, None, exc.message, retryable=False, policy=policy, on_retry=on_retry)
        wait = 0 if row.kind == "test" else _wait_ms(limiter, row.channel_id, per_minute)
        if wait:
            return _postpone(connect, row, name, wait, per_minute, on_retry)
        attachments = _attachments(conn, row.id) if sender.carries_attachments else []
    notification = replace(_absolute(row.notification, settings.notify_link_base()), attachments=tuple(attachments))
    answer: ProviderAnswer | None = None
    failure: str | None = None
    try:
        answer = sender.send(notification, key=row.key)
    except TransportError as exc:
        failure = exc.message
    if answer is not None and answer.ok:
        return _finish(connect, row, name, answer, None, retryable=False, policy=policy, on_retry=on_retry)
    retryable = answer.retryable if answer is not None else True
    return _finish(connect, row, name, answer, failure, retryable=retryable, policy=policy, on_retry=on_retry)


def _with_retries(connect: Connect, row: Claimed, fn: Callable[[psycopg.Connection], SendResult]) -> SendResult:
    """Record an outcome, trying again every second while the database is away: a send that went out
    must be recorded, or it is made again once the claim runs out. The claim token still matches
    after the lease as long as nobody claimed the row since, which nobody can while the database is
    away; so this keeps trying for two minutes past the lease."""
    give_up = row.held_until + RECORD_GRACE_S
    tries = 0
    while True:
        try:
            with connect() as conn:
                result = fn(conn)
            if tries:
                log.info("netpulse.analytics.notify.recorded_late", outbox_id=row.id, tries=tries + 1)
            return result
        except psycopg.OperationalError as exc:
            tries += 1
            if time.monotonic() + 1.0 > give_up:
                raise
            if tries == 1:
                log.warning("netpulse.analytics.notify.record_waiting", outbox_id=row.id,
                            error=str(exc).splitlines()[0])
            time.sleep(1.0)


def _postpone(connect: Connect, row: Claimed, channel: str, wait_ms: int, per_minute: int,
              on_retry: OnRetry | None) -> SendResult:
    error = f"over {per_minute}/min for channel {channel!r}; next try in {wait_ms} ms"

    def record(conn: psycopg.Connection) -> SendResult:
        with conn.transaction():
            (delivery_id,) = conn.execute(_ATTEMPT, (
                row.organization_id, row.channel_id, _single(row.alert_ids), row.attempt,
                DeliveryStatus.RATE_LIMITED.value, None, None, [], error, row.due_at, row.claimed_at,
                row.id)).fetchone() or (None,)
            # A wait is not an attempt: the row goes back to queued under the same attempt number.
            moved = conn.execute(
                "UPDATE notification_outbox SET status = 'queued', claim_token = NULL, claimed_until = NULL, "
                "next_attempt_at = clock_timestamp() + make_interval(secs => %s), last_error = %s "
                "WHERE id = %s AND claim_token = %s", (wait_ms / 1000, error, row.id, row.token)).rowcount
        return SendResult(row.id, DeliveryStatus.RATE_LIMITED, row.attempt, error=error, delivery_id=delivery_id,
                          retry_in_ms=wait_ms if moved else None, lost_claim=not moved)

    result = _with_retries(connect, row, record)
    if on_retry is not None and result.retry_in_ms is not None:
        _call(on_retry, row.id, wait_ms)
    return result


def _finish(connect: Connect, row: Claimed, channel: str, answer: ProviderAnswer | None, error: str | None, *,
            retryable: bool, policy: RetryPolicy, on_retry: OnRetry | None) -> SendResult:
    ok = answer is not None and answer.ok
    limit = row.max_attempts or 1 + policy.max_retries
    retry_ms = None
    if not ok and retryable and row.attempt < limit:
        retry_ms = policy.delay_ms(row.attempt, retry_after_ms=answer.retry_after_ms if answer else None)
    status = DeliveryStatus.SENT if ok else DeliveryStatus.FAILED
    reason = error or (None if ok or answer is None else f"provider answered {answer.summary(300)}")

    def record(conn: psycopg.Connection) -> SendResult:
        with conn.transaction():
            # The attempt first: its finished_at comes before the next attempt's due time.
            (delivery_id,) = conn.execute(_ATTEMPT, (
                row.organization_id, row.channel_id, _single(row.alert_ids), row.attempt, status.value,
                answer.status if answer else None, truncate(answer.body, ANSWER_LIMIT) if answer else None,
                list(answer.ids) if answer else [], truncate(error, ANSWER_LIMIT) if error else None, row.due_at,
                row.claimed_at, row.id)).fetchone() or (None,)
            mine = _record(conn, row, "sent" if ok else "failed", attempts=row.attempt, retry_in_ms=retry_ms,
                           error=reason, channel=channel)
        if not mine:
            log.warning("netpulse.analytics.notify.claim_lost", outbox_id=row.id, attempt=row.attempt,
                        status=status.value)
        return SendResult(row.id, status, row.attempt, answer, error, delivery_id,
                          retry_ms if mine else None, lost_claim=not mine)

    result = _with_retries(connect, row, record)
    if on_retry is not None and result.retry_in_ms is not None:
        _call(on_retry, row.id, result.retry_in_ms)
    return result


def _call(on_retry: OnRetry, outbox_id: int, delay_ms: int) -> None:
    try:
        on_retry(outbox_id, delay_ms)
    except Exception as exc:  # the row is recorded; the sweeper finds it without this hint
        log.info("netpulse.analytics.notify.retry_hint_lost", outbox_id=outbox_id, error=str(exc))


def _record(conn: psycopg.Connection, row: Claimed, status: str, *, attempts: int, retry_in_ms: int | None,
            error: str | None, channel: str | None = None) -> bool:
    """Write the row's outcome, and the alerts' side of it; False when the claim is no longer ours."""
    done = conn.execute(
        "UPDATE notification_outbox SET status = %s, attempts = %s, claim_token = NULL, claimed_until = NULL, "
        "sent_at = CASE WHEN %s = 'sent' THEN clock_timestamp() END, last_error = %s, "
        "next_attempt_at = CASE WHEN %s::integer IS NULL THEN NULL "
        "ELSE clock_timestamp() + make_interval(secs => %s::integer / 1000.0) END "
        "WHERE id = %s AND claim_token = %s",
        (status, attempts, status, None if status == "sent" else truncate(error or "", ANSWER_LIMIT) or None,
         retry_in_ms, retry_in_ms, row.id, row.token)).rowcount == 1
    if not done or row.kind not in ("alert", "digest") or not row.alert_ids:
        if done and status == "sent":
            conn.execute("DELETE FROM notification_attachments WHERE outbox_id = %s", (row.id,))
        return done
    details = Jsonb({"channel": channel, "reason": row.payload.get("reason"), "tier": row.payload.get("tier"),
                     "attempt": attempts, "outbox_id": row.id})
    if status == "sent":
        conn.execute("DELETE FROM notification_attachments WHERE outbox_id = %s", (row.id,))
        conn.execute("UPDATE alerts SET notified_at = coalesce(notified_at, clock_timestamp()), "
                     "delivery_status = 'delivered' WHERE organization_id = %s AND id = ANY(%s)",
                     (row.organization_id, list(row.alert_ids)))
        conn.execute("INSERT INTO alert_events (alert_id, time, kind, details) "
                     "SELECT a, clock_timestamp(), 'notified', %s FROM unnest(%s::uuid[]) a "
                     "WHERE EXISTS (SELECT 1 FROM alerts WHERE id = a)", (details, list(row.alert_ids)))
    elif retry_in_ms is None:
        # Failed for good: an alert that no other message reached, and none still may, is undelivered.
        gone = [r[0] for r in conn.execute(
            "UPDATE alerts a SET delivery_status = 'failed' WHERE a.organization_id = %s AND a.id = ANY(%s) "
            "AND a.delivery_status IS DISTINCT FROM 'delivered' AND NOT EXISTS ("
            "  SELECT 1 FROM notification_outbox o WHERE o.alert_ids @> ARRAY[a.id] AND o.id <> %s AND "
            "  (o.status IN ('queued', 'sending') OR (o.status = 'failed' AND o.next_attempt_at IS NOT NULL))) "
            "RETURNING a.id", (row.organization_id, list(row.alert_ids), row.id))]
        if gone:
            conn.execute("INSERT INTO alert_events (alert_id, time, kind, note, details) "
                         "SELECT a, clock_timestamp(), 'undelivered', 'not delivered: every channel failed', %s "
                         "FROM unnest(%s::uuid[]) a", (details, gone))
    return True


def send_due(connect: Connect, *, settings: Settings, policy: RetryPolicy, limiter: RateLimiter | None = None,
             ids: Sequence[int] | None = None, limit: int = 500, budget_s: float | None = None,
             on_retry: OnRetry | None = None) -> SweepReport:
    """Claim and send due rows one at a time (of ``ids`` only, when given) until none is left,
    ``limit`` were sent or ``budget_s`` seconds passed. Rows claimed by another sender are skipped."""
    report = SweepReport()
    started = time.monotonic()
    lease = lease_s(settings)
    while len(report.results) < limit and (budget_s is None or time.monotonic() - started < budget_s):
        with connect() as conn:
            rows = claim(conn, lease=lease, policy=policy, ids=ids, limit=1)
        if not rows:
            break
        report.add(deliver(connect, rows[0], settings=settings, policy=policy, limiter=limiter, on_retry=on_retry))
    return report


@dataclass(frozen=True, slots=True)
class Backlog:
    queued: int  # waiting for a first attempt or after a rate-limit wait
    retrying: int  # failed, with a next attempt planned
    sending: int  # claimed now
    due: int  # of those, due now (or whose claim ran out)
    oldest_due_s: float | None  # how long the longest-waiting due row has waited


def backlog(conn: psycopg.Connection, organization_id: uuid.UUID | None = None) -> Backlog:
    """What the outbox holds that is not finished (for /health and /metrics)."""
    r = conn.execute(
        "SELECT count(*) FILTER (WHERE status = 'queued'), "
        "count(*) FILTER (WHERE status = 'failed'), count(*) FILTER (WHERE status = 'sending'), "
        "count(*) FILTER (WHERE next_attempt_at <= now() AND status <> 'sending' OR claimed_until < now()), "
        "extract(epoch FROM now() - min(CASE WHEN status = 'sending' THEN claimed_until ELSE next_attempt_at END) "
        "FILTER (WHERE next_attempt_at <= now() AND status <> 'sending' OR claimed_until < now())) "
        "FROM notification_outbox WHERE (status IN ('queued', 'sending') OR "
        "(status = 'failed' AND next_attempt_at IS NOT NULL)) AND (%s::uuid IS NULL OR organization_id = %s)",
        (organization_id, organization_id)).fetchone()
    assert r is not None
    return Backlog(int(r[0]), int(r[1]), int(r[2]), int(r[3]), float(r[4]) if r[4] is not None else None)
