"""A generic signed webhook: one JSON POST of :data:`templates.WEBHOOK_SCHEMA` to the channel's URL.

Signature scheme (what a receiver checks)::

    X-NetPulse-Timestamp: <unix seconds when the attempt was made>
    X-NetPulse-Signature: sha256=<hex HMAC-SHA256(key=secret, msg=timestamp + "." + body)>

``body`` is the exact bytes of the request body (UTF-8 JSON) and ``timestamp`` the header's decimal
digits, so the signed material is e.g. ``b"1767225600." + body``. A receiver recomputes the HMAC
over the raw body as received (before any JSON parsing), compares with a constant-time comparison,
and rejects timestamps more than a few minutes from its clock: a captured request replayed later
fails, and the timestamp cannot be changed without breaking the signature. :func:`verify` does all
three. Every attempt (retries included) is signed afresh with its own timestamp.

``Idempotency-Key: <key>`` names the message: every attempt of one message (one alert event on one
channel) carries the same key, so a receiver that keeps the keys it handled drops a repeat, such as
the retry that follows an answer lost to a timeout.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import ClassVar

from analytics.notify import _http, templates
from analytics.notify.base import Channel, Notification, ProviderAnswer

__all__ = ["WebhookChannel", "SIGNATURE_HEADER", "TIMESTAMP_HEADER", "EVENT_HEADER", "IDEMPOTENCY_HEADER", "sign",
           "verify"]

SIGNATURE_HEADER = "X-NetPulse-Signature"
TIMESTAMP_HEADER = "X-NetPulse-Timestamp"
EVENT_HEADER = "X-NetPulse-Event"
IDEMPOTENCY_HEADER = "Idempotency-Key"
DEFAULT_TOLERANCE_S = 300


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-NetPulse-Signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, body: bytes, timestamp: str, signature: str, *, tolerance_s: int = DEFAULT_TOLERANCE_S,
           now: float | None = None) -> bool:
    """For receivers: is this request signed with ``secret`` and recent enough?"""
    if not timestamp.isdigit():
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, int(timestamp), body), signature)


class WebhookChannel(Channel):
    kind: ClassVar[str] = "webhook"

    def __init__(self, *, url: str, secret: str, headers: Mapping[str, str] | None = None,
                 timeout_s: float = 10.0) -> None:
        self.url = url
        self.secret = secret
        self.headers = dict(headers or {})
        self.timeout_s = timeout_s

    def send(self, notification: Notification, *, key: str | None = None) -> ProviderAnswer:
        body = json.dumps(templates.webhook_payload(notification), separators=(",", ":")).encode()
        timestamp = int(time.time())
        headers = {**self.headers, "Content-Type": "application/json", EVENT_HEADER: "test" if notification.test
                   else "alert", TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: sign(self.secret, timestamp, body)}
        if key:
            headers[IDEMPOTENCY_HEADER] = key
        resp = _http.post(self.url, body, headers, timeout_s=self.timeout_s)
        return ProviderAnswer.from_http(resp.status, resp.body, retry_after_ms=resp.retry_after_ms())
