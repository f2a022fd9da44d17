"""The one CSV writer behind every CSV NetPulse writes (reports, ``sla report --csv``, anomaly scores).

Spreadsheets run a cell that starts with ``=``, ``+``, ``-`` or ``@`` as a formula, so a device named
``=HYPERLINK(...)`` would become a live link in a manager's copy of a report (CSV injection). Text
cells that start with one of those characters (or a tab or carriage return) are written with a
leading apostrophe, which spreadsheets show as text; numbers, including negative ones, are not touched.

>>> safe_cell("=1+1"), safe_cell("-core-1"), safe_cell("-2.5"), safe_cell(-2.5), safe_cell("nbo-core-1")
("'=1+1", "'-core-1", '-2.5', -2.5, 'nbo-core-1')
>>> import io
>>> out = io.StringIO()
>>> write_csv(out, ["name", "pct"], [["@SUM(A1)", 99.5], [None, None]])
2
>>> out.getvalue().splitlines()
['name,pct', "'@SUM(A1),99.5", ',']
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any, Protocol

from netpulse.text import FORMULA_STARTS, formula_start  # one definition: the CSV import reads it back

__all__ = ["FORMULA_STARTS", "safe_cell", "format_cell", "write_csv", "write_frame"]


class _Frame(Protocol):
    """What :func:`write_frame` needs of a Polars DataFrame (the core does not import Polars)."""

    @property
    def columns(self) -> list[str]: ...

    def iter_rows(self) -> Iterator[tuple[Any, ...]]: ...


def safe_cell(value: object) -> object:
    """``value`` as a spreadsheet will not run it: text that a spreadsheet would take for a formula
    gets a leading apostrophe; anything else (numbers, text that is a plain number) is returned as is."""
    if isinstance(value, str) and formula_start(value) is not None:
        return "'" + value
    return value


def format_cell(value: object, float_format: str | None = None) -> object:
    """A cell's text before escaping: None as empty, times in ISO 8601, booleans as true/false,
    lists joined with "; ", floats with ``float_format`` (e.g. ``"{:.6f}"``) when given."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and float_format is not None:
        return float_format.format(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return "; ".join(str(format_cell(v, float_format)) for v in value)
    return value


@contextmanager
def _opened(target: str | Path | IO[str] | IO[bytes]) -> Iterator[IO[str]]:
    if isinstance(target, str | Path):
        with open(target, "w", newline="", encoding="utf-8") as fh:
            yield fh
    elif isinstance(target, io.TextIOBase):
        yield target  # type: ignore[misc]
    else:  # a binary stream (sys.stdout.buffer, an HTTP body)
        text = io.TextIOWrapper(target, encoding="utf-8", newline="")  # type: ignore[type-var]
        try:
            yield text
        finally:
            text.flush()
            text.detach()


def write_csv(target: str | Path | IO[str] | IO[bytes], header: Sequence[str], rows: Iterable[Sequence[object]], *,
              float_format: str | None = None, include_header: bool = True) -> int:
    """Write ``header`` and ``rows`` (RFC 4180, UTF-8, ``\\n`` line ends) to a path or a stream, every
    cell through :func:`format_cell` and :func:`safe_cell`; returns the number of data rows. Without
    ``include_header``, only the rows (a later block of a file written in pieces)."""
    n = 0
    with _opened(target) as fh:
        writer = csv.writer(fh, lineterminator="\n")
        if include_header:
            writer.writerow([safe_cell(h) for h in header])
        for row in rows:
            writer.writerow([safe_cell(format_cell(v, float_format)) for v in row])
            n += 1
    return n


def write_frame(frame: _Frame, target: str | Path | IO[str] | IO[bytes], *, float_format: str | None = None,
                header: bool = True) -> int:
    """A Polars frame (any object with ``columns`` and ``iter_rows()``) through :func:`write_csv`."""
    return write_csv(target, frame.columns, frame.iter_rows(), float_format=float_format, include_header=header)
