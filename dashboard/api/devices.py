"""Devices: list, read, create, change and delete them, import a CSV, delete in bulk; the fleet summary.

All of it is :mod:`netpulse.inventory` (validation, uniqueness, sites/groups/tags created on demand,
the all-or-nothing CSV import); these views only translate HTTP. SNMP communities are never shown. A
device carries the latest state and last error of each of its probes (:mod:`netpulse.probe_status`).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Annotated, Any, Literal

from flask_openapi3 import FileStorage, Tag
from pydantic import ConfigDict, Field, JsonValue
from pydantic.json_schema import SkipJsonSchema
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from analytics.fleet import fleet_summary
from dashboard.api.params import ApiModel, DeviceId, DevicePath, OptionalText, Paged
from dashboard.api.routing import ok, operation, page_of, pg, unit_of_work
from dashboard.api.schemas import Deleted, Out
from dashboard.auth import current_org_id
from netpulse import inventory
from netpulse.errors import ValidationError
from netpulse.probe_status import ProbeState, probe_states
from netpulse.schema import Device, DeviceStatus, DeviceType

TAG = Tag(name="devices", description="The device inventory.")
_TYPES: list[JsonValue] = [t.value for t in DeviceType]
_STATUSES: list[JsonValue] = [s.value for s in DeviceStatus]
MAX_BULK = 1000
_EXAMPLE = {"name": "core-router-1", "address": "192.0.2.10", "device_type": "router", "site": "Nairobi DC",
            "tags": ["core"]}


class Ref(Out):
    id: int
    name: str


def _ref(obj: Any) -> Ref | None:
    return Ref(id=obj.id, name=obj.name) if obj is not None else None


class ProbeOut(Out):
    kind: str = Field(description="icmp, tcp, snmp or http.")
    check_id: int | None = Field(description="The service check probed; None for the device's own probes.")
    check: str | None = Field(description="The service check's name.")
    status: Literal["ok", "failing"]
    error: str | None = Field(description="The latest failure (kept after a success since).")
    reason: str | None = Field(description="The latest failure in a few words, e.g. auth_failed (wrongDigest).")
    detail: str | None
    checked_at: datetime
    last_error_at: datetime | None
    last_success_at: datetime | None
    failing_since: datetime | None
    consecutive_failures: int

    @classmethod
    def of(cls, p: ProbeState) -> ProbeOut:
        return cls(kind=p.kind, check_id=p.check_id or None, check=p.check_name, status="ok" if p.ok else "failing",
                   error=p.error, reason=p.reason, detail=p.detail, checked_at=p.checked_at,
                   last_error_at=p.last_error_at, last_success_at=p.last_success_at, failing_since=p.failing_since,
                   consecutive_failures=p.fail_streak)


class DeviceOut(Out):
    id: int
    name: str
    address: str
    ip_address: str | None
    device_type: str
    status: str = Field(description="Lifecycle status (NetBox's seven values).")
    oper_status: str = Field(description="What the probes last saw: unknown, up, degraded or down.")
    oper_status_since: datetime | None
    last_seen: datetime | None
    last_checked: datetime | None
    site: Ref | None
    group: Ref | None
    parent: Ref | None
    tags: list[str]
    probe_enabled: bool
    probe_interval_s: int | None
    probe_timeout_s: float | None
    probe_count: int | None
    snmp_version: str | None
    snmp_port: int
    simulated: bool
    description: str
    created_at: datetime
    probes: list[ProbeOut] = Field(description="Each probe's latest state: ICMP and the TCP fallback first, "
                                               "then SNMP, then the service checks.")

    @classmethod
    def of(cls, d: Device, probes: list[ProbeState] | None = None) -> DeviceOut:
        return cls(id=d.id, name=d.name, address=d.address,
                   ip_address=str(d.ip_address) if d.ip_address is not None else None, device_type=d.device_type,
                   status=d.status, oper_status=d.oper_status, oper_status_since=d.oper_status_since,
                   last_seen=d.last_seen, last_checked=d.last_checked, site=_ref(d.site), group=_ref(d.group),
                   parent=_ref(d.parent), tags=sorted(t.name for t in d.tags), probe_enabled=d.probe_enabled,
                   probe_interval_s=d.probe_interval_s, probe_timeout_s=d.probe_timeout_s,
                   probe_count=d.probe_count, snmp_version=d.snmp_version, snmp_port=d.snmp_port,
                   simulated=d.simulated, description=d.description, created_at=d.created_at,
                   probes=[ProbeOut.of(p) for p in probes or []])


def _with_probes(session: Session, devices: list[Device]) -> list[DeviceOut]:
    states = probe_states(session, current_org_id(), [d.id for d in devices])
    return [DeviceOut.of(d, states.get(d.id)) for d in devices]


Label = str | None


class DeviceFields(ApiModel):
    """A device's fields as the inventory validates them (see ``netpulse.inventory.DeviceSpec``)."""

    site: Label = Field(None, max_length=100, description="A site name (or slug), created when new.")
    group: Label = Field(None, max_length=100, description="A group name (or slug), created when new.")
    tags: list[str] = Field([], max_length=100, description="Tag names (or slugs), created when new.")
    parent: Label = Field(None, max_length=255, description="The name of the device it sits behind.")
    status: str = Field("active", json_schema_extra={"enum": _STATUSES})
    probe_enabled: bool = True
    probe_interval_s: int | None = Field(None, ge=1, le=86400, description="None: the global default.")
    probe_timeout_s: float | None = Field(None, gt=0, le=60)
    probe_count: int | None = Field(None, ge=1, le=100)
    snmp_version: Literal["2c", "3"] | None = Field(None, description="None: do not poll SNMP.")
    snmp_port: int = Field(161, ge=1, le=65535)
    snmp_community: str | None = Field(None, max_length=255, description="v2c only; write-only (never shown).")
    snmp_credential: str | None = Field(None, max_length=100, description="An SNMP credential profile's name.")
    simulated: bool = False
    description: str = Field("", max_length=10_000)


