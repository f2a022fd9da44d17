"""Organizations, users and roles: password hashing, authentication and the RBAC table of the spec."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from netpulse.errors import Conflict, ValidationError
from netpulse.schema import Organization, Role, User

__all__ = ["PERMISSIONS", "has_permission", "hash_password", "verify_password", "create_organization",
           "create_user", "authenticate", "get_organization_by_slug"]

# The spec's role table. "*" grants everything.
PERMISSIONS: dict[Role, frozenset[str]] = {
    Role.ADMIN: frozenset({"*"}),
    Role.OPERATOR: frozenset({"device:read", "device:write", "alert:read", "alert:write", "metrics:read",
                              "report:read"}),
    Role.VIEWER: frozenset({"device:read", "alert:read", "report:read", "metrics:read"}),
    Role.API_USER: frozenset({"device:read", "metrics:read"}),
}

_hasher = PasswordHasher()
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")


def has_permission(role: str, permission: str) -> bool:
    granted = PERMISSIONS.get(Role(role), frozenset())
    return "*" in granted or permission in granted


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(hashed: str, password: str) -> bool:
    try:
        return _hasher.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


def get_organization_by_slug(session: Session, slug: str) -> Organization | None:
    return session.scalar(select(Organization).where(Organization.slug == slug))


def create_organization(session: Session, name: str, slug: str) -> Organization:
    if not _SLUG.match(slug):
        raise ValidationError(f"slug {slug!r} must be lowercase letters, digits and dashes",
                              details={"slug": "invalid"})
    if get_organization_by_slug(session, slug) is not None:
        raise Conflict(f"an organization with slug {slug!r} already exists", code="ORGANIZATION_ALREADY_EXISTS")
    org = Organization(name=name, slug=slug)
    session.add(org)
    session.flush()
    return org


def create_user(session: Session, organization_id: uuid.UUID, email: str, password: str, *,
                role: Role | str = Role.VIEWER, full_name: str | None = None) -> User:
    errors: dict[str, str] = {}
    if not _EMAIL.match(email):
        errors["email"] = f"{email!r} is not an email address"
    if len(password) < 8:
        errors["password"] = "must be at least 8 characters"
    try:
        role = Role(role)
    except ValueError:
        errors["role"] = f"{role!r} is not one of {', '.join(r.value for r in Role)}"
    if errors:
        raise ValidationError("invalid user", details=errors)
    email = email.lower()
    if session.scalar(select(User.id).where(func.lower(User.email) == email)) is not None:
        raise Conflict(f"a user with email {email} already exists", code="USER_ALREADY_EXISTS")
    user = User(organization_id=organization_id, email=email, hashed_password=hash_password(password),
                role=Role(role).value, full_name=full_name, is_superuser=Role(role) is Role.ADMIN)
    session.add(user)
    session.flush()
    return user


def authenticate(session: Session, email: str, password: str) -> User | None:
    """The active user with these credentials, or None. Records the login time."""
    user = session.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))
    if user is None or not user.is_active:
        _hasher.hash(password)  # same cost whether or not the user exists
        return None
    if not verify_password(user.hashed_password, password):
        return None
    user.last_login_at = datetime.now(UTC)
    return user
