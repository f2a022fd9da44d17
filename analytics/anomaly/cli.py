"""``python -m analytics.anomaly score FILE.csv``: anomaly scores for a ``timestamp,value`` CSV file.

Input problems end the command with one line on stderr, ``Error: FILE:LINE: what is wrong``, and exit
status 1, before anything is written to stdout (nothing is half-scored): a timestamp that does not
parse, a value that is not a number, a value that is not finite (``inf``, ``nan``, ``1e400``).

A timestamp that repeats an earlier row's is not an error (NAB's own files have a few): each row is
a sample, the later one scored after the earlier one. The command says so on stderr, once per
file, as ``FILE:LINE: warning: timestamp T repeats line N (K repeated in the file); ...``.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import click
import numpy as np
import polars as pl

from analytics.anomaly.score import SCORE_COLUMN, score_arrays
from netpulse.csvfile import write_csv, write_frame

__all__ = ["SeriesColumns", "main", "read_series_csv", "repeated_times"]

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


BLOCK_BYTES = 4 << 20   # read and parsed at a time: memory stays ~30 bytes a row plus one block


@dataclass(frozen=True, slots=True)
class SeriesColumns:
    """The rows of a file that carry data (blank lines left out), in file order."""

    times_us: np.ndarray   # int64 microseconds since the epoch (UTC)
    values: np.ndarray     # float64, NaN where the value is empty (a missing point)
    lines: np.ndarray      # int32 line numbers in the file


def _blocks(path: Path) -> Iterator[tuple[bytes, bytes, int]]:
    """(header line, a block of whole lines, the file line of the block's first line)."""
    with path.open("rb") as fh:
        header = fh.readline()
        line, rest = 2, b""
        while True:
            chunk = fh.read(BLOCK_BYTES)
            if not chunk:
                if rest.strip():
                    yield header, rest, line
                return
            chunk = rest + chunk
            cut = chunk.rfind(b"\n") + 1
            if cut == 0:
                rest = chunk
                continue
            yield header, chunk[:cut], line
            line += chunk.count(b"\n", 0, cut)
            rest = chunk[cut:]


def _batches(path: Path) -> Iterator[pl.DataFrame]:
    """The file's ``timestamp`` and ``value`` text, a block of lines at a time, with a ``line`` column;
    blank lines are dropped. Raises InputError for files that cannot be read as such a CSV."""
    if not path.exists():
        raise InputError(path, "no such file")
    if not path.is_file():
        raise InputError(path, "not a file")
    try:
        with path.open("rb") as fh:
            header = fh.readline()
        if not header.strip():
            raise pl.exceptions.NoDataError("empty")
        names = pl.read_csv(io.BytesIO(header), infer_schema=False, encoding="utf8-lossy").columns
        missing = [c for c in REQUIRED if c not in names]
        if missing:
            found = ", ".join(names) or "nothing"
            raise InputError(path, f"the header has no {' or '.join(missing)} column (found: {found}); "
                                   "it must name timestamp and value", 1)
        for head, block, line in _blocks(path):
            batch = pl.read_csv(io.BytesIO(head + block), infer_schema=False, encoding="utf8-lossy")
            blank = batch.select(pl.all_horizontal(pl.all().is_null())).to_series()
            yield batch.select("timestamp", "value").with_row_index("line", offset=line).filter(~blank)
    except pl.exceptions.NoDataError:
        raise InputError(path, "empty file; the first line must be a header naming timestamp and value",
                         1) from None
    except OSError as exc:
        raise InputError(path, exc.strerror or str(exc)) from None
    except pl.exceptions.ComputeError as exc:
        with path.open(newline="", encoding="utf-8", errors="replace") as fh:
            width = len(next(csv.reader(fh), []))
        bad_line = _ragged_line(path, width)
        if bad_line is not None:
            raise InputError(path, "more fields than the header names", bad_line) from None
        raise InputError(path, f"not readable as CSV ({str(exc).splitlines()[0]})") from None


def _parse_batch(path: Path, raw: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Times (µs) and values of one batch of text rows; InputError at the first bad row."""
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
    bad = values.is_not_null() & ~values.is_finite()
    if bad.any():
        i = int(bad.arg_true()[0])
        raise InputError(path, f"value {raw['value'][i]!r} is not a finite number (leave it empty for a "
                               "missing point)", int(raw["line"][i]))
    return times.dt.epoch("us").to_numpy(), values.fill_null(float("nan")).to_numpy()


def read_series_csv(path: Path) -> SeriesColumns:
    """The rows of a ``timestamp,value`` CSV, parsed and checked, read in chunks.

    A header naming ``timestamp`` and ``value`` is required; other columns are ignored; blank lines
    are skipped. Timestamps are ISO 8601 (with ``T`` or a space, optional fraction and offset, offsets
    converted to UTC) or epoch seconds. Values are finite numbers; an empty value is a missing point.

    Raises:
        InputError: naming the file, and the line when there is one.
    """
    times, values, lines = [], [], []
    for raw in _batches(path):
        t, v = _parse_batch(path, raw)
        times.append(t)
        values.append(v)
        lines.append(raw["line"].to_numpy().astype(np.int32))
    if not times:
        return SeriesColumns(np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int32))
    out_t = np.concatenate(times)      # one column at a time, freeing its parts: the peak stays low
    times.clear()
    out_v = np.concatenate(values)
    values.clear()
    return SeriesColumns(out_t, out_v, np.concatenate(lines))


def repeated_times(path: Path, rows: SeriesColumns) -> str | None:
    """The warning for timestamps that repeat an earlier row's (None if none do)."""
    t = rows.times_us
    order = None if bool(np.all(t[1:] >= t[:-1])) else np.argsort(t, kind="stable")
    ts = t if order is None else t[order]
    dup = np.flatnonzero(ts[1:] == ts[:-1]) + 1          # positions (sorted) that repeat the one before
    if len(dup) == 0:
        return None
    k = int(dup[0])
    first = k
    while first > 0 and ts[first - 1] == ts[k]:
        first -= 1
    row, row0 = (k, first) if order is None else (int(order[k]), int(order[first]))
    when = np.datetime64(int(t[row]), "us").astype(datetime).isoformat(sep=" ")
    return (f"{path}:{rows.lines[row]}: warning: timestamp {when} repeats line {rows.lines[row0]} "
            f"({len(dup)} repeated in the file); each row is scored as a sample of its own, after the "
            "earlier ones")


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
    empty value is a missing point (score 0); blank lines are skipped; a repeated timestamp is a sample
    of its own (with a warning on stderr). Bad input (including inf and nan values) prints one line,
    FILE:LINE: problem, and exits with status 1.
    """
    rows = read_series_csv(file)
    warning = repeated_times(file, rows)
    if warning:
        click.echo(warning, err=True)
    scores = score_arrays(np.zeros(len(rows.values), np.int8), rows.times_us, rows.values)
    del rows
    out, done = sys.stdout.buffer, 0
    for raw in _batches(file):
        chunk = raw.select("timestamp", "value", pl.Series(SCORE_COLUMN, scores[done:done + raw.height]))
        write_frame(chunk, out, float_format="{:.6f}", header=done == 0)
        done += raw.height
    if done == 0:
        write_csv(out, ["timestamp", "value", SCORE_COLUMN], [])
    out.flush()


def main() -> None:
    cli(prog_name="python -m analytics.anomaly")