class DeviceBody(DeviceFields):
    model_config = ConfigDict(openapi_extra={"example": _EXAMPLE})  # type: ignore[typeddict-unknown-key]
    name: str = Field(min_length=1, max_length=255)
    address: str = Field(min_length=1, max_length=255, description="An IPv4 or IPv6 address or a host name.")
    device_type: str = Field(json_schema_extra={"enum": _TYPES})

    def spec(self) -> inventory.DeviceSpec:
        return inventory.DeviceSpec(**self.model_dump())


class DevicePatch(ApiModel):
    """Only the fields sent change; ``null`` clears an optional one; ``tags`` replaces the whole list."""

    model_config = ConfigDict(openapi_extra={"example": {"description": "moved to rack 4", "tags": ["core"]}})  # type: ignore[typeddict-unknown-key]
    name: Annotated[str, Field(min_length=1, max_length=255)] | SkipJsonSchema[None] = None
    address: Annotated[str, Field(min_length=1, max_length=255)] | SkipJsonSchema[None] = None
    device_type: str | SkipJsonSchema[None] = Field(None, json_schema_extra={"enum": _TYPES})
    site: Label = Field(None, max_length=100)
    group: Label = Field(None, max_length=100)
    tags: Annotated[list[str], Field(max_length=100)] | SkipJsonSchema[None] = None
    parent: Label = Field(None, max_length=255)
    status: str | SkipJsonSchema[None] = Field(None, json_schema_extra={"enum": _STATUSES})
    probe_enabled: bool | SkipJsonSchema[None] = None
    probe_interval_s: int | None = Field(None, ge=1, le=86400)
    probe_timeout_s: float | None = Field(None, gt=0, le=60)
    probe_count: int | None = Field(None, ge=1, le=100)
    snmp_version: Literal["2c", "3"] | None = None
    snmp_port: Annotated[int, Field(ge=1, le=65535)] | SkipJsonSchema[None] = None
    snmp_community: str | None = Field(None, max_length=255)
    snmp_credential: str | None = Field(None, max_length=100)
    simulated: bool | SkipJsonSchema[None] = None
    description: Annotated[str, Field(max_length=10_000)] | SkipJsonSchema[None] = None


class DeviceQuery(Paged):
    site: OptionalText = Field(None, description="A site name or slug.")
    group: OptionalText = Field(None, description="A group name or slug.")
    tag: OptionalText = Field(None, description="A tag name or slug.")
    oper_status: Literal["unknown", "up", "degraded", "down"] | SkipJsonSchema[None] = None
    search: OptionalText = Field(None, description="A substring of the name, address or description.")


class ImportForm(ApiModel):
    file: FileStorage = Field(description="CSV, UTF-8, a header line first: name,address,type,site,...")
    dry_run: bool = Field(False, description="Check every line and report what would be created; write nothing.")


class ImportOut(Out):
    devices: int
    sites: int
    groups: int
    tags: int
    dry_run: bool
    summary: str


class BulkDeleteBody(ApiModel):
    model_config = ConfigDict(openapi_extra={"example": {"device_ids": [1, 2]}})  # type: ignore[typeddict-unknown-key]
    device_ids: list[DeviceId] = Field(min_length=1, max_length=MAX_BULK)


class FleetSummaryOut(Out):
    status_counts: dict[str, int]
    total_devices: int
    last_metric_at: datetime | None


