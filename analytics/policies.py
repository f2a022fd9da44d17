"""Escalation policies: who hears about an alert, by severity and by how long it stays unacknowledged.

A policy is a list of tiers, each a delay and notification channel names:

- **critical**: tier 0 (delay 0) is notified when the alert opens; tier k when the alert is still
  firing and unacknowledged ``after_s`` seconds after it opened (:func:`analytics.alerts.escalate`);
- **warning**: gathered into the periodic digest sent to the policy's warning channels (tier 0's
  channels unless set);
- **info**: logged only, never notified.

A rule names its policy; a rule without one, and SLA breaches, use the policy named ``default``.
The alert engine (``analytics.alerts``) reads the same rows; the shape of ``steps`` is
``[{"after_s": 0, "channels": ["noc-email"]}, {"after_s": 900, "channels": ["oncall-sms"]}]``.

A tier is written ``DELAY:CHANNEL[,CHANNEL...]`` on the command line:

>>> parse_tier("15m:oncall-sms,noc-slack")
Tier(after_s=900, channels=('oncall-sms', 'noc-slack'))
>>> parse_tier("0:noc-email")
Tier(after_s=0, channels=('noc-email',))
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from netpulse import timespec
from netpulse.errors import Conflict, NotFound, ValidationError
from netpulse.schema import EscalationPolicy, NotificationChannel

__all__ = ["DEFAULT_POLICY", "MAX_TIERS", "MAX_DELAY_S", "Tier", "PolicySpec", "PolicyUsage", "parse_tier",
           "add_policy", "list_policies", "get_policy", "remove_policy", "policy_tiers", "policy_view",
           "known_channel_names"]

DEFAULT_POLICY = "default"
MAX_TIERS = 10
MAX_DELAY_S = 7 * 86_400
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._@+-]{0,99}$")


@dataclass(frozen=True, slots=True)
class Tier:
    after_s: int
    channels: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class PolicySpec:
    """A policy's input. ``warning_channels`` None sends warning digests to tier 0's channels; an empty
    sequence sends them nowhere."""

    name: str
    tiers: Sequence[Tier]
    warning_channels: Sequence[str] | None = None


@dataclass(frozen=True, slots=True)
class PolicyUsage:
    policy: EscalationPolicy
    rules: int


def parse_tier(text_: str) -> Tier:
    """``DELAY:CHANNEL[,CHANNEL...]``; DELAY is ``0`` or a duration such as ``90s``, ``15m``, ``1h``."""
    delay, sep, names = text_.partition(":")
    if not sep or not delay.strip():
        raise ValidationError(f"tier {text_!r} must be DELAY:CHANNEL[,CHANNEL...], e.g. 0:noc-email or "
                              "15m:oncall-sms,noc-slack", details={"tiers": text_})
    seconds = int(timespec.parse_duration(delay.strip(), field="tier delay", allow_zero=True).total_seconds())
    channels = tuple(c.strip() for c in names.split(",") if c.strip())
    return Tier(seconds, channels)


def policy_tiers(policy: EscalationPolicy) -> list[Tier]:
    return [Tier(int(step.get("after_s", 0)), tuple(step.get("channels", []))) for step in policy.steps]


def _known_channels(session: Session, organization_id: uuid.UUID) -> set[str]:
    return set(session.scalars(select(NotificationChannel.name)
                               .where(NotificationChannel.organization_id == organization_id)))


def _checked(session: Session, organization_id: uuid.UUID, spec: PolicySpec) -> dict[str, Any]:
    errors: dict[str, str] = {}
    name = (spec.name or "").strip()
    if not _NAME.match(name):
        errors["name"] = (f"policy name {name!r} must be 1 to 100 letters, digits, spaces or . _ @ + -, starting "
                          "with a letter or digit")
    tiers = list(spec.tiers)
    if not tiers:
        errors["tiers"] = "a policy needs at least one tier, e.g. 0:noc-email"
    elif len(tiers) > MAX_TIERS:
        errors["tiers"] = f"at most {MAX_TIERS} tiers (got {len(tiers)})"
    elif tiers[0].after_s != 0:
        errors["tiers"] = (f"tier 0 is notified when an alert opens, so its delay must be 0 "
                           f"(got {timespec.human_duration(tiers[0].after_s)})")
    else:
        for i, (before, tier) in enumerate(zip(tiers, tiers[1:], strict=False), start=1):
            if tier.after_s <= before.after_s:
                errors["tiers"] = (f"tier {i} must come later than tier {i - 1} "
                                   f"({timespec.human_duration(tier.after_s)} is not after "
                                   f"{timespec.human_duration(before.after_s)}); delays count from when the "
                                   "alert opened")
                break
            if tier.after_s > MAX_DELAY_S:
                errors["tiers"] = f"tier {i} delay must be at most 7d (got {timespec.human_duration(tier.after_s)})"
                break
    known = _known_channels(session, organization_id)
    wanted: list[tuple[str, str]] = []
    for i, tier in enumerate(tiers):
        if not tier.channels:
            errors.setdefault("tiers", f"tier {i} names no channel")
        if len(set(tier.channels)) != len(tier.channels):
            errors.setdefault("tiers", f"tier {i} names a channel twice ({', '.join(tier.channels)})")
        wanted += [("tiers", c) for c in tier.channels]
    if spec.warning_channels is not None:
        wanted += [("warning_channels", c) for c in spec.warning_channels]
    missing: dict[str, list[str]] = {}
    for key, channel in wanted:
        if channel not in known:
            missing.setdefault(key, []).append(channel)
    for key, names in missing.items():
        hint = (f"known: {', '.join(sorted(known)[:20])}" if known
                else "none is configured yet; add one with `netpulse notify channel add`")
        errors.setdefault(key, f"no notification channel named {', '.join(map(repr, dict.fromkeys(names)))}; {hint}")
    if errors:
        raise ValidationError(f"invalid escalation policy {name!r}: "
                              + "; ".join(f"{k}: {v}" for k, v in errors.items()), details=errors)
    return {"name": name, "steps": [{"after_s": t.after_s, "channels": list(t.channels)} for t in tiers],
            "warning_channels": list(dict.fromkeys(spec.warning_channels))
            if spec.warning_channels is not None else None}


def add_policy(session: Session, organization_id: uuid.UUID, spec: PolicySpec) -> EscalationPolicy:
    """A new policy; every channel it names must exist in the organization. Its name is unique."""
    values = _checked(session, organization_id, spec)
    existing = session.scalar(select(EscalationPolicy.id).where(EscalationPolicy.organization_id == organization_id,
                                                                EscalationPolicy.name == values["name"]))
    if existing is not None:
        raise Conflict(f"an escalation policy named {values['name']!r} already exists (id {existing}); choose another "
                       "name or remove it first", details={"name": values["name"]}, code="POLICY_ALREADY_EXISTS")
    policy = EscalationPolicy(organization_id=organization_id, **values)
    session.add(policy)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:  # a concurrent add of the same name
        raise Conflict(f"an escalation policy named {values['name']!r} already exists",
                       details={"name": values["name"]}, code="POLICY_ALREADY_EXISTS") from None
    return policy


def list_policies(session: Session, organization_id: uuid.UUID) -> Sequence[PolicyUsage]:
    """The organization's policies by name, each with how many alert rules name it."""
    rows = session.execute(text(
        "SELECT p.id, (SELECT count(*) FROM alert_rules r WHERE r.escalation_policy_id = p.id) "
        "FROM escalation_policies p WHERE p.organization_id = :org"), {"org": organization_id}).all()
    counts = {pid: int(n) for pid, n in rows}
    policies = session.scalars(select(EscalationPolicy).where(EscalationPolicy.organization_id == organization_id)
                               .order_by(EscalationPolicy.name)).all()
    return [PolicyUsage(p, counts.get(p.id, 0)) for p in policies]


