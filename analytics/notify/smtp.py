"""Email through an SMTP server, for self-hosted installs without SendGrid.

Implicit TLS (``ssl``, usually port 465) or STARTTLS on a plain connection (usually 587); login only
when a username is set. The answer's ``status`` is the SMTP reply code: 4xx replies are transient
(retryable), 5xx permanent. A message with an idempotency key gets a Message-ID derived from it (and
an ``X-NetPulse-Idempotency-Key`` header), so every attempt of one message carries the same id and
mail systems that drop duplicate Message-IDs drop a repeat.
"""

from __future__ import annotations

import hashlib
import smtplib
import ssl as ssl_module
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import ClassVar

from analytics.notify import templates
from analytics.notify.base import Channel, Notification, ProviderAnswer, TransportError

__all__ = ["SmtpChannel", "KEY_HEADER"]

KEY_HEADER = "X-NetPulse-Idempotency-Key"


class SmtpChannel(Channel):
    kind: ClassVar[str] = "smtp"
    carries_attachments: ClassVar[bool] = True

    def __init__(self, *, host: str, port: int, from_email: str, to: Sequence[str], username: str | None = None,
                 password: str | None = None, starttls: bool = True, ssl: bool = False, timeout_s: float = 10.0,
                 ssl_context: ssl_module.SSLContext | None = None) -> None:
        self.host, self.port = host, port
        self.from_email = from_email
        self.to = list(to)
        self.username, self.password = username, password
        self.ssl = ssl
        self.starttls = starttls and not ssl  # implicit TLS already encrypts
        self.timeout_s = timeout_s
        self.ssl_context = ssl_context

    def message(self, n: Notification, *, key: str | None = None) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = templates.email_subject(n)
        msg["From"] = self.from_email
        msg["To"] = ", ".join(self.to)
        msg["Date"] = formatdate(localtime=False)
        domain = self.from_email.rpartition("@")[2] or "netpulse.invalid"
        if key:
            msg["Message-ID"] = f"<{hashlib.sha256(key.encode()).hexdigest()[:40]}.netpulse@{domain}>"
            msg[KEY_HEADER] = key
        else:
            msg["Message-ID"] = make_msgid(domain=domain)
        msg.set_content(templates.email_text(n))
        msg.add_alternative(templates.email_html(n), subtype="html")
        for a in n.attachments:  # the message becomes multipart/mixed: the bodies, then the files
            maintype, _, subtype = a.content_type.split(";")[0].strip().partition("/")
            msg.add_attachment(a.content, maintype=maintype or "application", subtype=subtype or "octet-stream",
                               filename=a.file_name)
        return msg

    def send(self, notification: Notification, *, key: str | None = None) -> ProviderAnswer:
        msg = self.message(notification, key=key)
        context = self.ssl_context or ssl_module.create_default_context()
        try:
            client = (smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout_s, context=context) if self.ssl
                      else smtplib.SMTP(self.host, self.port, timeout=self.timeout_s))
            with client:
                if self.starttls:
                    client.starttls(context=context)
                if self.username:
                    client.login(self.username, self.password or "")
                refused = client.send_message(msg)
        # smtplib's errors are OSErrors: the SMTP ones must be caught before the transport ones.
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            body = "; ".join(f"{rcpt}: {code} {_text(reply)}" for rcpt, (code, reply) in exc.recipients.items())
            return ProviderAnswer(ok=False, status=codes[0] if codes else None, body=body,
                                  retryable=bool(codes) and all(400 <= c < 500 for c in codes))
        except smtplib.SMTPServerDisconnected as exc:
            raise TransportError(f"SMTP server {self.host}:{self.port} hung up: {exc}") from exc
        except smtplib.SMTPResponseException as exc:
            return ProviderAnswer(ok=False, status=exc.smtp_code, body=_text(exc.smtp_error),
                                  retryable=400 <= exc.smtp_code < 500)
        except smtplib.SMTPException as exc:  # e.g. the server offers no STARTTLS or no AUTH
            return ProviderAnswer(ok=False, status=None, body=str(exc))
        except OSError as exc:
            raise TransportError(f"SMTP server {self.host}:{self.port} not reachable: {exc}") from exc
        ids = (str(msg["Message-ID"]),)
        if refused:  # some recipients took it: not retried, or they would get it twice
            body = "; ".join(f"{rcpt}: {code} {_text(reply)}" for rcpt, (code, reply) in refused.items())
            return ProviderAnswer(ok=False, status=250, body=f"accepted, but refused for {body}", ids=ids)
        return ProviderAnswer(ok=True, status=250, body=f"accepted for {len(self.to)} recipient(s)", ids=ids)


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
