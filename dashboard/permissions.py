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


def guarded(permission: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """A callback decorator: run only for roles granted ``permission``; anyone else gets a 403."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            if not allowed(permission):
                who = role()
                log.warning("netpulse.dashboard.callback_refused", callback=fn.__name__, role=who,
                            permission=permission)
                raise InsufficientPermissions(f"role {who!r} lacks the {permission} permission",
                                              details={"required": permission, "role": who})
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
