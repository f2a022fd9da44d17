"""The REST API, ``/api/v1``: the spec's envelope, pagination, RBAC and error codes.

Every answer is an envelope (:mod:`dashboard.envelope`), errors included: a :class:`NetPulseError`
becomes ``error{code,message,details}`` with its ``.status``; unknown routes, wrong methods and
crashes under ``/api/`` answer 404/405/500 envelopes instead of HTML. Tenancy comes from the token's
``org`` claim only, so a device of another organization is simply not found.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Any, ParamSpec, TypeVar

import structlog
from flask import Blueprint, Flask, current_app, request
from flask_jwt_extended import get_jwt, verify_jwt_in_request
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.wrappers import Response

from analytics.fleet import fleet_summary
from dashboard import envelope
from dashboard.auth import API_PREFIX, current_org_id, issue_access_token, role_allows, sessionmaker_of
from netpulse import inventory
from netpulse.db import raw_connection
from netpulse.errors import InsufficientPermissions, InvalidCredentials, NetPulseError, ValidationError
from netpulse.schema import Device
from netpulse.users import authenticate

__all__ = ["bp", "init_api", "require_permission", "InvalidCredentials", "InsufficientPermissions",
           "DEFAULT_PER_PAGE", "MAX_PER_PAGE"]

log = structlog.get_logger("netpulse.dashboard.api")

DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 200

bp = Blueprint("api", __name__, url_prefix="/api/v1")

P = ParamSpec("P")
R = TypeVar("R")


def require_permission(permission: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """A view decorator: a valid token (header or cookie) whose role grants ``permission``."""

    def decorate(view: Callable[P, R]) -> Callable[P, R]:
        @wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            verify_jwt_in_request()
            role = str(get_jwt().get("role", ""))
            if not role_allows(role, permission):
                raise InsufficientPermissions(
                    f"role {role!r} lacks the {permission} permission",
                    details={"required": permission, "role": role})
            return view(*args, **kwargs)

        return wrapper

    return decorate


def _iso(ts: datetime | None) -> str | None:
    return ts.isoformat().replace("+00:00", "Z") if ts is not None else None


def _ref(obj: Any) -> dict[str, Any] | None:
    return {"id": obj.id, "name": obj.name} if obj is not None else None


def _device_json(d: Device) -> dict[str, Any]:
    """The public view of a device (no SNMP secrets)."""
    return {
        "id": d.id, "name": d.name, "address": d.address,
        "ip_address": str(d.ip_address) if d.ip_address is not None else None,
        "device_type": d.device_type, "status": d.status, "oper_status": d.oper_status,
        "oper_status_since": _iso(d.oper_status_since), "last_seen": _iso(d.last_seen),
        "last_checked": _iso(d.last_checked),
        "site": _ref(d.site), "group": _ref(d.group), "parent": _ref(d.parent),
        "tags": sorted(t.name for t in d.tags),
        "probe_enabled": d.probe_enabled, "simulated": d.simulated, "description": d.description,
        "created_at": _iso(d.created_at),
    }


def _int_arg(name: str, default: int, lo: int, hi: int, errors: dict[str, str]) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        errors[name] = f"{raw!r} is not an integer"
        return default
    if not lo <= value <= hi:
        errors[name] = f"must be between {lo} and {hi}, got {value}"
    return value


def _session() -> Session:
    return sessionmaker_of(current_app)()


# --- routes ----------------------------------------------------------------------------------------

@bp.post("/auth/login")
def login() -> Response:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ValidationError("send a JSON object with email and password", code="INVALID_INPUT",
                              details={"body": "expected a JSON object"})
    missing = {f: "required" for f in ("email", "password") if not isinstance(body.get(f), str) or not body[f]}
    if missing:
        raise ValidationError(f"missing: {', '.join(missing)}", code="MISSING_REQUIRED_FIELD", details=missing)
    with _session() as session, session.begin():
        user = authenticate(session, body["email"], body["password"])
        if user is None:
            raise InvalidCredentials("Invalid email or password")
        token = issue_access_token(user)
        data = {
            "access_token": token, "token_type": "Bearer",
            "expires_in": int(current_app.config["JWT_ACCESS_TOKEN_EXPIRES"].total_seconds()),
            "user": {"id": str(user.id), "email": user.email, "role": user.role,
                     "organization_id": str(user.organization_id)},
        }
    return envelope.success(data)


@bp.get("/devices")
@require_permission("device:read")
def list_devices() -> Response:
    """Query: ``page``, ``per_page`` (1..200), and the inventory's filters ``site``, ``group``, ``tag``,
    ``oper_status`` and ``search`` (substring of name, address or description)."""
    errors: dict[str, str] = {}
    page = _int_arg("page", 1, 1, 1_000_000, errors)
    per_page = _int_arg("per_page", DEFAULT_PER_PAGE, 1, MAX_PER_PAGE, errors)
    if errors:
        raise ValidationError("invalid query parameters", details=errors)
    arg = request.args.get
    with _session() as session:
        devices, total = inventory.list_devices(
            session, current_org_id(), site=arg("site") or None, group=arg("group") or None,
            tag=arg("tag") or None, oper_status=arg("oper_status") or None, search=arg("search") or None,
            limit=per_page, offset=(page - 1) * per_page)
        data = [_device_json(d) for d in devices]
    return envelope.success(data, pagination=envelope.pagination(page, per_page, total))


@bp.get("/devices/<int:device_id>")
@require_permission("device:read")
def get_device(device_id: int) -> Response:
    with _session() as session:
        data = _device_json(inventory.get_device(session, current_org_id(), device_id))  # 404 DEVICE_NOT_FOUND
    return envelope.success(data)


@bp.get("/fleet/summary")
@require_permission("device:read")
def get_fleet_summary() -> Response:
    with raw_connection(current_app.extensions["netpulse.engine"]) as conn:
        summary = fleet_summary(conn, current_org_id())
    return envelope.success(summary.as_dict())


# --- errors ----------------------------------------------------------------------------------------

def _netpulse_error(exc: NetPulseError) -> Response | tuple[str, int]:
    """Under /api/ (any route there, not only this blueprint's) an envelope with the error's status."""
    if exc.status >= 500:
        log.error("netpulse.dashboard.error", code=exc.code, message=exc.message, path=request.path)
    if not request.path.startswith(API_PREFIX):
        return exc.message, exc.status
    return envelope.failure(exc.code, exc.message, exc.status, exc.details)


def _unknown_route(path: str = "") -> Response:
    return envelope.failure("NOT_FOUND", f"No API route {request.path}", 404, {"path": request.path})


def _http_error(exc: HTTPException) -> Response | HTTPException:
    """Under /api/ every HTTP error is an envelope; elsewhere Flask's default page."""
    if not request.path.startswith(API_PREFIX):
        return exc
    status = exc.code or 500
    if isinstance(exc, InternalServerError):
        original = getattr(exc, "original_exception", None)
        log.error("netpulse.dashboard.api_crash", path=request.path, exc_info=original or exc)
        return envelope.failure("INTERNAL_ERROR", "Internal server error", 500)
    code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(status, exc.name.upper().replace(" ", "_"))
    details: dict[str, Any] = {"path": request.path}
    allowed = getattr(exc, "valid_methods", None)
    if status == 405 and allowed:
        details["allowed_methods"] = sorted(allowed)
    return envelope.failure(code, exc.description or exc.name, status, details)


def init_api(app: Flask) -> None:
    """Mount the blueprint, a GET catch-all that shadows Dash's for /api/ paths, and the error handlers."""
    app.register_blueprint(bp)
    # Dash serves its index for every unmatched GET path; under /api/ that must be a 404 envelope.
    app.add_url_rule(f"{API_PREFIX}<path:path>", "api_unknown_route", _unknown_route, methods=["GET"])
    app.register_error_handler(NetPulseError, _netpulse_error)
    app.register_error_handler(HTTPException, _http_error)
