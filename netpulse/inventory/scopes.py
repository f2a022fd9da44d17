"""Scopes: what a rule, a maintenance window or an SLA target applies to.

A scope is ``device``, ``group``, ``site`` or ``tag`` with the name of one, or ``all`` with none.
The readers (``analytics.sla.scope_filter``, the alert engine's maintenance match) compare names, so a
reference is stored as the exact name of the row it names: a device by its name; a group, site or
tag by its name or its slug.
"""

from __future__ import annotations

import uuid

from sqlalchemy import case, select
from sqlalchemy.orm import Session

from netpulse.errors import NotFound, ValidationError
from netpulse.inventory.validation import slugify
from netpulse.schema import Device, DeviceGroup, Site, Tag

__all__ = ["SCOPES", "resolve_scope_ref"]

SCOPES: tuple[str, ...] = ("device", "group", "site", "tag", "all")
_LABELS: dict[str, type[DeviceGroup] | type[Site] | type[Tag]] = {"group": DeviceGroup, "site": Site, "tag": Tag}


def resolve_scope_ref(session: Session, organization_id: uuid.UUID, scope: str, ref: str | None) -> str | None:
    """The exact name ``ref`` stands for in ``scope`` (None for ``all``).

    Raises ValidationError (keys ``scope``, ``ref``) for an unknown scope or a missing or superfluous
    reference, and NotFound when no device, group, site or tag of the organization has that name.
    """
    if scope not in SCOPES:
        raise ValidationError(f"scope {scope!r} is not one of {', '.join(SCOPES)}", details={"scope": scope})
    ref = ref.strip() if ref is not None else None
    if scope == "all":
        if ref:
            raise ValidationError(f"scope all takes no reference (got {ref!r}); leave it out",
                                  details={"ref": "not allowed with scope all"})
        return None
    if not ref:
        raise ValidationError(f"scope {scope} needs a reference: the {scope}'s name", details={"ref": "required"})
    found: str | None
    if scope == "device":
        found = session.scalar(select(Device.name).where(Device.organization_id == organization_id,
                                                         Device.name == ref))
    else:
        model = _LABELS[scope]
        found = session.scalar(
            select(model.name).where(model.organization_id == organization_id,
                                     (model.name == ref) | (model.slug == slugify(ref)))
            .order_by(case((model.name == ref, 0), else_=1), model.id).limit(1))
    if found is None:
        raise NotFound(f"no {scope} named {ref!r} in this organization (names are exact"
                       f"{'' if scope == 'device' else ', slugs also match'})", details={"ref": ref},
                       code=f"{scope.upper()}_NOT_FOUND")
    return found
