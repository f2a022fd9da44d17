"""Notifications: one module per channel, their templates, and delivery with retries and rate limits.

Channels: ``sendgrid`` (email, SendGrid SDK), ``smtp`` (email, any SMTP server), ``africastalking``
(SMS, Africa's Talking SDK), ``slack`` (incoming webhook), ``webhook`` (signed JSON POST; the
signature scheme is in :mod:`analytics.notify.webhook`). Every message goes through the outbox
(:mod:`analytics.notify.outbox`: written in the deciding transaction, sent by whoever claims it).
Everything here is plain functions over a database connection and a Redis client; the broker side
is ``workers.notify``.
"""

from __future__ import annotations

from analytics.notify.base import Attachment, Channel, DeliveryFailed, Notification, ProviderAnswer, TransportError
from analytics.notify.channels import (
    KINDS,
    build_channel,
    create_channel,
    describe_target,
    get_channel,
    list_channels,
    validate_config,
)
from analytics.notify.delivery import alert_notifications, digest_notification, make_test_notification, send_test
from analytics.notify.outbox import Message, RetryPolicy, SendResult, enabled_channels, enqueue, send_due
from analytics.notify.ratelimit import RateLimiter

__all__ = [
    "Channel", "Notification", "Attachment", "ProviderAnswer", "TransportError", "DeliveryFailed", "KINDS",
    "validate_config", "build_channel", "describe_target", "create_channel", "list_channels", "get_channel",
    "RetryPolicy", "SendResult", "Message", "enqueue", "enabled_channels", "send_due", "alert_notifications",
    "digest_notification", "make_test_notification", "send_test", "RateLimiter",
]
