"""PostgreSQL binary COPY encoding of metric rows, built with numpy in one pass.

Every column of the metrics table is fixed-width, so a whole batch is one structured array whose
bytes are the COPY stream: no Python work per row (psycopg's ``write_row`` is ~170k rows/s here).
"""

from __future__ import annotations

import numpy as np

from ingest.rollup import RollupDelta
from ingest.rows import MetricRows

HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
TRAILER = (-1).to_bytes(2, "big", signed=True)
# PostgreSQL timestamps count microseconds from 2000-01-01 UTC.
PG_EPOCH_OFFSET_US = 946_684_800 * 1_000_000

COLUMNS = ("time", "device_id", "metric_id", "ifindex", "value")
_TUPLE = np.dtype([
    ("nfields", ">i2"),
    ("len_t", ">i4"), ("t", ">i8"),
    ("len_d", ">i4"), ("d", ">i4"),
    ("len_m", ">i4"), ("m", ">i2"),
    ("len_i", ">i4"), ("i", ">i4"),
    ("len_v", ">i4"), ("v", ">f8"),
])


def encode(rows: MetricRows) -> bytes:
    """The complete binary COPY payload (header, tuples, trailer) for columns ``COLUMNS``."""
    buf = np.empty(len(rows), dtype=_TUPLE)
    buf["nfields"] = 5
    buf["len_t"] = 8
    buf["t"] = rows.time_us - PG_EPOCH_OFFSET_US
    buf["len_d"] = 4
    buf["d"] = rows.device_id
    buf["len_m"] = 2
    buf["m"] = rows.metric_id
    buf["len_i"] = 4
    buf["i"] = rows.ifindex
    buf["len_v"] = 8
    buf["v"] = rows.value
    return HEADER + buf.tobytes() + TRAILER


ROLLUP_COLUMNS = ("level", "bucket", "device_id", "metric_id", "ifindex", "count", "sum", "min", "max")
_ROLLUP_FIELDS = [
    ("nfields", ">i2"),
    ("len_l", ">i4"), ("l", ">i2"),
    ("len_b", ">i4"), ("b", ">i8"),
    ("len_d", ">i4"), ("d", ">i4"),
    ("len_m", ">i4"), ("m", ">i2"),
    ("len_i", ">i4"), ("i", ">i4"),
    ("len_c", ">i4"), ("c", ">i8"),
    ("len_s", ">i4"), ("s", ">f8"),
    ("len_lo", ">i4"), ("lo", ">f8"),
    ("len_hi", ">i4"), ("hi", ">f8"),
]
_ROLLUP_TUPLE = np.dtype(_ROLLUP_FIELDS)


_ROLLUP_TUPLE_NO_LEVEL = np.dtype([(n, t) for n, t in _ROLLUP_FIELDS if n not in ("len_l", "l")])


def encode_rollups(deltas: list[tuple[int, RollupDelta]], *, with_level: bool = True) -> bytes:
    """Binary COPY payload of (level, delta) pairs for columns ``ROLLUP_COLUMNS`` (without the
    leading ``level`` column when ``with_level`` is false: straight into a rollup table)."""
    parts = [HEADER]
    for level, delta in deltas:
        buf = np.empty(len(delta), dtype=_ROLLUP_TUPLE if with_level else _ROLLUP_TUPLE_NO_LEVEL)
        buf["nfields"] = 9 if with_level else 8
        for name, width in (("len_b", 8), ("len_d", 4), ("len_m", 2), ("len_i", 4),
                            ("len_c", 8), ("len_s", 8), ("len_lo", 8), ("len_hi", 8)):
            buf[name] = width
        if with_level:
            buf["len_l"] = 2
            buf["l"] = level
        buf["b"] = delta.bucket_us - PG_EPOCH_OFFSET_US
        buf["d"] = delta.device_id
        buf["m"] = delta.metric_id
        buf["i"] = delta.ifindex
        buf["c"] = delta.count
        buf["s"] = delta.sum
        buf["lo"] = delta.min
        buf["hi"] = delta.max
        parts.append(buf.tobytes())
    parts.append(TRAILER)
    return b"".join(parts)
