"""Every failure under ``/api/`` is the spec's error envelope with the right status, never HTML or a 500
for bad input: NetPulse errors carry their code and status (and ``Retry-After`` on a 429 or 503);
unknown routes and wrong methods are 404 and 405; a JSON body nested too deeply for the parser is
invalid input; anything else is a logged 500 whose answer says nothing about the cause.
"""

from __future__ import annotations

from typing import Any

import structlog
from flask import Flask, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.wrappers import Response

from dashboard import envelope
from dashboard.auth import API_PREFIX, UNAVAILABLE_RETRY_S
from netpulse.errors import NetPulseError, RateLimited, Unavailable

__all__ = ["JSONProvider", "install_error_handlers"]

log = structlog.get_logger("netpulse.dashboard.api")


class JSONProvider(DefaultJSONProvider):
    """Flask's JSON, where a document nested deeper than the parser's recursion limit is a ValueError
    (an invalid body: 400/422) rather than a RecursionError (a 500)."""

    sort_keys = False  # envelopes read success, data, meta in that order

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError("the JSON document is nested too deeply") from None


def _netpulse_error(exc: NetPulseError) -> Response | tuple[str, int]:
    """Under /api/ (any route there) an envelope with the error's status; elsewhere plain text. A 429
    or 503 says when to try again (``Retry-After``)."""
    if exc.status >= 500:
        log.error("netpulse.dashboard.error", code=exc.code, message=exc.message, path=request.path)
    if not request.path.startswith(API_PREFIX):
        return exc.message, exc.status
    response = envelope.failure(exc.code, exc.message, exc.status, exc.details)
    if isinstance(exc, RateLimited):
        response.headers["Retry-After"] = str(exc.retry_after_s)
    elif isinstance(exc, Unavailable):
        response.headers["Retry-After"] = str(UNAVAILABLE_RETRY_S)
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
    code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE"}.get(
        status, exc.name.upper().replace(" ", "_"))
    details: dict[str, Any] = {"path": request.path}
    allowed = getattr(exc, "valid_methods", None)
    if status == 405 and allowed:
        details["allowed_methods"] = sorted(allowed)
    return envelope.failure(code, exc.description or exc.name, status, details)


def install_error_handlers(app: Flask) -> None:
    """The envelope for every error under /api/, and a GET catch-all that shadows Dash's index there."""
    app.json = JSONProvider(app)
    # Dash serves its index for every unmatched GET path; under /api/ that must be a 404 envelope.
    app.add_url_rule(f"{API_PREFIX}<path:path>", "api_unknown_route", _unknown_route, methods=["GET"])
    app.register_error_handler(NetPulseError, _netpulse_error)
    app.register_error_handler(HTTPException, _http_error)
