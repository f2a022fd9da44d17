"""Notifications: one module per channel, their templates, and delivery with retries and rate limits.

Channels: ``sendgrid`` (email, SendGrid SDK), ``smtp`` (email, any SMTP server), ``africastalking``
(SMS, Africa's Talking SDK), ``slack`` (incoming webhook), ``webhook`` (signed JSON POST; the
signature scheme is in :mod:`analytics.notify.webhook`). Everything here is plain functions over a
SQLAlchemy session and a Redis client; the broker side is ``workers.notify``.
"""

from __future__ import annotations

from analytics.notify.base import Channel, DeliveryFailed, Notification, ProviderAnswer, TransportError
from analytics.notify.channels import (
    KINDS,
    build_channel,
    create_channel,
    describe_target,
    get_channel,
    list_channels,
    validate_config,
)
from analytics.notify.delivery import (
    AttemptResult,
    RetryPolicy,
    attempt_delivery,
    make_test_notification,
    notification_for_alert,
    queue_alert_deliveries,
    queue_delivery,
    send_test,
)
from analytics.notify.ratelimit import RateLimiter

__all__ = [
    "Channel", "Notification", "ProviderAnswer", "TransportError", "DeliveryFailed", "KINDS", "validate_config",
    "build_channel", "describe_target", "create_channel", "list_channels", "get_channel", "RetryPolicy",
    "AttemptResult", "notification_for_alert", "make_test_notification", "queue_delivery", "queue_alert_deliveries",
    "attempt_delivery", "send_test", "RateLimiter",
]
