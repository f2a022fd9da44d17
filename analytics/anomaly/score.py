"""The anomaly score of many series at once: :mod:`analytics.anomaly.detector` run over a long frame.

:func:`score_frame` sorts the rows by series and time, hands every series to the detector's compiled
kernel in one call (fresh state per series) and puts the scores back in the input's row order;
:func:`score_series` does the same for one array. A live worker that keeps a
:class:`~analytics.anomaly.detector.StreamScorer` per series gets the same numbers point by point.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, overload

import numpy as np
import polars as pl

from analytics.anomaly.detector import DEFAULT_PARAMS, AnomalyParams, advance, new_state

__all__ = ["AnomalyParams", "DEFAULT_PARAMS", "MAD_TO_SIGMA", "SCORE_COLUMN", "score_arrays", "score_frame",
           "score_series", "times_to_us"]

MAD_TO_SIGMA: Final = 1.4826   # median |r| x this estimates the standard deviation of normal noise
SCORE_COLUMN: Final = "anomaly_score"
_US = 1_000_000
_ROW, _T, _X, _K = "__an_row", "__an_t", "__an_x", "__an_key"


def _time_us(col: str, dtype: pl.DataType) -> pl.Expr:
    """Microseconds since the epoch from a datetime, date or numeric (epoch seconds) column."""
    c = pl.col(col)
    if isinstance(dtype, pl.Datetime):
        return c.cast(pl.Datetime("us")).cast(pl.Int64)   # tz-aware: the physical value is UTC
    if isinstance(dtype, pl.Date):
        return c.cast(pl.Datetime("us")).cast(pl.Int64)
    if dtype.is_numeric():
        return (c.cast(pl.Float64) * _US).round().cast(pl.Int64, strict=False)   # NaN: no time
    raise TypeError(f"time column {col!r} has type {dtype}: pass datetimes or epoch seconds "
                    "(parse text with pl.col(...).str.to_datetime() first)")


def times_to_us(times: np.ndarray) -> np.ndarray:
    """Microseconds since the epoch (int64) from datetime64 or numeric epoch seconds."""
    arr = np.asarray(times)
    if np.issubdtype(arr.dtype, np.datetime64):
        if np.isnat(arr).any():
            raise ValueError("times contain NaT: every value needs a time")
        return arr.astype("datetime64[us]").astype(np.int64)
    if np.issubdtype(arr.dtype, np.number):
        if not np.isfinite(arr).all():
            raise ValueError("times contain NaN or inf: every value needs a time")
        return np.round(arr.astype(np.float64) * _US).astype(np.int64)
    raise TypeError(f"times must be datetime64 or epoch seconds, not {arr.dtype}")


def score_arrays(series: np.ndarray, times_us: np.ndarray, values: np.ndarray,
                 params: AnomalyParams = DEFAULT_PARAMS) -> np.ndarray:
    """Scores for rows given as arrays (a series id, int64 µs and float64 per row), in the rows' order.

    Rows are ordered by series and time (stable: rows with the same time keep their order, and each
    is a sample of its own) and each series is scored from a fresh state.
    """
    n = len(values)
    if n == 0:
        return np.zeros(0)
    same = series[1:] == series[:-1]
    in_order = bool(np.all((series[1:] > series[:-1]) | (same & (times_us[1:] >= times_us[:-1]))))
    del same
    if in_order:                         # already by series and time: no sorted copies
        cut = np.flatnonzero(series[1:] != series[:-1]) + 1
        starts = np.concatenate(([0], cut, [n])).astype(np.int64)
        state = new_state(len(starts) - 1, params)
        return advance(times_us, values, starts, np.arange(len(starts) - 1), state, params)
    order = np.lexsort((times_us, series))
    s_sorted = series[order]
    cut = np.flatnonzero(s_sorted[1:] != s_sorted[:-1]) + 1
    del s_sorted
    starts = np.concatenate(([0], cut, [n])).astype(np.int64)
    state = new_state(len(starts) - 1, params)
    sorted_scores = advance(times_us[order], values[order], starts, np.arange(len(starts) - 1), state, params)
    out = np.empty(n)
    out[order] = sorted_scores
    return out


def _keys(series_col: str | Sequence[str]) -> list[str]:
    return [series_col] if isinstance(series_col, str) else list(series_col)


@overload
def score_frame(df: pl.DataFrame, *, series_col: str | Sequence[str] = ..., time_col: str = ...,
                value_col: str = ..., params: AnomalyParams = ...) -> pl.DataFrame: ...
@overload
def score_frame(df: pl.LazyFrame, *, series_col: str | Sequence[str] = ..., time_col: str = ...,
                value_col: str = ..., params: AnomalyParams = ...) -> pl.LazyFrame: ...
def score_frame(df: pl.DataFrame | pl.LazyFrame, *, series_col: str | Sequence[str] = "series",
                time_col: str = "time", value_col: str = "value",
                params: AnomalyParams = DEFAULT_PARAMS) -> pl.DataFrame | pl.LazyFrame:
    """``df`` with an ``anomaly_score`` column in [0, 1] (>= 0.5: anomalous), many series at once.

    Parameters:
        df: long frame, one row per series and time, in any order (rows keep their order). A lazy frame
            gives a lazy frame back (scored when it is collected).
        series_col: the column, or columns (e.g. ``["device_id", "metric_id", "ifindex"]``), naming a series.
        time_col: datetimes (naive or zoned), dates, or numbers read as epoch seconds.
        value_col: numbers; null, NaN and inf are missing and score 0 (the state skips them).
        params: :class:`AnomalyParams`.

    Each row's score uses only rows of its series with an earlier time (and, for rows with the same
    time, those before it), so it is the score a live job would have given it. A row without a
    time scores 0 and is not seen by the others.

    Examples:
        >>> import polars as pl
        >>> from datetime import datetime, timedelta
        >>> t = [datetime(2026, 1, 1) + timedelta(minutes=5 * i) for i in range(600)]
        >>> df = pl.DataFrame({"series": "a", "time": t, "value": [float(i % 7) for i in range(600)]})
        >>> score_frame(df)["anomaly_score"].max() < 0.5
        True
    """
    keys = _keys(series_col)
    lazy = df.lazy()
    schema = lazy.collect_schema()
    for col in (*keys, time_col, value_col):
        if col not in schema:
            raise ValueError(f"score_frame: no column {col!r} (columns: {', '.join(schema.names())})")
    time_expr = _time_us(time_col, schema[time_col])

    def score(batch: pl.DataFrame) -> pl.DataFrame:
        inner = batch.select(pl.struct(keys).rank("dense").cast(pl.Int64).alias(_K), time_expr.alias(_T),
                             pl.col(value_col).cast(pl.Float64).fill_null(float("nan")).alias(_X))
        timed = inner[_T].is_not_null().to_numpy()
        scores = np.zeros(batch.height)
        if timed.any():
            scores[timed] = score_arrays(inner[_K].to_numpy()[timed], inner[_T].to_numpy()[timed],
                                         inner[_X].to_numpy()[timed], params)
        return batch.drop(SCORE_COLUMN, strict=False).with_columns(pl.Series(SCORE_COLUMN, scores))

    if isinstance(df, pl.DataFrame):
        return score(df)
    out_schema = pl.Schema({**{k: v for k, v in schema.items() if k != SCORE_COLUMN}, SCORE_COLUMN: pl.Float64()})
    return lazy.map_batches(score, schema=out_schema, streamable=False)


def score_series(values: np.ndarray, *, params: AnomalyParams = DEFAULT_PARAMS, times: np.ndarray | None = None,
                 step_s: float = 300.0) -> np.ndarray:
    """Scores in [0, 1] for one series (the batch path of :func:`score_frame`).

    ``times`` are datetime64 or epoch seconds, one per value; without them the values are taken
    ``step_s`` seconds apart.
    """
    vals = np.asarray(values, dtype=np.float64)
    if vals.ndim != 1:
        raise ValueError(f"score_series wants a 1-D array, got shape {vals.shape}")
    t_us = (np.arange(len(vals), dtype=np.int64) * round(step_s * _US) if times is None
            else times_to_us(times))
    if len(t_us) != len(vals):
        raise ValueError(f"score_series: {len(vals)} values but {len(t_us)} times")
    return score_arrays(np.zeros(len(vals), np.int8), t_us, vals, params)
