"""Service checks of a device (:mod:`netpulse.inventory.checks`): a TCP port, or an HTTP(S) URL with an
expected status, body text and TLS verification, probed by the workers with the device's probes."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from flask_openapi3 import Tag
from pydantic import ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema
from werkzeug.wrappers import Response

from dashboard.api.params import ApiModel, DeviceId, DevicePath, Paged, PathModel
from dashboard.api.routing import ok, operation, page_of, unit_of_work
from dashboard.api.schemas import Deleted, Out
from dashboard.auth import current_org_id
from netpulse import inventory
from netpulse.schema import ServiceCheck

TAG = Tag(name="checks", description="Service checks: TCP ports and HTTP(S) URLs of devices.")


class CheckOut(Out):
    id: int
    device_id: int
    device: str
    kind: str
    name: str
    port: int | None
    url: str | None
    method: str
    expected_status: int | None
    expected_body: str | None
    timeout_s: float
    verify_tls: bool
    enabled: bool
    created_at: datetime

    @classmethod
    def of(cls, c: ServiceCheck) -> CheckOut:
        return cls(id=c.id, device_id=c.device_id, device=c.device.name, kind=c.kind, name=c.name, port=c.port,
                   url=c.url, method=c.method, expected_status=c.expected_status, expected_body=c.expected_body,
                   timeout_s=round(float(c.timeout_s), 3), verify_tls=c.verify_tls, enabled=c.enabled,
                   created_at=c.created_at)


class CheckBody(ApiModel):
    """``tcp`` needs ``port``; ``http`` needs ``url`` and may set the fields after it. ``name`` defaults
    to ``tcp-PORT`` or the URL's scheme, port and path (``https-443/health``)."""

    model_config = ConfigDict(openapi_extra={"example": {"kind": "tcp", "port": 22}})  # type: ignore[typeddict-unknown-key]
    kind: Literal["tcp", "http"]
    name: str | None = Field(None, min_length=1, max_length=100)
    port: int | None = Field(None, ge=1, le=65535)
    url: str | None = Field(None, max_length=2048, description="http:// or https://")
    method: Literal["GET", "HEAD"] = "GET"
    expected_status: int | None = Field(None, ge=100, le=599, description="None: any 2xx or 3xx passes.")
    expected_body: str | None = Field(None, max_length=1024, description="Text the body must contain.")
    timeout_s: float = Field(inventory.DEFAULT_CHECK_TIMEOUT_S, gt=0, le=60)
    verify_tls: bool = True
    enabled: bool = True


class CheckPath(PathModel):
    not_found_code: ClassVar[str] = "CHECK_NOT_FOUND"
    device_id: DeviceId
    check_name: str = Field(min_length=1, max_length=100)


class CheckQuery(Paged):
    device: DeviceId | SkipJsonSchema[None] = Field(None, description="Only this device's checks.")


@operation("GET", "/checks", tag=TAG, permission="device:read", data=CheckOut, many=True, paginated=True,
           not_found=True)
def list_checks(query: CheckQuery) -> Response:
    """The organization's service checks (or one device's), by device name and check name."""
    with unit_of_work() as session:
        found = inventory.list_service_checks(session, current_org_id(), query.device)
        items = [CheckOut.of(c) for c in query.window(found)]
    return page_of(items, len(found), query)


@operation("GET", "/devices/<device_id>/checks", tag=TAG, permission="device:read", data=CheckOut, many=True,
           paginated=True)
def list_device_checks(path: DevicePath, query: Paged) -> Response:
    """The device's service checks, by name."""
    with unit_of_work() as session:
        found = inventory.list_service_checks(session, current_org_id(), path.device_id)
        items = [CheckOut.of(c) for c in query.window(found)]
    return page_of(items, len(found), query)


@operation("POST", "/devices/<device_id>/checks", tag=TAG, permission="device:write", data=CheckOut, status=201,
           conflict=True)
def add_check(path: DevicePath, body: CheckBody) -> Response:
    """Add a service check to the device. 409 CHECK_ALREADY_EXISTS when the device has one of that name."""
    with unit_of_work() as session:
        check = inventory.add_service_check(session, current_org_id(), path.device_id,
                                            inventory.ServiceCheckSpec(**body.model_dump()))
        session.refresh(check)
        out = CheckOut.of(check)
    return ok(out, status=201)


@operation("GET", "/devices/<device_id>/checks/<path:check_name>", tag=TAG, permission="device:read",
           data=CheckOut)
def get_check(path: CheckPath) -> Response:
    """One service check of the device."""
    with unit_of_work() as session:
        out = CheckOut.of(inventory.get_service_check(session, current_org_id(), path.device_id, path.check_name))
    return ok(out)


@operation("DELETE", "/devices/<device_id>/checks/<path:check_name>", tag=TAG, permission="device:write",
           data=Deleted)
def remove_check(path: CheckPath) -> Response:
    """Remove a service check; its measurements stay until retention removes them."""
    with unit_of_work() as session:
        inventory.remove_service_check(session, current_org_id(), path.device_id, path.check_name)
    return ok(Deleted(deleted=1))
