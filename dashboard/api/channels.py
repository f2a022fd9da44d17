"""Notification channels (:mod:`analytics.notify`): where alerts are sent. Secrets are never shown:
a channel shows its kind, recipients or URL host (``target``), and which secret keys it holds."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from flask import current_app
from flask_openapi3 import Tag
from pydantic import ConfigDict, Field
from werkzeug.wrappers import Response

from analytics import notify
from dashboard.api.params import ApiModel, Paged, PathModel
from dashboard.api.routing import ok, operation, page_of, unit_of_work
from dashboard.api.schemas import Out
from dashboard.auth import current_org_id
from netpulse.schema import NotificationChannel

TAG = Tag(name="channels", description="Notification channels: email, SMS, Slack and signed webhooks.")
_SECRET_KEYS = ("secret", "headers")


class ChannelOut(Out):
    id: int
    name: str
    kind: str
    target: str = Field(description="Recipients, or the URL without its secret parts.")
    recipients: list[str] = Field(description="Email addresses or phone numbers (email and SMS kinds).")
    secrets: list[str] = Field(description="Config keys holding secrets (their values are never shown).")
    rate_limit_per_minute: int
    enabled: bool
    created_at: datetime

    @classmethod
    def of(cls, c: NotificationChannel) -> ChannelOut:
        config = c.config or {}
        return cls(id=c.id, name=c.name, kind=c.kind, target=notify.describe_target(c.kind, config) or "-",
                   recipients=list(config.get("to") or []), secrets=[k for k in _SECRET_KEYS if k in config],
                   rate_limit_per_minute=c.rate_limit_per_minute, enabled=c.enabled, created_at=c.created_at)


class ChannelBody(ApiModel):
    """``config`` per kind: sendgrid and smtp ``to`` (addresses) and ``from_email``; africastalking ``to``
    (+phone numbers) and ``sender_id``; slack ``url``; webhook ``url``, ``secret`` (16+ characters, the
    HMAC key) and ``headers``. Provider credentials are settings, not channel config."""

    model_config = ConfigDict(openapi_extra={"example": {  # type: ignore[typeddict-unknown-key]
        "name": "noc-email", "kind": "smtp", "config": {"to": ["noc@example.com"]}}})
    name: str = Field(min_length=1, max_length=100)
    kind: Literal["sendgrid", "smtp", "africastalking", "slack", "webhook"]
    config: dict[str, Any]
    rate_limit_per_minute: int = Field(60, ge=1, le=100_000)
    enabled: bool = True


class ChannelPath(PathModel):
    not_found_code: ClassVar[str] = "CHANNEL_NOT_FOUND"
    channel_name: str = Field(min_length=1, max_length=100)


class TestResult(Out):
    outbox_id: int = Field(description="The message in the notification outbox.")
    delivery_id: int | None = Field(description="The attempt's delivery record.")
    ok: bool
    status: str
    answer: str | None = Field(description="The provider's answer, in one line.")
    error: str | None


@operation("GET", "/channels", tag=TAG, permission="alert:read", data=ChannelOut, many=True, paginated=True)
def list_channels(query: Paged) -> Response:
    """Notification channels, by name."""
    with unit_of_work() as session:
        found = notify.list_channels(session, current_org_id())
        items = [ChannelOut.of(c) for c in query.window(list(found))]
    return page_of(items, len(found), query)


@operation("POST", "/channels", tag=TAG, permission="admin", data=ChannelOut, status=201, conflict=True)
def create_channel(body: ChannelBody) -> Response:
    """Add a channel. 409 CHANNEL_ALREADY_EXISTS when the name is taken; 422 names every bad config key."""
    with unit_of_work() as session:
        channel = notify.create_channel(session, current_org_id(), body.name, body.kind, body.config,
                                        rate_limit_per_minute=body.rate_limit_per_minute, enabled=body.enabled)
        session.refresh(channel)
        out = ChannelOut.of(channel)
    return ok(out, status=201)


@operation("GET", "/channels/<channel_name>", tag=TAG, permission="alert:read", data=ChannelOut)
def get_channel(path: ChannelPath) -> Response:
    """One channel."""
    with unit_of_work() as session:
        return ok(ChannelOut.of(notify.get_channel(session, current_org_id(), path.channel_name)))


@operation("POST", "/channels/<channel_name>/test", tag=TAG, permission="alert:write", data=TestResult)
def test_channel(path: ChannelPath) -> Response:
    """Send a test notification through the channel now (also when disabled; not retried, not rate
    limited) and answer with the provider's answer. The attempt is recorded as a delivery either way."""
    with unit_of_work() as session:
        result = notify.send_test(session, current_org_id(), path.channel_name,
                                  settings=current_app.extensions["netpulse.settings"])
    return ok(TestResult(outbox_id=result.outbox_id, delivery_id=result.delivery_id, ok=result.ok,
                         status=str(result.status), answer=result.answer.summary() if result.answer is not None
                         else None, error=result.error))
