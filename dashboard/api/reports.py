"""Reports: the runs made (on request or by a schedule), asking for one, downloading it, and schedules.

Asking for a report never makes it in the web process: ``POST /reports/generate`` checks the request,
records a run (``pending``) and hands it to a worker (``workers.generate_report``), answering 202 at
once with the run and its ``Location``. A month of a large fleet takes seconds to read and render, which
would hold a web thread, and a run made by a worker is retried when it fails and recorded either way.
The client follows ``GET /reports/{run_id}`` until ``succeeded`` (or ``failed``, with the error), then
downloads ``GET /reports/{run_id}/file``. If the message cannot be sent, the scheduler hands the run
out within minutes (:func:`reports.runs.runs_to_resume`); nothing asked for is lost.

Everything here is :mod:`reports` (the functions behind ``netpulse report``); reading and downloading
need ``report:read``, asking for reports and changing schedules ``report:write``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from flask_openapi3 import Tag
from pydantic import ConfigDict, Field
from werkzeug.wrappers import Response

from dashboard.api.params import INT32_MAX, ApiModel, OptionalText, Paged, PathModel
from dashboard.api.routing import PREFIX, field_names, file_answer, ok, operation, page_of, pg, unit_of_work
from dashboard.api.schemas import Deleted, Out
from dashboard.auth import current_org_id
from dashboard.reporting import ask_for_report
from reports import runs, schedules
from reports.generate import CONTENT_TYPES
from reports.period import PERIOD_HELP

TAG = Tag(name="reports", description="Availability/SLA, performance and alert reports as PDF or CSV, and their "
                                      "schedules.")

Kind = Literal["availability", "performance", "alerts"]
Format = Literal["pdf", "csv"]
SCOPE_HELP = "all, or site:NAME, group:NAME, device:NAME, tag:NAME."
# Core errors name the CLI's options; the bodies here name these fields.
_FIELDS = {"--scope": "scope", "--period": "period", "--time-zone": "time_zone", "email": "channels"}


class PeriodOut(Out):
    start: datetime
    end: datetime = Field(description="Exclusive.")
    time_zone: str = Field(description="The zone the period's days and months are read in.")
    label: str = Field(description="e.g. October 2026, Week of 2 Nov 2026.")


class DeliveryOut(Out):
    channel: str
    status: str = Field(description="Where the email stands in the notification outbox: queued, sending, sent, "
                                    "retrying (failed, another attempt planned), failed, or unconfirmed (its "
                                    "sender stopped while the mail server took it; not sent again).")
    attempts: int
    error: str | None
    finished_at: datetime | None = Field(description="When it was sent, or when its last attempt ended.")


class RunOut(Out):
    id: int
    schedule: str | None = Field(description="The schedule that made it; None when asked for.")
    kind: str
    scope: str = Field(description=SCOPE_HELP)
    format: str
    period: PeriodOut
    status: str = Field(json_schema_extra={"enum": ["pending", "running", "succeeded", "failed"]})
    attempts: int
    error: str | None = Field(description="Why the last attempt failed (a failed run keeps it).")
    file_name: str | None
    content_type: str | None
    size: int | None = Field(description="Bytes of the file, once made.")
    pages: int | None = Field(description="PDF only.")
    figures: dict[str, Any] | None = Field(description="The report's headline figures.")
    duration_s: float | None = Field(description="Seconds it took to make the file.")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    deliveries: list[DeliveryOut] = Field(description="The emails of a scheduled run, per channel.")
    download: str | None = Field(description="Where to download the file, once made.")

    @classmethod
    def of(cls, r: runs.Run) -> RunOut:
        return cls(id=r.id, schedule=r.schedule_name, kind=r.kind, scope=r.scope.text, format=r.format,
                   period=PeriodOut(start=r.period.start, end=r.period.end, time_zone=r.period.tz,
                                    label=r.period.label),
                   status=r.status, attempts=r.attempts, error=r.error, file_name=r.file_name,
                   content_type=r.content_type, size=r.size, pages=r.pages, figures=r.figures,
                   duration_s=r.duration_s, created_at=r.created_at, started_at=r.started_at,
                   finished_at=r.finished_at,
                   deliveries=[DeliveryOut(channel=d.channel, status=d.status, attempts=d.attempts, error=d.error,
                                           finished_at=d.finished_at) for d in r.deliveries],
                   download=f"{PREFIX}/reports/{r.id}/file" if r.size is not None else None)


class RunQuery(Paged):
    schedule: OptionalText = Field(None, description="Only the runs of this schedule (by name).")


class RunPath(PathModel):
    not_found_code: ClassVar[str] = "REPORT_RUN_NOT_FOUND"
    run_id: int = Field(ge=1, le=INT32_MAX)


class GenerateBody(ApiModel):
    model_config = ConfigDict(openapi_extra={"example": {  # type: ignore[typeddict-unknown-key]
        "kind": "availability", "scope": "all", "period": "last-7d", "format": "pdf"}})
    kind: Kind
    scope: str = Field("all", min_length=1, max_length=255, description=SCOPE_HELP)
    period: str = Field("last-month", min_length=1, max_length=100, description=PERIOD_HELP + ".")
    format: Format = "pdf"


class ScheduleOut(Out):
    id: int
    name: str
    kind: str
    scope: str = Field(description=SCOPE_HELP)
    format: str
    frequency: str
    cron: str = Field(description="When it fires (five fields), in time_zone.")
    time_zone: str = Field(description="The zone it fires and reads its periods in.")
    time_zone_set: bool = Field(description="False: the scope's site's zone, else the organization's.")
    channels: list[str] = Field(description="Email channels that get the file.")
    enabled: bool
    created_at: datetime

    @classmethod
    def of(cls, s: schedules.Schedule, time_zone: str) -> ScheduleOut:
        return cls(id=s.id, name=s.name, kind=s.kind, scope=s.scope.text, format=s.format, frequency=s.frequency,
                   cron=s.cron, time_zone=time_zone, time_zone_set=s.time_zone is not None,
                   channels=list(s.channels), enabled=s.enabled, created_at=s.created_at)


class ScheduleBody(ApiModel):
    """``daily`` covers the day before, ``weekly`` the week before (Monday to Monday), ``monthly`` the month
    before, ``cron`` the time since its previous firing."""

    model_config = ConfigDict(openapi_extra={"example": {  # type: ignore[typeddict-unknown-key]
        "name": "hq-monthly", "kind": "availability", "scope": "site:HQ", "frequency": "monthly", "at": "07:00"}})
    name: str = Field(min_length=1, max_length=100)
    kind: Kind
    scope: str = Field("all", min_length=1, max_length=255, description=SCOPE_HELP)
    format: Format = "pdf"
    frequency: Literal["daily", "weekly", "monthly", "cron"] = "monthly"
    at: str = Field("06:00", min_length=1, max_length=5, description="When it fires (HH:MM, local time).")
    day: Annotated[str, Field(min_length=1, max_length=9)] | Annotated[int, Field(ge=1, le=28)] | None = Field(
        None, description="weekly: mon..sun [mon]; monthly: 1..28 [1].")
    cron: str | None = Field(None, min_length=1, max_length=100, description="With frequency cron: five fields.")
    time_zone: str | None = Field(None, min_length=1, max_length=64,
                                  description="An IANA zone [default: the scope's site's, else the organization's].")
    channels: list[str] = Field([], max_length=20, description="Email channels (sendgrid or smtp) that get the file.")


class SchedulePath(PathModel):
    not_found_code: ClassVar[str] = "SCHEDULE_NOT_FOUND"
    schedule_name: str = Field(min_length=1, max_length=100)


@operation("GET", "/reports", tag=TAG, permission="report:read", data=RunOut, many=True, paginated=True)
def list_reports(query: RunQuery) -> Response:
    """Report runs, newest first: asked for and scheduled, pending, made or failed.

    ``schedule`` keeps the runs of one schedule, also of one since removed (its runs stay).
    """
    with unit_of_work() as session:
        found, total = runs.list_runs(pg(session), current_org_id(), schedule=query.schedule, limit=query.per_page,
                                      offset=query.offset)
    return page_of([RunOut.of(r) for r in found], total, query)


@operation("POST", "/reports/generate", tag=TAG, permission="report:write", data=RunOut, status=202)
def generate_report(body: GenerateBody) -> Response:
    """Ask for a report; a worker makes it.

    The answer (202) is the run, ``pending``, with its ``Location``: follow it until ``succeeded``,
    then download the file. A scope naming nothing, or a period that is no period, is a 422.
    """
    with field_names(_FIELDS):
        run = ask_for_report(kind=body.kind, scope=body.scope, period=body.period, fmt=body.format)
    out = RunOut.of(run)
    run_id = run.id
    response = ok(out, status=202)
    response.headers["Location"] = f"{PREFIX}/reports/{run_id}"
    return response


@operation("GET", "/reports/<run_id>", tag=TAG, permission="report:read", data=RunOut)
def get_report(path: RunPath) -> Response:
    """One report run: its status, error, figures and emails."""
    with unit_of_work() as session:
        out = RunOut.of(runs.get_run(pg(session), current_org_id(), path.run_id))
    return ok(out)


@operation("GET", "/reports/<run_id>/file", tag=TAG, permission="report:read",
           files=((CONTENT_TYPES["pdf"], "A run of format pdf."), (CONTENT_TYPES["csv"], "A run of format csv.")))
def download_report(path: RunPath) -> Response:
    """Download a run's file (PDF or CSV, as an attachment).

    404 REPORT_FILE_NOT_FOUND while the run is pending or running, or when it failed before making it
    (``error.details.status`` says which).
    """
    with unit_of_work() as session:
        name, content_type, content = runs.run_file(pg(session), current_org_id(), path.run_id)
    return file_answer(name, content, content_type)


@operation("GET", "/report-schedules", tag=TAG, permission="report:read", data=ScheduleOut, many=True,
           paginated=True)
def list_report_schedules(query: Paged) -> Response:
    """Report schedules, by name."""
    with unit_of_work() as session:
        conn = pg(session)
        found = schedules.list_schedules(conn, current_org_id())
        items = [ScheduleOut.of(s, schedules.schedule_time_zone(conn, s)) for s in query.window(found)]
    return page_of(items, len(found), query)


@operation("POST", "/report-schedules", tag=TAG, permission="report:write", data=ScheduleOut, status=201,
           conflict=True)
def add_report_schedule(body: ScheduleBody) -> Response:
    """Add a schedule: the workers make its report each time it fires and email it to its channels.

    409 SCHEDULE_ALREADY_EXISTS when the name is taken; a scope or channel naming nothing is a 422.
    """
    with unit_of_work() as session, field_names(_FIELDS):
        conn = pg(session)
        made = schedules.add_schedule(conn, current_org_id(), body.name, kind=body.kind, scope=body.scope,
                                      fmt=body.format, frequency=body.frequency, at=body.at, day=body.day,
                                      cron=body.cron, time_zone=body.time_zone, channels=body.channels)
        out = ScheduleOut.of(made, schedules.schedule_time_zone(conn, made))
    return ok(out, status=201)


@operation("GET", "/report-schedules/<schedule_name>", tag=TAG, permission="report:read", data=ScheduleOut)
def get_report_schedule(path: SchedulePath) -> Response:
    """One report schedule (its runs: ``GET /reports?schedule=NAME``)."""
    with unit_of_work() as session:
        conn = pg(session)
        found = schedules.get_schedule(conn, current_org_id(), path.schedule_name)
        out = ScheduleOut.of(found, schedules.schedule_time_zone(conn, found))
    return ok(out)


@operation("DELETE", "/report-schedules/<schedule_name>", tag=TAG, permission="report:write", data=Deleted)
def remove_report_schedule(path: SchedulePath) -> Response:
    """Remove a schedule; the reports it made stay, downloadable."""
    with unit_of_work() as session:
        schedules.remove_schedule(pg(session), current_org_id(), path.schedule_name)
    return ok(Deleted(deleted=1))
