"""What an alert, a digest or a test says, and the synchronous test send. No broker here.

Notifications are built when their outbox rows are written (:mod:`analytics.notify.outbox`) and
carried unchanged through every attempt, so all attempts of one message send the same text. Links are
kept relative (``/alerts/<id>``) and made absolute with ``NETPULSE_NOTIFY_LINK_BASE_URL`` at send time.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from contextlib import nullcontext
from datetime import UTC, datetime

import psycopg
from sqlalchemy.orm import Session

from analytics.notify.base import Notification
from analytics.notify.channels import get_channel
from analytics.notify.outbox import (
    Message,
    RetryPolicy,
    SendResult,
    claim,
    deliver,
    enqueue,
    lease_s,
    psycopg_connection,
)
from netpulse.config import Settings

__all__ = ["RetryPolicy", "SendResult", "alert_notifications", "digest_notification", "make_test_notification",
           "send_test", "DIGEST_LISTED"]

DIGEST_LISTED = 20  # alerts named in a digest; the rest are counted


def _title(alert_type: str, device: str | None) -> str:
    what = alert_type.replace("_", " ").strip().capitalize() or "Alert"
    return f"{what} on {device}" if device else what


def alert_notifications(conn: psycopg.Connection, organization_id: uuid.UUID,
                        alert_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Notification]:
    """The notification of each alert as it stands now (resolved or not), by alert id."""
    rows = conn.execute(
        "SELECT a.id, a.alert_type, a.severity, a.message, a.created_at, a.resolved, d.name, s.name "
        "FROM alerts a LEFT JOIN devices d ON d.id = a.device_id LEFT JOIN sites s ON s.id = d.site_id "
        "WHERE a.organization_id = %s AND a.id = ANY(%s)", (organization_id, list(alert_ids))).fetchall()
    return {r[0]: Notification(title=_title(r[1], r[6]), severity=r[2], message=r[3], started_at=r[4], device=r[6],
                               site=r[7], alert_id=str(r[0]), resolved=r[5], link=f"/alerts/{r[0]}")
            for r in rows}


def digest_notification(conn: psycopg.Connection, organization_id: uuid.UUID, alert_ids: Sequence[uuid.UUID], *,
                        now: datetime | None = None) -> Notification:
    """One notification listing several alerts (the warning digest): oldest first, at most 20 named."""
    rows = conn.execute(
        "SELECT a.message, d.name, a.created_at FROM alerts a LEFT JOIN devices d ON d.id = a.device_id "
        "WHERE a.organization_id = %s AND a.id = ANY(%s) ORDER BY a.created_at, a.id",
        (organization_id, list(alert_ids))).fetchall()
    lines = [f"- {device or '-'}: {message}" for message, device, _ in rows[:DIGEST_LISTED]]
    if len(rows) > DIGEST_LISTED:
        lines.append(f"- ... and {len(rows) - DIGEST_LISTED} more")
    return Notification(title=f"{len(rows)} warning(s) in the last digest period", severity="warning",
                        message="\n".join(lines) or "no alerts",
                        started_at=rows[0][2] if rows else now or datetime.now(UTC), link="/alerts")


def make_test_notification(channel_name: str, now: datetime | None = None) -> Notification:
    return Notification(
        title=f"Test notification for channel {channel_name}", severity="info",
        message=f"This is a test sent with `netpulse notify test {channel_name}`. If you can read it, the channel "
                "works; no action is needed.",
        started_at=now or datetime.now(UTC), test=True)


def send_test(session: Session, organization_id: uuid.UUID, channel_name: str, *,
              settings: Settings) -> SendResult:
    """Send a test notification through the named channel now, once, recorded like any other message.

    Works on a disabled channel too (check it before enabling it). The rate limit is not applied (an
    operator checking a channel should not wait a minute) and a failure is not retried: the answer is
    what the caller reports. Everything is written in the session's transaction.
    """
    channel = get_channel(session, organization_id, channel_name)
    conn = psycopg_connection(session)
    [outbox_id] = enqueue(conn, organization_id, Message(
        kind="test", key=f"test:{uuid.uuid4()}", notification=make_test_notification(channel.name),
        max_attempts=1), channel_ids=[channel.id])
    policy = RetryPolicy(max_retries=0)
    [row] = claim(conn, lease=lease_s(settings), policy=policy, ids=[outbox_id])
    return deliver(lambda: nullcontext(conn), row, settings=settings, policy=policy)
