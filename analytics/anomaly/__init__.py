"""Anomaly scores: a causal, vectorised per-series score in [0, 1] and a multivariate per-device model.

- :func:`score_frame` / :func:`score_series`: the score (>= 0.5 means anomalous), many series at once;
  :class:`AnomalyParams` holds the defaults and what they were measured on.
- :func:`score_series_loop`: the same score computed point by point in plain Python (the reference
  the tests and ``bench/anomaly.py`` compare against).
- :func:`device_outliers`: IsolationForest over a device's metrics side by side, for the deep dive.
- :func:`score_recent`: an organization's recent minutes scored into ``anomaly_scores``;
  :func:`load_scores` and :func:`top_anomalies` read them back.
- ``python -m analytics.anomaly score FILE.csv``: score a ``timestamp,value`` CSV.
"""

from analytics.anomaly.device import device_outliers
from analytics.anomaly.reference import score_series_loop
from analytics.anomaly.score import DEFAULT_PARAMS, SCORE_COLUMN, AnomalyParams, score_frame, score_series
from analytics.anomaly.store import (
    ANOMALOUS,
    DEFAULT_METRICS,
    ScoreReport,
    count_series,
    history_for,
    load_scores,
    score_recent,
    top_anomalies,
)

__all__ = ["AnomalyParams", "DEFAULT_PARAMS", "SCORE_COLUMN", "device_outliers", "score_frame", "score_series",
           "score_series_loop", "ANOMALOUS", "DEFAULT_METRICS", "ScoreReport", "count_series", "history_for",
           "load_scores", "score_recent", "top_anomalies"]
