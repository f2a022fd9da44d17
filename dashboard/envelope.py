"""The API envelope of the spec: ``success``, ``data`` or ``error{code,message,details}``, ``meta``.

Shared by the API blueprint and the auth layer (which answers 401s in the same shape).
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

from flask import Response, g, jsonify, request

API_VERSION = "v1"
REQUEST_ID_HEADER = "X-Request-ID"
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def request_id() -> str:
    """This request's id: the caller's ``X-Request-ID`` when it is sane, else a new ``req_<hex>``."""
    rid = g.get("request_id")
    if rid is None:
        given = request.headers.get(REQUEST_ID_HEADER, "")
        rid = given if _CLIENT_ID.match(given) else f"req_{uuid.uuid4().hex}"
        g.request_id = rid
    return str(rid)


def meta() -> dict[str, str]:
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {"timestamp": now, "version": API_VERSION, "request_id": request_id()}


def _respond(body: dict[str, Any], status: int) -> Response:
    response = jsonify(body)
    response.status_code = status
    response.headers[REQUEST_ID_HEADER] = request_id()
    response.headers["Cache-Control"] = "no-store"
    return response


def success(data: Any, *, status: int = 200, pagination: dict[str, Any] | None = None) -> Response:
    body: dict[str, Any] = {"success": True, "data": data}
    if pagination is not None:
        body["pagination"] = pagination
    body["meta"] = meta()
    return _respond(body, status)


def failure(code: str, message: str, status: int, details: dict[str, Any] | None = None) -> Response:
    body = {"success": False, "error": {"code": code, "message": message, "details": details or {}},
            "meta": meta()}
    return _respond(body, status)


def pagination(page: int, per_page: int, total: int) -> dict[str, Any]:
    total_pages = (total + per_page - 1) // per_page
    return {"page": page, "per_page": per_page, "total": total, "total_pages": total_pages,
            "has_next": page < total_pages, "has_prev": page > 1}
