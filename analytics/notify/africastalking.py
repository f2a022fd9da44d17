"""SMS through Africa's Talking, with the official ``africastalking`` SDK.

The SDK builds the request (URL path, ``apiKey`` header, form fields, phone number checks). Two
things it does not offer are added in :class:`_SMSService`, the one place that reaches into it:
its base URL is hard-coded (``https://api.africastalking.com``), and on an error status it raises
with the body only, dropping the status this module needs to tell a 5xx (retry) from a 4xx. The
SMS API takes no idempotency key: a retry after a lost answer can send twice.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, ClassVar

import requests
from africastalking.SMS import SMSService

from analytics.notify import templates
from analytics.notify.base import Channel, Notification, ProviderAnswer, TransportError

__all__ = ["AfricasTalkingChannel", "PRODUCTION_API_HOST"]

PRODUCTION_API_HOST = "https://api.africastalking.com"
# Per-recipient status codes that mean "taken": Processed, Sent, Queued.
_ACCEPTED = {100, 101, 102}


class _SMSService(SMSService):
    """The SDK's SMS service on a configurable host, answering with the raw HTTP response."""

    def __init__(self, username: str, api_key: str, api_host: str) -> None:
        super().__init__(username, api_key)
        # The SDK hard-codes its hosts (Service._init_service); the sandbox account keeps the SDK's own.
        if not (self._is_sandbox() and api_host.rstrip("/") == PRODUCTION_API_HOST):
            self._baseUrl = api_host.rstrip("/") + "/version1"

    def _make_request(self, url: str, method: str, headers: dict[str, str], data: Any, params: Any,
                      callback: Any = None, timeout: Any = None) -> requests.Response:
        # The stock version raises AfricasTalkingException(text) on non-2xx; the status is kept here.
        return requests.request(method, url, headers=headers, data=data, params=params, timeout=timeout)


class AfricasTalkingChannel(Channel):
    kind: ClassVar[str] = "africastalking"

    def __init__(self, *, username: str, api_key: str, api_host: str = PRODUCTION_API_HOST, to: Sequence[str],
                 sender_id: str | None = None, timeout_s: float = 10.0) -> None:
        self.service = _SMSService(username, api_key, api_host)
        self.api_host = api_host
        self.to = list(to)
        self.sender_id = sender_id or None
        self.timeout_s = timeout_s

    def send(self, notification: Notification, *, key: str | None = None) -> ProviderAnswer:
        try:
            resp = self.service.send(templates.sms_text(notification), self.to, sender_id=self.sender_id,
                                     timeout=self.timeout_s)
        except ValueError as exc:  # the SDK's phone number check
            return ProviderAnswer(ok=False, status=None, body=str(exc))
        except requests.RequestException as exc:
            raise TransportError(f"Africa's Talking at {self.api_host} got no answer: {exc}") from exc
        answer = ProviderAnswer.from_http(resp.status_code, resp.text)
        if not answer.ok:
            return answer
        return _per_recipient(resp.status_code, resp.text)


def _per_recipient(status: int, body: str) -> ProviderAnswer:
    """A 2xx still lists each recipient's fate: ok only when every one was taken.

    A failure is retried only when every recipient failed with a provider-side code (5xx), so a retry
    never sends the same text twice to someone who got it.
    """
    try:
        recipients = json.loads(body)["SMSMessageData"]["Recipients"]
        codes = [int(r["statusCode"]) for r in recipients]
        ids = tuple(str(r["messageId"]) for r in recipients if r.get("messageId") not in (None, "None"))
    except (ValueError, KeyError, TypeError):
        return ProviderAnswer(ok=False, status=status, body=body)
    ok = bool(codes) and all(c in _ACCEPTED for c in codes)
    retryable = bool(codes) and all(c >= 500 for c in codes)
    return ProviderAnswer(ok=ok, status=status, body=body, ids=ids, retryable=retryable)
