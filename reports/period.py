"""A report's period: a span of local calendar time in one time zone, and the one before it.

Periods are read in the report's time zone (the scope's site's, else the organization's), so "last
month" for Nairobi starts at local midnight on the 1st, 21:00 UTC the day before. Times are kept in
UTC; ``tz`` says how to show them.

>>> from datetime import datetime, UTC
>>> p = parse_period("last-month", "Africa/Nairobi", now=datetime(2026, 11, 14, 8, 0, tzinfo=UTC))
>>> p.start.isoformat(), p.end.isoformat(), p.label
('2026-09-30T21:00:00+00:00', '2026-10-31T21:00:00+00:00', 'October 2026')
>>> p.previous().label
'September 2026'
>>> parse_period("last-7d", "UTC", now=datetime(2026, 11, 14, 8, 30, tzinfo=UTC)).label
'7 Nov 2026 00:00 to 14 Nov 2026 00:00'
>>> parse_period("last-48h", "UTC", now=datetime(2026, 11, 14, 8, 30, tzinfo=UTC)).label
'12 Nov 2026 08:00 to 14 Nov 2026 08:00'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from netpulse.errors import ValidationError
from netpulse.timespec import format_time, parse_duration, parse_time

__all__ = ["ReportPeriod", "zone", "parse_period", "previous_day", "previous_week", "previous_month",
           "PERIOD_HELP"]

PERIOD_HELP = ("last-month, last-week, yesterday, last-DURATION (last-7d, last-24h: whole days end at "
               "today's midnight, hours at this hour), or FROM..TO (ISO dates or times; without an "
               "offset they are local)")
_LAST = re.compile(r"^last-(.+)$")


def zone(name: str, *, field: str = "time_zone") -> ZoneInfo:
    """The IANA time zone ``name`` (``Africa/Nairobi``, ``UTC``); a clear error for an unknown one."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"{field}: {name!r} is not a time zone; use an IANA name such as UTC, "
                              "Africa/Nairobi or Europe/London", details={field: "unknown time zone"}) from None


@dataclass(frozen=True, slots=True)
class ReportPeriod:
    """``[start, end)`` in UTC, read and shown in ``tz``; ``kind`` tells how the previous period is found:
    ``month`` (the calendar month before), ``week``, ``day``, or ``span`` (the same length just before)."""

    start: datetime
    end: datetime
    tz: str
    kind: str = "span"

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("a report period needs timezone-aware times")
        # One UTC: psycopg returns zoneinfo's Etc/UTC, which Polars will not compare with datetime.UTC.
        object.__setattr__(self, "start", self.start.astimezone(UTC))
        object.__setattr__(self, "end", self.end.astimezone(UTC))
        if self.end <= self.start:
            raise ValidationError(f"the period is empty: {format_time(self.start)} is not before "
                                  f"{format_time(self.end)}", details={"period": "empty"})

    @property
    def zone(self) -> ZoneInfo:
        return zone(self.tz)

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    def local(self, ts: datetime) -> datetime:
        return ts.astimezone(self.zone)

    def previous(self) -> ReportPeriod:
        """The period just before, of the same kind (the previous calendar month for a month)."""
        start = self.local(self.start)
        if self.kind == "month":
            first = _month_start(start, -1)
            return ReportPeriod(first.astimezone(UTC), self.start, self.tz, "month")
        if self.kind in ("week", "day"):
            days = 7 if self.kind == "week" else 1
            return ReportPeriod(_local_midnight(start.date() - timedelta(days=days), self.zone).astimezone(UTC),
                                self.start, self.tz, self.kind)
        return ReportPeriod(self.start - (self.end - self.start), self.start, self.tz, "span")

    @property
    def label(self) -> str:
        """``October 2026``, ``Week of 2 Nov 2026``, ``3 Nov 2026`` or ``1 Nov 2026 00:00 to 8 Nov 2026 00:00``."""
        start, end = self.local(self.start), self.local(self.end)
        if self.kind == "month":
            return f"{start:%B %Y}"
        if self.kind == "week":
            return f"Week of {start.day} {start:%b %Y}"
        if self.kind == "day":
            return f"{start.day} {start:%b %Y}"
        return f"{_short(start)} to {_short(end)}"

    @property
    def zone_label(self) -> str:
        """``Africa/Nairobi (UTC+03:00)``; both offsets when the period crosses a change of clocks."""
        offsets = dict.fromkeys(_offset(self.local(t)) for t in (self.start, self.end - timedelta(microseconds=1)))
        return f"{self.tz} ({' / '.join(offsets)})"

    def file_stem(self) -> str:
        start, end = self.local(self.start), self.local(self.end)
        if self.kind == "month":
            return f"{start:%Y-%m}"
        if self.kind == "day":
            return f"{start:%Y-%m-%d}"
        last = end - timedelta(microseconds=1)
        return f"{start:%Y-%m-%d}_to_{last:%Y-%m-%d}" if last.date() != start.date() else f"{start:%Y-%m-%d}"


