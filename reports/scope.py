"""What a report covers: all devices, or one device, group, site or tag (``site:Nairobi``).

>>> parse_scope("site:Dar es Salaam")
Scope(kind='site', ref='Dar es Salaam')
>>> parse_scope("all").label
'All devices'
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from netpulse.errors import NotFound, ValidationError
from netpulse.inventory import slugify

__all__ = ["Scope", "SCOPE_KINDS", "parse_scope", "resolve_scope", "report_time_zone"]

SCOPE_KINDS = ("device", "group", "site", "tag", "all")
_TABLES = {"group": "device_groups", "site": "sites", "tag": "tags"}


@dataclass(frozen=True, slots=True)
class Scope:
    kind: str
    ref: str | None = None

    @property
    def label(self) -> str:
        return "All devices" if self.kind == "all" else f"{self.kind.capitalize()} {self.ref}"

    @property
    def text(self) -> str:
        """As typed: ``site:Nairobi`` or ``all``."""
        return "all" if self.kind == "all" else f"{self.kind}:{self.ref}"

    @property
    def slug(self) -> str:
        return "all" if self.kind == "all" else f"{self.kind}-{slugify(self.ref or '') or 'x'}"


def parse_scope(text: str, *, field: str = "--scope") -> Scope:
    """``all``, or ``KIND:NAME`` with KIND one of device, group, site, tag."""
    raw = (text or "").strip()
    if raw == "all":
        return Scope("all")
    kind, sep, ref = raw.partition(":")
    if not sep or kind not in SCOPE_KINDS or kind == "all" or not ref.strip():
        raise ValidationError(f"{field}: {text!r} is not a scope; use all, or site:NAME, group:NAME, "
                              "device:NAME or tag:NAME", details={field.lstrip("-"): "not a scope"})
    return Scope(kind, ref.strip())


def resolve_scope(conn: Any, org_id: uuid.UUID, scope: Scope) -> Scope:
    """The scope with its name exactly as stored (a group, site or tag may be named by its slug too);
    NotFound when the organization has no such device, group, site or tag."""
    if scope.kind == "all":
        return scope
    if scope.kind == "device":
        row = conn.execute("SELECT name FROM devices WHERE organization_id = %s AND name = %s",
                           (org_id, scope.ref)).fetchone()
    else:
        row = conn.execute(f"SELECT name FROM {_TABLES[scope.kind]} WHERE organization_id = %s"  # noqa: S608
                           " AND (name = %s OR slug = %s) ORDER BY name = %s DESC, id LIMIT 1",
                           (org_id, scope.ref, slugify(scope.ref or ""), scope.ref)).fetchone()
    if row is None:
        raise NotFound(f"no {scope.kind} named {scope.ref!r} in this organization", details={"scope": scope.text},
                       code=f"{scope.kind.upper()}_NOT_FOUND")
    return Scope(scope.kind, str(row[0]))


def report_time_zone(conn: Any, org_id: uuid.UUID, scope: Scope) -> str:
    """The time zone a report of ``scope`` is read in: its site's for a site scope, else the organization's."""
    if scope.kind == "site":
        row = conn.execute("SELECT time_zone FROM sites WHERE organization_id = %s AND name = %s",
                           (org_id, scope.ref)).fetchone()
        if row is not None:
            return str(row[0])
    row = conn.execute("SELECT time_zone FROM organizations WHERE id = %s", (org_id,)).fetchone()
    return str(row[0]) if row is not None else "UTC"
