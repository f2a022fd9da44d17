"""Every channel's text, in one place: email subject and bodies, SMS, Slack blocks, webhook JSON.

Each function takes a :class:`Notification` and returns what its channel puts on the wire, so the
wording of a notification can be read (and tested) without a provider.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from typing import Any

from analytics.notify.base import Notification, truncate

__all__ = ["SMS_LIMIT", "WEBHOOK_SCHEMA", "WEBHOOK_VERSION", "email_subject", "email_text", "email_html",
           "sms_text", "slack_payload", "webhook_payload"]

# One GSM-7 SMS segment. Only ASCII is added here (a "…" would switch the message to UCS-2 and 70 chars).
SMS_LIMIT = 160
WEBHOOK_VERSION = 1
_SLACK_HEADER_LIMIT = 150  # Slack rejects longer header blocks
_SLACK_TEXT_LIMIT = 3000  # and longer section texts

# The webhook body (JSON Schema, draft 2020-12). Receivers may rely on it; a breaking change bumps "version".
WEBHOOK_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "NetPulse webhook notification",
    "type": "object",
    "required": ["version", "event", "alert"],
    "additionalProperties": False,
    "properties": {
        "version": {"const": WEBHOOK_VERSION},
        "event": {"enum": ["alert", "test"], "description": "test: sent by `netpulse notify test`"},
        "alert": {
            "type": "object",
            "required": ["id", "title", "severity", "resolved", "message", "device", "site", "started_at",
                         "link"],
            "additionalProperties": False,
            "properties": {
                "id": {"type": ["string", "null"], "description": "the alert's UUID; null for a test"},
                "title": {"type": "string"},
                "severity": {"enum": ["info", "warning", "critical"]},
                "resolved": {"type": "boolean", "description": "true: the alert is over"},
                "message": {"type": "string"},
                "device": {"type": ["string", "null"]},
                "site": {"type": ["string", "null"]},
                "started_at": {"type": "string", "format": "date-time"},
                "link": {"type": ["string", "null"], "format": "uri"},
            },
        },
    },
}


def _when(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _label(n: Notification) -> str:
    return "TEST" if n.test else "REPORT" if n.kind == "report" else "RESOLVED" if n.resolved else n.severity.upper()


def _facts(n: Notification) -> list[tuple[str, str]]:
    if n.facts:
        return list(n.facts)
    where = [("Device", n.device or "-"), ("Site", n.site or "-")] if n.device or n.site or n.alert_id else []
    return [("Severity", n.severity), *where, ("Started", _when(n.started_at))]  # a digest names no device


def email_subject(n: Notification) -> str:
    return " ".join(f"[NetPulse {_label(n)}] {n.title}".split())  # no newlines in a header


def email_text(n: Notification) -> str:
    lines = [n.title, ""]
    width = max([10, *(len(k) + 2 for k, _ in _facts(n))])
    lines += [f"{k + ':':<{width}}{v}" for k, v in _facts(n)]
    lines += ["", n.message]
    if n.link:
        lines += ["", f"Open in NetPulse: {n.link}"]
    lines += ["", "-- ", "Sent by NetPulse."]
    return "\n".join(lines) + "\n"


def email_html(n: Notification) -> str:
    e = html.escape
    rows = "".join(f"<tr><th align=\"left\" style=\"padding-right:12px\">{e(k)}</th><td>{e(v)}</td></tr>"
                   for k, v in _facts(n))
    link = f"<p><a href=\"{e(n.link)}\">Open in NetPulse</a></p>" if n.link else ""
    return (f"<!doctype html><html><body style=\"font-family:sans-serif\">"
            f"<h2>{e(n.title)}</h2><table>{rows}</table><p>{e(n.message).replace(chr(10), '<br>')}</p>{link}"
            f"<p style=\"color:#888\">Sent by NetPulse.</p></body></html>")


def sms_text(n: Notification) -> str:
    """At most :data:`SMS_LIMIT` characters; the link only when it fits whole."""
    where = f" @ {n.device}" if n.device else ""
    where += f" ({n.site})" if n.site else ""
    head = f"NetPulse {_label(n)}: {n.title}{where}, since {n.started_at.astimezone(UTC):%H:%M} UTC."
    text = " ".join(f"{head} {n.message}".split())
    if n.link and len(text) + 1 + len(n.link) <= SMS_LIMIT:
        return f"{text} {n.link}"
    return truncate(text, SMS_LIMIT)


def _mrkdwn(text: str) -> str:
    # Slack's three control characters; everything else is literal.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(n: Notification) -> dict[str, Any]:
    """An incoming-webhook body: ``text`` (notifications, old clients) and ``blocks`` (what is shown)."""
    header = truncate(f"{_label(n)}: {n.title}", _SLACK_HEADER_LIMIT)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{_mrkdwn(v)}"} for k, v in _facts(n)]},
        {"type": "section", "text": {"type": "mrkdwn", "text": truncate(_mrkdwn(n.message), _SLACK_TEXT_LIMIT)}},
    ]
    if n.link:
        blocks.append({"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Open in NetPulse"}, "url": n.link}]})
    return {"text": truncate(f"{header}: {n.message}", _SLACK_TEXT_LIMIT), "blocks": blocks}


def webhook_payload(n: Notification) -> dict[str, Any]:
    """The body described by :data:`WEBHOOK_SCHEMA`."""
    return {
        "version": WEBHOOK_VERSION,
        "event": "test" if n.test else "alert",
        "alert": {"id": n.alert_id, "title": n.title, "severity": n.severity, "resolved": n.resolved,
                  "message": n.message,
                  "device": n.device, "site": n.site, "started_at": n.started_at.astimezone(UTC).isoformat(),
                  "link": n.link},
    }
