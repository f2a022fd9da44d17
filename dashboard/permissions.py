"""Who may do what in the pages: the REST API's permissions, applied to pages and Dash callbacks.

A page declares the permission that reading it needs (``dash.register_page(..., permission=...)``),
and every callback names the permission of the API route that returns or changes the same data::

    @dash.callback(Output(...), Input(...))
    @guarded("alert:read")          # as GET /api/v1/alerts
    def refresh_table(...): ...

A callback can be called without its page or its button (any signed-in user can POST to
``/_dash-update-component``), so the check runs on every call: a role without the permission gets a
403 and no data. ``tests/test_dashboard_permissions.py`` checks that every callback of the app is
guarded.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

import structlog

from dashboard.auth import current_claims, role_allows
from netpulse.errors import InsufficientPermissions

__all__ = ["PERMISSION_ATTR", "allowed", "forbidden", "guarded", "role"]

log = structlog.get_logger("netpulse.dashboard.permissions")

P = ParamSpec("P")
R = TypeVar("R")
PERMISSION_ATTR = "netpulse_permission"   # set on every guarded callback (read by the tests)


def role() -> str:
    """The signed-in user's role ("" outside an authenticated request)."""
    return str(current_claims().get("role", ""))


def allowed(permission: str) -> bool:
    """Whether the signed-in user's role grants ``permission`` (the spec's RBAC table)."""
    return role_allows(role(), permission)


def _runtime_types(hint: Any) -> tuple[type, ...] | None:
    """The runtime types a parameter's annotation admits (None: anything, or not worth checking)."""
    if hint is Any:
        return None
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        found: list[type] = []
        for arg in typing.get_args(hint):
            admitted = _runtime_types(arg)
            if admitted is None:
                return None
            found.extend(admitted)
        return tuple(found)
    origin = typing.get_origin(hint) or hint
    if origin is float:
        return (int, float)
    if origin is int:
        return (int,)   # bool is an int too: Dash never sends a bool where a number is declared
    return (origin,) if origin in (str, bool, list, dict, type(None)) else None


def _argument_check(fn: Callable[..., Any]) -> Callable[[tuple[Any, ...]], None]:
    """Refuse values of a type the callback does not declare (a client may POST anything): the request
    then answers 400 (dashboard.dash_requests) instead of the value reaching SQL. None always passes,
    since Dash sends it for properties not set yet."""
    hints = typing.get_type_hints(fn)
    names = list(inspect.signature(fn).parameters)
    admitted = [_runtime_types(hints[n]) if n in hints else None for n in names]

    def check(args: tuple[Any, ...]) -> None:
        for name, value, allowed_types in zip(names, args, admitted, strict=False):
            if value is None or allowed_types is None:
                continue
            if not isinstance(value, allowed_types) or (isinstance(value, bool) and bool not in allowed_types):
                raise TypeError(f"{fn.__name__}: {name} cannot be a {type(value).__name__}")

    return check


def guarded(permission: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """A callback decorator: run only for roles granted ``permission``; anyone else gets a 403.
    Arguments of another type than the callback declares are refused (see :func:`_argument_check`)."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        checks: list[Callable[[tuple[Any, ...]], None]] = []

        @wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            if not allowed(permission):
                who = role()
                log.warning("netpulse.dashboard.callback_refused", callback=fn.__name__, role=who,
                            permission=permission)
                raise InsufficientPermissions(f"role {who!r} lacks the {permission} permission",
                                              details={"required": permission, "role": who})
            if not checks:   # resolved at the first call: the annotations name types imported later
                checks.append(_argument_check(fn))
            checks[0](args)
            return fn(*args, **kwargs)

        setattr(wrapper, PERMISSION_ATTR, permission)
        return wrapper

    return decorate


def forbidden(permission: str) -> Any:
    """What a page shows a role that may not read it."""
    from dash import html

    return html.Div(
        [html.H1("Not available to your role", className="np-page-title"),
         html.P(f"This page needs the {permission} permission; your role ({role() or 'none'}) does not have it. "
                "Ask an administrator if you need it.", className="np-muted")],
        className="np-forbidden")
