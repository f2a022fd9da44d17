"""The global time range: a preset ("last 6 h") or a custom from/to, as the URL and the range store hold it.

Every chart takes its window from :func:`window`, and :func:`analytics.frames.pick_resolution` picks the
raw rows or the 1m/1h/1d rollup that fits it, so one control drives every chart::

>>> from datetime import datetime, UTC
>>> now = datetime(2026, 5, 1, 12, tzinfo=UTC)
>>> window({"range": "6h"}, now).start.isoformat()
'2026-05-01T06:00:00+00:00'
>>> window({"from": "2026-04-01", "to": "2026-04-03"}, now).resolution
'1h'
>>> state_from_query({"range": "90d"})
{'range': '90d'}
>>> state_from_query({"range": "5y"})
{'range': '6h'}
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from analytics.frames import pick_resolution
from netpulse.errors import ValidationError
from netpulse.timespec import parse_time

__all__ = ["PRESETS", "DEFAULT", "Window", "window", "state_from_query", "RESOLUTION_LABELS"]

PRESETS: dict[str, tuple[str, timedelta]] = {
    "1h": ("Last 1 hour", timedelta(hours=1)),
    "6h": ("Last 6 hours", timedelta(hours=6)),
    "24h": ("Last 24 hours", timedelta(hours=24)),
    "7d": ("Last 7 days", timedelta(days=7)),
    "30d": ("Last 30 days", timedelta(days=30)),
    "90d": ("Last 90 days", timedelta(days=90)),
}
DEFAULT = "6h"
MAX_SPAN = timedelta(days=400)
RESOLUTION_LABELS = {"raw": "every probe", "1m": "1-minute buckets", "1h": "hourly buckets", "1d": "daily buckets"}


@dataclass(frozen=True, slots=True)
class Window:
    start: datetime
    end: datetime
    preset: str | None     # None: a custom range (fixed; live refresh does not move it)

    @property
    def resolution(self) -> str:
        return pick_resolution(self.start, self.end)

    @property
    def label(self) -> str:
        if self.preset is not None:
            return PRESETS[self.preset][0]
        return f"{self.start:%b %d %H:%M} – {self.end:%b %d %H:%M} UTC"

    @property
    def span(self) -> timedelta:
        return self.end - self.start


def _custom(state: dict[str, Any]) -> tuple[datetime, datetime] | None:
    try:
        start, end = parse_time(str(state["from"])), parse_time(str(state["to"]))
    except (KeyError, ValidationError):
        return None
    if end <= start or end - start > MAX_SPAN:
        return None
    return start, end


def window(state: dict[str, Any] | None, now: datetime | None = None) -> Window:
    """The window a range state means at ``now``; anything unreadable is the default preset."""
    now = now or datetime.now(UTC)
    state = state or {}
    if "from" in state and "to" in state:
        custom = _custom(state)
        if custom is not None:
            return Window(custom[0], custom[1], None)
    preset = str(state.get("range") or DEFAULT)
    if preset not in PRESETS:
        preset = DEFAULT
    return Window(now - PRESETS[preset][1], now, preset)


def state_from_query(query: dict[str, Any]) -> dict[str, str]:
    """The range state a URL's query asks for (``range=7d`` or ``from=...&to=...``), checked."""
    if query.get("from") and query.get("to") and _custom(query) is not None:
        return {"from": str(query["from"]), "to": str(query["to"])}
    preset = str(query.get("range") or DEFAULT)
    return {"range": preset if preset in PRESETS else DEFAULT}
