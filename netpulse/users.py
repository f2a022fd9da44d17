"""Users and roles: password hashing, authentication, the RBAC table of the spec, and user administration.

Administration functions (``create_user``, ``list_users``, ``get_user``, ``disable_user``, ``enable_user``,
``set_role``, ``reset_password``) take a session and an organization id, flush but never commit, and
raise field-keyed ValidationError, NotFound or Conflict naming the values. A user is named by id or by
e-mail; one of another organization is not found. No change may leave an organization without an
active admin. Organizations themselves live in :mod:`netpulse.organizations`.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from netpulse.config import ARGON2_MEMORY_KIB, ARGON2_PARALLELISM, ARGON2_TIME_COST
from netpulse.errors import Conflict, InvalidCredentials, NotFound, ValidationError
from netpulse.organizations import create_organization, get_organization_by_slug
from netpulse.schema import Role, User

__all__ = ["PERMISSIONS", "has_permission", "hash_password", "verify_password", "create_organization",
           "create_user", "authenticate", "get_organization_by_slug", "list_users", "get_user", "disable_user",
           "enable_user", "set_role", "reset_password", "MIN_PASSWORD_LENGTH", "MAX_PASSWORD_LENGTH",
           "configure_hasher", "change_password", "revoke_tokens", "generate_password"]

# The spec's role table. "*" grants everything. report:write (ask for reports, change their schedules)
# follows the table's resource:write pattern: operators hold it as they hold device:write and alert:write.
PERMISSIONS: dict[Role, frozenset[str]] = {
    Role.ADMIN: frozenset({"*"}),
    Role.OPERATOR: frozenset({"device:read", "device:write", "alert:read", "alert:write", "metrics:read",
                              "report:read", "report:write"}),
    Role.VIEWER: frozenset({"device:read", "alert:read", "report:read", "metrics:read"}),
    Role.API_USER: frozenset({"device:read", "metrics:read"}),
}

# argon2id with the settings' defaults; composition roots apply the configured ones (configure_hasher).
_hasher = PasswordHasher(time_cost=ARGON2_TIME_COST, memory_cost=ARGON2_MEMORY_KIB, parallelism=ARGON2_PARALLELISM)
_EMAIL = re.compile(r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024  # argon2 hashes any length; a cap keeps one login from costing megabytes


def generate_password() -> str:
    """A random password for a new user or a reset (20 URL-safe characters, about 120 bits), to be shown
    once to the administrator who hands it over."""
    return secrets.token_urlsafe(15)


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


def _password_problem(password: str) -> str | None:
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"must be at least {MIN_PASSWORD_LENGTH} characters (got {len(password)})"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"must be at most {MAX_PASSWORD_LENGTH} characters (got {len(password)})"
    if "\x00" in password:
        return "must not contain a NUL character"
    return None


def _role_of(role: Role | str, errors: dict[str, str]) -> Role | None:
    try:
        return Role(role)
    except ValueError:
        errors["role"] = f"{role!r} is not one of {', '.join(r.value for r in Role)}"
        return None


def _raise_if(errors: dict[str, str], what: str) -> None:
    if errors:
        raise ValidationError(f"invalid {what}: " + "; ".join(f"{k}: {v}" for k, v in errors.items()),
                              details=errors)


def create_user(session: Session, organization_id: uuid.UUID, email: str, password: str, *,
                role: Role | str = Role.VIEWER, full_name: str | None = None) -> User:
    """A new active user of the organization. E-mail addresses are unique across organizations and
    stored lowercased; the password is stored as an argon2 hash only."""
    errors: dict[str, str] = {}
    email = (email or "").strip().lower()
    if len(email) > 255 or not _EMAIL.match(email):
        errors["email"] = f"{email[:80]!r} is not an e-mail address like noc@example.com"
    problem = _password_problem(password)
    if problem:
        errors["password"] = problem
    checked = _role_of(role, errors)
    if full_name is not None:
        full_name = full_name.strip() or None
        if full_name is not None and (len(full_name) > 255 or _CONTROL.search(full_name)):
            errors["full_name"] = f"{full_name[:40]!r} must be at most 255 printable characters"
    _raise_if(errors, f"user {email!r}" if email else "user")
    assert checked is not None
    taken = session.scalar(select(User).where(func.lower(User.email) == email))
    if taken is not None:
        where = ("" if taken.organization_id == organization_id
                 else " (e-mail addresses are unique across organizations)")
        raise Conflict(f"a user with e-mail {email} already exists{where}", details={"email": email},
                       code="USER_ALREADY_EXISTS")
    user = User(organization_id=organization_id, email=email, hashed_password=hash_password(password),
                role=checked.value, full_name=full_name, is_superuser=checked is Role.ADMIN)
    session.add(user)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:  # a concurrent add of the same address
        raise Conflict(f"a user with e-mail {email} already exists", details={"email": email},
                       code="USER_ALREADY_EXISTS") from None
    return user


def list_users(session: Session, organization_id: uuid.UUID, *, include_disabled: bool = True) -> Sequence[User]:
    """The organization's users by e-mail."""
    stmt = select(User).where(User.organization_id == organization_id)
    if not include_disabled:
        stmt = stmt.where(User.is_active)
    return session.scalars(stmt.order_by(User.email)).all()


