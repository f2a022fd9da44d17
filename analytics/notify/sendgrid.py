"""Email through SendGrid's v3 Mail Send API, with the official ``sendgrid`` SDK.

The API host comes from settings (``NETPULSE_SENDGRID_API_HOST``), so an EU-pinned account or a
local stand-in can take the place of https://api.sendgrid.com. Each recipient gets their own
personalization: recipients do not see each other's addresses. The message's idempotency key goes
in its custom args (``netpulse_key``, shown in SendGrid's event webhooks and activity feed) and in
an ``X-NetPulse-Idempotency-Key`` header of the mail.
"""

from __future__ import annotations

import http.client
import urllib.error
from collections.abc import Sequence
from typing import ClassVar

from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import (
    Attachment,
    Content,
    CustomArg,
    Disposition,
    FileContent,
    FileName,
    FileType,
    From,
    Header,
    Mail,
    Personalization,
    To,
)

from analytics.notify import templates
from analytics.notify.base import Channel, Notification, ProviderAnswer, TransportError

__all__ = ["SendGridChannel", "KEY_ARG", "KEY_HEADER"]

KEY_ARG = "netpulse_key"
KEY_HEADER = "X-NetPulse-Idempotency-Key"


class SendGridChannel(Channel):
    kind: ClassVar[str] = "sendgrid"
    carries_attachments: ClassVar[bool] = True

    def __init__(self, *, api_key: str, api_host: str, from_email: str, to: Sequence[str],
                 timeout_s: float = 10.0) -> None:
        self.api_key = api_key
        self.api_host = api_host.rstrip("/")
        self.from_email = from_email
        self.to = list(to)
        self.timeout_s = timeout_s

    def mail(self, n: Notification, *, key: str | None = None) -> Mail:
        mail = Mail(from_email=From(self.from_email), subject=templates.email_subject(n))
        for i, address in enumerate(self.to):
            personalization = Personalization()
            personalization.add_to(To(address))
            mail.add_personalization(personalization, index=i)  # the SDK inserts at 0 unless told
        mail.add_content(Content("text/plain", templates.email_text(n)))
        mail.add_content(Content("text/html", templates.email_html(n)))
        if key:
            mail.custom_arg = CustomArg(KEY_ARG, key)
            mail.header = Header(KEY_HEADER, key)
        for a in reversed(n.attachments):  # the SDK's add_attachment inserts at the front
            mail.add_attachment(Attachment(FileContent(a.to_dict()["content"]), FileName(a.file_name),
                                           FileType(a.content_type.split(";")[0]), Disposition("attachment")))
        return mail

    def send(self, notification: Notification, *, key: str | None = None) -> ProviderAnswer:
        client = SendGridAPIClient(api_key=self.api_key, host=self.api_host)
        body = self.mail(notification, key=key).get()
        try:
            # client.send() takes no timeout; the SDK's fluent call below is what it does, plus one.
            resp = client.client.mail.send.post(request_body=body, timeout=self.timeout_s)
        except HTTPError as exc:
            body = exc.body.decode("utf-8", "replace") if isinstance(exc.body, bytes) else str(exc.body)
            retry_after = (exc.headers or {}).get("Retry-After", "")
            return ProviderAnswer.from_http(int(exc.status_code), body,
                                            retry_after_ms=int(retry_after) * 1000 if retry_after.isdigit() else None)
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise TransportError(f"SendGrid at {self.api_host} got no answer: {reason}") from exc
        body = resp.body.decode("utf-8", "replace") if isinstance(resp.body, bytes) else str(resp.body or "")
        message_id = resp.headers.get("X-Message-Id") if resp.headers is not None else None
        return ProviderAnswer.from_http(int(resp.status_code), body, ids=(message_id,) if message_id else ())
