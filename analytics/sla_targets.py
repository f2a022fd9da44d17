"""SLA targets: an availability percentage a scope must reach over a calendar period.

A target names a scope (a device, group, site or tag by name, or all devices), a percentage
(0 < pct <= 100, up to four decimals), a calendar period (day, week, month, quarter, year; UTC) and
the severity of the alert a breach opens. :func:`analytics.sla.evaluate_targets` evaluates them and
:func:`analytics.alerts.apply_sla` turns breaches into alerts. One target per scope and period.

Removing a target resolves its open breach alert, which nothing would resolve otherwise.

>>> parse_target_pct("99.95%")
Decimal('99.95')
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from analytics.rules import SEVERITIES
from analytics.sla import PERIODS
from netpulse.errors import Conflict, NotFound, ValidationError
from netpulse.inventory.scopes import resolve_scope_ref
from netpulse.schema import SlaTarget

__all__ = ["parse_target_pct", "add_sla_target", "list_sla_targets", "get_sla_target", "remove_sla_target",
           "describe_scope", "format_pct"]


def parse_target_pct(value: str | float | Decimal) -> Decimal:
    """A percentage from ``99.9``, ``"99.9"`` or ``"99.9%"``: above 0, at most 100, four decimals at most."""
    raw = value.strip().removesuffix("%").strip() if isinstance(value, str) else value
    try:
        pct = Decimal(str(raw))
    except InvalidOperation:
        raise ValidationError(f"target {value!r} is not a percentage like 99.9", details={"target_pct": str(value)}
                              ) from None
    if not pct.is_finite() or not Decimal(0) < pct <= Decimal(100):
        raise ValidationError(f"target {value!r} must be above 0 and at most 100 (a percentage like 99.9)",
                              details={"target_pct": str(value)})
    if pct != pct.quantize(Decimal("0.0001")):
        raise ValidationError(f"target {value!r} has more than four decimals", details={"target_pct": str(value)})
    return pct


def format_pct(pct: Decimal | float) -> str:
    """``99.9%`` for the stored ``99.9000``."""
    return f"{float(pct):g}%"


def describe_scope(scope: str, ref: str | None) -> str:
    return "all devices" if scope == "all" else f"{scope} {ref!r}"


def add_sla_target(session: Session, organization_id: uuid.UUID, *, scope: str, ref: str | None,
                   target_pct: str | float | Decimal, period: str = "month", severity: str = "critical") -> SlaTarget:
    """A new target. ``ref`` names an existing device (exact name) or group, site or tag (name or slug)
    of the organization and is stored as its exact name; None for scope ``all``."""
    errors: dict[str, str] = {}
    if period not in PERIODS:
        errors["period"] = f"period {period!r} is not one of {', '.join(PERIODS)}"
    if severity not in SEVERITIES:
        errors["severity"] = f"severity {severity!r} is not one of {', '.join(SEVERITIES)}"
    if errors:
        raise ValidationError("invalid SLA target: " + "; ".join(f"{k}: {v}" for k, v in errors.items()),
                              details=errors)
    pct = parse_target_pct(target_pct)
    name = resolve_scope_ref(session, organization_id, scope, ref)
    existing = session.scalar(select(SlaTarget).where(
        SlaTarget.organization_id == organization_id, SlaTarget.scope == scope,
        SlaTarget.scope_ref.is_(None) if name is None else SlaTarget.scope_ref == name, SlaTarget.period == period))
    if existing is not None:
        raise Conflict(f"{describe_scope(scope, name)} already has a {period}ly target of "
                       f"{format_pct(existing.target_pct)} (id {existing.id}); remove it first to change it",
                       details={"scope": scope, "ref": name, "period": period}, code="SLA_TARGET_ALREADY_EXISTS")
    target = SlaTarget(organization_id=organization_id, scope=scope, scope_ref=name, target_pct=pct, period=period,
                       severity=severity)
    session.add(target)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:  # a concurrent add for the same scope and period
        raise Conflict(f"{describe_scope(scope, name)} already has a {period}ly target",
                       details={"scope": scope, "ref": name, "period": period},
                       code="SLA_TARGET_ALREADY_EXISTS") from None
    return target


def list_sla_targets(session: Session, organization_id: uuid.UUID) -> Sequence[SlaTarget]:
    """The organization's targets by id (the order ``evaluate_targets`` reports them in)."""
    return session.scalars(select(SlaTarget).where(SlaTarget.organization_id == organization_id)
                           .order_by(SlaTarget.id)).all()


def get_sla_target(session: Session, organization_id: uuid.UUID, target_id: int) -> SlaTarget:
    target = session.scalar(select(SlaTarget).where(SlaTarget.organization_id == organization_id,
                                                    SlaTarget.id == target_id))
    if target is None:
        ids = session.scalars(select(SlaTarget.id).where(SlaTarget.organization_id == organization_id)
                              .order_by(SlaTarget.id).limit(20)).all()
        hint = (f"known ids: {', '.join(map(str, ids))}" if ids
                else "none is defined yet; add one with `netpulse sla target add`")
        raise NotFound(f"no SLA target with id {target_id} in this organization; {hint}",
                       details={"target_id": target_id}, code="SLA_TARGET_NOT_FOUND")
    return target


def remove_sla_target(session: Session, organization_id: uuid.UUID, target_id: int) -> tuple[SlaTarget, int]:
    """Delete the target and resolve its open breach alert; returns the target and how many alerts
    were resolved (0 or 1)."""
    target = get_sla_target(session, organization_id, target_id)
    now = datetime.now(UTC)
    note = "SLA target removed"
    # apply_sla fingerprints a breach as sla:<target id>:<period start>.
    resolved = session.execute(text(
        "UPDATE alerts SET status = 'resolved', resolved = true, resolved_at = :now, resolution_note = :note "
        "WHERE organization_id = :org AND alert_type = 'sla_breach' AND NOT resolved "
        "AND fingerprint LIKE :prefix RETURNING id"),
        {"now": now, "note": note, "org": organization_id, "prefix": f"sla:{target.id}:%"}).scalars().all()
    for alert_id in resolved:
        session.execute(text("INSERT INTO alert_events (alert_id, time, kind, note, details) "
                             "VALUES (:id, :now, 'resolved', :note, CAST(:details AS jsonb))"),
                        {"id": alert_id, "now": now, "note": note, "details": json.dumps({"target_id": target.id})})
    session.delete(target)
    session.flush()
    return target, len(resolved)
