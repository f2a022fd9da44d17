"""A report's email: the file attached, sent once through an email notification channel.

:func:`email_report` is the one place a report leaves NetPulse. It records the send in
``report_deliveries`` around the provider call so that it happens at most once per run and channel:
the ``sending`` row is committed before the provider is called, so a worker killed during the call
leaves it behind, and the next attempt marks it ``unconfirmed`` (the provider may have taken it)
instead of sending the report again. A refusal the provider calls temporary (SMTP 4xx, HTTP 429/5xx)
or no answer at all leaves a ``failed`` row that a later attempt of the run sends again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from analytics.notify.base import Attachment, Notification, ProviderAnswer, TransportError, truncate
from analytics.notify.channels import build_channel
from netpulse.config import Settings
from netpulse.errors import NetPulseError
from reports.document import fmt

__all__ = ["DeliveryOutcome", "report_notification", "email_report", "ANSWER_LIMIT"]

ANSWER_LIMIT = 2000
INTERRUPTED = ("the worker stopped while the provider was being called; it may have accepted the email, so it "
               "is not sent again (no one gets a report twice)")


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    channel: str
    status: str  # sent | failed | unconfirmed
    retryable: bool = False
    error: str | None = None


_HEADLINE = {
    "availability": [("availability_pct", "Availability", "pct"), ("target_pct", "Target", "target"),
                     ("down_device_h", "Down (device-hours)", "number"), ("outages", "Outages", "count")],
    "performance": [("p50_ms", "Median RTT (ms)", "ms"), ("p95_ms", "p95 RTT (ms)", "ms"),
                    ("loss_pct", "Packet loss", "pct2"), ("saturated_links", "Saturated interfaces", "count")],
    "alerts": [("alerts", "Alerts opened", "count"), ("ack_median_s", "Median time to acknowledge", "duration"),
               ("resolve_median_s", "Median time to resolve", "duration")],
}


def report_notification(run: Mapping[str, Any], *, link: str | None = None) -> Notification:
    """The email of a finished run (a ``report_runs`` row as a mapping with its file)."""
    period = f"{run['period_label']} ({run['time_zone']})"
    title = f"{run['kind'].capitalize()} report: {run['scope_label']}, {run['period_label']}"
    figures = run.get("figures") or {}
    lines = [f"{label}: {fmt(figures.get(key), kind)}" for key, label, kind in _HEADLINE[run["kind"]]
             if key in figures]
    facts: tuple[tuple[str, str], ...] = (("Report", run["kind"]), ("Scope", run["scope_label"]), ("Period", period),
             ("File", f"{run['file_name']} ({len(run['content']) // 1024 + 1} KB)"))
    if run.get("schedule_name"):
        facts += (("Schedule", str(run["schedule_name"])),)
    message = "\n".join([*lines, "", "The report is attached."])
    return Notification(title=title, severity="info", message=message, started_at=run["period_start"], link=link,
                        kind="report", facts=facts,
                        attachments=(Attachment(run["file_name"], run["content_type"], bytes(run["content"])),))


def _finish(conn: Any, delivery_id: int, status: str, answer: ProviderAnswer | None, error: str | None) -> None:
    conn.execute("UPDATE report_deliveries SET status = %s, provider_status = %s, provider_answer = %s,"
                 " provider_ids = %s, error = %s, finished_at = %s WHERE id = %s",
                 (status, answer.status if answer else None, truncate(answer.body, ANSWER_LIMIT) if answer else None,
                  list(answer.ids) if answer else [], truncate(error, ANSWER_LIMIT) if error else None,
                  datetime.now(UTC), delivery_id))


def email_report(conn: Any, run_id: int, channel: Mapping[str, Any], notification: Notification, *,
                 settings: Settings) -> DeliveryOutcome:
    """Send run ``run_id``'s email through ``channel`` (a ``notification_channels`` row: id, name, kind,
    config, enabled) at most once; ``conn`` is in autocommit, so each state is committed as it is set."""
    name = str(channel["name"])
    row = conn.execute("SELECT id, status, attempts FROM report_deliveries WHERE run_id = %s AND channel_id = %s"
                       " FOR UPDATE", (run_id, channel["id"])).fetchone()
    if row is not None and row[1] in ("sent", "unconfirmed"):
        return DeliveryOutcome(name, row[1])
    if row is not None and row[1] == "sending":
        _finish(conn, row[0], "unconfirmed", None, INTERRUPTED)
        return DeliveryOutcome(name, "unconfirmed", error=INTERRUPTED)
    if row is None:
        delivery_id = conn.execute("INSERT INTO report_deliveries (run_id, channel_id, status) VALUES (%s, %s,"
                                   " 'sending') RETURNING id", (run_id, channel["id"])).fetchone()[0]
    else:
        delivery_id = row[0]
        conn.execute("UPDATE report_deliveries SET status = 'sending', attempts = attempts + 1, started_at = %s,"
                     " finished_at = NULL, error = NULL WHERE id = %s", (datetime.now(UTC), delivery_id))
    if not channel["enabled"]:
        error = f"channel {name!r} is disabled"
        _finish(conn, delivery_id, "failed", None, error)
        return DeliveryOutcome(name, "failed", error=error)
    try:
        sender = build_channel(str(channel["kind"]), channel["config"], settings)
        answer = sender.send(notification)
    except TransportError as exc:
        _finish(conn, delivery_id, "failed", None, exc.message)
        return DeliveryOutcome(name, "failed", retryable=True, error=exc.message)
    except NetPulseError as exc:  # a missing provider setting or a bad stored config: a retry will not help
        _finish(conn, delivery_id, "failed", None, exc.message)
        return DeliveryOutcome(name, "failed", error=exc.message)
    if answer.ok:
        _finish(conn, delivery_id, "sent", answer, None)
        return DeliveryOutcome(name, "sent")
    error = f"refused: {answer.summary(300)}"
    _finish(conn, delivery_id, "failed", answer, error)
    return DeliveryOutcome(name, "failed", retryable=answer.retryable, error=error)
