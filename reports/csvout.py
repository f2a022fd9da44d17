"""A :class:`~reports.document.Report` as CSV: the same figures as its PDF, unrounded.

One file of blocks separated by an empty line. Each block starts with a header row whose first cell
is ``section`` and each of its rows with the block's name, so a spreadsheet filter on the first
column (or ``csv.reader`` split on empty rows) gives one table back:

- ``report``: what, whom, and the period (UTC and local, ISO 8601);
- ``summary`` (and other key figures): ``figure, label, value, unit, note``;
- one block per table (``sites``, ``devices``, ``outages``...): its columns, named with their unit
  (``availability_pct``, ``down_device_h``, ``mttr_s``); times are local ISO 8601 with their offset.

Cells go through :mod:`netpulse.csvfile`, which escapes text a spreadsheet would run as a formula.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from typing import Any

from netpulse.csvfile import write_csv
from reports.document import UNITS, Report, csv_value

__all__ = ["render_csv", "read_blocks"]


def _blocks(report: Report) -> Iterable[tuple[list[str], list[list[Any]]]]:
    zone = report.zone
    period = report.period
    yield ["section", "field", "value"], [
        ["report", "kind", report.kind], ["report", "title", report.title],
        ["report", "organization", report.organization], ["report", "scope", report.scope.text],
        ["report", "period", period.label],
        ["report", "start", period.local(period.start).isoformat()],
        ["report", "end", period.local(period.end).isoformat()], ["report", "time_zone", period.tz],
        ["report", "generated_at", report.generated_at.astimezone(zone).isoformat()],
    ]
    for figures in report.key_figures():
        yield ["section", "figure", "label", "value", "unit", "note"], [
            [figures.key, f.key, f.label, csv_value(f.value, f.kind, zone), UNITS.get(f.kind, ""), f.note]
            for f in figures.items]
    for table in report.tables():
        yield (["section", *(c.key for c in table.columns)],
               [[table.key, *(csv_value(v, c.kind, zone) for v, c in zip(row, table.columns, strict=True))]
                for row in table.rows])


def render_csv(report: Report) -> bytes:
    """The report's figures as UTF-8 CSV (see the module docstring)."""
    out = io.StringIO()
    for i, (header, rows) in enumerate(_blocks(report)):
        if i:
            out.write("\n")
        write_csv(out, header, rows)
    return out.getvalue().encode("utf-8")


def read_blocks(text: str) -> dict[str, list[dict[str, str]]]:
    """A report CSV back as {section: [row as {column: text}]} (tests and scripts)."""
    import csv

    blocks: dict[str, list[dict[str, str]]] = {}
    header: Sequence[str] | None = None
    for row in csv.reader(io.StringIO(text)):
        if not row:
            header = None
            continue
        if header is None:
            header = row
            continue
        blocks.setdefault(row[0], []).append(dict(zip(header[1:], row[1:], strict=True)))
    return blocks
