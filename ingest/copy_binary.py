"""PostgreSQL binary COPY encoding of metric rows, built with numpy in one pass.

Every column of the metrics table is fixed-width, so a whole batch is one structured array whose
bytes are the COPY stream: no Python work per row (psycopg's ``write_row`` is ~170k rows/s here).
"""

from __future__ import annotations

import numpy as np

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
