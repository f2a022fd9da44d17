"""``netpulse notify ...``: notification channels from the command line, and test sends through them.

Like ``netpulse devices``, every command works in one organization (``--org SLUG``, or the only one).
Errors are NetPulse errors, printed by the ``netpulse`` group as one ``Error: ...`` line (exit 1).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
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


@notify.group()
def policy() -> None:
    """Manage escalation policies: which channels hear about an alert, by severity and over time.

    
    critical  tier 0 when the alert opens, then each later tier once its delay has passed
              and the alert is still unacknowledged
    warning   the periodic digest, to the warning channels (tier 0's unless set)
    info      logged only
    Alert rules name their policy; rules without one, and SLA breaches, use the policy "default".
    """


def _channel_list(text: str | None) -> list[str] | None:
    return None if text is None else [c.strip() for c in text.split(",") if c.strip()]


@policy.command("add")
@click.argument("name")
@click.option("--tier", "tiers", multiple=True, required=True, metavar="DELAY:CHANNEL[,CHANNEL...]",
              help="A tier: its delay after the alert opened (0 for the first tier; 90s, 15m, 1h...) and the "
                   "channels it notifies. Repeat in order, e.g. --tier 0:noc-email --tier 15m:oncall-sms.")
@click.option("--warning-channels", metavar="CHANNEL[,CHANNEL...]",
              help="Where warning digests go [default: the channels of tier 0].")
@click.option("--no-warning-digest", is_flag=True, help="Send warnings of this policy to no channel.")
@org_option
def policy_add_command(name: str, tiers: tuple[str, ...], warning_channels: str | None, no_warning_digest: bool,
                       org_slug: str | None) -> None:
    """Add the escalation policy NAME.

    \b
    Example (the policy that rules without one of their own use):
      netpulse notify policy add default --tier 0:noc-email,noc-slack --tier 15m:oncall-sms \\
        --warning-channels noc-email
    """
    from analytics.policies import PolicySpec, add_policy, parse_tier, policy_view
    from netpulse.errors import ValidationError

    if no_warning_digest and warning_channels is not None:
        raise ValidationError("use either --warning-channels or --no-warning-digest, not both",
                              details={"warning_channels": "conflicts with --no-warning-digest"})
    spec = PolicySpec(name=name, tiers=[parse_tier(t) for t in tiers],
                      warning_channels=[] if no_warning_digest else _channel_list(warning_channels))
    with session_scope() as session:
        org = organization(session, org_slug)
        view = policy_view(add_policy(session, org.id, spec))
    click.echo(f"added escalation policy {view['name']!r} (id {view['id']}) to {org.slug}: "
               f"critical {_tiers_text(view)}; warning digest {', '.join(view['warning']) or 'to no channel'}; "
               "info logged only")


def _tiers_text(view: dict[str, Any], missing: Sequence[str] = ()) -> str:
    from netpulse.timespec import human_duration

    def names(channels: Sequence[str]) -> str:
        return ", ".join(f"{c} (missing)" if c in missing else c for c in channels)

    return "; ".join(f"{'at once' if t['after_s'] == 0 else 'after ' + human_duration(t['after_s'])}: "
                     f"{names(t['channels'])}" for t in view["critical"])


@policy.command("list")
@org_option
def policy_list_command(org_slug: str | None) -> None:
    """List escalation policies: critical tiers, warning digest channels, and the rules naming each."""
    from analytics.policies import known_channel_names, list_policies, policy_view

    with session_scope() as session:
        org = organization(session, org_slug)
        known = known_channel_names(session, org.id)
        views = [policy_view(u.policy, known_channels=known, rules=u.rules) for u in list_policies(session, org.id)]
    if not views:
        click.echo(f"no escalation policies in {org.slug} yet; add the one rules use by default with "
                   "`netpulse notify policy add default --tier 0:CHANNEL`")
        return
    rows = [[str(v["id"]), v["name"], _tiers_text(v, v["missing_channels"]),
             (", ".join(f"{c} (missing)" if c in v["missing_channels"] else c for c in v["warning"]) or "-")
             + ("" if v["warning_channels_set"] else " (tier 0)"), str(v["rules"])] for v in views]
    click.echo(table(["ID", "NAME", "CRITICAL", "WARNING DIGEST", "RULES"], rows))
    if not any(v["name"] == "default" for v in views):
        click.echo("no policy named default: rules without a policy of their own, and SLA breaches, have no "
                   "escalation tiers")
    if any(v["missing_channels"] for v in views):
        click.echo("(missing): the channel no longer exists; add it again or replace the policy")


@policy.command("remove")
@click.argument("name")
@click.option("--force", is_flag=True, help="Remove it even when alert rules name it (they then use the policy "
                                            "named default).")
@org_option
def policy_remove_command(name: str, force: bool, org_slug: str | None) -> None:
    """Remove the escalation policy NAME (refused while alert rules name it, unless --force)."""
    from analytics.policies import DEFAULT_POLICY, remove_policy

    with session_scope() as session:
        detached = remove_policy(session, organization(session, org_slug).id, name, force=force)
    click.echo(f"removed escalation policy {name!r}")
    if detached:
        click.echo(f"{len(detached)} rule(s) now use the policy named {DEFAULT_POLICY!r}: {', '.join(detached)}")
    if name == DEFAULT_POLICY:
        click.echo("rules without a policy of their own, and SLA breaches, have no escalation tiers until a "
                   "policy named default exists again")


COMMANDS = [notify]
