"""The anomaly score computed point by point in plain Python: the reference for the vectorised path.

It follows the definition in :mod:`analytics.anomaly.score` literally, one point at a time with
``bisect`` and ``statistics.median`` over Python lists, so that the tests can check
:func:`analytics.anomaly.score_frame` against it (to 1e-9) and ``bench/anomaly.py`` can time it as the
baseline. Nothing here is meant to be fast.
"""

from __future__ import annotations

import math
import statistics
from bisect import bisect_left, bisect_right
from datetime import timedelta

import numpy as np

from analytics.anomaly.score import _US, DEFAULT_PARAMS, G_MAX, MAD_TO_SIGMA, AnomalyParams, times_to_us

__all__ = ["score_series_loop"]

def score_series_loop(values: np.ndarray, params: AnomalyParams = DEFAULT_PARAMS, *, times: np.ndarray | None = None,
                      step_s: float = 300.0) -> np.ndarray:
    """Scores in [0, 1] for one series, the same numbers as :func:`analytics.anomaly.score_series`."""
    p = params
    vals = np.asarray(values, dtype=np.float64)
    n = len(vals)
    t_us = (np.arange(n, dtype=np.int64) * round(step_s * _US) if times is None else times_to_us(times))
    if len(t_us) != n:
        raise ValueError(f"score_series_loop: {n} values but {len(t_us)} times")
    out = np.zeros(n)
    if n == 0:
        return out
    order = sorted(range(n), key=lambda i: int(t_us[i]))          # stable: ties keep their order
    ts = [int(t_us[i]) for i in order]
    xs: list[float | None] = [float(vals[i]) if math.isfinite(vals[i]) else None for i in order]
    warm = p.us("warmup")
    age = [t - ts[0] for t in ts]
    diffs = [ts[i] - ts[i - 1] for i in range(1, n) if age[i - 1] < warm and ts[i] > ts[i - 1]]
    if not diffs:                      # the whole series is still warming up
        return out
    step = float(statistics.median(diffs))

    def enough(count: int, window_us: int) -> bool:
        return count >= max(3.0, p.min_fill * window_us / step)

    def past(series: list[float | None], i: int, window_us: int) -> list[float]:
        """The valid values of ``series`` at times in [t_i - window, t_i)."""
        lo, hi = bisect_left(ts, ts[i] - window_us), bisect_left(ts, ts[i])
        return [v for v in series[lo:hi] if v is not None]

    bases: list[list[float | None]] = []
    if p.local_window > timedelta(0):
        w = p.us("local_window")
        local: list[float | None] = []
        for i in range(n):
            window = past(xs, i, w)
            local.append(statistics.median(window) if enough(len(window), w) else None)
        bases.append(local)
    if p.seasons > 0:
        valid = [i for i in range(n) if xs[i] is not None]
        vt = [ts[i] for i in valid]
        seasonal: list[float | None] = []
        for i in range(n):
            lags: list[float] = []
            for k in range(1, p.seasons + 1):
                target = ts[i] - k * p.us("season")
                j = bisect_right(vt, target) - 1            # the last valid point at or before the target
                lag = xs[valid[j]] if j >= 0 and target - vt[j] < step else None
                if lag is not None:
                    lags.append(lag)
            seasonal.append(statistics.median(lags) if lags else None)
        bases.append(seasonal)

    g_all: list[list[float | None]] = []
    for base in bases:
        a: list[float | None] = []
        for i in range(n):
            x, b = xs[i], base[i]
            a.append(abs(x - b) if x is not None and b is not None else None)
        g: list[float | None] = []
        for i in range(n):
            ai, bi = a[i], base[i]
            scale_window = past(a, i, p.us("scale_window"))
            if ai is None or bi is None or not enough(len(scale_window), p.us("scale_window")):
                g.append(None)
                continue
            sigma = max(statistics.median(scale_window) * MAD_TO_SIGMA, abs(bi) * p.floor_rel, p.floor_abs)
            bar = p.z_threshold * sigma
            if p.novelty_factor > 0 and p.novelty_window > timedelta(0):
                recent = past(a, i, p.us("novelty_window"))
                bar = max(bar, p.novelty_factor * (max(recent) if recent else 0.0))
            g.append(ai / bar)
        g_all.append(g)

    for i in range(n):
        if age[i] < warm or xs[i] is None:
            continue
        gi = max([gv for g in g_all if (gv := g[i]) is not None], default=0.0)
        gp = min(gi, G_MAX) ** p.sharpness
        out[order[i]] = gp / (1.0 + gp)
    return out
