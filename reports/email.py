"""A report's email: the file attached, queued in the notification outbox with the run's file.

:func:`report_message` is what leaves NetPulse for a report run: an outbox message
(:mod:`analytics.notify.outbox`) whose key is the schedule and period (a report made on request: the
run), so however often a run is resumed, each channel gets one row. It is ``at_most_once``: a sender
that dies while the provider takes the email leaves the row ``unconfirmed``, never sent again, since
no mail server drops a repeat and no manager wants a report twice. A refusal the provider calls
temporary (SMTP 4xx, HTTP 429/5xx) or no answer at all is retried by the outbox with its backoff.

>>> from datetime import datetime, UTC
>>> email_key({"id": 7, "schedule_id": 3, "period_start": datetime(2026, 11, 1, 21, tzinfo=UTC)})
'report:3:20261101T210000Z'
>>> email_key({"id": 7, "schedule_id": None, "period_start": datetime(2026, 11, 1, 21, tzinfo=UTC)})
'report-run:7'
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC
from typing import Any

from analytics.notify.base import Attachment, Notification
from analytics.notify.outbox import Message
from reports.document import fmt

__all__ = ["report_notification", "email_key", "report_message"]


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


def email_key(run: Mapping[str, Any]) -> str:
    """The outbox key of a run's email: per schedule and period (one run each), else per run."""
    if run["schedule_id"] is not None:
        return f"report:{run['schedule_id']}:{run['period_start'].astimezone(UTC):%Y%m%dT%H%M%SZ}"
    return f"report-run:{run['id']}"


def report_message(run: Mapping[str, Any]) -> Message:
    """The outbox message of a finished run (see :func:`report_notification`), linked to its page."""
    return Message(kind="report", key=email_key(run), report_run_id=int(run["id"]), at_most_once=True,
                   notification=report_notification(run, link=f"/reports/{run['id']}"))