def get_policy(session: Session, organization_id: uuid.UUID, ref: int | str) -> EscalationPolicy:
    """The policy with this id (int) or name (str); NotFound listing known names otherwise."""
    stmt = select(EscalationPolicy).where(EscalationPolicy.organization_id == organization_id)
    stmt = stmt.where(EscalationPolicy.id == ref) if isinstance(ref, int) else stmt.where(EscalationPolicy.name == ref)
    policy = session.scalar(stmt)
    if policy is None:
        names = session.scalars(select(EscalationPolicy.name)
                                .where(EscalationPolicy.organization_id == organization_id)
                                .order_by(EscalationPolicy.name).limit(20)).all()
        hint = (f"known: {', '.join(names)}" if names
                else "none is defined yet; add one with `netpulse notify policy add`")
        raise NotFound(f"no escalation policy {ref!r} in this organization; {hint}", details={"policy": str(ref)},
                       code="POLICY_NOT_FOUND")
    return policy


def remove_policy(session: Session, organization_id: uuid.UUID, ref: int | str, *, force: bool = False) -> list[str]:
    """Delete the policy; returns the names of the rules that named it (force only), which then use the
    policy named "default". Without ``force`` a policy that rules name is refused (Conflict naming them)."""
    policy = get_policy(session, organization_id, ref)
    rules = [r[0] for r in session.execute(text(
        "SELECT name FROM alert_rules WHERE organization_id = :org AND escalation_policy_id = :id ORDER BY name "
        "FOR UPDATE"), {"org": organization_id, "id": policy.id})]
    if rules and not force:
        shown = ", ".join(rules[:10]) + (f" and {len(rules) - 10} more" if len(rules) > 10 else "")
        raise Conflict(f"escalation policy {policy.name!r} is named by {len(rules)} alert rule(s): {shown}; "
                       "point them at another policy first, or remove it with --force (they then use the "
                       f"policy named {DEFAULT_POLICY!r})", details={"rules": rules}, code="POLICY_IN_USE")
    session.delete(policy)  # alert_rules.escalation_policy_id is ON DELETE SET NULL
    session.flush()
    return rules


def policy_view(policy: EscalationPolicy, *, known_channels: set[str] | None = None,
                rules: int | None = None) -> dict[str, Any]:
    """The policy as the CLI and the API show it, per severity. With ``known_channels``, channels that
    no longer exist are listed under ``missing_channels``."""
    tiers = policy_tiers(policy)
    warning = list(policy.warning_channels) if policy.warning_channels is not None else (
        list(tiers[0].channels) if tiers else [])
    view: dict[str, Any] = {
        "id": policy.id, "name": policy.name,
        "critical": [{"tier": i, "after_s": t.after_s, "channels": list(t.channels)} for i, t in enumerate(tiers)],
        "warning": warning, "warning_channels_set": policy.warning_channels is not None, "info": [],
    }
    if known_channels is not None:
        named = [c for t in tiers for c in t.channels] + warning
        view["missing_channels"] = sorted({c for c in named if c not in known_channels})
    if rules is not None:
        view["rules"] = rules
    return view


def known_channel_names(session: Session, organization_id: uuid.UUID) -> set[str]:
    """Names of the organization's notification channels (to flag policies naming removed ones)."""
    return _known_channels(session, organization_id)

