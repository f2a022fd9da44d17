"""The REST API, ``/api/v1``: the spec's envelope, pagination, RBAC and error codes.

Every answer is an envelope (:mod:`dashboard.envelope`), errors included: a :class:`NetPulseError`
becomes ``error{code,message,details}`` with its ``.status``; unknown routes, wrong methods and
crashes under ``/api/`` answer 404/405/500 envelopes instead of HTML. Tenancy comes from the token's
``org`` claim only, so a device or alert of another organization is simply not found.

Resources: devices and the fleet summary (``device:read``), alerts (``alert:read``; acknowledging and
resolving need ``alert:write``) and uptime SLAs (``metrics:read``: availability is derived from the
probes' status history, and integrations holding only ``api_user`` may read it).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from functools import wraps
from typing import Any, ParamSpec, TypeVar, cast

import polars as pl
import psycopg
import structlog
from flask import Blueprint, Flask, current_app, request
from flask_jwt_extended import (
    get_jwt,
    get_jwt_request_location,
    set_access_cookies,
    unset_jwt_cookies,
    verify_jwt_in_request,
)
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.wrappers import Response

from analytics import alerts, sla
from analytics.fleet import fleet_summary
from dashboard import auth, envelope
from dashboard.auth import API_PREFIX, current_org_id, current_user, issue_access_token, role_allows, sessionmaker_of
from netpulse import inventory
from netpulse.db import raw_connection
from netpulse.errors import (
    InsufficientPermissions,
    InvalidCredentials,
    NetPulseError,
    NotFound,
    RateLimited,
    Unavailable,
    ValidationError,
)
from netpulse.probe_status import ProbeState, probe_states
from netpulse.schema import Device, User
from netpulse.users import change_password

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
            role = current_user().role  # as the user is now, not as the token was issued
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


def _device_json(d: Device, probes: list[ProbeState] | None = None) -> dict[str, Any]:
    """The public view of a device (no SNMP secrets), with the latest state and last error of each of
    its probes (``netpulse.probe_status``)."""
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
        "probes": [p.as_dict() for p in probes or []],
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


def _engine() -> Engine:
    engine: Engine = current_app.extensions["netpulse.engine"]
    return engine


def _json_value(value: Any) -> Any:
    """A value as JSON can carry it: times as ISO 'Z', UUIDs as text, NaN and infinities as None."""
    if isinstance(value, datetime):
        return _iso(value.astimezone(UTC))
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _rows(frame: pl.DataFrame) -> list[dict[str, Any]]:
    return [{k: _json_value(v) for k, v in row.items()} for row in frame.iter_rows(named=True)]


def _time_arg(name: str, errors: dict[str, str]) -> datetime | None:
    """An ISO 8601 query time in UTC (a time without an offset is taken as UTC); None when absent."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    try:
        ts = datetime.fromisoformat(raw)
    except ValueError:
        # A literal '+' in a query string arrives as a space: say how to send an offset.
        errors[name] = f"{raw!r} is not an ISO 8601 time like 2026-11-20T00:00:00Z (send '+' as %2B)"
        return None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


# --- routes ----------------------------------------------------------------------------------------

