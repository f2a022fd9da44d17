"""Report runs: every report made, scheduled or on request, with its file, figures, duration, error
and emails; claimed once per schedule and period, and made by :func:`execute_run`.

The life of a run: ``pending`` (claimed) -> ``running`` (a worker holds it) -> ``succeeded`` or
``failed``. Guarantees, and what gives them:

- **Once per schedule and period**: a scheduled run is claimed by inserting its row under the unique
  key (schedule, period start) before anything is made, so ticks seen twice, two schedulers or a
  restart claim nothing new (:func:`claim_due`).
- **One worker at a time**: :func:`execute_run` holds a PostgreSQL advisory lock on the run for all
  of its work; a second message for it finds the lock taken and leaves. A killed worker's
  connection closes and the lock goes with it, so :func:`runs_to_resume` hands the run to another.
- **Made once, mailed once**: the file, the run's success and its emails (notification outbox rows,
  :func:`reports.email.report_message`) are committed in one transaction. A worker killed while
  making the file leaves nothing to send (the run is resumed and made again); one killed after the
  commit only delays the email (the outbox's sweeper sends it). The outbox key is the schedule and
  period, so a resumed run queues nothing twice, and a report email is at most once: a sender that
  dies while the provider takes it leaves it ``unconfirmed``, never sent again.
- **History from the outbox**: each run lists its emails' states (queued, sending, sent, retrying,
  failed, unconfirmed) from their outbox rows.
- **Never skipped silently**: a failure is kept in ``error`` and retried; after ``max_attempts`` the
  run is ``failed`` with that error (its file, if it was made, stays downloadable).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import structlog
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from analytics.notify.outbox import enqueue
from netpulse.errors import NotFound, ValidationError
from reports.email import report_message
from reports.generate import check_format, check_kind, generate, resolve
from reports.period import ReportPeriod, parse_period
from reports.schedules import Schedule, fires, get_schedule, list_schedules, period_for, schedule_time_zone
from reports.scope import Scope

__all__ = ["LOCK_NAMESPACE", "RunOutcome", "Delivery", "Run", "create_run", "request_run", "request_schedule_run",
           "claim_due",
           "runs_to_resume", "mark_enqueued", "execute_run", "list_runs", "get_run", "run_file"]

log = structlog.get_logger("netpulse.reports")

LOCK_NAMESPACE = 0x52505254  # "RPRT": advisory locks (namespace, run id) of report runs
Conn = psycopg.Connection[Any]

_RUN_COLUMNS = ("r.id, r.organization_id, r.schedule_id, r.schedule_name, r.kind, r.scope, r.scope_ref, r.format,"
                " r.time_zone, r.period_start, r.period_end, r.status, r.attempts, r.error, r.file_name,"
                " r.content_type, r.figures, r.pages, r.duration_s, r.created_at, r.started_at, r.finished_at,"
                " length(r.content) AS size")


@dataclass(frozen=True, slots=True)
class Delivery:
    """A run's email through one channel, as its outbox row stands."""

    channel: str
    status: str  # queued | sending | sent | retrying | failed | unconfirmed
    attempts: int
    error: str | None
    finished_at: datetime | None  # sent, or the last attempt's end
    outbox_id: int | None = None


@dataclass(frozen=True, slots=True)
class Run:
    id: int
    organization_id: uuid.UUID
    schedule_id: int | None
    schedule_name: str | None
    kind: str
    scope: Scope
    format: str
    period: ReportPeriod
    status: str
    attempts: int
    error: str | None
    file_name: str | None
    content_type: str | None
    figures: dict[str, Any] | None
    pages: int | None
    duration_s: float | None
    size: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    deliveries: tuple[Delivery, ...] = field(default=())

    @classmethod
    def from_row(cls, r: Mapping[str, Any], deliveries: tuple[Delivery, ...] = ()) -> Run:
        kind = "span"
        return cls(r["id"], r["organization_id"], r["schedule_id"], r["schedule_name"], r["kind"],
                   Scope(r["scope"], r["scope_ref"]), r["format"],
                   ReportPeriod(r["period_start"], r["period_end"], r["time_zone"], _period_kind(r, kind)),
                   r["status"], r["attempts"], r["error"], r["file_name"], r["content_type"], r["figures"], r["pages"],
                   r["duration_s"], r["size"], r["created_at"], r["started_at"], r["finished_at"], deliveries)


