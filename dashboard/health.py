"""Health endpoints, none behind a login:

- ``/alive``: the process answers (no dependency is asked): for a liveness probe that restarts it;
- ``/ready``: it can serve: PostgreSQL and Redis answer and every migration is applied;
- ``/health``: every check (``/ready``'s plus queue depth and whatever a process added), with a
  JSON detail per check; 503 when one fails;
- ``/healthz``: the same verdict as ``/health`` and nothing else (``{"status": "healthy"}``).

The checks are a list in ``app.extensions["netpulse.health_checks"]`` (:class:`netpulse.health.Check`):
a process that has more to report (e.g. a scheduler lease) appends to it, or passes ``checks`` to
``create_app``. Details carry figures only; a failing dependency's error text (host, port, user)
goes to the log, never into an answer.
"""

from __future__ import annotations

from collections.abc import Sequence

from flask import Flask, current_app, jsonify
from werkzeug.wrappers import Response

from netpulse.health import Check, HealthReport, run_checks

__all__ = ["install_health", "PATHS"]

PATHS = ("/alive", "/ready", "/health", "/healthz")


def _checks() -> list[Check]:
    checks: list[Check] = current_app.extensions["netpulse.health_checks"]
    return checks


def _answer(body: dict[str, object], ok: bool) -> tuple[Response, int]:
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response, 200 if ok else 503


def alive() -> tuple[Response, int]:
    return _answer({"status": "alive"}, True)


def ready() -> tuple[Response, int]:
    report = run_checks([c for c in _checks() if c.ready])
    body = report.as_dict()
    body["status"] = "ready" if report.ok else "not_ready"
    return _answer(body, report.ok)


def _health() -> HealthReport:
    return run_checks(_checks())


def health() -> tuple[Response, int]:
    report = _health()
    return _answer(report.as_dict(), report.ok)


def healthz() -> tuple[Response, int]:
    report = _health()
    return _answer({"status": "healthy" if report.ok else "unhealthy"}, report.ok)


def install_health(app: Flask, checks: Sequence[Check]) -> list[Check]:
    """Mount the four endpoints over ``checks`` (kept as a list others may append to)."""
    app.extensions["netpulse.health_checks"] = list(checks)
    for path, view in zip(PATHS, (alive, ready, health, healthz), strict=True):
        app.add_url_rule(path, path.strip("/"), view)
    return app.extensions["netpulse.health_checks"]  # type: ignore[no-any-return]
