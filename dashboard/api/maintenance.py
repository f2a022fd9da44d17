"""Maintenance windows (:mod:`analytics.maintenance`, as ``netpulse maintenance`` uses them): time that
counts neither as monitored nor as down, and whose devices' alerts are suppressed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar, Literal

from flask_openapi3 import Tag
from pydantic import ConfigDict, Field
from werkzeug.wrappers import Response

from analytics import maintenance as core
from dashboard.api.params import INT32_MAX, ApiModel, Paged, PathModel, Time
from dashboard.api.routing import field_names, ok, operation, page_of, unit_of_work
from dashboard.api.schemas import Deleted, Out
from dashboard.auth import current_org_id, current_user_id

TAG = Tag(name="maintenance", description="Maintenance windows.")


class WindowOut(Out):
    id: int
    scope: str
    scope_ref: str | None
    starts_at: datetime
    ends_at: datetime
    reason: str
    state: str = Field(description="active, upcoming or past, now.")
    created_by: str | None
    created_at: datetime

    @classmethod
    def of(cls, w: core.MaintenanceWindow, now: datetime) -> WindowOut:
        return cls(id=w.id, scope=w.scope, scope_ref=w.scope_ref, starts_at=w.starts_at, ends_at=w.ends_at,
                   reason=w.reason, state=w.state(now), created_by=str(w.created_by) if w.created_by else None,
                   created_at=w.created_at)


class WindowBody(ApiModel):
    model_config = ConfigDict(openapi_extra={"example": {  # type: ignore[typeddict-unknown-key]
        "scope": "site", "scope_ref": "Nairobi DC", "from": "2026-12-01T22:00:00Z", "to": "2026-12-02T02:00:00Z",
        "reason": "core upgrade"}})
    scope: Literal["device", "group", "site", "tag", "all"]
    scope_ref: str | None = Field(None, min_length=1, max_length=100,
                                  description="The device, group, site or tag name (a slug matches too); not for all.")
    from_: Time = Field(alias="from", description="Start (ISO 8601; UTC unless it has an offset).")
    to: Time = Field(description="End, exclusive.")
    reason: str = Field("", max_length=core.MAX_REASON)


class WindowQuery(Paged):
    state: Literal["all", "active", "upcoming", "past"] = "all"


class WindowPath(PathModel):
    not_found_code: ClassVar[str] = "MAINTENANCE_WINDOW_NOT_FOUND"
    window_id: int = Field(ge=1, le=INT32_MAX)


@operation("GET", "/maintenance", tag=TAG, permission="alert:read", data=WindowOut, many=True, paginated=True)
def list_maintenance(query: WindowQuery) -> Response:
    """Maintenance windows, latest start first (all, or those active, upcoming or past now)."""
    now = datetime.now(UTC)
    with unit_of_work() as session:
        found, total = core.list_windows(session, current_org_id(), state=query.state, now=now,
                                         limit=query.per_page, offset=query.offset)
    return page_of([WindowOut.of(w, now) for w in found], total, query)


@operation("POST", "/maintenance", tag=TAG, permission="alert:write", data=WindowOut, status=201)
def add_maintenance(body: WindowBody) -> Response:
    """Add a window over ``[from, to)`` for a device, group, site, tag or all devices."""
    with unit_of_work() as session, field_names({"ref": "scope_ref"}):
        window = core.add_window(session, current_org_id(), scope=body.scope, scope_ref=body.scope_ref,
                                 start=body.from_, end=body.to, reason=body.reason, created_by=current_user_id())
    return ok(WindowOut.of(window, datetime.now(UTC)), status=201)


@operation("GET", "/maintenance/<window_id>", tag=TAG, permission="alert:read", data=WindowOut)
def get_maintenance(path: WindowPath) -> Response:
    """One window."""
    with unit_of_work() as session:
        window = core.get_window(session, current_org_id(), path.window_id)
    return ok(WindowOut.of(window, datetime.now(UTC)))


@operation("DELETE", "/maintenance/<window_id>", tag=TAG, permission="alert:write", data=Deleted)
def delete_maintenance(path: WindowPath) -> Response:
    """Remove a window: its time counts again in availability (figures are computed when read)."""
    with unit_of_work() as session:
        core.delete_window(session, current_org_id(), path.window_id)
    return ok(Deleted(deleted=1))
