"""Channels as stored: per-kind config rules, construction from settings, and the channel table.

A channel row holds who to reach (``config``: recipients, URL, secret); provider credentials are
settings (``NETPULSE_SENDGRID_API_KEY`` ...), checked when a channel of that kind is built, so a
missing one fails that channel with a ConfigError that names the variable and nothing else.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from analytics.notify.base import Channel
from netpulse.config import ENV_PREFIX, Settings
from netpulse.errors import ConfigError, Conflict, NotFound, ValidationError
from netpulse.schema import ChannelKind, NotificationChannel, Organization

__all__ = ["KINDS", "CONFIG_KEYS", "validate_config", "build_channel", "describe_target", "create_channel",
           "list_channels", "get_channel", "organizations_without_channels"]

KINDS: tuple[str, ...] = tuple(k.value for k in ChannelKind)
# Allowed config keys per kind; the first ones listed are required.
CONFIG_KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "sendgrid": (("to",), ("from_email",)),
    "smtp": (("to",), ("from_email",)),
    "africastalking": (("to",), ("sender_id",)),
    "slack": (("url",), ()),
    "webhook": (("url", "secret"), ("headers",)),
}
MAX_RECIPIENTS = 50
MIN_SECRET_LENGTH = 16
_EMAIL = re.compile(r"^[^@\s,<>]+@[^@\s,<>]+\.[^@\s,<>]+$")
_PHONE = re.compile(r"^\+\d{6,15}$")  # E.164, as the Africa's Talking API takes it
_NAME = re.compile(r"^[\w.@+-][\w .@+-]{0,99}$")
_RESERVED_HEADERS = ("content-type", "idempotency-key", "x-netpulse-")


def _recipients(value: Any, pattern: re.Pattern[str], what: str) -> str | None:
    if not isinstance(value, list) or not value:
        return f"must be a non-empty list of {what}"
    if len(value) > MAX_RECIPIENTS:
        return f"at most {MAX_RECIPIENTS} recipients per channel"
    bad = [v for v in value if not isinstance(v, str) or not pattern.match(v)]
    return f"not {what}: {', '.join(map(repr, bad))}" if bad else None


def _url(value: Any) -> str | None:
    if not isinstance(value, str) or not re.match(r"^https?://[^/\s]+", value):
        return "must be an http:// or https:// URL"
    return None


def _problems(kind: str, config: Mapping[str, Any]) -> dict[str, str]:
    required, optional = CONFIG_KEYS[kind]
    problems: dict[str, str] = {}
    for key in required:
        if key not in config or config[key] in (None, "", []):
            problems[key] = "is required"
    for key in config:
        if key not in required and key not in optional:
            problems[key] = f"is not a {kind} setting (allowed: {', '.join(required + optional)})"
    checks: dict[str, Callable[[Any], str | None]] = {
        "from_email": lambda v: None if isinstance(v, str) and _EMAIL.match(v) else "must be an email address",
        "sender_id": lambda v: None if isinstance(v, str) and 0 < len(v) <= 11 else "must be 1 to 11 characters",
        "url": _url,
        "secret": lambda v: (None if isinstance(v, str) and len(v) >= MIN_SECRET_LENGTH
                             else f"must be a string of at least {MIN_SECRET_LENGTH} characters"),
        "headers": lambda v: (None if isinstance(v, dict) and all(
            isinstance(k, str) and isinstance(x, str) and not k.lower().startswith(_RESERVED_HEADERS)
            for k, x in v.items())
            else "must map header names to strings, without Content-Type, Idempotency-Key or X-NetPulse-*"),
    }
    if kind in ("sendgrid", "smtp"):
        checks["to"] = lambda v: _recipients(v, _EMAIL, "email addresses")
    elif kind == "africastalking":
        checks["to"] = lambda v: _recipients(v, _PHONE, "phone numbers in international form (+254711000111)")
    for key, check in checks.items():
        if key in config and key not in problems and (problem := check(config[key])) is not None:
            problems[key] = problem
    return problems


def validate_config(kind: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` checked for ``kind``; raises a ValidationError naming every bad key."""
    if kind not in CONFIG_KEYS:
        raise ValidationError(f"unknown channel kind {kind!r}; one of: {', '.join(KINDS)}", details={"kind": kind})
    if not isinstance(config, Mapping):
        raise ValidationError("channel config must be a JSON object", details={"config": "not an object"})
    problems = _problems(kind, config)
    if problems:
        listed = "; ".join(f"{k} {v}" for k, v in problems.items())
        raise ValidationError(f"invalid {kind} channel config: {listed}", details=problems)
    return dict(config)


def _setting(settings: Settings, name: str, kind: str) -> str:
    value = getattr(settings, name)
    if not value:
        raise ConfigError(f"{ENV_PREFIX}{name.upper()} is not set: {kind} channels need it",
                          details={"variable": f"{ENV_PREFIX}{name.upper()}"})
    return str(value)


def _from_email(settings: Settings, config: Mapping[str, Any], kind: str) -> str:
    return str(config.get("from_email") or _setting(settings, "email_from", kind))