def _json_fields(*names: str) -> dict[str, str]:
    """The named string fields of a JSON object body; 422 naming what is missing or malformed."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ValidationError(f"send a JSON object with {' and '.join(names)}", code="INVALID_INPUT",
                              details={"body": "expected a JSON object"})
    missing = {f: "required" for f in names if not isinstance(body.get(f), str) or not body[f]}
    if missing:
        raise ValidationError(f"missing: {', '.join(missing)}", code="MISSING_REQUIRED_FIELD", details=missing)
    return {f: str(body[f]) for f in names}


def _token_data(token: str, user: dict[str, str]) -> dict[str, Any]:
    return {"access_token": token, "token_type": "Bearer",
            "expires_in": int(current_app.config["JWT_ACCESS_TOKEN_EXPIRES"].total_seconds()), "user": user}


@bp.post("/auth/login")
def login() -> Response:
    """Body ``{"email", "password"}``: a bearer token. 429 with Retry-After past the login limit (per user
    and per address), the same for unknown users; 503 when the database or Redis does not answer."""
    fields = _json_fields("email", "password")
    result = auth.login(fields["email"], fields["password"])
    return envelope.success(_token_data(result.token, result.user))


@bp.post("/auth/logout")
def logout() -> Response:
    """End every session of the signed-in user (bearer and cookie tokens alike)."""
    verify_jwt_in_request()
    auth.sign_out(auth.current_user_id())
    response = envelope.success({"signed_out": True})
    if get_jwt_request_location() == "cookies":
        unset_jwt_cookies(response)
    return response


@bp.post("/auth/password")
def password() -> Response:
    """Body ``{"current_password", "new_password"}``: every earlier token of the user stops working; the
    answer carries a new one (and renews the cookie of a browser session)."""
    verify_jwt_in_request()
    fields = _json_fields("current_password", "new_password")
    user_id = auth.current_user_id()
    auth.throttle(auth.current_user().email)  # checking the current password is a login attempt too
    with _session() as session, session.begin():
        user = session.get(User, user_id)
        if user is None:
            raise InvalidCredentials("your user no longer exists: sign in again", code="INVALID_TOKEN")
        change_password(session, user, fields["current_password"], fields["new_password"])
        token = issue_access_token(user)
        data = _token_data(token, {"id": str(user.id), "email": user.email, "role": user.role,
                                   "organization_id": str(user.organization_id)})
    response = envelope.success(data)  # the cached state went with the commit (netpulse.tokens.use_state_cache)
    if get_jwt_request_location() == "cookies":
        set_access_cookies(response, token)
    return response


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
        probes = probe_states(session, current_org_id(), [d.id for d in devices])
        data = [_device_json(d, probes.get(d.id)) for d in devices]
    return envelope.success(data, pagination=envelope.pagination(page, per_page, total))


@bp.get("/devices/<int:device_id>")
@require_permission("device:read")
def get_device(device_id: int) -> Response:
    with _session() as session:
        device = inventory.get_device(session, current_org_id(), device_id)  # 404 DEVICE_NOT_FOUND
        data = _device_json(device, probe_states(session, current_org_id(), [device.id]).get(device.id))
    return envelope.success(data)


@bp.get("/fleet/summary")
@require_permission("device:read")
def get_fleet_summary() -> Response:
    with raw_connection(current_app.extensions["netpulse.engine"]) as conn:
        summary = fleet_summary(conn, current_org_id())
    return envelope.success(summary.as_dict())


# --- alerts ----------------------------------------------------------------------------------------

ALERT_STATUSES = alerts.ALERT_STATES  # open: firing or acknowledged
ALERT_SEVERITIES = alerts.SEVERITIES
MAX_NOTE = 2000

def _alert_json(row: dict[str, Any]) -> dict[str, Any]:
    return {k: _json_value(v) for k, v in row.items()}


def _alert_not_found(alert_id: str) -> NotFound:
    return NotFound(f"no alert {alert_id}", code="ALERT_NOT_FOUND", details={"alert_id": alert_id})


def _alert_id(raw: str) -> uuid.UUID:
    """Alert ids are UUIDs; anything else names no alert, so it is the same 404 as an unknown one."""
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise _alert_not_found(raw) from None


def _alert_detail(conn: psycopg.Connection[Any], org_id: uuid.UUID, alert_id: uuid.UUID) -> dict[str, Any]:
    row = alerts.get_alert(conn, org_id, alert_id)
    if row is None:
        raise _alert_not_found(str(alert_id))
    data = _alert_json(row)
    # history() does not filter by organization: it runs only after the alert was found in this one.
    data["history"] = [{"time": _json_value(t), "kind": kind, "note": note, "details": details}
                       for t, kind, note, details in alerts.history(conn, alert_id)]
    return data


def _note(*, required: bool) -> str | None:
    """The ``note`` of the JSON body; an empty body is an absent note."""
    body: Any = request.get_json(silent=True) if request.get_data(cache=True).strip() else {}
    if not isinstance(body, dict):
        raise ValidationError('send a JSON object, e.g. {"note": "..."}', details={"body": "expected a JSON object"})
    note = body.get("note")
    if note is not None and not isinstance(note, str):
        raise ValidationError("note must be a string",
                              details={"note": f"expected a string, got {type(note).__name__}"})
    note = note.strip() if note else None
    if required and not note:
        raise ValidationError("resolving an alert by hand needs a note saying why", code="MISSING_REQUIRED_FIELD",
                              details={"note": "required"})
    if note is not None and len(note) > MAX_NOTE:
        raise ValidationError(f"note is too long ({len(note)} characters; at most {MAX_NOTE})",
                              details={"note": f"at most {MAX_NOTE} characters"})
    return note


def _current_user_id() -> uuid.UUID:
    try:
        return uuid.UUID(str(get_jwt()["sub"]))
    except (KeyError, ValueError):
        raise InvalidCredentials("the token names no user: sign in again", code="INVALID_TOKEN") from None


def _transition(raw_id: str, act: Callable[..., None], *, note_required: bool) -> Response:
    """Run ``act`` (acknowledge or resolve) as the signed-in user, then answer with the alert as it now is.

    The alert is looked up before the body is judged, so an unknown alert is a 404 whatever the body.
    """
    alert_id, org_id, user_id = _alert_id(raw_id), current_org_id(), _current_user_id()
    with raw_connection(_engine()) as conn:
        found = conn.execute("SELECT 1 FROM alerts WHERE organization_id = %s AND id = %s", (org_id, alert_id))
        if found.fetchone() is None:
            raise _alert_not_found(raw_id)
        note = _note(required=note_required)
        try:
            act(conn, org_id, alert_id, user_id, note, datetime.now(UTC))
        except psycopg.errors.ForeignKeyViolation:
            # A valid token of a user deleted since it was issued: acknowledged_by must name a user.
            raise InvalidCredentials("your user no longer exists: sign in again", code="INVALID_TOKEN") from None
        conn.commit()  # the pooled connection may already be in a transaction, making act's a savepoint
        return envelope.success(_alert_detail(conn, org_id, alert_id))


@bp.get("/alerts")
@require_permission("alert:read")
def list_alerts() -> Response:
    """Alerts newest first. Query: ``status`` (open (default), firing, acknowledged, resolved, all),
    ``severity``, ``device`` (a device id), ``limit`` (1..200) and ``offset``. The pagination block is
    the devices list's, with ``page`` = offset // limit + 1, plus ``limit`` and ``offset``."""
    errors: dict[str, str] = {}
    limit = _int_arg("limit", DEFAULT_PER_PAGE, 1, MAX_PER_PAGE, errors)
    offset = _int_arg("offset", 0, 0, 100_000_000, errors)
    device = _int_arg("device", 0, 1, 2**31 - 1, errors) or None  # 0: not filtered
    status = request.args.get("status") or "open"
    if status not in ALERT_STATUSES:
        errors["status"] = f"{status!r} is not one of {', '.join(ALERT_STATUSES)}"
    severity = request.args.get("severity") or None
    if severity is not None and severity not in ALERT_SEVERITIES:
        errors["severity"] = f"{severity!r} is not one of {', '.join(ALERT_SEVERITIES)}"
    if errors:
        raise ValidationError("invalid query parameters", details=errors)
    where = alerts.AlertFilter(state=cast(alerts.AlertState, status), severities=[severity] if severity else None,
                               device_id=device)
    with raw_connection(_engine()) as conn:
        rows, n = alerts.list_alerts(conn, current_org_id(), where, limit=limit, offset=offset)
    pagination = {"page": offset // limit + 1, "per_page": limit, "total": n, "total_pages": (n + limit - 1) // limit,
                  "has_next": offset + limit < n, "has_prev": offset > 0, "limit": limit, "offset": offset}
    return envelope.success([_alert_json(r) for r in rows], pagination=pagination)