def _short(ts: datetime) -> str:
    return f"{ts.day} {ts:%b %Y %H:%M}"


def _offset(ts: datetime) -> str:
    minutes = int((ts.utcoffset() or timedelta()).total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _local_midnight(day: object, tz: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=tz)  # type: ignore[attr-defined]


def _month_start(local: datetime, months: int) -> datetime:
    total = local.year * 12 + local.month - 1 + months
    return datetime(total // 12, total % 12 + 1, 1, tzinfo=local.tzinfo)


def previous_day(at: datetime, tz: str) -> ReportPeriod:
    """The local calendar day before the one that holds ``at``."""
    today = _local_midnight(at.astimezone(zone(tz)).date(), zone(tz))
    return ReportPeriod(_local_midnight(today.date() - timedelta(days=1), zone(tz)).astimezone(UTC),
                        today.astimezone(UTC), tz, "day")


def previous_week(at: datetime, tz: str) -> ReportPeriod:
    """The local week (Monday 00:00 to Monday 00:00) before the one that holds ``at``."""
    local = at.astimezone(zone(tz))
    monday = _local_midnight(local.date() - timedelta(days=local.weekday()), zone(tz))
    return ReportPeriod(_local_midnight(monday.date() - timedelta(days=7), zone(tz)).astimezone(UTC),
                        monday.astimezone(UTC), tz, "week")


def previous_month(at: datetime, tz: str) -> ReportPeriod:
    """The local calendar month before the one that holds ``at``."""
    first = _month_start(at.astimezone(zone(tz)), 0)
    return ReportPeriod(_month_start(first, -1).astimezone(UTC), first.astimezone(UTC), tz, "month")


def parse_period(text: str, tz: str, *, now: datetime, field: str = "--period") -> ReportPeriod:
    """A period as typed (see ``PERIOD_HELP``) in time zone ``tz``, relative to ``now``."""
    raw = (text or "").strip()
    zone(tz)
    if raw == "last-month":
        return previous_month(now, tz)
    if raw == "last-week":
        return previous_week(now, tz)
    if raw == "yesterday":
        return previous_day(now, tz)
    if ".." in raw:
        first, _, second = raw.partition("..")
        start = parse_time(first, field=f"{field} (from)", tz=zone(tz))
        end = parse_time(second, field=f"{field} (to)", tz=zone(tz))
        if end <= start:
            raise ValidationError(f"{field}: {format_time(end)} UTC is not after {format_time(start)} UTC",
                                  details={field.lstrip("-"): "empty"})
        return ReportPeriod(start, end, tz, "span")
    match = _LAST.match(raw)
    if match is None:
        raise ValidationError(f"{field}: {text!r} is not a period; use {PERIOD_HELP}",
                              details={field.lstrip("-"): "not a period"})
    length = parse_duration(match.group(1), field=field)
    local = now.astimezone(zone(tz))
    if match.group(1).strip().lower().endswith(("d", "w")):  # days and weeks: whole local days
        end = _local_midnight(local.date(), zone(tz))
        start = _local_midnight(local.date() - timedelta(days=length.days), zone(tz))
    else:
        end = local.replace(minute=0, second=0, microsecond=0)
        start = end - length
    return ReportPeriod(start.astimezone(UTC), end.astimezone(UTC), tz, "span")
