"""What every channel shares: the notification record, the provider's answer and the Channel base.

A channel turns a provider's refusal (4xx, 5xx, an SMTP error reply) into a failed
:class:`ProviderAnswer` that carries the provider's status and body; it raises only
:class:`TransportError`, when the provider could not be reached or did not answer at all.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from netpulse.errors import NetPulseError

__all__ = ["Attachment", "Notification", "ProviderAnswer", "Channel", "TransportError", "DeliveryFailed", "truncate"]


class TransportError(NetPulseError):
    """The provider was not reached or did not answer (refused, reset, timed out, TLS failure): retryable."""

    code = "NOTIFY_TRANSPORT_ERROR"
    status = 502


class DeliveryFailed(NetPulseError):
    """A synchronous send (``netpulse notify test``) ended without the provider accepting it."""

    code = "NOTIFICATION_FAILED"
    status = 502


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file sent with an email (a report). Only the email channels carry attachments."""

    file_name: str
    content_type: str  # e.g. application/pdf, text/csv; charset=utf-8
    content: bytes

    def to_dict(self) -> dict[str, str]:
        import base64

        return {"file_name": self.file_name, "content_type": self.content_type,
                "content": base64.b64encode(self.content).decode("ascii")}

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> Attachment:
        import base64

        return cls(data["file_name"], data["content_type"], base64.b64decode(data["content"]))


@dataclass(frozen=True, slots=True)
class Notification:
    """One thing to tell people about, rendered by each channel's templates (``templates.py``).

    Built from an alert when its deliveries are queued and carried unchanged through every retry, so
    all attempts send the same text.
    """

    title: str
    severity: str  # info | warning | critical (the alerts table's values)
    message: str
    started_at: datetime
    device: str | None = None
    site: str | None = None
    link: str | None = None
    alert_id: str | None = None
    resolved: bool = False  # the alert is over: "RESOLVED" instead of the severity
    test: bool = False  # sent by `netpulse notify test`, not by an alert
    kind: str = "alert"  # alert | report (a scheduled report: "REPORT" instead of the severity)
    facts: tuple[tuple[str, str], ...] = ()  # shown instead of severity, device, site and start when given
    attachments: tuple[Attachment, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (the actor's message payload)."""
        return {"title": self.title, "severity": self.severity, "message": self.message,
                "started_at": self.started_at.isoformat(), "device": self.device, "site": self.site,
                "link": self.link, "alert_id": self.alert_id, "resolved": self.resolved, "test": self.test,
                "kind": self.kind, "facts": [list(f) for f in self.facts],
                "attachments": [a.to_dict() for a in self.attachments]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Notification:
        return cls(title=data["title"], severity=data["severity"], message=data["message"],
                   started_at=datetime.fromisoformat(data["started_at"]), device=data.get("device"),
                   site=data.get("site"), link=data.get("link"), alert_id=data.get("alert_id"),
                   resolved=bool(data.get("resolved", False)), test=bool(data.get("test", False)),
                   kind=data.get("kind", "alert"), facts=tuple((str(k), str(v)) for k, v in data.get("facts", [])),
                   attachments=tuple(Attachment.from_dict(a) for a in data.get("attachments", [])))


@dataclass(frozen=True, slots=True)
class ProviderAnswer:
    """What the provider said. ``status`` is the HTTP status, or the SMTP reply code for email by SMTP."""

    ok: bool
    status: int | None
    body: str = ""
    ids: tuple[str, ...] = ()  # the provider's message ids, for tracing a message on its side
    retryable: bool = False  # a later attempt may succeed (5xx, 429, SMTP 4xx)
    retry_after_ms: int | None = None  # the provider asked to wait this long (Retry-After)

    @classmethod
    def from_http(cls, status: int, body: str, *, ids: tuple[str, ...] = (),
                  retry_after_ms: int | None = None) -> ProviderAnswer:
        ok = 200 <= status < 300
        return cls(ok=ok, status=status, body=body, ids=ids, retryable=not ok and (status >= 500 or status == 429),
                   retry_after_ms=retry_after_ms)

    def summary(self, limit: int = 300) -> str:
        """One line for logs and the CLI: ``202 ids=abc`` or ``500 {"errors": ...}``."""
        parts = [str(self.status) if self.status is not None else "no status"]
        if self.ids:
            parts.append("ids=" + ",".join(self.ids))
        if self.body:
            parts.append(truncate(" ".join(self.body.split()), limit))
        return " ".join(parts)


class Channel(ABC):
    """One way of reaching people. Subclasses hold their provider settings and recipients."""

    kind: ClassVar[str]
    carries_attachments: ClassVar[bool] = False  # email does; the others send the text (and its link) only

    @abstractmethod
    def send(self, notification: Notification, *, key: str | None = None) -> ProviderAnswer:
        """Send ``notification`` once (with its attachments, by the channels that carry them).

        ``key`` is the message's idempotency key: the same for every attempt of one message, so a
        provider (or receiver) that takes one can drop a repeat. Channels whose provider accepts no
        key ignore it. Returns the provider's answer, failed or not. Raises :class:`TransportError`
        when the provider could not be reached; any other exception is a bug.
        """


def truncate(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, marked with ``...`` when cut."""
    return text if len(text) <= limit else text[: max(0, limit - 3)] + "..."
