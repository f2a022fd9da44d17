"""Operations: one decorator declares a route, its permission and its models; one guard enforces them.

:func:`operation` registers a view on the ``/api/v1`` blueprint (flask-openapi3 documents it from the
view's annotated ``path``/``query``/``body``/``form`` models and validates requests with the same
models) and records what the guard needs. Before the models are judged, the guard answers in this
order, so every operation behaves alike:

1. 401 without a valid token (header or cookie) or with one its user no longer stands behind
   (signed out, disabled, role or password changed), 403 when the user's current role lacks the
   permission (an operation open to every signed-in user declares :data:`SIGNED_IN`);
2. 422 for a query parameter the operation does not declare (naming the allowed ones), and for a body
   that is not a JSON object;
3. then the models: 422 naming each bad field; a malformed path id is a 404 like an unknown one.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import wraps
from typing import Any, ParamSpec, TypeVar, get_type_hints

import psycopg
import pydantic
from flask import Response, current_app, request
from flask_jwt_extended import verify_jwt_in_request
from flask_openapi3 import APIBlueprint, Tag
from sqlalchemy.orm import Session
from werkzeug.exceptions import BadRequest

from dashboard import envelope
from dashboard.api.params import Paged, PathModel
from dashboard.api.schemas import ErrorEnvelope, envelope_of
from dashboard.auth import current_user, role_allows, sessionmaker_of
from netpulse.csvfile import write_csv
from netpulse.errors import InsufficientPermissions, NetPulseError, NotFound, ValidationError

__all__ = ["PREFIX", "SECURITY", "SIGNED_IN", "bp", "Operation", "OPERATIONS", "operation", "authorize",
           "require_permission", "validation_failed", "unit_of_work", "pg", "ok", "page_of", "file_answer",
           "csv_answer", "field_names"]

PREFIX = "/api/v1"
# Either way of sending the token: the Authorization header (API clients) or the session cookie (the browser).
SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"cookieAuth": []}]

# The "permission" of operations every signed-in user may call, whatever the role (their own session).
SIGNED_IN = "signed-in"

bp = APIBlueprint("api", __name__, url_prefix=PREFIX)

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Operation:
    """What the guard knows of a route: its permission (None: public; :data:`SIGNED_IN`: any valid
    token) and its request models."""

    endpoint: str
    method: str
    rule: str
    permission: str | None
    path: type[PathModel] | None
    query: type[pydantic.BaseModel] | None
    body: type[pydantic.BaseModel] | None
    form: type[pydantic.BaseModel] | None

    @property
    def query_names(self) -> list[str]:
        if self.query is None:
            return []
        return [f.alias or name for name, f in self.query.model_fields.items()]


OPERATIONS: dict[str, Operation] = {}


def operation(method: str, rule: str, *, tag: Tag, permission: str | None, data: type[pydantic.BaseModel] | None = None,
              many: bool = False, paginated: bool = False, status: int = 200, conflict: bool = False,
              not_found: bool = False, errors: tuple[int, ...] = (),
              content: tuple[tuple[str, str], ...] = (), files: tuple[tuple[str, str], ...] = (),
              summary: str | None = None) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Declare an operation of ``/api/v1``: ``rule`` under the prefix, the ``permission`` of the RBAC
    table it needs (None: no token needed; :data:`SIGNED_IN`: a valid token of any role), and the
    ``data`` model of its answer (a list with ``many``, paged with ``paginated``; other media types it
    may answer with in ``content``), or with ``files`` the (media type, description) of the files it
    answers with instead. The view's docstring is the operation's documentation.

    Errors documented: 401 for guarded operations and 403 for those needing a permission, 404 when the
    rule has path parameters (or with ``not_found``: a filter naming an object), 409 with ``conflict``,
    those in ``errors``, and 422 always.
    """

    def decorate(view: Callable[P, R]) -> Callable[P, R]:
        hints = get_type_hints(view)
        endpoint = f"{bp.name}.{view.__name__}"
        if endpoint in OPERATIONS:
            raise RuntimeError(f"two API operations are named {view.__name__}")
        OPERATIONS[endpoint] = Operation(endpoint, method.upper(), rule, permission, hints.get("path"),
                                         hints.get("query"), hints.get("body"), hints.get("form"))
        responses: dict[int, Any] = {status: envelope_of(data, many=many, paginated=paginated, content=content)}
        if files:
            responses[status] = {"description": "The file, as an attachment.", "content": {
                media: {"schema": {"type": "string", "format": "binary", "description": about}}
                for media, about in files}}
        if permission is not None:
            responses[401] = ErrorEnvelope
        if permission not in (None, SIGNED_IN):
            responses[403] = ErrorEnvelope
        if "<" in rule or not_found:
            responses[404] = ErrorEnvelope
        if conflict:
            responses[409] = ErrorEnvelope
        responses |= {code: ErrorEnvelope for code in errors}
        responses[422] = ErrorEnvelope
        doc = (view.__doc__ or "").strip()
        needs = ("No token needed." if permission is None else "Needs a signed-in user (any role)."
                 if permission == SIGNED_IN else f"Needs the `{permission}` permission.")
        register = getattr(bp, method.lower())
        register(rule, tags=[tag], summary=summary or (doc.splitlines()[0] if doc else None),
                 description="\n".join([*doc.splitlines()[1:], "", needs]).strip(), responses=responses,
                 security=SECURITY if permission else None, operation_id=view.__name__,
                 openapi_extensions={"x-permission": permission} if permission not in (None, SIGNED_IN)
                 else None)(view)
        return view

    return decorate