def build_channel(kind: str, config: Mapping[str, Any], settings: Settings) -> Channel:
    """The channel for a stored row: config checked, provider settings taken from ``settings``.

    Raises ValidationError for bad config, ConfigError for a missing setting.
    """
    config = validate_config(kind, config)
    timeout = settings.notify_timeout_s
    if kind == "sendgrid":
        from analytics.notify.sendgrid import SendGridChannel

        return SendGridChannel(api_key=_setting(settings, "sendgrid_api_key", kind),
                               api_host=settings.sendgrid_api_host, from_email=_from_email(settings, config, kind),
                               to=config["to"], timeout_s=timeout)
    if kind == "smtp":
        from analytics.notify.smtp import SmtpChannel

        return SmtpChannel(host=_setting(settings, "smtp_host", kind), port=settings.smtp_port,
                           from_email=_from_email(settings, config, kind), to=config["to"],
                           username=settings.smtp_username, password=settings.smtp_password,
                           starttls=settings.smtp_starttls, ssl=settings.smtp_ssl, timeout_s=timeout)
    if kind == "africastalking":
        from analytics.notify.africastalking import AfricasTalkingChannel

        return AfricasTalkingChannel(username=_setting(settings, "africastalking_username", kind),
                                     api_key=_setting(settings, "africastalking_api_key", kind),
                                     api_host=settings.africastalking_api_host, to=config["to"],
                                     sender_id=config.get("sender_id") or settings.africastalking_sender_id,
                                     timeout_s=timeout)
    if kind == "slack":
        from analytics.notify.slack import SlackChannel

        return SlackChannel(url=config["url"], timeout_s=timeout)
    from analytics.notify.webhook import WebhookChannel

    return WebhookChannel(url=config["url"], secret=config["secret"], headers=config.get("headers"),
                          timeout_s=timeout)


def describe_target(kind: str, config: Mapping[str, Any]) -> str:
    """Where a channel sends, for listings: recipients, or the URL without secrets."""
    if kind in ("sendgrid", "smtp", "africastalking"):
        return ", ".join(config.get("to") or [])
    url = str(config.get("url") or "")
    scheme, _, rest = url.partition("://")
    host, _, path = rest.partition("/")
    if kind == "slack":  # the path is the hook's secret
        return f"{scheme}://{host}/..." if host else "-"
    return f"{scheme}://{host}/{path.split('?', 1)[0]}" if host else "-"


def create_channel(session: Session, organization_id: uuid.UUID, name: str, kind: str, config: Mapping[str, Any],
                   *, rate_limit_per_minute: int = 60, enabled: bool = True) -> NotificationChannel:
    if not _NAME.match(name):
        raise ValidationError(f"channel name {name!r} must be 1 to 100 letters, digits, spaces or . @ + - _",
                              details={"name": "invalid"})
    if not 1 <= rate_limit_per_minute <= 100_000:
        raise ValidationError("rate limit must be between 1 and 100000 per minute",
                              details={"rate_limit_per_minute": rate_limit_per_minute})
    checked = validate_config(kind, config)
    existing = session.scalar(select(NotificationChannel.id).where(
        NotificationChannel.organization_id == organization_id, NotificationChannel.name == name))
    if existing is not None:
        raise Conflict(f"a notification channel named {name!r} already exists", code="CHANNEL_ALREADY_EXISTS")
    channel = NotificationChannel(organization_id=organization_id, name=name, kind=kind, config=checked,
                                  rate_limit_per_minute=rate_limit_per_minute, enabled=enabled)
    session.add(channel)
    try:
        session.flush()
    except IntegrityError:  # a concurrent add of the same name
        raise Conflict(f"a notification channel named {name!r} already exists",
                       code="CHANNEL_ALREADY_EXISTS") from None
    return channel


def list_channels(session: Session, organization_id: uuid.UUID) -> Sequence[NotificationChannel]:
    return session.scalars(select(NotificationChannel).where(NotificationChannel.organization_id == organization_id)
                           .order_by(NotificationChannel.name)).all()


def get_channel(session: Session, organization_id: uuid.UUID, name: str) -> NotificationChannel:
    channel = session.scalar(select(NotificationChannel).where(
        NotificationChannel.organization_id == organization_id, NotificationChannel.name == name))
    if channel is None:
        known = [c.name for c in list_channels(session, organization_id)][:20]
        hint = (f"known: {', '.join(known)}" if known
                else "none is configured yet; add one with `netpulse notify channel add`")
        raise NotFound(f"no notification channel named {name!r}; {hint}", code="CHANNEL_NOT_FOUND",
                       details={"name": name})
    return channel


def organizations_without_channels(session: Session) -> list[str]:
    """Slugs of the organizations with no enabled channel: their alerts cannot be delivered."""
    has_one = select(NotificationChannel.id).where(NotificationChannel.organization_id == Organization.id,
                                                   NotificationChannel.enabled.is_(True)).exists()
    return list(session.scalars(select(Organization.slug).where(~has_one).order_by(Organization.slug)))
