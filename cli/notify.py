"""``netpulse notify ...``: notification channels from the command line, and test sends through them.

Like ``netpulse devices``, every command works in one organization (``--org SLUG``, or the only one).
Errors are NetPulse errors, printed by the ``netpulse`` group as one ``Error: ...`` line (exit 1).
"""

from __future__ import annotations

import json
from typing import Any

import click

from cli._common import org_option, organization, session_scope, table
from netpulse.config import get_settings
from netpulse.schema import ChannelKind


class JsonObject(click.ParamType):
    """A JSON object given on the command line (datasette's ``Config`` param type)."""

    name = "json"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> dict[str, Any]:
        if isinstance(value, dict):
            return value
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as exc:
            self.fail(f"not valid JSON ({exc.msg} at character {exc.pos}): {value!r}", param, ctx)
        if not isinstance(parsed, dict):
            self.fail(f"must be a JSON object like '{{\"to\": [\"noc@example.com\"]}}', got {value!r}", param, ctx)
        return parsed


@click.group()
def notify() -> None:
    """Notification channels (email, SMS, Slack, webhooks): add, list, and test them."""


@notify.group()
def channel() -> None:
    """Manage notification channels: where alerts are sent."""


@channel.command("add")
@click.argument("name")
@click.option("--kind", required=True, type=click.Choice([k.value for k in ChannelKind]),
              help="How to send: sendgrid or smtp (email), africastalking (SMS), slack, webhook.")
@click.option("--config-json", "config", type=JsonObject(), metavar="JSON",
              help="The whole channel config as a JSON object, e.g. '{\"to\": [\"noc@example.com\"]}'. "
                   "The options below set single keys and win over it.")
@click.option("--to", "to", multiple=True, metavar="RECIPIENT",
              help="An email address (sendgrid, smtp) or a phone number in international form, e.g. "
                   "+254711000111 (africastalking). Repeat for several.")
@click.option("--from-email", help="From: address of this channel's email [default: NETPULSE_EMAIL_FROM].")
@click.option("--sender-id", help="Registered sender id or short code (africastalking) "
                                  "[default: NETPULSE_AFRICASTALKING_SENDER_ID].")
@click.option("--url", help="The Slack incoming-webhook URL (slack), or the receiver's URL (webhook).")
@click.option("--secret", envvar="NETPULSE_NOTIFY_WEBHOOK_SECRET",
              help="Key of the webhook's HMAC signature, 16+ characters (or set NETPULSE_NOTIFY_WEBHOOK_SECRET); "
                   "generated and printed once when left out.")
@click.option("--rate-limit", type=click.IntRange(1, 100_000), default=60, show_default=True,
              help="At most this many sends per minute through the channel, across all workers; more wait.")
@click.option("--disabled", is_flag=True, help="Add it disabled (check it with `netpulse notify test` first).")
@org_option
def add_command(name: str, kind: str, config: dict[str, Any] | None, to: tuple[str, ...], from_email: str | None,
                sender_id: str | None, url: str | None, secret: str | None, rate_limit: int, disabled: bool,
                org_slug: str | None) -> None:
    """Add the notification channel NAME.

    \b
    Per kind (config keys; the options set them):
      sendgrid, smtp   to (list), from_email
      africastalking   to (list of +phone numbers), sender_id
      slack            url
      webhook          url, secret, headers (object of extra request headers)
    Provider credentials are settings, not channel config: NETPULSE_SENDGRID_API_KEY, NETPULSE_SMTP_HOST,
    NETPULSE_AFRICASTALKING_USERNAME and NETPULSE_AFRICASTALKING_API_KEY, ...
    """
    import secrets

    from analytics.notify import create_channel, describe_target

    merged: dict[str, Any] = dict(config or {})
    options = {"to": list(to) or None, "from_email": from_email, "sender_id": sender_id, "url": url}
    merged.update({k: v for k, v in options.items() if v is not None})
    generated = None
    if kind == "webhook":  # the env var may be set for other kinds too; it only means something here
        if secret is not None:
            merged["secret"] = secret
        elif "secret" not in merged:
            merged["secret"] = generated = secrets.token_hex(32)
    with session_scope() as session:
        org = organization(session, org_slug)
        created = create_channel(session, org.id, name, kind, merged, rate_limit_per_minute=rate_limit,
                                 enabled=not disabled)
        summary = (f"added {kind} channel {created.name!r} (id {created.id}) to {describe_target(kind, merged)}, "
                   f"at most {rate_limit}/min{', disabled' if disabled else ''}")
    click.echo(summary)
    if generated:
        click.echo(f"webhook signing secret (shown once; give it to the receiver): {generated}")


@channel.command("list")
@org_option
def list_command(org_slug: str | None) -> None:
    """List notification channels, ordered by name. Secrets are not shown."""
    from analytics.notify import describe_target, list_channels

    with session_scope() as session:
        org = organization(session, org_slug)
        rows = [[str(c.id), c.name, c.kind, "yes" if c.enabled else "no", str(c.rate_limit_per_minute),
                 describe_target(c.kind, c.config) or "-"] for c in list_channels(session, org.id)]
    if not rows:
        click.echo(f"no notification channels in {org.slug} yet; add one with `netpulse notify channel add`")
        return
    click.echo(table(["ID", "NAME", "KIND", "ENABLED", "PER MIN", "TARGET"], rows))


@notify.command("test")
@click.argument("name")
@org_option
def test_command(name: str, org_slug: str | None) -> None:
    """Send a test notification through the channel NAME now and print the provider's answer.

    The send is recorded as a delivery (without alert), made once even when the channel is disabled,
    not retried and not rate limited. Exits non-zero when the provider did not take it.
    """
    from analytics.notify import DeliveryFailed, send_test

    settings = get_settings()
    with session_scope() as session:
        org = organization(session, org_slug)
        result = send_test(session, org.id, name, settings=settings)
    # Reported after the commit, so a failed test stays recorded.
    if not result.ok:
        detail = result.error or ""
        if result.answer is not None:
            detail = f"provider answered {result.answer.summary()}" + (f" ({detail})" if detail else "")
        raise DeliveryFailed(f"test notification through {name!r} failed (delivery {result.delivery_id}): {detail}")
    assert result.answer is not None
    click.echo(f"sent test notification through {name!r} (delivery {result.delivery_id}): "
               f"provider answered {result.answer.summary()}")


COMMANDS = [notify]
