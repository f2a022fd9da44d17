"""``python -m analytics.anomaly score FILE.csv``: anomaly scores for a ``timestamp,value`` CSV file.

Input problems end the command with one line on stderr, ``Error: FILE:LINE: what is wrong``, and exit
status 1, before anything is written to stdout (nothing is half-scored).
"""

from __future__ import annotations

import csv
import sys
from datetime import UTC, datetime
from pathlib import Path

import click
import polars as pl

from analytics.anomaly.score import SCORE_COLUMN, score_frame
from netpulse.csvfile import write_frame

__all__ = ["main", "read_series_csv"]

REQUIRED = ("timestamp", "value")
# ISO 8601 shapes parsed in bulk (%#z also reads "Z"); other ISO forms go through datetime.fromisoformat.
_SHAPES = tuple(f"%Y-%m-%d{sep}{clock}{zone}" for clock in ("%H:%M:%S%.f", "%H:%M") for zone in ("", "%#z")
                for sep in (" ", "T")) + ("%Y-%m-%d", "fromisoformat")


class InputError(click.ClickException):
    """A problem with the input file, reported as ``FILE:LINE: message`` (the line when there is one)."""

    def __init__(self, path: Path, message: str, line: int | None = None) -> None:
        super().__init__(f"{path}:{line}: {message}" if line is not None else f"{path}: {message}")


def _parse_as(iso: pl.Series, fmt: str) -> pl.Series:
    """Naive UTC datetimes from text in one shape, null where it does not fit."""
    if fmt == "fromisoformat":
        found = {v: _fromisoformat(v) for v in iso.unique().drop_nulls()}
        return iso.replace_strict(found, default=None, return_dtype=pl.Datetime("us"))
    got = iso.str.to_datetime(fmt, strict=False, time_unit="us")
    return got.dt.convert_time_zone("UTC").dt.replace_time_zone(None) if "%#z" in fmt else got


def _parse_times(text: pl.Series) -> pl.Series:
    """Naive UTC datetimes (µs) from ISO 8601 text or epoch seconds; null where neither parses.

    The shape that reads the first unparsed row is applied to all the others, until none is left or
    the first one left reads in no shape: a file in one format costs one parse.
    """
    s = text.str.strip_chars()
    epoch = s.cast(pl.Float64, strict=False)
    parsed = pl.select(pl.when(epoch.is_finite()).then(epoch * 1_000_000).round().cast(pl.Int64, strict=False)
                       .cast(pl.Datetime("us")).alias("time")).to_series()
    while not (todo := (parsed.is_null() & s.is_not_null()).arg_true()).is_empty():
        iso = s.gather(todo)
        fmt = next((f for f in _SHAPES if _parse_as(iso.head(1), f)[0] is not None), None)
        if fmt is None:
            break
        parsed = parsed.scatter(todo, _parse_as(iso, fmt))
    return parsed


def _fromisoformat(text: str) -> datetime | None:
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        return None
    return ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo else ts


def _ragged_line(path: Path, width: int) -> int | None:
    """The first line with more fields than the header (Polars names no line)."""
    with path.open(newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.reader(fh)
        for row in reader:
            if len(row) > width:
                return reader.line_num
    return None


def read_series_csv(path: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The rows of a ``timestamp,value`` CSV: (the raw text of both columns, the parsed ``time``/``value``).

    A header naming ``timestamp`` and ``value`` is required; other columns are ignored; blank lines
    are skipped. Timestamps are ISO 8601 (with ``T`` or a space, optional fraction and offset, offsets
    converted to UTC) or epoch seconds. Values are numbers; an empty value is a missing point.

    Raises:
        InputError: naming the file, and the line when there is one.
    """
    if not path.exists():
        raise InputError(path, "no such file")
    if not path.is_file():
        raise InputError(path, "not a file")
    try:
        raw = pl.read_csv(path, infer_schema=False, encoding="utf8-lossy")
    except pl.exceptions.NoDataError:
        raise InputError(path, "empty file; the first line must be a header naming timestamp and value",
                         1) from None
    except OSError as exc:
        raise InputError(path, exc.strerror or str(exc)) from None
    except pl.exceptions.ComputeError as exc:
        with path.open(newline="", encoding="utf-8", errors="replace") as fh:
            width = len(next(csv.reader(fh), []))
        line = _ragged_line(path, width)
        if line is not None:
            raise InputError(path, "more fields than the header names", line) from None
        raise InputError(path, f"not readable as CSV ({str(exc).splitlines()[0]})") from None
    missing = [c for c in REQUIRED if c not in raw.columns]
    if missing:
        found = ", ".join(raw.columns) or "nothing"
        raise InputError(path, f"the header has no {' or '.join(missing)} column (found: {found}); "
                               "it must name timestamp and value", 1)
    blank = raw.select(pl.all_horizontal(pl.all().is_null())).to_series()
    raw = raw.select("timestamp", "value").with_row_index("line", offset=2).filter(~blank)

    times = _parse_times(raw["timestamp"])
    bad = times.is_null()
    if bad.any():
        i = int(bad.arg_true()[0])
        text = raw["timestamp"][i]
        what = (f"timestamp {text!r} is not ISO 8601 or epoch seconds" if text and text.strip()
                else "no timestamp")
        raise InputError(path, what, int(raw["line"][i]))
    stripped = raw["value"].str.strip_chars()
    values = stripped.cast(pl.Float64, strict=False)
    bad = values.is_null() & stripped.is_not_null() & (stripped != "")
    if bad.any():
        i = int(bad.arg_true()[0])
        raise InputError(path, f"value {raw['value'][i]!r} is not a number", int(raw["line"][i]))
    parsed = pl.DataFrame({"series": pl.repeat(0, len(raw), dtype=pl.Int8, eager=True), "time": times,
                           "value": values})
    return raw.select("timestamp", "value"), parsed


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Anomaly scores (analytics.anomaly)."""


@cli.command()
@click.argument("file", type=click.Path(path_type=Path, dir_okay=True))
def score(file: Path) -> None:
    """Score FILE, a CSV with a header naming timestamp and value (other columns are ignored).

    Writes timestamp,value,anomaly_score to standard output: one row per input row, in input order,
    timestamp and value echoed as given; the score is in [0, 1], >= 0.5 means anomalous. Timestamps
    are ISO 8601 or epoch seconds (rows need not be sorted; each score uses only earlier rows); an
    empty value is a missing point (score 0); blank lines are skipped. Bad input prints one line,
    FILE:LINE: problem, and exits with status 1.
    """
    raw, parsed = read_series_csv(file)
    scores = score_frame(parsed)[SCORE_COLUMN]
    out = raw.with_columns(scores)
    write_frame(out, sys.stdout.buffer, float_format="{:.6f}")
    sys.stdout.flush()


def main() -> None:
    cli(prog_name="python -m analytics.anomaly")
