"""Dash's own endpoints answer malformed requests with a 4xx, never a 500.

- ``POST /_dash-update-component``: the body must be what the renderer sends for a registered
  callback: an object naming the callback's ``output``, its ``outputs`` (one per declared output, a
  list for a wildcard one), and exactly its declared ``inputs`` and ``state`` (same ids and
  properties; a wildcard dependency as a list of them). Anything else is a 400 envelope naming the
  problem, before Dash or a callback sees it. A well-formed request whose *values* a callback cannot
  use (a text where the renderer always sends a number: only a hand-made request does that) makes
  the callback raise a TypeError, ValueError, KeyError, IndexError or AttributeError, the database
  refuse a value of the wrong type or range (a DataError), or Dash's page router raise an
  UnsupportedRelativePath for a path that is no path: that is a 400 too, logged with the callback
  and the error (never the body or local variables). Other failures (the database down) keep their
  own answers.
- ``GET /_dash-component-suites/<package>/<path>``: a file that Dash did not register (or a
  package that is not loaded) is a 404 instead of the 500 Dash raises.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import sqlalchemy.exc
import structlog
from dash import Dash
from dash.exceptions import DependencyException, UnsupportedRelativePath
from flask import Flask, Response, request
from werkzeug.exceptions import NotFound

from dashboard.envelope import failure

__all__ = ["guard_dash_endpoints", "callback_body_problem"]

log = structlog.get_logger("netpulse.dashboard.dash_requests")

UPDATE_PATH = "/_dash-update-component"
SUITES_RULE = "/_dash-component-suites/<string:package_name>/<path:fingerprinted_path>"


def _dependency_problem(sent: Any, spec: dict[str, Any], where: str) -> str | None:
    """Why ``sent`` is not the renderer's form of the declared dependency ``spec``, or None."""
    wildcard = str(spec.get("id", "")).startswith("{")
    items = sent if wildcard and isinstance(sent, list) else [sent]
    if wildcard and not isinstance(sent, list | dict):
        return f"{where} must be a list of components"
    for item in items:
        if not isinstance(item, dict):
            return f"{where} must be an object with id and property"
        if not isinstance(item.get("id"), str | dict) or not isinstance(item.get("property"), str):
            return f"{where} needs an id (text or object) and a property (text)"
        if item["property"] != spec.get("property"):
            return f"{where} is not the callback's property {spec.get('property')!r}"
        if not wildcard and item["id"] != spec.get("id"):
            return f"{where} is not the callback's component {spec.get('id')!r}"
    return None


def _outputs_problem(outputs: Any, declared: Any) -> str | None:
    """Why ``outputs`` is not the renderer's form of the ``declared`` output(s): a list with one entry per
    output for a callback declared with a list, and each entry a list for a wildcard (ALL, MATCH)
    output, an object otherwise; or None."""
    multi = isinstance(declared, list)
    each = declared if multi else [declared]
    sent = outputs if multi else [outputs]
    if not isinstance(sent, list) or len(sent) != len(each):
        return f"outputs must be a list of the callback's {len(each)} outputs"
    for i, (item, dep) in enumerate(zip(sent, each, strict=True)):
        wildcard = bool(dep.has_wildcard()) if hasattr(dep, "has_wildcard") else isinstance(item, list)
        if wildcard != isinstance(item, list):
            return f"outputs[{i}] must be {'a list of components' if wildcard else 'one component'}"
    return None


def callback_body_problem(body: Any, callback_map: dict[str, Any]) -> str | None:
    """Why ``body`` is not a well-formed callback request of a registered callback, or None."""
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    output = body.get("output")
    if not isinstance(output, str) or output not in callback_map:
        return "output names no callback of this app"
    outputs = body.get("outputs")
    flat = [o for group in (outputs if isinstance(outputs, list) else [outputs])
            for o in (group if isinstance(group, list) else [group])]
    if not flat or not all(isinstance(o, dict) and isinstance(o.get("property"), str)
                           and isinstance(o.get("id"), str | dict) for o in flat):
        return "outputs must be objects with id and property"
    spec = callback_map[output]
    problem = _outputs_problem(outputs, spec.get("output"))
    if problem is not None:
        return problem
    for field in ("inputs", "state"):
        declared = spec.get(field) or []
        sent = body.get(field, [] if field == "state" else None)
        if not isinstance(sent, list) or len(sent) != len(declared):
            return f"{field} must be a list of the callback's {len(declared)} {field}"
        for i, (item, dep) in enumerate(zip(sent, declared, strict=True)):
            problem = _dependency_problem(item, dep, f"{field}[{i}]")
            if problem is not None:
                return problem
    changed = body.get("changedPropIds", [])
    if not isinstance(changed, list) or not all(isinstance(c, str) for c in changed):
        return "changedPropIds must be a list of texts"
    return None


def _check_callback_request(dash_app: Dash) -> Response | None:
    if request.path != UPDATE_PATH or request.method != "POST":
        return None
    body = request.get_json(silent=True)
    problem = callback_body_problem(body, dash_app.callback_map)
    if problem is None:
        return None
    return failure("INVALID_INPUT", f"Malformed callback request: {problem}", 400)


def _bad_values_are_400(view: Callable[..., Any]) -> Callable[..., Any]:
    def dispatch() -> Any:
        try:
            return view()
        except (TypeError, ValueError, KeyError, IndexError, AttributeError, UnsupportedRelativePath, psycopg.DataError,
                sqlalchemy.exc.DataError) as exc:
            body = request.get_json(silent=True)
            output = body.get("output") if isinstance(body, dict) else None
            log.error("netpulse.dashboard.callback_bad_values", output=str(output)[:200],
                      error=type(exc).__name__, message=str(exc)[:200])
            return failure("INVALID_INPUT", "The callback could not use the values sent", 400)

    return dispatch


def _missing_file_is_404(view: Callable[..., Any]) -> Callable[..., Any]:
    def serve(package_name: str, fingerprinted_path: str) -> Any:
        try:
            return view(package_name, fingerprinted_path)
        except (DependencyException, KeyError, OSError):
            raise NotFound(f"no such Dash resource: {package_name}/{fingerprinted_path}") from None

    return serve


def guard_dash_endpoints(server: Flask, dash_app: Dash) -> None:
    """Install the checks. Call after Dash has registered its routes and callbacks, and after the auth
    guard: before_request hooks run in registration order, so a request without a token is a 401 first."""
    server.before_request(lambda: _check_callback_request(dash_app))
    server.view_functions[SUITES_RULE] = _missing_file_is_404(server.view_functions[SUITES_RULE])
    server.view_functions[UPDATE_PATH] = _bad_values_are_400(server.view_functions[UPDATE_PATH])
