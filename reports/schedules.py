"""Report schedules: which report, for which scope, how often (daily, weekly, monthly or a cron
expression, in the scope's site's or the organization's time zone), emailed to which channels.

A schedule fires at its cron times; each firing covers a period that has just ended: the day before
(daily), the week before, Monday to Monday (weekly), the month before (monthly), or the time since
the previous firing (cron). Periods are in the schedule's time zone: ``daily at 06:00`` for a site in
Nairobi fires at 06:00 Nairobi time and covers the Nairobi calendar day before.

>>> cron_for("weekly", at="07:30", day="fri")
'30 7 * * 5'
>>> from datetime import datetime, UTC
>>> [f.isoformat() for f in fires("0 6 * * *", "Africa/Nairobi", after=datetime(2026, 11, 2, 0, 0, tzinfo=UTC),
...                                 until=datetime(2026, 11, 4, 4, 0, tzinfo=UTC))]
['2026-11-02T03:00:00+00:00', '2026-11-03T03:00:00+00:00']
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cronsim import CronSim, CronSimError

from netpulse.errors import Conflict, NotFound, ValidationError
from reports.generate import check_format, check_kind
from reports.period import ReportPeriod, previous_day, previous_month, previous_week, zone
from reports.scope import Scope, parse_scope, report_time_zone, resolve_scope

__all__ = ["FREQUENCIES", "EMAIL_KINDS", "Schedule", "cron_for", "check_cron", "fires", "period_for", "add_schedule",
           "list_schedules", "get_schedule", "remove_schedule", "schedule_time_zone"]

FREQUENCIES: tuple[str, ...] = ("daily", "weekly", "monthly", "cron")
EMAIL_KINDS = ("sendgrid", "smtp")  # channels that carry attachments
_DAYS = {"mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6, "sun": 0}
_AT = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_NAME = re.compile(r"^[\w.@+-][\w .@+-]{0,99}$")
_COLUMNS = ("id, organization_id, name, kind, scope, scope_ref, format, frequency, cron, time_zone, channels, enabled,"
            " created_at")


@dataclass(frozen=True, slots=True)
class Schedule:
    id: int
    organization_id: uuid.UUID
    name: str
    kind: str
    scope: Scope
    format: str
    frequency: str
    cron: str
    time_zone: str | None  # None: the scope's site's, else the organization's
    channels: tuple[str, ...]
    enabled: bool
    created_at: datetime

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> Schedule:
        (i, org, name, kind, scope, ref, fmt, frequency, cron, tz, channels, enabled, created) = row
        return cls(i, org, name, kind, Scope(scope, ref), fmt, frequency, cron, tz, tuple(channels or ()), enabled,
                   created)


def cron_for(frequency: str, *, at: str = "06:00", day: str | int | None = None) -> str:
    """The cron expression of a daily, weekly (``day``: mon..sun, default mon) or monthly (``day``:
    1..28, default 1) schedule that fires at ``at`` (HH:MM)."""
    match = _AT.match(at or "")
    if match is None:
        raise ValidationError(f"--at: {at!r} is not a time of day; use HH:MM, e.g. 06:00", details={"at": at})
    hour, minute = int(match.group(1)), int(match.group(2))
    if frequency == "daily":
        return f"{minute} {hour} * * *"
    if frequency == "weekly":
        name = str(day or "mon").lower()[:3]
        if name not in _DAYS:
            raise ValidationError(f"--day: {day!r} is not a day of the week; use mon, tue, ... sun",
                                  details={"day": str(day)})
        return f"{minute} {hour} * * {_DAYS[name]}"
    if frequency == "monthly":
        text = str(1 if day is None else day)
        number = int(text) if text.isdigit() else 0
        if not 1 <= number <= 28:
            raise ValidationError(f"--day: {day!r} is not a day of the month from 1 to 28 (every month has those)",
                                  details={"day": str(day)})
        return f"{minute} {hour} {number} * *"
    raise ValidationError(f"frequency {frequency!r}: use one of daily, weekly, monthly, cron",
                          details={"frequency": frequency})


def check_cron(expression: str) -> str:
    """``expression`` if it is a five-field cron expression that fires at least once a year."""
    text = " ".join((expression or "").split())
    try:
        it = CronSim(text, datetime(2026, 1, 1, tzinfo=UTC))
        next(it)
    except (CronSimError, StopIteration, ValueError) as exc:
        raise ValidationError(f"--cron: {expression!r} is not a cron expression ({exc or 'never fires'}); five "
                              "fields: minute hour day-of-month month day-of-week, e.g. '0 6 * * 1-5'",
                              details={"cron": "invalid"}) from None
    if len(text.split()) != 5:
        raise ValidationError(f"--cron: {expression!r} must have five fields (minute hour day-of-month month "
                              "day-of-week)", details={"cron": "invalid"})
    return text


def fires(cron: str, tz: str, *, after: datetime, until: datetime, limit: int = 31) -> list[datetime]:
    """The firing times in ``(after, until]`` (UTC), at most the last ``limit`` of them, oldest first."""
    local = zone(tz)
    start = (until.astimezone(local).replace(microsecond=0) + timedelta(seconds=1))
    out: list[datetime] = []
    for fire in CronSim(cron, start, reverse=True):
        if fire <= after.astimezone(local) or len(out) >= limit:
            break
        out.append(fire.astimezone(UTC))
    return out[::-1]


def _previous_fire(cron: str, tz: str, fire: datetime) -> datetime:
    local = zone(tz)
    return next(iter(CronSim(cron, fire.astimezone(local), reverse=True))).astimezone(UTC)


def period_for(schedule: Schedule, fire: datetime, tz: str) -> ReportPeriod:
    """The period a firing at ``fire`` covers (see the module docstring)."""
    if schedule.frequency == "daily":
        return previous_day(fire, tz)
    if schedule.frequency == "weekly":
        return previous_week(fire, tz)
    if schedule.frequency == "monthly":
        return previous_month(fire, tz)
    return ReportPeriod(_previous_fire(schedule.cron, tz, fire), fire, tz, "span")


def schedule_time_zone(conn: Any, schedule: Schedule) -> str:
    return schedule.time_zone or report_time_zone(conn, schedule.organization_id, schedule.scope)


def _check_channels(conn: Any, org_id: uuid.UUID, channels: tuple[str, ...]) -> None:
    if not channels:
        return
    found = dict(conn.execute("SELECT name, kind FROM notification_channels WHERE organization_id = %s"
                              " AND name = ANY(%s)", (org_id, list(channels))).fetchall())
    missing = [c for c in channels if c not in found]
    if missing:
        raise NotFound(f"no notification channel named {', '.join(map(repr, missing))}; add one with "
                       "`netpulse notify channel add`", code="CHANNEL_NOT_FOUND", details={"email": missing})
    wrong = [c for c in channels if found[c] not in EMAIL_KINDS]
    if wrong:
        raise ValidationError(f"channel(s) {', '.join(map(repr, wrong))} cannot carry a file: reports go to email "
                              f"channels ({' or '.join(EMAIL_KINDS)})", details={"email": wrong})


def add_schedule(conn: Any, org_id: uuid.UUID, name: str, *, kind: str, scope: Scope | str = "all",
                 fmt: str = "pdf", frequency: str = "daily", at: str = "06:00", day: str | int | None = None,
                 cron: str | None = None, time_zone: str | None = None,
                 channels: tuple[str, ...] | list[str] = ()) -> Schedule:
    """Create a schedule; every argument is checked first (a bad one is a ValidationError naming it)."""
    if not _NAME.match(name or ""):
        raise ValidationError(f"schedule name {name!r} must be 1 to 100 letters, digits, spaces or . @ + - _",
                              details={"name": "invalid"})
    check_kind(kind)
    check_format(fmt)
    if frequency not in FREQUENCIES:
        raise ValidationError(f"--every {frequency!r}: use one of {', '.join(FREQUENCIES)}",
                              details={"frequency": frequency})
    if frequency == "cron":
        if not cron:
            raise ValidationError("a cron schedule needs --cron EXPRESSION, e.g. '0 6 * * 1-5'",
                                  details={"cron": "required"})
        expression = check_cron(cron)
    else:
        if cron:
            raise ValidationError("--cron goes with --every cron; daily, weekly and monthly take --at and --day",
                                  details={"cron": "not allowed"})
        expression = cron_for(frequency, at=at, day=day)
    if time_zone is not None:
        zone(time_zone, field="--time-zone")
    resolved = resolve_scope(conn, org_id, parse_scope(scope) if isinstance(scope, str) else scope)
    names = tuple(dict.fromkeys(channels))
    _check_channels(conn, org_id, names)
    row = conn.execute(
        "INSERT INTO report_schedules (organization_id, name, kind, scope, scope_ref, format, frequency, cron,"
        " time_zone, channels) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        f" ON CONFLICT (organization_id, name) DO NOTHING RETURNING {_COLUMNS}",
        (org_id, name, kind, resolved.kind, resolved.ref, fmt, frequency, expression, time_zone, list(names)),
    ).fetchone()
    if row is None:
        raise Conflict(f"a report schedule named {name!r} already exists", code="SCHEDULE_ALREADY_EXISTS",
                       details={"name": name})
    return Schedule.from_row(row)


def list_schedules(conn: Any, org_id: uuid.UUID | None = None, *, enabled_only: bool = False) -> list[Schedule]:
    """The organization's schedules by name (every organization's when ``org_id`` is None: the scheduler)."""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM report_schedules WHERE (%(org)s::uuid IS NULL OR organization_id ="
                        " %(org)s) AND (enabled OR NOT %(enabled)s) ORDER BY organization_id, name",
                        {"org": org_id, "enabled": enabled_only}).fetchall()
    return [Schedule.from_row(r) for r in rows]


def get_schedule(conn: Any, org_id: uuid.UUID, name: str) -> Schedule:
    row = conn.execute(f"SELECT {_COLUMNS} FROM report_schedules WHERE organization_id = %s AND name = %s",
                       (org_id, name)).fetchone()
    if row is None:
        known = [s.name for s in list_schedules(conn, org_id)][:20]
        hint = f"known: {', '.join(known)}" if known else "none yet; add one with `netpulse report schedule add`"
        raise NotFound(f"no report schedule named {name!r}; {hint}", code="SCHEDULE_NOT_FOUND",
                       details={"name": name})
    return Schedule.from_row(row)


def remove_schedule(conn: Any, org_id: uuid.UUID, name: str) -> Schedule:
    """Delete a schedule; the reports it made stay (downloadable, with its name)."""
    schedule = get_schedule(conn, org_id, name)
    conn.execute("DELETE FROM report_schedules WHERE id = %s AND organization_id = %s", (schedule.id, org_id))
    return schedule
