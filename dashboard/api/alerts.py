"""Alerts: the list and counts (:func:`analytics.alerts.list_alerts`, the one list behind the CLI and
the pages), one alert with its history, and acknowledging or resolving by hand."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, cast

import psycopg
from flask_openapi3 import Tag
from pydantic import ConfigDict, Field, field_validator
from pydantic.json_schema import SkipJsonSchema
from werkzeug.wrappers import Response

from analytics import alerts
from dashboard.api.params import INT32_MAX, ApiModel, DeviceId, OptionalText, Paged, PathModel
from dashboard.api.routing import ok, operation, page_of, pg, unit_of_work
from dashboard.api.schemas import Out
from dashboard.auth import current_org_id, current_user_id
from netpulse.errors import InvalidCredentials, ValidationError

TAG = Tag(name="alerts", description="Alerts opened by the rules, and what people did about them.")
MAX_NOTE = 2000


class AlertOut(Out):
    id: uuid.UUID
    severity: str
    status: str = Field(description="firing, acknowledged or resolved.")
    device_id: int | None
    device: str | None
    site: str | None
    parent: str | None
    alert_type: str
    rule_id: int | None
    message: str
    metric: str | None
    value: float | None
    threshold: float | None
    occurrences: int
    started_at: datetime | None = Field(description="When the condition began (its first breaching sample).")
    created_at: datetime = Field(description="When the alert fired.")
    last_seen: datetime
    notified_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: uuid.UUID | None
    acknowledged_by_email: str | None
    acknowledged_note: str | None
    resolved_at: datetime | None
    resolved_by: uuid.UUID | None
    resolved_by_email: str | None
    resolution_note: str | None
    suppressed: bool
    suppressed_reason: str | None
    flapping: bool
    escalation_level: int
    delivery_status: str | None = Field(
        json_schema_extra={"enum": ["pending", "delivered", "failed", "no_channel", None]},
        description="Where its notification stands; None while none is due (suppressed, or a warning "
                    "waiting for its digest).")


class AlertEvent(Out):
    time: datetime
    kind: str
    note: str | None
    details: dict[str, Any]


class AlertDetail(AlertOut):
    history: list[AlertEvent] = Field(description="Everything that happened to the alert, oldest first.")


class AlertCounts(Out):
    open: int
    critical: int
    critical_firing: int
    warning: int
    warning_firing: int
    info: int
    info_firing: int
    acknowledged: int
    suppressed: int
    maintenance: int
    parent_down: int
    flapping: int


class AlertQuery(Paged):
    status: Literal["open", "firing", "acknowledged", "resolved", "all"] = Field(
        "open", description="open: firing or acknowledged.")
    severity: Literal["info", "warning", "critical"] | SkipJsonSchema[None] = None
    device: DeviceId | SkipJsonSchema[None] = Field(None, description="A device id.")
    site: OptionalText = Field(None, description="A site name.")
    rule: Annotated[int, Field(ge=1, le=INT32_MAX)] | SkipJsonSchema[None] = Field(None, description="A rule id.")
    suppressed: bool | SkipJsonSchema[None] = Field(None, description="false hides suppressed alerts.")
    search: OptionalText = Field(None, description="A substring of the device name or the message.")


class AlertPath(PathModel):
    not_found_code: ClassVar[str] = "ALERT_NOT_FOUND"
    alert_id: uuid.UUID


class NoteBody(ApiModel):
    """A note, stripped; blank is no note."""

    note: str | None = Field(None, max_length=MAX_NOTE)

    @field_validator("note", mode="before")
    @classmethod
    def _strip(cls, value: Any) -> Any:
        return (value.strip() or None) if isinstance(value, str) else value


class AckBody(NoteBody):
    """Optional: an empty body is no note."""

    model_config = ConfigDict(openapi_extra={"required": False, "example": {"note": "on it"}})  # type: ignore[typeddict-unknown-key]


class ResolveBody(NoteBody):
    model_config = ConfigDict(openapi_extra={"example": {"note": "replaced the uplink"}})  # type: ignore[typeddict-unknown-key]
    note: Annotated[str, Field(min_length=1, max_length=MAX_NOTE)] | SkipJsonSchema[None] = Field(
        description="Why it is resolved (kept in its history).")


def _detail(conn: psycopg.Connection[Any], org_id: uuid.UUID, alert_id: uuid.UUID) -> AlertDetail:
    row = alerts.get_alert(conn, org_id, alert_id)
    if row is None:
        from netpulse.errors import NotFound

        raise NotFound(f"no alert {alert_id}", code="ALERT_NOT_FOUND", details={"alert_id": str(alert_id)})
    # history() does not filter by organization: it runs only after the alert was found in this one.
    events = [AlertEvent(time=t, kind=kind, note=note, details=details)
              for t, kind, note, details in alerts.history(conn, alert_id)]
    return AlertDetail(**row, history=events)


@operation("GET", "/alerts", tag=TAG, permission="alert:read", data=AlertOut, many=True, paginated=True)
def list_alerts(query: AlertQuery) -> Response:
    """Alerts, newest first, filtered by status (open by default), severity, device, site, rule or text."""
    where = alerts.AlertFilter(state=cast(alerts.AlertState, query.status),
                               severities=[query.severity] if query.severity else None, device_id=query.device,
                               site=query.site, rule_id=query.rule, suppressed=query.suppressed, search=query.search)
    with unit_of_work() as session:
        rows, total = alerts.list_alerts(pg(session), current_org_id(), where, limit=query.per_page,
                                         offset=query.offset)
    return page_of([AlertOut(**r) for r in rows], total, query)


@operation("GET", "/alerts/counts", tag=TAG, permission="alert:read", data=AlertCounts)
def alert_counts() -> Response:
    """Open alerts: in all, by severity (and still firing), acknowledged, suppressed and flapping."""
    with unit_of_work() as session:
        counts = alerts.counts(pg(session), current_org_id())
    return ok(AlertCounts(**counts))


@operation("GET", "/alerts/<alert_id>", tag=TAG, permission="alert:read", data=AlertDetail)
def get_alert(path: AlertPath) -> Response:
    """One alert and its history."""
    with unit_of_work() as session:
        return ok(_detail(pg(session), current_org_id(), path.alert_id))


def _transition(alert_id: uuid.UUID, act: Callable[..., None], note: str | None) -> Response:
    """Run ``act`` (acknowledge or resolve) as the signed-in user; answer with the alert as it now is."""
    org_id, user_id = current_org_id(), current_user_id()
    with unit_of_work() as session:
        conn = pg(session)
        try:
            act(conn, org_id, alert_id, user_id, note, datetime.now(UTC))
        except psycopg.errors.ForeignKeyViolation:
            # A valid token of a user deleted since it was issued: acknowledged_by must name a user.
            raise InvalidCredentials("your user no longer exists: sign in again", code="INVALID_TOKEN") from None
        return ok(_detail(conn, org_id, alert_id))


@operation("POST", "/alerts/<alert_id>/acknowledge", tag=TAG, permission="alert:write", data=AlertDetail,
           conflict=True)
def acknowledge_alert(path: AlertPath, body: AckBody) -> Response:
    """Take the alert: escalation stops; it still resolves when its condition clears.

    409 ALERT_ALREADY_ACKNOWLEDGED or ALERT_ALREADY_RESOLVED.
    """
    return _transition(path.alert_id, alerts.acknowledge, body.note)


@operation("POST", "/alerts/<alert_id>/resolve", tag=TAG, permission="alert:write", data=AlertDetail,
           conflict=True)
def resolve_alert(path: AlertPath, body: ResolveBody) -> Response:
    """Resolve the alert by hand, with a note saying why. 409 ALERT_ALREADY_RESOLVED."""
    if not body.note:
        raise ValidationError("resolving an alert by hand needs a note saying why", code="MISSING_REQUIRED_FIELD",
                              details={"note": "required"})
    return _transition(path.alert_id, alerts.resolve, body.note)
