"""Durations and times as people type them: one parser for the CLI, the API and rule files.

>>> parse_duration("1d12h")
datetime.timedelta(days=1, seconds=43200)
>>> parse_duration(90).total_seconds()
90.0
>>> parse_time("2026-11-01T08:00:00+02:00").isoformat()
'2026-11-01T06:00:00+00:00'
>>> human_duration(93_784)
'1d 2h'
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo

from netpulse.errors import ValidationError

__all__ = ["MAX_DURATION", "parse_duration", "parse_time", "human_duration", "format_time"]

# Longer than any retention or report period; keeps sums far inside timedelta's and int32 ranges.
MAX_DURATION = timedelta(days=3660)
# Times before this are typing mistakes (year 1, epoch 0) that would overflow date arithmetic.
MIN_TIME = datetime(1970, 1, 2, tzinfo=UTC)
MAX_TIME = datetime(9999, 1, 1, tzinfo=UTC)
_UNITS = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
_PART = re.compile(r"(\d+(?:\.\d+)?)([wdhms])")
_PLAIN = re.compile(r"^\d+(?:\.\d+)?$")


def _fail(field: str, text: object, why: str) -> ValidationError:
    return ValidationError(f"{field}: {text!r} {why}", details={field.lstrip("-"): why})


def parse_duration(text: str | int | float, *, field: str = "duration", allow_zero: bool = False,
                   maximum: timedelta = MAX_DURATION) -> timedelta:
    """``90`` (seconds), ``"90s"``, ``"5m"``, ``"2h"``, ``"7d"``, ``"1w"`` or a sum such as ``"1d12h"``.

    Raises :class:`ValidationError` naming ``field`` for anything else, for zero (unless
    ``allow_zero``) and for more than ``maximum``.
    """
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        raise _fail(field, text, "is not a duration; use a number and a unit (w, d, h, m, s), e.g. 30d, 90m or 1d12h")
    if isinstance(text, int | float):
        seconds = float(text)
        if seconds != seconds:  # NaN
            raise _fail(field, text, "is not a duration")
    else:
        compact = text.strip().lower().replace(" ", "")
        if _PLAIN.match(compact):
            seconds = float(compact)
        elif compact and _PART.sub("", compact) == "":
            seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(compact))
        else:
            raise _fail(field, text, "is not a duration; use a number and a unit (w, d, h, m, s), "
                                     "e.g. 30d, 90m or 1d12h")
    if seconds < 0:
        raise _fail(field, text, "cannot be negative")
    if seconds == 0 and not allow_zero:
        raise _fail(field, text, "must be longer than zero")
    if seconds > maximum.total_seconds():
        raise _fail(field, text, f"is longer than the longest accepted ({maximum.days} days)")
    return timedelta(seconds=seconds)


def parse_time(text: str, *, field: str = "time", tz: tzinfo | None = None) -> datetime:
    """An ISO 8601 date or time, returned in UTC. Without an offset (``Z`` is one) it is read in ``tz``
    (a report's time zone, say), UTC when None.

    >>> from zoneinfo import ZoneInfo
    >>> parse_time("2026-11-01", tz=ZoneInfo("Africa/Nairobi")).isoformat()
    '2026-10-31T21:00:00+00:00'
    """
    raw = text.strip() if isinstance(text, str) else text
    if not isinstance(raw, str) or not raw or "\x00" in raw:
        raise _fail(field, text, "is not an ISO 8601 time; e.g. 2026-11-01 or 2026-11-01T08:00:00Z")
    try:
        ts = datetime.fromisoformat(raw)
    except ValueError:
        # A '+' in a URL query arrives as a space: say how to send an offset.
        hint = " (send '+' as %2B in a URL)" if " " in raw else ""
        raise _fail(field, text, f"is not an ISO 8601 time; e.g. 2026-11-01 or 2026-11-01T08:00:00Z{hint}") from None
    ts = ts.replace(tzinfo=tz or UTC).astimezone(UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    if not MIN_TIME <= ts < MAX_TIME:
        raise _fail(field, text, f"is outside the accepted range ({MIN_TIME:%Y-%m-%d} to {MAX_TIME:%Y-%m-%d})")
    return ts


def human_duration(seconds: float | None) -> str:
    """A duration for a table: ``2d 3h``, ``1h 05m``, ``4m 30s``; ``-`` for None."""
    if seconds is None:
        return "-"
    if seconds < 0:
        return "-" + human_duration(-seconds)
    s = round(seconds)
    days, rest = divmod(s, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def format_time(ts: datetime | None) -> str:
    """``2026-11-01 08:00`` in UTC (seconds shown only when not zero); ``-`` for None."""
    if ts is None:
        return "-"
    return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S").removesuffix(":00")
