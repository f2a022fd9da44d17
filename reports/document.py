"""A report as data: sections of key figures, tables, charts and text, rendered to PDF and to CSV.

Both renderers read the same :class:`Report`, so the CSV holds exactly the figures the PDF shows: a
table's rows carry raw values (seconds, percentages, UTC times) that the CSV writes unrounded and the
PDF formats by its column's ``kind``:

>>> fmt(99.87345, "pct"), fmt(5400.0, "duration"), fmt(44640.0, "device_h"), fmt(-0.0123, "pp")
('99.873 %', '1h 30m', '12.40', '-0.012 pp')
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from netpulse.timespec import human_duration
from reports.period import ReportPeriod
from reports.scope import Scope

__all__ = ["Kind", "Column", "Table", "Figure", "KeyFigures", "Chart", "Text", "Definitions", "Block", "Section",
           "Report", "fmt", "KINDS"]

Kind = Literal["text", "count", "pct", "pct2", "target", "pp", "device_h", "duration", "ms", "time", "minutes",
               "number"]
KINDS: tuple[str, ...] = ("text", "count", "pct", "pct2", "target", "pp", "device_h", "duration", "ms", "time",
                          "minutes", "number")
# What each kind is in the CSV (raw) as opposed to the PDF (formatted).
UNITS: dict[str, str] = {"pct": "%", "pct2": "%", "target": "%", "pp": "percentage points", "device_h": "device-hours",
                         "duration": "seconds", "ms": "milliseconds", "minutes": "minutes", "count": "",
                         "text": "", "time": "ISO 8601", "number": ""}


def fmt(value: Any, kind: str, tz: ZoneInfo | None = None) -> str:
    """``value`` as the PDF shows it; ``-`` for None. Device-hours arrive in device-seconds."""
    if value is None:
        return "-"
    if kind == "text":
        return str(value)
    if kind == "count":
        return f"{int(value):,}"
    if kind == "pct":
        return f"{value:.3f} %"
    if kind == "pct2":
        return f"{value:,.2f} %"
    if kind == "target":
        return f"{value:g} %"
    if kind == "pp":
        return f"{value:+.3f} pp"
    if kind == "device_h":
        return f"{value / 3600:,.2f}"
    if kind == "duration":
        return human_duration(value)
    if kind == "ms":
        return f"{value:,.2f}"
    if kind == "minutes":
        return f"{value:,.1f}"
    if kind == "time":
        ts = value.astimezone(tz) if tz is not None and isinstance(value, datetime) else value
        return ts.strftime("%Y-%m-%d %H:%M") if isinstance(ts, datetime) else str(ts)
    return f"{value:,.2f}" if isinstance(value, float) else str(value)


def csv_value(value: Any, kind: str, tz: ZoneInfo | None = None) -> Any:
    """``value`` as the CSV holds it: unrounded, device-hours in hours, times in ISO 8601 local time."""
    if value is None:
        return None
    if kind == "device_h":
        return value / 3600
    if kind == "time" and isinstance(value, datetime):
        return value.astimezone(tz).isoformat() if tz is not None else value.isoformat()
    return value


@dataclass(frozen=True, slots=True)
class Column:
    key: str  # the CSV header: snake_case with its unit (availability_pct, down_device_h)
    title: str  # the PDF header
    kind: str = "text"
    width: float = 1.0  # relative width in the PDF


@dataclass
class Table:
    key: str  # the CSV section
    title: str
    columns: list[Column]
    rows: list[tuple[Any, ...]]
    note: str = ""
    flagged: set[int] = field(default_factory=set)  # rows drawn as breaches (red)
    empty: str = "None in this period."
    in_pdf: bool = True  # False: in the CSV only (e.g. the data behind a chart)
    # The PDF shows at most this many rows (those of ``pdf_rows``, else the first), saying so; the CSV has all.
    pdf_limit: int | None = None
    pdf_rows: list[int] | None = None


@dataclass(frozen=True, slots=True)
class Figure:
    key: str
    label: str
    value: Any
    kind: str
    note: str = ""
    bad: bool = False  # drawn in red


@dataclass
class KeyFigures:
    key: str
    title: str
    items: list[Figure]


@dataclass
class Chart:
    title: str
    kind: Literal["bars", "lines", "hbars"]
    labels: list[str]
    series: list[tuple[str, list[float | None]]]
    unit: str = ""
    reference: tuple[str, float] | None = None  # a dashed line, e.g. ("target", 99.9)
    value_range: tuple[float | None, float | None] = (None, None)
    note: str = ""


@dataclass(frozen=True, slots=True)
class Text:
    text: str  # reportlab paragraph markup: <b>, <i>, &amp;


@dataclass
class Definitions:
    items: list[tuple[str, str]]


Block = KeyFigures | Table | Chart | Text | Definitions


@dataclass
class Section:
    title: str
    blocks: list[Block]
    new_page: bool = False


@dataclass
class Report:
    kind: str  # availability | performance | alerts
    title: str
    organization: str
    scope: Scope
    period: ReportPeriod
    generated_at: datetime
    sections: list[Section]
    headline: dict[str, Any] = field(default_factory=dict)  # JSON-safe figures stored with a run

    @property
    def zone(self) -> ZoneInfo:
        return self.period.zone

    def blocks(self) -> Iterator[Block]:
        for section in self.sections:
            yield from section.blocks

    def tables(self) -> list[Table]:
        return [b for b in self.blocks() if isinstance(b, Table)]

    def table(self, key: str) -> Table:
        for t in self.tables():
            if t.key == key:
                return t
        raise KeyError(key)

    def key_figures(self) -> list[KeyFigures]:
        return [b for b in self.blocks() if isinstance(b, KeyFigures)]

    def file_name(self, extension: str) -> str:
        return f"netpulse-{self.kind}-{self.scope.slug}-{self.period.file_stem()}.{extension}"


def rows_of(records: Sequence[dict[str, Any]], columns: Sequence[Column]) -> list[tuple[Any, ...]]:
    """Dict records (``iter_rows(named=True)``) as row tuples in column order."""
    return [tuple(r.get(c.key) for c in columns) for r in records]
