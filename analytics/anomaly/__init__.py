"""Anomaly scores: a causal, streaming per-series score in [0, 1] and a multivariate per-device model.

- :func:`score_frame` / :func:`score_series`: the score (>= 0.5 means anomalous), many series at once;
  :class:`AnomalyParams` holds the defaults and how they were chosen.
- :class:`StreamScorer`: the same score one sample at a time, with the state of each series kept
  (O(1) work per sample); the batch path runs the same compiled kernel.
- :func:`device_outliers`: IsolationForest over a device's metrics side by side, for the deep dive.
- :func:`score_recent`: an organization's recent minutes scored into ``anomaly_scores``;
  :func:`load_scores` and :func:`top_anomalies` read them back.
- ``python -m analytics.anomaly score FILE.csv``: score a ``timestamp,value`` CSV.
"""

from analytics.anomaly.detector import StreamScorer
from analytics.anomaly.device import device_outliers
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
           "StreamScorer", "ANOMALOUS", "DEFAULT_METRICS", "ScoreReport", "count_series", "history_for",
           "load_scores", "score_recent", "top_anomalies"]
