"""Organizations, users and roles: password hashing, authentication and the RBAC table of the spec."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from netpulse.config import ARGON2_MEMORY_KIB, ARGON2_PARALLELISM, ARGON2_TIME_COST
from netpulse.errors import Conflict, InvalidCredentials, ValidationError
from netpulse.schema import Organization, Role, User

__all__ = ["PERMISSIONS", "has_permission", "hash_password", "verify_password", "create_organization",
           "create_user", "authenticate", "get_organization_by_slug", "configure_hasher", "change_password",
           "revoke_tokens", "MAX_PASSWORD_LENGTH"]

# The spec's role table. "*" grants everything.
PERMISSIONS: dict[Role, frozenset[str]] = {
    Role.ADMIN: frozenset({"*"}),
    Role.OPERATOR: frozenset({"device:read", "device:write", "alert:read", "alert:write", "metrics:read",
                              "report:read"}),
    Role.VIEWER: frozenset({"device:read", "alert:read", "report:read", "metrics:read"}),
    Role.API_USER: frozenset({"device:read", "metrics:read"}),
}

# argon2id with the settings' defaults; composition roots apply the configured ones (configure_hasher).
_hasher = PasswordHasher(time_cost=ARGON2_TIME_COST, memory_cost=ARGON2_MEMORY_KIB, parallelism=ARGON2_PARALLELISM)
MAX_PASSWORD_LENGTH = 1024  # longer ones are refused before hashing (the hash cost grows with the length)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")


def has_permission(role: str, permission: str) -> bool:
    granted = PERMISSIONS.get(Role(role), frozenset())
    return "*" in granted or permission in granted


def configure_hasher(*, time_cost: int, memory_kib: int, parallelism: int) -> None:
    """Hash new passwords with these argon2id parameters; hashes made with others keep verifying and
    are rehashed at the user's next login."""
    global _hasher
    _hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)


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
    if _hasher.check_needs_rehash(user.hashed_password):
        # Same password, current parameters: not a password change, so the user's sessions stay
        # (the token-version trigger of the users table reads this transaction-local flag).
        session.execute(text("SELECT set_config('netpulse.rehash', 'on', true)"))
        user.hashed_password = _hasher.hash(password)
    user.last_login_at = datetime.now(UTC)
    session.flush()
    return user


def change_password(session: Session, user: User, current: str, new: str) -> None:
    """Set ``user``'s password after checking the current one; every token issued before stops working
    (the database moves the user's token version)."""
    if not verify_password(user.hashed_password, current):
        raise InvalidCredentials("the current password is wrong", details={"current_password": "wrong"})
    if not 8 <= len(new) <= MAX_PASSWORD_LENGTH:
        raise ValidationError(f"the new password must be 8 to {MAX_PASSWORD_LENGTH} characters",
                              details={"new_password": f"must be 8 to {MAX_PASSWORD_LENGTH} characters"})
    user.hashed_password = hash_password(new)
    session.flush()
    session.refresh(user, ["token_version"])


def revoke_tokens(session: Session, user_id: uuid.UUID) -> int | None:
    """End every session of the user (sign-out): its token version moves on. Returns the new version,
    or None when there is no such user."""
    return session.scalar(update(User).where(User.id == user_id)
                          .values(token_version=User.token_version + 1).returning(User.token_version))