@operation("GET", "/devices", tag=TAG, permission="device:read", data=DeviceOut, many=True, paginated=True)
def list_devices(query: DeviceQuery) -> Response:
    """Devices by name, filtered by site, group, tag, operational status or a search text."""
    with unit_of_work() as session:
        devices, total = inventory.list_devices(
            session, current_org_id(), site=query.site, group=query.group, tag=query.tag,
            oper_status=query.oper_status, search=query.search, limit=query.per_page, offset=query.offset)
        items = _with_probes(session, devices)
    return page_of(items, total, query)


@operation("POST", "/devices", tag=TAG, permission="device:write", data=DeviceOut, status=201, conflict=True)
def create_device(body: DeviceBody) -> Response:
    """Add a device. Sites, groups and tags named are created when new; ``parent`` and
    ``snmp_credential`` must name existing ones. 409 DEVICE_ALREADY_EXISTS when the name or address is taken."""
    with unit_of_work() as session:
        device = inventory.create_device(session, current_org_id(), body.spec())
        session.flush()
        (out,) = _with_probes(session, [inventory.get_device(session, current_org_id(), device.id)])
    return ok(out, status=201)


@operation("GET", "/devices/<device_id>", tag=TAG, permission="device:read", data=DeviceOut)
def get_device(path: DevicePath) -> Response:
    """One device."""
    with unit_of_work() as session:
        (out,) = _with_probes(session, [inventory.get_device(session, current_org_id(), path.device_id)])
    return ok(out)


def _update(device_id: int, changes: dict[str, Any]) -> Response:
    with unit_of_work() as session:
        inventory.update_device(session, current_org_id(), device_id, changes)
        (out,) = _with_probes(session, [inventory.get_device(session, current_org_id(), device_id)])
    return ok(out)


@operation("PUT", "/devices/<device_id>", tag=TAG, permission="device:write", data=DeviceOut, conflict=True)
def replace_device(path: DevicePath, body: DeviceBody) -> Response:
    """Replace every field of a device (fields left out take their defaults)."""
    return _update(path.device_id, dataclasses.asdict(body.spec()))


@operation("PATCH", "/devices/<device_id>", tag=TAG, permission="device:write", data=DeviceOut, conflict=True)
def update_device(path: DevicePath, body: DevicePatch) -> Response:
    """Change some fields of a device."""
    return _update(path.device_id, body.model_dump(exclude_unset=True))


@operation("DELETE", "/devices/<device_id>", tag=TAG, permission="device:write", data=Deleted)
def delete_device(path: DevicePath) -> Response:
    """Delete a device; its alerts, checks and history go with it, and devices behind it lose their parent."""
    with unit_of_work() as session:
        inventory.delete_device(session, current_org_id(), path.device_id)
    return ok(Deleted(deleted=1))


@operation("POST", "/devices/bulk-delete", tag=TAG, permission="device:write", data=Deleted, not_found=True)
def delete_devices(body: BulkDeleteBody) -> Response:
    """Delete several devices, all or none: 404 listing the ids that are not devices of this organization."""
    with unit_of_work() as session:
        deleted = inventory.delete_devices(session, current_org_id(), body.device_ids)
    return ok(Deleted(deleted=deleted))


@operation("POST", "/devices/import", tag=TAG, permission="device:write", data=ImportOut)
def import_devices(form: ImportForm) -> Response:
    """Import devices from a CSV file (multipart field ``file``), all or nothing.

    Every bad line is reported in ``error.details.lines`` (``line``, ``message``; the header is line 1)
    and nothing is imported. ``dry_run`` checks the file and writes nothing.
    """
    raw = form.file.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValidationError(f"the file is not UTF-8 text (byte {exc.start}); save it as CSV UTF-8",
                              details={"file": "not UTF-8 text"}) from None
    if "\x00" in text:
        raise ValidationError("the file holds NUL characters; it is not a CSV text file",
                              details={"file": "not a text file"})
    # The importer takes a one-line string for a file name: text always ends with a line break here.
    with unit_of_work() as session:
        report = inventory.import_devices_csv(session, current_org_id(), text + "\n", dry_run=form.dry_run)
    return ok(ImportOut(devices=report.devices, sites=report.sites, groups=report.groups, tags=report.tags,
                        dry_run=report.dry_run, summary=report.summary()))


@operation("GET", "/fleet/summary", tag=TAG, permission="device:read", data=FleetSummaryOut)
def get_fleet_summary() -> Response:
    """Devices per operational status, their total, and when the latest metric arrived."""
    with unit_of_work() as session:
        summary = fleet_summary(pg(session), current_org_id())
    return ok(FleetSummaryOut(status_counts=summary.status_counts, total_devices=summary.total_devices,
                              last_metric_at=summary.last_metric_at))