@bp.get("/alerts/<alert_id>")
@require_permission("alert:read")
def get_alert(alert_id: str) -> Response:
    """The alert and its history (time, kind, note, details), oldest event first."""
    aid = _alert_id(alert_id)
    with raw_connection(_engine()) as conn:
        return envelope.success(_alert_detail(conn, current_org_id(), aid))


@bp.post("/alerts/<alert_id>/acknowledge")
@require_permission("alert:write")
def acknowledge_alert(alert_id: str) -> Response:
    """Body (optional): ``{"note": "..."}``. 409 when the alert is already acknowledged or resolved."""
    return _transition(alert_id, alerts.acknowledge, note_required=False)


@bp.post("/alerts/<alert_id>/resolve")
@require_permission("alert:write")
def resolve_alert(alert_id: str) -> Response:
    """Body: ``{"note": "why"}`` (required). 409 when the alert is already resolved."""
    return _transition(alert_id, alerts.resolve, note_required=True)


# --- uptime SLA ------------------------------------------------------------------------------------

MAX_SLA_SPAN = timedelta(days=366)  # a yearly target's period; longer ranges would read every event ever kept


def _sla_period() -> tuple[datetime, datetime, dict[str, str]]:
    """``from`` and ``to`` (default: the last 24 hours), ``to`` clipped to now: the future is not known
    yet, and counting it as the devices' last status would flatter availability."""
    errors: dict[str, str] = {}
    now = datetime.now(UTC)
    end = _time_arg("to", errors)
    start = _time_arg("from", errors)
    end = min(end or now, now)
    start = start or end - timedelta(days=1)
    if not errors:
        if start >= now:
            errors["from"] = f"{_iso(start)} is in the future"
        elif start >= end:
            errors["to"] = f"must be after from ({_iso(start)})"
        elif end - start > MAX_SLA_SPAN:
            errors["to"] = f"the period may span at most {MAX_SLA_SPAN.days} days"
    return start, end, errors


