"""Maintenance windows: time when a device, group, site, tag or the whole organization is worked on.

A window takes its time out of availability and SLA figures (:mod:`analytics.sla`) and suppresses
the alerts of the devices it covers (:mod:`analytics.alerts`). The CLI (``netpulse maintenance``)
and the REST API add, list and remove windows through these functions only.

A window names what it covers by name (``scope_ref``), as rules do: the device's name, or the name of
a group, site or tag. :func:`add_window` stores the exact name, so a slug given for a site matches::

    add_window(conn, org_id, scope="site", scope_ref="nairobi-dc", start=t0, end=t1, reason="core upgrade")
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from netpulse.errors import NotFound, ValidationError
from netpulse.inventory import slugify

__all__ = ["SCOPES", "STATES", "MAX_REASON", "MaintenanceWindow", "WindowState", "resolve_scope_ref", "add_window",
           "list_windows", "get_window", "delete_window"]

SCOPES: tuple[str, ...] = ("device", "group", "site", "tag", "all")
STATES: tuple[str, ...] = ("all", "active", "upcoming", "past")
WindowState = Literal["all", "active", "upcoming", "past"]
MAX_REASON = 2000

_COLUMNS = "id, scope, scope_ref, starts_at, ends_at, reason, created_by, created_at"
# A window is active on [starts_at, ends_at), upcoming before, past after; every filter is a parameter.
_WHERE = """
WHERE organization_id = %(org)s
  AND (%(state)s = 'all'
       OR (%(state)s = 'active' AND starts_at <= %(now)s AND ends_at > %(now)s)
       OR (%(state)s = 'upcoming' AND starts_at > %(now)s)
       OR (%(state)s = 'past' AND ends_at <= %(now)s))
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


def resolve_scope_ref(conn: Any, org_id: uuid.UUID, scope: str, ref: str, *, ref_field: str = "scope_ref") -> str:
    """The exact name a window of ``scope`` will match: a device by name; a group, site or tag by name or slug.

    Raises NotFound (``<SCOPE>_NOT_FOUND``) naming ``ref_field``, the input that carried the name.
    """
    if scope == "device":
        row = conn.execute("SELECT name FROM devices WHERE organization_id = %s AND name = %s",
                           (org_id, ref)).fetchone()
    else:
        table = {"group": "device_groups", "site": "sites", "tag": "tags"}[scope]
        row = conn.execute(f"SELECT name FROM {table} WHERE organization_id = %s AND (name = %s OR slug = %s)"
                           " ORDER BY name = %s DESC, id LIMIT 1", (org_id, ref, slugify(ref), ref)).fetchone()
    if row is None:
        raise NotFound(f"no {scope} named {ref!r} in this organization; check {ref_field} (names are exact"
                       f"{'' if scope == 'device' else ', slugs also match'})", details={ref_field: ref},
                       code=f"{scope.upper()}_NOT_FOUND")
    return str(row[0])


def add_window(conn: Any, org_id: uuid.UUID, *, scope: str, scope_ref: str | None, start: datetime, end: datetime,
               reason: str = "", created_by: uuid.UUID | None = None) -> MaintenanceWindow:
    """Validate and insert a window over ``[start, end)``; ``scope_ref`` names what it covers (None for all).

    Raises:
        ValidationError: an unknown scope, a missing or superfluous ``scope_ref``, an empty span, a
            naive time or a reason over ``MAX_REASON`` characters (details keyed by field).
        NotFound: no device, group, site or tag of that name in the organization.
    """
    errors: dict[str, str] = {}
    if scope not in SCOPES:
        errors["scope"] = f"{scope!r} is not one of {', '.join(SCOPES)}"
    elif scope == "all" and scope_ref:
        errors["scope_ref"] = "not used with scope 'all'; leave it out"
    elif scope != "all" and not scope_ref:
        errors["scope_ref"] = f"scope {scope!r} needs the name of the {scope}"
    if start.tzinfo is None or end.tzinfo is None:
        errors["from"] = "give times with a time zone (UTC)"
    elif end <= start:
        errors["to"] = f"must be after from ({start.isoformat()})"
    if len(reason) > MAX_REASON:
        errors["reason"] = f"at most {MAX_REASON} characters"
    if errors:
        raise ValidationError("invalid maintenance window: " + "; ".join(f"{k}: {v}" for k, v in errors.items()),
                              details=errors)
    name = resolve_scope_ref(conn, org_id, scope, scope_ref) if scope_ref else None
    row = conn.execute("INSERT INTO maintenance_windows (organization_id, scope, scope_ref, starts_at, ends_at, reason,"
                       f" created_by) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
                       (org_id, scope, name, start, end, reason, created_by)).fetchone()
    return _window(row)


def list_windows(conn: Any, org_id: uuid.UUID, *, state: WindowState = "all", now: datetime, limit: int = 100,
                 offset: int = 0) -> tuple[list[MaintenanceWindow], int]:
    """One page of windows, latest start first, and how many match in all."""
    if state not in STATES:
        raise ValidationError(f"state {state!r} is not one of {', '.join(STATES)}", details={"state": "invalid"})
    params = {"org": org_id, "state": state, "now": now, "limit": limit, "offset": offset}
    total = conn.execute("SELECT count(*) FROM maintenance_windows" + _WHERE, params).fetchone()[0]
    rows = conn.execute(f"SELECT {_COLUMNS} FROM maintenance_windows" + _WHERE
                        + " ORDER BY starts_at DESC, id DESC LIMIT %(limit)s OFFSET %(offset)s", params).fetchall()
    return [_window(r) for r in rows], int(total)


def _not_found(window_id: int) -> NotFound:
    return NotFound(f"no maintenance window {window_id} in this organization", code="MAINTENANCE_WINDOW_NOT_FOUND",
                    details={"window_id": str(window_id)})


def get_window(conn: Any, org_id: uuid.UUID, window_id: int) -> MaintenanceWindow:
    row = conn.execute(f"SELECT {_COLUMNS} FROM maintenance_windows WHERE organization_id = %s AND id = %s",
                       (org_id, window_id)).fetchone()
    if row is None:
        raise _not_found(window_id)
    return _window(row)


def delete_window(conn: Any, org_id: uuid.UUID, window_id: int) -> None:
    """Remove a window: its time counts again in availability from now on (past figures are recomputed)."""
    if conn.execute("DELETE FROM maintenance_windows WHERE organization_id = %s AND id = %s",
                    (org_id, window_id)).rowcount == 0:
        raise _not_found(window_id)