def get_user(session: Session, organization_id: uuid.UUID, ref: uuid.UUID | str) -> User:
    """The user of this organization with id or e-mail ``ref``; NotFound otherwise (also when the
    user belongs to another organization)."""
    stmt = select(User).where(User.organization_id == organization_id)
    if isinstance(ref, uuid.UUID):
        stmt = stmt.where(User.id == ref)
    else:
        stmt = stmt.where(func.lower(User.email) == ref.strip().lower())
    user = session.scalar(stmt)
    if user is None:
        raise NotFound(f"no user {str(ref)!r} in this organization; `netpulse users list` shows them",
                       details={"user": str(ref)}, code="USER_NOT_FOUND")
    return user


def _changed(user: User) -> None:
    """Every administrative change of a user goes through here (sign-in state depends on these fields)."""
    user.updated_at = datetime.now(UTC)


def _keep_an_admin(session: Session, user: User, action: str) -> None:
    """Refuse ``action`` (e.g. "disable a@b.test") when ``user`` is the organization's last active admin."""
    if user.role != Role.ADMIN.value or not user.is_active:
        return
    # Locking the other admins makes two concurrent demotions of the last two admins conflict.
    others = session.scalars(select(User.id).where(
        User.organization_id == user.organization_id, User.role == Role.ADMIN.value, User.is_active,
        User.id != user.id).with_for_update()).all()
    if not others:
        raise Conflict(f"cannot {action}: it is the organization's only active admin; make another user "
                       "admin first (`netpulse users role EMAIL admin`)", details={"user": user.email},
                       code="LAST_ADMIN")


def disable_user(session: Session, organization_id: uuid.UUID, ref: uuid.UUID | str) -> User:
    """Stop the user from signing in; the row (and what it acknowledged or resolved) stays."""
    user = get_user(session, organization_id, ref)
    if not user.is_active:
        raise Conflict(f"user {user.email} is already disabled", details={"user": user.email},
                       code="USER_ALREADY_DISABLED")
    _keep_an_admin(session, user, f"disable {user.email}")
    user.is_active = False
    _changed(user)
    session.flush()
    return user


def enable_user(session: Session, organization_id: uuid.UUID, ref: uuid.UUID | str) -> User:
    user = get_user(session, organization_id, ref)
    if user.is_active:
        raise Conflict(f"user {user.email} is already enabled", details={"user": user.email},
                       code="USER_ALREADY_ENABLED")
    user.is_active = True
    _changed(user)
    session.flush()
    return user


def set_role(session: Session, organization_id: uuid.UUID, ref: uuid.UUID | str, role: Role | str) -> User:
    """Give the user another role (admin, operator, viewer or api_user)."""
    errors: dict[str, str] = {}
    checked = _role_of(role, errors)
    _raise_if(errors, "role")
    assert checked is not None
    user = get_user(session, organization_id, ref)
    if user.role == checked.value:
        raise Conflict(f"user {user.email} already has role {checked.value}", details={"role": checked.value},
                       code="ROLE_UNCHANGED")
    if checked is not Role.ADMIN:
        _keep_an_admin(session, user, f"make {user.email} {checked.value}")
    user.role = checked.value
    user.is_superuser = checked is Role.ADMIN
    _changed(user)
    session.flush()
    return user


def reset_password(session: Session, organization_id: uuid.UUID, ref: uuid.UUID | str, password: str) -> User:
    """Replace the user's password (the new one is stored as an argon2 hash only)."""
    problem = _password_problem(password)
    if problem:
        raise ValidationError(f"invalid password: {problem}", details={"password": problem})
    user = get_user(session, organization_id, ref)
    user.hashed_password = hash_password(password)
    _changed(user)
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
