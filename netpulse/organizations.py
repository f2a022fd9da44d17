"""Organizations: the tenants. Every other row of NetPulse belongs to exactly one.

Functions take a SQLAlchemy session, flush but never commit (the caller owns the transaction), and
raise field-keyed :class:`~netpulse.errors.ValidationError`, :class:`~netpulse.errors.NotFound` or
:class:`~netpulse.errors.Conflict` with messages that name the values.

The slug is derived from the name unless given:

>>> derive_slug("Acme Networks (East)")
'acme-networks-east'
>>> derive_slug("Ünïcode Télécom")
'unicode-telecom'
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from netpulse.errors import Conflict, NotFound, ValidationError
from netpulse.inventory.validation import slugify
from netpulse.schema import Device, Organization, User

__all__ = ["OrganizationSummary", "derive_slug", "create_organization", "get_organization",
           "get_organization_by_slug", "list_organizations"]

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class OrganizationSummary:
    id: uuid.UUID
    name: str
    slug: str
    users: int
    active_admins: int
    devices: int
    created_at: datetime


def derive_slug(name: str) -> str:
    """The URL-safe slug of a name: ASCII lowercase letters, digits and dashes."""
    return slugify(name)


def get_organization_by_slug(session: Session, slug: str) -> Organization | None:
    return session.scalar(select(Organization).where(Organization.slug == slug))


def get_organization(session: Session, ref: uuid.UUID | str) -> Organization:
    """The organization with this id or slug; NotFound (listing a few known slugs) otherwise."""
    org: Organization | None
    if isinstance(ref, uuid.UUID):
        org = session.get(Organization, ref)
    else:
        org = get_organization_by_slug(session, ref)
    if org is None:
        known = session.scalars(select(Organization.slug).order_by(Organization.slug).limit(20)).all()
        hint = f"known: {', '.join(known)}" if known else "none exists yet; create one with `netpulse org create NAME`"
        raise NotFound(f"no organization {str(ref)!r}; {hint}", details={"organization": str(ref)},
                       code="ORGANIZATION_NOT_FOUND")
    return org


def create_organization(session: Session, name: str, slug: str | None = None) -> Organization:
    """A new organization. ``slug`` (lowercase letters, digits and dashes) defaults to one derived from
    ``name``; both must be unique."""
    errors: dict[str, str] = {}
    name = (name or "").strip()
    if not name:
        errors["name"] = "an organization needs a name"
    elif len(name) > 255 or _CONTROL.search(name):
        errors["name"] = f"{name[:40]!r} must be at most 255 printable characters"
    if slug is None:
        slug = derive_slug(name)
        if name and not slug:
            errors["slug"] = (f"no slug can be derived from {name!r} (it has no ASCII letters or digits); "
                              "give one, e.g. --slug acme")
    elif not _SLUG.match(slug):
        errors["slug"] = (f"slug {slug!r} must be 1 to 100 lowercase letters, digits and dashes, starting with a "
                          f"letter or digit, e.g. {derive_slug(slug) or 'acme'!r}")
    if errors:
        raise ValidationError("invalid organization: " + "; ".join(f"{k}: {v}" for k, v in errors.items()),
                              details=errors)
    existing = session.scalar(select(Organization).where(
        (Organization.slug == slug) | (func.lower(Organization.name) == name.lower())))
    if existing is not None:
        field = "slug" if existing.slug == slug else "name"
        value = slug if field == "slug" else existing.name
        raise Conflict(f"an organization with {field} {value!r} already exists (slug {existing.slug}); "
                       f"choose another {field}", details={field: value}, code="ORGANIZATION_ALREADY_EXISTS")
    org = Organization(name=name, slug=slug)
    session.add(org)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:  # a concurrent create of the same slug
        raise Conflict(f"an organization with slug {slug!r} already exists", details={"slug": slug},
                       code="ORGANIZATION_ALREADY_EXISTS") from None
    return org


def list_organizations(session: Session) -> Sequence[OrganizationSummary]:
    """Every organization by slug, with its user, active-admin and device counts."""
    users = (select(User.organization_id, func.count().label("n"),
                    func.count().filter(User.is_active, User.role == "admin").label("admins"))
             .group_by(User.organization_id).subquery())
    devices = select(Device.organization_id, func.count().label("n")).group_by(Device.organization_id).subquery()
    rows = session.execute(
        select(Organization, func.coalesce(users.c.n, 0), func.coalesce(users.c.admins, 0),
               func.coalesce(devices.c.n, 0))
        .outerjoin(users, users.c.organization_id == Organization.id)
        .outerjoin(devices, devices.c.organization_id == Organization.id)
        .order_by(Organization.slug)).all()
    return [OrganizationSummary(id=o.id, name=o.name, slug=o.slug, users=int(n_users), active_admins=int(admins),
                                devices=int(n_devices), created_at=o.created_at)
            for o, n_users, admins, n_devices in rows]