def authorize(permission: str) -> None:
    """A valid token of a user who still stands behind it (401 otherwise) whose role, as the user has it
    now and not as the token was issued, grants ``permission`` (403 otherwise; :data:`SIGNED_IN`: any role)."""
    verify_jwt_in_request()
    if permission == SIGNED_IN:
        return
    role = current_user().role
    if not role_allows(role, permission):
        raise InsufficientPermissions(f"role {role!r} lacks the {permission} permission",
                                      details={"required": permission, "role": role})


def require_permission(permission: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """For a plain Flask view outside :func:`operation`: the same check as the guard's."""

    def decorate(view: Callable[P, R]) -> Callable[P, R]:
        @wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            authorize(permission)
            return view(*args, **kwargs)

        return wrapper

    return decorate


@bp.before_request
def _guard() -> None:
    op = OPERATIONS.get(request.endpoint or "")
    if op is None:
        return
    if op.permission is not None:
        authorize(op.permission)
    unknown = sorted(set(request.args) - set(op.query_names))
    if unknown:
        allowed = ", ".join(op.query_names) or "none"
        raise ValidationError(f"unknown query parameter(s) {', '.join(unknown)}; allowed: {allowed}",
                              details={name: f"unknown parameter; allowed: {allowed}" for name in unknown})
    if op.body is not None and request.get_data(cache=True).strip():
        if not request.is_json:
            raise ValidationError("send the body as a JSON object with Content-Type: application/json",
                                  details={"body": "expected a JSON object"})
        try:
            request.get_json()  # parsed once here (and cached) so a bad body is named, not taken for none
        except BadRequest:
            raise ValidationError("the body is not valid JSON", details={"body": "not valid JSON"}) from None


def _message(error: Any) -> str:
    if not error["loc"] and error["type"] in ("model_type", "model_attributes_type", "dict_type", "json_invalid",
                                              "json_type"):
        return "expected a JSON object"
    if error["type"] == "value_error" and "error" in error.get("ctx", {}):
        return str(error["ctx"]["error"])
    if error["type"] == "missing":
        return "required"
    return str(error["msg"])


def _field(loc: tuple[int | str, ...]) -> str:
    """The field an error is about: its name, and the index for an item of a list (``tags.2``). What
    follows in pydantic's location (the union member that failed) means nothing to a caller."""
    if not loc:
        return "body"
    parts = [str(loc[0])]
    for part in loc[1:]:
        if not isinstance(part, int):
            break
        parts.append(str(part))
    return ".".join(parts)


def validation_failed(exc: pydantic.ValidationError) -> Response:
    """flask-openapi3's validation error callback: the spec's envelope, one message per field."""
    op = OPERATIONS.get(request.endpoint or "")
    if op is not None and op.path is not None and exc.title == op.path.__name__:
        given = {k: str(v) for k, v in (request.view_args or {}).items()}
        return envelope.failure(op.path.not_found_code, f"nothing at {request.path}", 404, given)
    details: dict[str, str] = {}
    errors = exc.errors(include_url=False)
    for error in errors:
        field = _field(error["loc"])
        message = _message(error)
        if error["type"] == "extra_forbidden":
            model = op.body or op.form if op is not None else None
            allowed = ", ".join(f.alias or n for n, f in model.model_fields.items()) if model else ""
            message = f"unknown field; allowed: {allowed}" if allowed else "unknown field"
        details.setdefault(field, message)
    code = "MISSING_REQUIRED_FIELD" if all(e["type"] == "missing" for e in errors) else "INVALID_INPUT"
    summary = "; ".join(f"{k}: {v}" for k, v in details.items())
    return envelope.failure(code, f"invalid request: {summary}", 422, details)


# --- the data behind a request ---------------------------------------------------------------------

@contextmanager
def unit_of_work() -> Iterator[Session]:
    """One transaction per request: committed when the block ends, rolled back (nothing written) when it raises."""
    with sessionmaker_of(current_app)() as session, session.begin():
        yield session


def pg(session: Session) -> psycopg.Connection[Any]:
    """The psycopg connection under ``session``, in the same transaction (analytics takes psycopg)."""
    conn = session.connection().connection.driver_connection
    assert isinstance(conn, psycopg.Connection)
    return conn


# --- answers ---------------------------------------------------------------------------------------

def _dump(data: Any) -> Any:
    if isinstance(data, pydantic.BaseModel):
        return data.model_dump(mode="json")
    if isinstance(data, list):
        return [_dump(item) for item in data]
    return data


def ok(data: Any, *, status: int = 200) -> Response:
    """A success envelope; models are serialized as the document declares them."""
    return envelope.success(_dump(data), status=status)


def page_of(data: Any, total: int, paged: Paged) -> Response:
    """One page (the items, or a report holding them), with the totals of the spec's pagination block."""
    return envelope.success(_dump(data), pagination=envelope.pagination(paged.page, paged.per_page, total))


def file_answer(filename: str, content: str | bytes, content_type: str) -> Response:
    """A download, carrying the request id like every answer."""
    response = Response(content, content_type=content_type)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers[envelope.REQUEST_ID_HEADER] = envelope.request_id()
    response.headers["Cache-Control"] = "no-store"
    return response


def csv_answer(filename: str, header: list[str], rows: Iterable[Sequence[Any]], *,
               extra_headers: dict[str, str] | None = None) -> Response:
    """A CSV download (UTF-8, a header line), written by the one CSV writer (cells a spreadsheet would
    take for formulas are escaped)."""
    out = io.StringIO()
    write_csv(out, header, rows)
    response = file_answer(filename, out.getvalue(), "text/csv; charset=utf-8")
    for key, value in (extra_headers or {}).items():
        response.headers[key] = value
    return response


@contextmanager
def field_names(renames: dict[str, str]) -> Iterator[None]:
    """Name a core error's fields as this API's body names them (the core may say ``ref`` for
    ``scope_ref``). A body naming something that does not exist is an invalid value of that field
    (422), not a missing resource: the resource of the request is what the path names."""
    try:
        yield
    except NotFound as exc:
        details = {renames.get(k, k): exc.message for k in exc.details} or {"body": exc.message}
        raise ValidationError(exc.message, details=details) from None
    except NetPulseError as exc:
        if any(k in renames for k in exc.details):
            exc.details = {renames.get(k, k): v for k, v in exc.details.items()}
        raise
