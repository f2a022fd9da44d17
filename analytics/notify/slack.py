"""Slack through an incoming webhook: one JSON POST with ``text`` and ``blocks``.

Slack answers 200 ``ok``; 400 ``invalid_payload``, 403/404 for a revoked hook, 429 with
``Retry-After`` when posting too fast. The webhook URL is a secret and never logged whole. Incoming
webhooks take no idempotency key: a retry after a lost answer can post twice.
"""

from __future__ import annotations

import json
from typing import ClassVar

from analytics.notify import _http, templates
from analytics.notify.base import Channel, Notification, ProviderAnswer

__all__ = ["SlackChannel"]


class SlackChannel(Channel):
    kind: ClassVar[str] = "slack"

    def __init__(self, *, url: str, timeout_s: float = 10.0) -> None:
        self.url = url
        self.timeout_s = timeout_s

    def send(self, notification: Notification, *, key: str | None = None) -> ProviderAnswer:
        body = json.dumps(templates.slack_payload(notification)).encode()
        resp = _http.post(self.url, body, {"Content-Type": "application/json"}, timeout_s=self.timeout_s)
        return ProviderAnswer.from_http(resp.status, resp.body, retry_after_ms=resp.retry_after_ms())