@bp.get("/sla/availability")
@require_permission("metrics:read")
def sla_availability() -> Response:
    """Availability over ``[from, to)`` per ``by`` (device (default), group, site, tag, org), worst first:
    :func:`analytics.sla.availability`'s rows."""
    start, end, errors = _sla_period()
    by = request.args.get("by") or "device"
    if by not in sla.BY:
        errors["by"] = f"{by!r} is not one of {', '.join(sla.BY)}"
    if errors:
        raise ValidationError("invalid query parameters", details=errors)
    with raw_connection(_engine()) as conn:
        frame = sla.availability(conn, current_org_id(), start, end, by=cast(sla.By, by))
    return envelope.success({"from": _iso(start), "to": _iso(end), "by": by, "items": _rows(frame)})


@bp.get("/sla/outages")
@require_permission("metrics:read")
def sla_outages() -> Response:
    """Every outage over ``[from, to)`` by start (``end`` None while still down): :func:`analytics.sla.outages`."""
    start, end, errors = _sla_period()
    if errors:
        raise ValidationError("invalid query parameters", details=errors)
    with raw_connection(_engine()) as conn:
        frame = sla.outages(conn, current_org_id(), start, end)
    return envelope.success({"from": _iso(start), "to": _iso(end), "items": _rows(frame)})


@bp.get("/sla/targets")
@require_permission("metrics:read")
def sla_targets() -> Response:
    """Every SLA target against its calendar period up to ``at`` (default now; a past time shows how the
    period holding it stood then): :func:`analytics.sla.evaluate_targets`."""
    errors: dict[str, str] = {}
    now = datetime.now(UTC)
    at = _time_arg("at", errors) or now
    if "at" not in errors and at > now:
        errors["at"] = f"{_iso(at)} is in the future"
    if errors:
        raise ValidationError("invalid query parameters", details=errors)
    with raw_connection(_engine()) as conn:
        results = sla.evaluate_targets(conn, current_org_id(), at)
    items = [{k: _json_value(v) for k, v in asdict(r).items()} for r in results]
    return envelope.success({"at": _iso(at), "items": items})


# --- errors ----------------------------------------------------------------------------------------

def _netpulse_error(exc: NetPulseError) -> Response | tuple[str, int]:
    """Under /api/ (any route there, not only this blueprint's) an envelope with the error's status."""
    if exc.status >= 500:
        log.error("netpulse.dashboard.error", code=exc.code, message=exc.message, path=request.path)
    if not request.path.startswith(API_PREFIX):
        return exc.message, exc.status
    response = envelope.failure(exc.code, exc.message, exc.status, exc.details)
    if isinstance(exc, RateLimited):
        response.headers["Retry-After"] = str(exc.retry_after_s)
    elif isinstance(exc, Unavailable):
        response.headers["Retry-After"] = str(auth.UNAVAILABLE_RETRY_S)
    return response


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