def _period_kind(r: Mapping[str, Any], default: str) -> str:
    """The calendar kind of a stored period (month, week, day), so labels and trends read right."""
    period = ReportPeriod(r["period_start"], r["period_end"], r["time_zone"], default)
    start, end = period.local(period.start), period.local(period.end)
    midnight = start.time() == end.time() == datetime.min.time()
    months = (end.year * 12 + end.month) - (start.year * 12 + start.month)
    if midnight and start.day == 1 and end.day == 1 and months == 1:
        return "month"
    if midnight and (end.date() - start.date()).days == 7 and start.weekday() == 0:
        return "week"
    if midnight and (end.date() - start.date()).days == 1:
        return "day"
    return default


@dataclass(frozen=True, slots=True)
class RunOutcome:
    run_id: int
    status: str  # succeeded | failed | retry | busy | done (already finished)
    error: str | None = None
    outbox_ids: tuple[int, ...] = ()  # the emails queued by this call (send them after it returned)


# --- claiming ----------------------------------------------------------------------------------------------
def create_run(conn: Conn, org_id: uuid.UUID, *, kind: str, scope: Scope, fmt: str, period: ReportPeriod,
               schedule: Schedule | None = None, requested_by: uuid.UUID | None = None) -> int | None:
    """Claim a run: its id, or None when the schedule's run for this period exists already."""
    row = conn.execute(
        "INSERT INTO report_runs (organization_id, schedule_id, schedule_name, kind, scope, scope_ref, format,"
        " time_zone, period_start, period_end, requested_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (schedule_id, period_start) WHERE schedule_id IS NOT NULL DO NOTHING RETURNING id",
        (org_id, schedule.id if schedule else None, schedule.name if schedule else None, kind, scope.kind, scope.ref,
         fmt, period.tz, period.start, period.end, requested_by)).fetchone()
    return int(row[0]) if row else None


def request_run(conn: Conn, org_id: uuid.UUID, *, kind: str, scope: str, period: str, fmt: str, now: datetime,
                requested_by: uuid.UUID | None = None, fields: tuple[str, str] = ("--scope", "--period")) -> int:
    """A run asked for now (not by a schedule), of ``scope`` and ``period`` as a user typed them (see
    :func:`reports.generate.resolve`; errors name ``fields``), every argument checked first; its id.
    A worker makes it (send ``workers.generate_report``); until then it is ``pending``."""
    check_kind(kind)
    check_format(fmt)
    resolved, span = resolve(conn, org_id, scope, period, now=now, fields=fields)
    run_id = create_run(conn, org_id, kind=kind, scope=resolved, fmt=fmt, period=span, requested_by=requested_by)
    if run_id is None:  # only a schedule's run can exist already
        raise RuntimeError("a requested report run was not created")
    return run_id


