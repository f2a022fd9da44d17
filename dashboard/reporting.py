"""Asking for reports from the web process: the run is recorded, then handed to a worker.

The REST API (``POST /api/v1/reports/generate``) and the pages (Reports, SLA) call these, so a report
is never made inside a web request: a month of a large fleet takes seconds to read and render. The
run is ``pending`` until a worker (``workers.generate_report``) makes it; a broker that does not
answer loses nothing, since the scheduler hands out runs that no worker took
(:func:`reports.runs.runs_to_resume`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
import structlog
from flask import current_app

from dashboard.auth import current_org_id, current_user_id, sessionmaker_of
from dashboard.timerange import Window
from reports import runs

__all__ = ["ask_for_report", "ask_for_schedule_run", "workers_attached", "window_period", "made_file", "transaction"]

log = structlog.get_logger("netpulse.dashboard.reporting")


@contextmanager
def transaction() -> Iterator[psycopg.Connection[Any]]:
    """A psycopg connection in one transaction: committed when the block ends, rolled back if it raises."""
    with sessionmaker_of(current_app)() as session, session.begin():
        conn = session.connection().connection.driver_connection
        assert isinstance(conn, psycopg.Connection)
        yield conn


def _sender() -> Callable[[int], None] | None:
    send: Callable[[int], None] | None = current_app.extensions.get("netpulse.send_report")
    return send


def workers_attached() -> bool:
    """Whether runs asked for here are sent to the workers at once (else the scheduler finds them)."""
    return _sender() is not None


def _send(run_id: int) -> None:
    send = _sender()
    if send is None:
        return
    try:
        send(run_id)
    except Exception as exc:  # noqa: BLE001 - any broker's failure; the run is resumed by the scheduler
        log.warning("netpulse.dashboard.report_not_sent", run_id=run_id, error=type(exc).__name__)


def ask_for_report(*, kind: str, scope: str, period: str, fmt: str,
                   fields: tuple[str, str] = ("scope", "period")) -> runs.Run:
    """Record a run of ``kind`` for ``scope`` and ``period`` as typed (see :func:`reports.runs.request_run`;
    errors name ``fields``) and hand it to a worker after the commit; the run, ``pending``."""
    now = datetime.now(UTC)
    with transaction() as conn:
        run_id = runs.request_run(conn, current_org_id(), kind=kind, scope=scope, period=period, fmt=fmt, now=now,
                                  requested_by=current_user_id(), fields=fields)
        if workers_attached():
            runs.mark_enqueued(conn, [run_id], now)
        run = runs.get_run(conn, current_org_id(), run_id)
    _send(run_id)  # after the commit: the worker must find the run
    return run


def ask_for_schedule_run(name: str) -> tuple[runs.Run, bool]:
    """Schedule ``name``'s report for its latest period, made by a worker and emailed to its channels
    (:func:`reports.runs.request_schedule_run`): the run, and False when that period had one already
    (then nothing is sent again unless it is still unfinished)."""
    now = datetime.now(UTC)
    with transaction() as conn:
        run_id, claimed = runs.request_schedule_run(conn, current_org_id(), name, now=now)
        run = runs.get_run(conn, current_org_id(), run_id)
        unfinished = run.status in ("pending", "running")
        if unfinished and workers_attached():
            runs.mark_enqueued(conn, [run_id], now)
    if unfinished:
        _send(run_id)
    return run, claimed


def window_period(window: Window) -> str:
    """A page's time window as a report's period (UTC times, ``FROM..TO``)."""
    return f"{window.start:%Y-%m-%dT%H:%M:%SZ}..{window.end:%Y-%m-%dT%H:%M:%SZ}"


def made_file(run_id: int) -> tuple[runs.Run, tuple[str, bytes] | None]:
    """Run ``run_id`` as it stands, with its file (name, bytes) once made (as GET /api/v1/reports/<id>/file)."""
    with transaction() as conn:
        run = runs.get_run(conn, current_org_id(), run_id)
        if run.size is None:
            return run, None
        name, _content_type, content = runs.run_file(conn, current_org_id(), run_id)
    return run, (name, content)
