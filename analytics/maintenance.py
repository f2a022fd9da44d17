"""Maintenance windows: time when a device, group, site, tag or the whole organization is worked on.

A window takes its time out of availability and SLA figures (:mod:`analytics.sla`) and suppresses
the alerts of the devices it covers (:mod:`analytics.alerts`). The CLI (``netpulse maintenance``)
and the REST API add, list and remove windows through these functions only, in the caller's
transaction (a SQLAlchemy session).

A window names what it covers by name (``scope_ref``), as rules do; :func:`add_window` stores the exact
name (:func:`netpulse.inventory.scopes.resolve_scope_ref`), so a slug given for a site matches::

    add_window(session, org_id, scope="site", scope_ref="nairobi-dc", start=t0, end=t1, reason="core upgrade")
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import text
from sqlalchemy.orm import Session

from netpulse.errors import NotFound, ValidationError
from netpulse.inventory.scopes import SCOPES, resolve_scope_ref

__all__ = ["SCOPES", "STATES", "MAX_REASON", "MaintenanceWindow", "WindowState", "add_window", "list_windows",
           "get_window", "delete_window"]

STATES: tuple[str, ...] = ("all", "active", "upcoming", "past")
WindowState = Literal["all", "active", "upcoming", "past"]
MAX_REASON = 2000

_COLUMNS = "id, scope, scope_ref, starts_at, ends_at, reason, created_by, created_at"
# A window is active on [starts_at, ends_at), upcoming before, past after; every filter is a parameter.
_WHERE = """
WHERE organization_id = :org
  AND (:state = 'all'
       OR (:state = 'active' AND starts_at <= :now AND ends_at > :now)
       OR (:state = 'upcoming' AND starts_at > :now)
       OR (:state = 'past' AND ends_at <= :now))
"""


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    id: int
    scope: str
    scope_ref: str | None
    starts_at: datetime
    ends_at: datetime
    reason: str
    created_by: uuid.UUID | None
    created_at: datetime

    def state(self, now: datetime) -> str:
        """``active``, ``upcoming`` or ``past`` at ``now``."""
        if now < self.starts_at:
            return "upcoming"
        return "active" if now < self.ends_at else "past"


def _window(row: Any) -> MaintenanceWindow:
    return MaintenanceWindow(*row)


def add_window(session: Session, org_id: uuid.UUID, *, scope: str, scope_ref: str | None, start: datetime,
               end: datetime, reason: str = "", created_by: uuid.UUID | None = None) -> MaintenanceWindow:
    """Validate and insert a window over ``[start, end)``; ``scope_ref`` names what it covers (None for all).

    Raises:
        ValidationError: an unknown scope, a missing or superfluous reference, an empty span, a naive
            time or a reason over ``MAX_REASON`` characters (details keyed by field).
        NotFound: no device, group, site or tag of that name in the organization.
    """
    errors: dict[str, str] = {}
    if start.tzinfo is None or end.tzinfo is None:
        errors["from"] = "give times with a time zone (UTC)"
    elif end <= start:
        errors["to"] = f"must be after from ({start.isoformat()})"
    if len(reason) > MAX_REASON:
        errors["reason"] = f"at most {MAX_REASON} characters"
    if errors:
        raise ValidationError("invalid maintenance window: " + "; ".join(f"{k}: {v}" for k, v in errors.items()),
                              details=errors)
    name = resolve_scope_ref(session, org_id, scope, scope_ref)
    row = session.execute(text(
        "INSERT INTO maintenance_windows (organization_id, scope, scope_ref, starts_at, ends_at, reason, created_by)"
        f" VALUES (:org, :scope, :ref, :start, :end, :reason, :by) RETURNING {_COLUMNS}"),
        {"org": org_id, "scope": scope, "ref": name, "start": start, "end": end, "reason": reason,
         "by": created_by}).one()
    return _window(row)


def list_windows(session: Session, org_id: uuid.UUID, *, state: WindowState = "all", now: datetime,
                 limit: int = 100, offset: int = 0) -> tuple[list[MaintenanceWindow], int]:
    """One page of windows, latest start first, and how many match in all."""
    if state not in STATES:
        raise ValidationError(f"state {state!r} is not one of {', '.join(STATES)}", details={"state": "invalid"})
    params = {"org": org_id, "state": state, "now": now, "limit": limit, "offset": offset}
    total = session.execute(text("SELECT count(*) FROM maintenance_windows" + _WHERE), params).scalar_one()
    rows = session.execute(text(f"SELECT {_COLUMNS} FROM maintenance_windows" + _WHERE
                                + " ORDER BY starts_at DESC, id DESC LIMIT :limit OFFSET :offset"), params).all()
    return [_window(r) for r in rows], int(total)


def _not_found(window_id: int) -> NotFound:
    return NotFound(f"no maintenance window {window_id} in this organization", code="MAINTENANCE_WINDOW_NOT_FOUND",
                    details={"window_id": str(window_id)})


def get_window(session: Session, org_id: uuid.UUID, window_id: int) -> MaintenanceWindow:
    row = session.execute(text(f"SELECT {_COLUMNS} FROM maintenance_windows WHERE organization_id = :org AND id = :id"),
                          {"org": org_id, "id": window_id}).one_or_none()
    if row is None:
        raise _not_found(window_id)
    return _window(row)


def delete_window(session: Session, org_id: uuid.UUID, window_id: int) -> None:
    """Remove a window: its time counts again in availability (figures are computed when read)."""
    result = session.execute(text("DELETE FROM maintenance_windows WHERE organization_id = :org AND id = :id"),
                             {"org": org_id, "id": window_id})
    if getattr(result, "rowcount", 0) == 0:
        raise _not_found(window_id)