def request_schedule_run(conn: Conn, org_id: uuid.UUID, name: str, *, now: datetime, period: str | None = None,
                         field: str = "--period") -> tuple[int, bool]:
    """Schedule ``name``'s run for ``period`` (as typed; by default the period of its latest firing),
    claimed as a firing claims it, so it is emailed to the schedule's channels: (its id, True); or the
    run that period has already, made or not (its id, False). A worker or :func:`execute_run` makes it."""
    schedule = get_schedule(conn, org_id, name)
    tz = schedule_time_zone(conn, schedule)
    if period:
        span = parse_period(period, tz, now=now, field=field)
    else:
        last = fires(schedule.cron, tz, after=datetime(1970, 1, 2, tzinfo=UTC), until=now, limit=1)
        if not last:
            raise ValidationError(f"schedule {name!r} has not fired yet; give {field}",
                                  details={field.lstrip("-"): "required"})
        span = period_for(schedule, last[0], tz)
    run_id = create_run(conn, org_id, kind=schedule.kind, scope=schedule.scope, fmt=schedule.format, period=span,
                        schedule=schedule)
    if run_id is not None:
        return run_id, True
    row = conn.execute("SELECT id FROM report_runs WHERE schedule_id = %s AND period_start = %s",
                       (schedule.id, span.start)).fetchone()
    if row is None:  # the conflicting run was deleted meanwhile
        raise RuntimeError(f"schedule {name!r}: no run for {span.label}, and none could be claimed")
    return int(row[0]), False


def claim_due(conn: Conn, now: datetime, *, lookback: timedelta = timedelta(days=35)) -> list[int]:
    """Claim a run for every firing of every enabled schedule in ``(created_at, now]`` (the last 31
    within ``lookback``: after downtime the missed periods are made too) that has none yet."""
    claimed: list[int] = []
    for schedule in list_schedules(conn, None, enabled_only=True):
        tz = schedule_time_zone(conn, schedule)
        after = max(schedule.created_at, now - lookback)
        for fire in fires(schedule.cron, tz, after=after, until=now):
            period = period_for(schedule, fire, tz)
            run_id = create_run(conn, schedule.organization_id, kind=schedule.kind, scope=schedule.scope,
                                fmt=schedule.format, period=period, schedule=schedule)
            if run_id is not None:
                log.info("netpulse.reports.run_claimed", run_id=run_id, schedule=schedule.name,
                         period_start=period.start.isoformat())
                claimed.append(run_id)
    return claimed


def runs_to_resume(conn: Conn, now: datetime, *, idle: timedelta = timedelta(minutes=2)) -> list[int]:
    """Unfinished runs that no worker holds and that were last handed out more than ``idle`` ago: a
    lost message, or a worker that died mid-run. Their lock is tried, not taken."""
    rows = conn.execute(
        "SELECT id FROM report_runs WHERE status IN ('pending', 'running')"
        " AND (enqueued_at IS NULL OR enqueued_at < %s) ORDER BY id", (now - idle,)).fetchall()
    free = []
    for (run_id,) in rows:
        if _try_lock(conn, run_id):
            _unlock(conn, run_id)
            free.append(int(run_id))
    return free


def mark_enqueued(conn: Conn, run_ids: list[int], now: datetime) -> None:
    if run_ids:
        conn.execute("UPDATE report_runs SET enqueued_at = %s WHERE id = ANY(%s)", (now, run_ids))


# --- making a run -----------------------------------------------------------------------------------------------
def _try_lock(conn: Conn, run_id: int) -> bool:
    row = conn.execute("SELECT pg_try_advisory_lock(%s::int4, %s::int4)", (LOCK_NAMESPACE, run_id)).fetchone()
    return bool(row and row[0])


def _unlock(conn: Conn, run_id: int) -> None:
    conn.execute("SELECT pg_advisory_unlock(%s::int4, %s::int4)", (LOCK_NAMESPACE, run_id))


@contextmanager
def _locked(conn: Conn, run_id: int) -> Iterator[bool]:
    taken = _try_lock(conn, run_id)
    try:
        yield taken
    finally:
        if taken:
            _unlock(conn, run_id)


def _fail_or_retry(conn: Conn, run_id: int, attempts: int, max_attempts: int, error: str) -> RunOutcome:
    if attempts >= max_attempts:
        conn.execute("UPDATE report_runs SET status = 'failed', error = %s, finished_at = %s WHERE id = %s",
                     (error, datetime.now(UTC), run_id))
        log.error("netpulse.reports.run_failed", run_id=run_id, attempts=attempts, error=error)
        return RunOutcome(run_id, "failed", error)
    conn.execute("UPDATE report_runs SET status = 'pending', error = %s WHERE id = %s", (error, run_id))
    log.warning("netpulse.reports.run_retry", run_id=run_id, attempts=attempts, error=error)
    return RunOutcome(run_id, "retry", error)


