"""Vectorised pre-aggregation of a batch into rollup deltas (count, sum, min, max per bucket).

The loader folds these deltas into the rollup tables; aggregating in numpy first means each level
receives one row per series and bucket instead of one per raw row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ingest.rows import MetricRows

MINUTE_US = 60_000_000
HOUR_US = 60 * MINUTE_US
DAY_US = 24 * HOUR_US
# The materialized parts of the plain variant's rollups (see netpulse.rollups).
LEVELS: tuple[tuple[str, int], ...] = (("metrics_1m_mat", MINUTE_US), ("metrics_1h_mat", HOUR_US),
                                       ("metrics_1d_mat", DAY_US))


@dataclass(slots=True)
class RollupDelta:
    bucket_us: npt.NDArray[np.int64]
    device_id: npt.NDArray[np.int32]
    metric_id: npt.NDArray[np.int16]
    ifindex: npt.NDArray[np.int32]
    count: npt.NDArray[np.int64]
    sum: npt.NDArray[np.float64]
    min: npt.NDArray[np.float64]
    max: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.bucket_us)


def aggregate(rows: MetricRows, width_us: int) -> RollupDelta:
    """Group rows by (bucket, device, metric, ifindex); buckets are UTC-aligned (epoch multiples)."""
    bucket = rows.time_us - np.mod(rows.time_us, width_us)
    order = np.lexsort((bucket, rows.ifindex, rows.metric_id, rows.device_id))
    b, d, m, i, v = bucket[order], rows.device_id[order], rows.metric_id[order], rows.ifindex[order], rows.value[order]
    n = len(b)
    if n == 0:
        e64 = np.empty(0, np.int64)
        ef = np.empty(0, np.float64)
        return RollupDelta(e64, np.empty(0, np.int32), np.empty(0, np.int16), np.empty(0, np.int32), e64, ef, ef, ef)
    change = np.empty(n, bool)
    change[0] = True
    change[1:] = (b[1:] != b[:-1]) | (d[1:] != d[:-1]) | (m[1:] != m[:-1]) | (i[1:] != i[:-1])
    starts = np.flatnonzero(change)
    counts = np.diff(np.append(starts, n))
    return RollupDelta(
        b[starts], d[starts], m[starts], i[starts], counts.astype(np.int64),
        np.add.reduceat(v, starts), np.minimum.reduceat(v, starts), np.maximum.reduceat(v, starts),
    )
