"""Sites, groups and tags by name: looked up in chunks, created on demand (slugified names)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from netpulse.errors import ValidationError
from netpulse.inventory.validation import _check_label, _Invalid, slugify
from netpulse.schema import (
    DeviceGroup,
    Site,
    Tag,
)

_CHUNK = 1000  # values per IN (...) list: far below the protocol's 65,535 parameters
_Named = TypeVar("_Named", Site, DeviceGroup, Tag)


def _chunks(values: Sequence[str], size: int = _CHUNK) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def _find_named(session: Session, model: type[_Named], org_id: uuid.UUID,
                names: Iterable[str]) -> dict[str, _Named]:
    """The existing row for each name, matched by exact name first, then by slug."""
    wanted = sorted(set(names))
    by_name: dict[str, _Named] = {}
    by_slug: dict[str, _Named] = {}
    for chunk in _chunks(wanted):
        rows = session.scalars(select(model).where(
            model.organization_id == org_id,
            or_(model.name.in_(chunk), model.slug.in_([slugify(n) for n in chunk])),
        ).order_by(model.id))
        for row in rows:
            by_name.setdefault(row.name, row)
            by_slug.setdefault(row.slug, row)
    found: dict[str, _Named] = {}
    for name in wanted:
        match = by_name.get(name) or by_slug.get(slugify(name))
        if match is not None:
            found[name] = match
    return found


def _get_or_create(session: Session, model: type[_Named], org_id: uuid.UUID, name: str, what: str) -> _Named:
    try:
        clean = _check_label(name)
    except _Invalid as exc:
        raise ValidationError(f"invalid {what}: {exc}", details={what: str(exc)}) from None
    if clean is None:
        raise ValidationError(f"invalid {what}: a name is required", details={what: "a name is required"})
    row: _Named | None = _find_named(session, model, org_id, [clean]).get(clean)
    if row is None:
        row = model(organization_id=org_id, name=clean, slug=slugify(clean))
        session.add(row)
        session.flush()
    return row


def get_or_create_site(session: Session, org_id: uuid.UUID, name: str) -> Site:
    """The site called ``name`` (or whose slug is ``slugify(name)``), created when there is none."""
    return _get_or_create(session, Site, org_id, name, "site")


def get_or_create_group(session: Session, org_id: uuid.UUID, name: str) -> DeviceGroup:
    return _get_or_create(session, DeviceGroup, org_id, name, "group")


def get_or_create_tag(session: Session, org_id: uuid.UUID, name: str) -> Tag:
    return _get_or_create(session, Tag, org_id, name, "tag")