def execute_run(conn: Conn, run_id: int, *, max_attempts: int = 3,
                now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> RunOutcome:
    """Make run ``run_id`` on ``conn``, an autocommit connection held for the run: its file, then in
    one transaction the file, the run's success and its emails queued in the notification outbox.

    Returns ``succeeded`` with the ids of the queued outbox rows (``workers.notify.send_soon`` them,
    or leave them to the sweeper), ``retry`` after a failure that may pass (the caller schedules
    another attempt), ``failed`` once ``max_attempts`` attempts failed, ``busy`` when another worker
    holds the run, ``done`` when it had finished already.
    """
    with _locked(conn, run_id) as mine:
        if not mine:
            return RunOutcome(run_id, "busy")
        with conn.cursor(row_factory=dict_row) as cur:
            run = cur.execute("SELECT r.*, s.channels FROM report_runs r LEFT JOIN report_schedules s ON"
                              " s.id = r.schedule_id WHERE r.id = %s", (run_id,)).fetchone()
        if run is None:
            raise NotFound(f"no report run {run_id}", code="REPORT_RUN_NOT_FOUND")
        if run["status"] in ("succeeded", "failed"):
            return RunOutcome(run_id, "done")
        attempts = int(run["attempts"]) + 1
        conn.execute("UPDATE report_runs SET status = 'running', attempts = %s, started_at = coalesce(started_at, %s)"
                     " WHERE id = %s", (attempts, now(), run_id))
        period = ReportPeriod(run["period_start"], run["period_end"], run["time_zone"],
                              _period_kind(run, "span"))
        scope = Scope(run["scope"], run["scope_ref"])
        made = None
        if run["content"] is None:  # a file stored by an earlier attempt is kept
            try:
                made = generate(conn, run["organization_id"], run["kind"], scope, period, run["format"], now=now())
            except Exception as exc:  # noqa: BLE001 (any failure is recorded and retried, never lost)
                return _fail_or_retry(conn, run_id, attempts, max_attempts, f"making the report: {exc}")
            run.update(file_name=made.file_name, content_type=made.content_type, content=made.content,
                       figures=made.figures)
        with conn.transaction():
            if made is not None:
                conn.execute("UPDATE report_runs SET file_name = %s, content_type = %s, content = %s, figures = %s,"
                             " pages = %s, duration_s = %s WHERE id = %s",
                             (made.file_name, made.content_type, made.content, Jsonb(made.figures), made.pages,
                              made.duration_s, run_id))
            outbox_ids, note = _queue_emails(conn, run | {"period_label": period.label, "scope_label": scope.label})
            conn.execute("UPDATE report_runs SET status = 'succeeded', error = coalesce(%s, error), finished_at = %s"
                         " WHERE id = %s", (note, now(), run_id))
        if made is not None:
            log.info("netpulse.reports.run_made", run_id=run_id, pages=made.pages, seconds=round(made.duration_s, 3),
                     emails=len(outbox_ids))
        return RunOutcome(run_id, "succeeded", note, tuple(outbox_ids))


def _queue_emails(conn: Conn, run: dict[str, Any]) -> tuple[list[int], str | None]:
    """Queue the run's email on each channel its schedule names, in the caller's transaction. A
    disabled channel is queued too: its row fails with the reason, which the history shows."""
    names = list(run.get("channels") or [])
    if not names:
        return [], None
    channels = dict(conn.execute("SELECT name, id FROM notification_channels WHERE organization_id = %s"
                                 " AND name = ANY(%s)", (run["organization_id"], names)).fetchall())
    missing = [n for n in names if n not in channels]
    note = "; ".join(f"email through {n}: no channel named {n!r} any more" for n in missing) or None
    ids = enqueue(conn, run["organization_id"], report_message(run), channel_ids=list(channels.values()))
    return ids, note


# --- reading ----------------------------------------------------------------------------------------------------
_DELIVERIES = """
SELECT o.report_run_id, c.name,
       CASE WHEN o.status = 'failed' AND o.next_attempt_at IS NOT NULL THEN 'retrying' ELSE o.status END,
       o.attempts, o.last_error,
       coalesce(o.sent_at, (SELECT max(d.finished_at) FROM notification_deliveries d WHERE d.outbox_id = o.id)),
       o.id
FROM notification_outbox o JOIN notification_channels c ON c.id = o.channel_id
WHERE o.organization_id = %s AND o.report_run_id = ANY(%s)
ORDER BY o.report_run_id, c.name
"""


def _deliveries(conn: Conn, org_id: uuid.UUID, run_ids: list[int]) -> dict[int, tuple[Delivery, ...]]:
    out: dict[int, list[Delivery]] = {}
    for run_id, *rest in conn.execute(_DELIVERIES, (org_id, run_ids)).fetchall():
        out.setdefault(run_id, []).append(Delivery(*rest))
    return {k: tuple(v) for k, v in out.items()}


def list_runs(conn: Conn, org_id: uuid.UUID, *, schedule: str | None = None, limit: int = 50,
              offset: int = 0) -> tuple[list[Run], int]:
    """One page of the organization's runs, newest first (of one schedule, by name, when given), and how
    many there are in all."""
    params = {"org": org_id, "schedule": schedule, "limit": limit, "offset": offset}
    where = " WHERE r.organization_id = %(org)s AND (%(schedule)s::text IS NULL OR r.schedule_name = %(schedule)s)"
    with conn.cursor(row_factory=dict_row) as cur:
        total = cur.execute("SELECT count(*) AS n FROM report_runs r" + where, params).fetchone()
        rows = cur.execute(f"SELECT {_RUN_COLUMNS} FROM report_runs r{where} ORDER BY r.created_at DESC, r.id DESC"
                           " LIMIT %(limit)s OFFSET %(offset)s", params).fetchall()
    deliveries = _deliveries(conn, org_id, [r["id"] for r in rows])
    return [Run.from_row(r, deliveries.get(r["id"], ())) for r in rows], int(total["n"]) if total else 0


def get_run(conn: Conn, org_id: uuid.UUID, run_id: int) -> Run:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(f"SELECT {_RUN_COLUMNS} FROM report_runs r WHERE r.organization_id = %s AND r.id = %s",
                          (org_id, run_id)).fetchone()
    if row is None:
        raise NotFound(f"no report run {run_id} in this organization", code="REPORT_RUN_NOT_FOUND",
                       details={"run_id": run_id})
    return Run.from_row(row, _deliveries(conn, org_id, [run_id]).get(run_id, ()))


def run_file(conn: Conn, org_id: uuid.UUID, run_id: int) -> tuple[str, str, bytes]:
    """(file name, content type, bytes) of a run's report: the download."""
    row = conn.execute("SELECT file_name, content_type, content, status, error FROM report_runs"
                       " WHERE organization_id = %s AND id = %s", (org_id, run_id)).fetchone()
    if row is None:
        raise NotFound(f"no report run {run_id} in this organization", code="REPORT_RUN_NOT_FOUND",
                       details={"run_id": run_id})
    if row[2] is None:
        why = f"it failed: {row[4]}" if row[3] == "failed" else f"it is {row[3]}"
        raise NotFound(f"report run {run_id} has no file yet ({why})", code="REPORT_FILE_NOT_FOUND",
                       details={"run_id": run_id, "status": row[3]})
    return str(row[0]), str(row[1]), bytes(row[2])
