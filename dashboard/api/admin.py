"""The organization and its users, for admins (:mod:`netpulse.organizations`, :mod:`netpulse.users`,
the functions behind ``netpulse org`` and ``netpulse users``). No change may leave the organization
without an active admin (409 LAST_ADMIN)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import ClassVar, Literal

from flask_openapi3 import Tag
from pydantic import ConfigDict, Field
from werkzeug.wrappers import Response

from dashboard.api.params import ApiModel, Paged, PathModel
from dashboard.api.routing import ok, operation, page_of, unit_of_work
from dashboard.api.schemas import Out
from dashboard.auth import current_org_id
from netpulse import organizations, users
from netpulse.schema import User

TAG = Tag(name="admin", description="The organization and its users (admins only).")
Role = Literal["admin", "operator", "viewer", "api_user"]


class OrganizationOut(Out):
    id: uuid.UUID
    name: str
    slug: str
    time_zone: str = Field(description="An IANA zone: report periods (days, weeks, months) fall in it.")
    created_at: datetime


class UserOut(Out):
    id: uuid.UUID
    email: str
    full_name: str | None
    role: str
    is_active: bool
    last_login_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, u: User) -> UserOut:
        return cls.model_validate(u)


class UserBody(ApiModel):
    model_config = ConfigDict(openapi_extra={"example": {  # type: ignore[typeddict-unknown-key]
        "email": "noc@example.com", "password": "correct-horse-battery", "role": "operator"}})
    email: str = Field(min_length=3, max_length=255)
    password: str = Field(min_length=users.MIN_PASSWORD_LENGTH, max_length=users.MAX_PASSWORD_LENGTH,
                          description="Write-only; stored as an argon2 hash.")
    role: Role = "viewer"
    full_name: str | None = Field(None, max_length=255)


class RoleBody(ApiModel):
    model_config = ConfigDict(openapi_extra={"example": {"role": "viewer"}})  # type: ignore[typeddict-unknown-key]
    role: Role


class PasswordBody(ApiModel):
    model_config = ConfigDict(openapi_extra={"example": {"password": "another-long-passphrase"}})  # type: ignore[typeddict-unknown-key]
    password: str = Field(min_length=users.MIN_PASSWORD_LENGTH, max_length=users.MAX_PASSWORD_LENGTH)


class UserPath(PathModel):
    not_found_code: ClassVar[str] = "USER_NOT_FOUND"
    user_id: uuid.UUID


class UserQuery(Paged):
    include_disabled: bool = True


@operation("GET", "/organization", tag=TAG, permission="admin", data=OrganizationOut)
def get_organization() -> Response:
    """The signed-in user's organization."""
    with unit_of_work() as session:
        return ok(OrganizationOut.model_validate(organizations.get_organization(session, current_org_id())))


@operation("GET", "/users", tag=TAG, permission="admin", data=UserOut, many=True, paginated=True)
def list_users(query: UserQuery) -> Response:
    """The organization's users by e-mail."""
    with unit_of_work() as session:
        found = users.list_users(session, current_org_id(), include_disabled=query.include_disabled)
        items = [UserOut.of(u) for u in query.window(list(found))]
    return page_of(items, len(found), query)


@operation("POST", "/users", tag=TAG, permission="admin", data=UserOut, status=201, conflict=True)
def create_user(body: UserBody) -> Response:
    """Add a user. E-mail addresses are unique across organizations (409 USER_ALREADY_EXISTS)."""
    with unit_of_work() as session:
        user = users.create_user(session, current_org_id(), body.email, body.password, role=body.role,
                                 full_name=body.full_name)
        session.refresh(user)
        out = UserOut.of(user)
    return ok(out, status=201)


@operation("GET", "/users/<user_id>", tag=TAG, permission="admin", data=UserOut)
def get_user(path: UserPath) -> Response:
    """One user."""
    with unit_of_work() as session:
        return ok(UserOut.of(users.get_user(session, current_org_id(), path.user_id)))


@operation("POST", "/users/<user_id>/disable", tag=TAG, permission="admin", data=UserOut, conflict=True)
def disable_user(path: UserPath) -> Response:
    """Stop the user from signing in (what they acknowledged or resolved stays theirs)."""
    with unit_of_work() as session:
        return ok(UserOut.of(users.disable_user(session, current_org_id(), path.user_id)))


@operation("POST", "/users/<user_id>/enable", tag=TAG, permission="admin", data=UserOut, conflict=True)
def enable_user(path: UserPath) -> Response:
    """Let a disabled user sign in again."""
    with unit_of_work() as session:
        return ok(UserOut.of(users.enable_user(session, current_org_id(), path.user_id)))


@operation("PUT", "/users/<user_id>/role", tag=TAG, permission="admin", data=UserOut, conflict=True)
def set_user_role(path: UserPath, body: RoleBody) -> Response:
    """Give the user another role."""
    with unit_of_work() as session:
        return ok(UserOut.of(users.set_role(session, current_org_id(), path.user_id, body.role)))


@operation("PUT", "/users/<user_id>/password", tag=TAG, permission="admin", data=UserOut)
def reset_user_password(path: UserPath, body: PasswordBody) -> Response:
    """Set a new password for the user."""
    with unit_of_work() as session:
        return ok(UserOut.of(users.reset_password(session, current_org_id(), path.user_id, body.password)))
