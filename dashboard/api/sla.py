"""Uptime and SLAs (:mod:`analytics.sla`): availability per device, group, site, tag or organization,
outages, SLA targets against their calendar period, and each device's status history.

Periods default to the last 24 hours and end at most now: the future is not known yet, and counting it
as the devices' last status would flatter availability.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import ClassVar, Literal, cast

import polars as pl
from flask_openapi3 import Tag
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema
from werkzeug.wrappers import Response

from analytics import sla
from analytics import sla_targets as targets
from dashboard.api.params import INT32_MAX, ApiModel, DevicePath, Paged, PathModel, Period, Time
from dashboard.api.routing import field_names, ok, operation, page_of, pg, unit_of_work
from dashboard.api.schemas import Out
from dashboard.auth import current_org_id
from netpulse import inventory
from netpulse.errors import ValidationError

TAG = Tag(name="sla", description="Availability, outages and SLA targets from the device status history.")
DEFAULT_SPAN = timedelta(days=1)
MAX_SPAN = timedelta(days=366)  # a yearly target's period; longer ranges would read every event ever kept


class Figures(Out):
    availability_pct: float | None = Field(description="None when nothing was monitored.")
    monitored_s: float
    down_s: float
    unknown_s: float
    maintenance_s: float
    outages: int
    mttr_s: float | None
    mtbf_s: float | None


class DeviceAvailability(Figures):
    device_id: int
    name: str
    site: str | None
    group: str | None


class GroupAvailability(Figures):
    name: str | None = Field(description="The group, site, tag or organization; None gathers devices without one.")
    devices: int


class AvailabilityOut(Out):
    from_: datetime = Field(alias="from")
    to: datetime
    by: str
    items: list[DeviceAvailability] | list[GroupAvailability]


class Outage(Out):
    device_id: int
    device: str
    start: datetime
    end: datetime | None = Field(description="None while the device is still down.")
    duration_s: float
    maintenance_s: float
    counted: bool = Field(description="Whether any of it fell outside maintenance (it counts against availability).")


class OutagesOut(Out):
    from_: datetime = Field(alias="from")
    to: datetime
    items: list[Outage]


class TargetResult(Out):
    target_id: int
    scope: str
    scope_ref: str | None
    period: str
    severity: str
    target_pct: float
    period_start: datetime
    period_end: datetime
    evaluated_at: datetime
    devices: int
    monitored_s: float
    down_s: float
    achieved_pct: float | None
    breached: bool
    error_budget_min: float | None


class TargetsOut(Out):
    at: datetime
    items: list[TargetResult]


class StatusEventOut(Out):
    id: int
    device_id: int
    device: str
    time: datetime = Field(description="When the new status began.")
    confirmed_at: datetime = Field(description="When the probes confirmed it.")
    from_status: str
    to_status: str


class AvailabilityQuery(Period, Paged):
    by: Literal["device", "group", "site", "tag", "org"] = "device"


class PeriodPage(Period, Paged):
    pass


class TargetsQuery(Paged):
    at: Time | SkipJsonSchema[None] = Field(None, description="Evaluate as of this time [default: now].")


def _rows(frame: pl.DataFrame, model: type[BaseModel]) -> list[BaseModel]:
    return [model.model_validate(row) for row in frame.iter_rows(named=True)]


def _dumped(model: Out) -> dict[str, object]:
    return model.model_dump(mode="json", by_alias=True)


@operation("GET", "/sla/availability", tag=TAG, permission="metrics:read", data=AvailabilityOut, paginated=True)
def sla_availability(query: AvailabilityQuery) -> Response:
    """Availability over the period per device (default), group, site, tag or the organization, worst first.

    Degraded counts as available; maintenance counts neither as monitored nor as down.
    """
    start, end = query.span(DEFAULT_SPAN, maximum=MAX_SPAN, clip_to_now=True)
    with unit_of_work() as session:
        frame = sla.availability(pg(session), current_org_id(), start, end, by=cast(sla.By, query.by))
    model: type[BaseModel] = DeviceAvailability if query.by == "device" else GroupAvailability
    items = _rows(frame.slice(query.offset, query.per_page), model)
    out = AvailabilityOut.model_validate({"from": start, "to": end, "by": query.by, "items": items})
    return page_of(_dumped(out), frame.height, query)


@operation("GET", "/sla/outages", tag=TAG, permission="metrics:read", data=OutagesOut, paginated=True)
def sla_outages(query: PeriodPage) -> Response:
    """Every outage in the period by start (``end`` is None while still down), clipped to the period."""
    start, end = query.span(DEFAULT_SPAN, maximum=MAX_SPAN, clip_to_now=True)
    with unit_of_work() as session:
        frame = sla.outages(pg(session), current_org_id(), start, end)
    items = _rows(frame.slice(query.offset, query.per_page), Outage)
    out = OutagesOut.model_validate({"from": start, "to": end, "items": items})
    return page_of(_dumped(out), frame.height, query)


@operation("GET", "/sla/targets", tag=TAG, permission="metrics:read", data=TargetsOut, paginated=True)
def sla_targets(query: TargetsQuery) -> Response:
    """Every SLA target against its calendar period up to ``at`` (a past time shows how the period
    holding it stood then), with its error budget."""
    now = datetime.now(UTC)
    at = query.at or now
    if at > now:
        raise ValidationError(f"at ({at.isoformat()}) is in the future", details={"at": "is in the future"})
    with unit_of_work() as session:
        results = sla.evaluate_targets(pg(session), current_org_id(), at)
    items = [TargetResult.model_validate(r) for r in query.window(results)]
    return page_of(_dumped(TargetsOut(at=at, items=items)), len(results), query)


class TargetOut(Out):
    id: int
    scope: str
    scope_ref: str | None
    target_pct: float
    period: str
    severity: str


class TargetBody(ApiModel):
    model_config = ConfigDict(openapi_extra={"example": {  # type: ignore[typeddict-unknown-key]
        "scope": "all", "target_pct": 99.9, "period": "month"}})
    scope: Literal["device", "group", "site", "tag", "all"]
    scope_ref: str | None = Field(None, min_length=1, max_length=100,
                                  description="The device, group, site or tag name (a slug matches too); not for all.")
    target_pct: float = Field(gt=0, le=100, description="Availability to reach, in percent (four decimals at most).")
    period: Literal["day", "week", "month", "quarter", "year"] = "month"
    severity: Literal["info", "warning", "critical"] = "critical"


class TargetPath(PathModel):
    not_found_code: ClassVar[str] = "SLA_TARGET_NOT_FOUND"
    target_id: int = Field(ge=1, le=INT32_MAX)


class TargetRemoved(Out):
    deleted: int
    resolved_alerts: int = Field(description="Its open breach alert, resolved with it (0 or 1).")


@operation("POST", "/sla/targets", tag=TAG, permission="admin", data=TargetOut, status=201, conflict=True)
def add_sla_target(body: TargetBody) -> Response:
    """Add an SLA target for a scope and calendar period (409 SLA_TARGET_ALREADY_EXISTS when that scope
    already has one for the period); a breach opens an alert of ``severity``."""
    with unit_of_work() as session, field_names({"ref": "scope_ref"}):
        target = targets.add_sla_target(session, current_org_id(), scope=body.scope, ref=body.scope_ref,
                                            target_pct=str(body.target_pct), period=body.period,
                                            severity=body.severity)
        out = TargetOut.model_validate(target)
    return ok(out, status=201)


@operation("DELETE", "/sla/targets/<target_id>", tag=TAG, permission="admin", data=TargetRemoved)
def remove_sla_target(path: TargetPath) -> Response:
    """Remove an SLA target; its open breach alert is resolved."""
    with unit_of_work() as session:
        _, resolved = targets.remove_sla_target(session, current_org_id(), path.target_id)
    return ok(TargetRemoved(deleted=1, resolved_alerts=resolved))


@operation("GET", "/devices/<device_id>/status-history", tag=TAG, permission="device:read", data=StatusEventOut,
           many=True, paginated=True)
def device_status_history(path: DevicePath, query: PeriodPage) -> Response:
    """The device's status changes in the period (default: the last 7 days), newest first."""
    start, end = query.span(timedelta(days=7), maximum=MAX_SPAN)
    with unit_of_work() as session:
        inventory.get_device(session, current_org_id(), path.device_id)  # 404 for a device not of this organization
        events, total = sla.status_history(pg(session), current_org_id(), start, end, device_id=path.device_id,
                                           limit=query.per_page, offset=query.offset)
    return page_of([StatusEventOut.model_validate(e) for e in events], total, query)
