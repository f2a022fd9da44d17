"""The columnar batch of metric rows that probers and the simulator emit and the loader stores."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

# Times travel as int64 microseconds since the Unix epoch (UTC): exact, compact and fast to encode.
TimeArray = npt.NDArray[np.int64]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_micros(ts: datetime) -> int:
    """A timezone-aware datetime as microseconds since the epoch."""
    if ts.tzinfo is None:
        raise ValueError(f"naive datetime {ts!r}: metric times must be timezone-aware (UTC)")
    return (ts - EPOCH) // timedelta(microseconds=1)


def from_micros(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=int(us))


@dataclass(slots=True)
class MetricRows:
    """Parallel arrays, one entry per row: (time, device_id, metric_id, ifindex, value)."""

    time_us: TimeArray
    device_id: npt.NDArray[np.int32]
    metric_id: npt.NDArray[np.int16]
    ifindex: npt.NDArray[np.int32]
    value: npt.NDArray[np.float64]

    def __post_init__(self) -> None:
        self.time_us = np.ascontiguousarray(self.time_us, dtype=np.int64)
        self.device_id = np.ascontiguousarray(self.device_id, dtype=np.int32)
        self.metric_id = np.ascontiguousarray(self.metric_id, dtype=np.int16)
        self.ifindex = np.ascontiguousarray(self.ifindex, dtype=np.int32)
        self.value = np.ascontiguousarray(self.value, dtype=np.float64)
        n = len(self.time_us)
        for name in ("device_id", "metric_id", "ifindex", "value"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"MetricRows.{name} has {len(getattr(self, name))} entries, time has {n}")

    def __len__(self) -> int:
        return len(self.time_us)

    @classmethod
    def empty(cls) -> MetricRows:
        return cls(np.empty(0, np.int64), np.empty(0, np.int32), np.empty(0, np.int16),
                   np.empty(0, np.int32), np.empty(0, np.float64))

    @classmethod
    def from_tuples(cls, rows: Iterable[tuple[datetime | int, int, int, int, float]]) -> MetricRows:
        """Rows as (time, device_id, metric_id, ifindex, value); time a datetime or epoch microseconds."""
        items = list(rows)
        if not items:
            return cls.empty()
        t = [to_micros(r[0]) if isinstance(r[0], datetime) else int(r[0]) for r in items]
        return cls(np.array(t, np.int64), np.array([r[1] for r in items], np.int32),
                   np.array([r[2] for r in items], np.int16), np.array([r[3] for r in items], np.int32),
                   np.array([r[4] for r in items], np.float64))

    @classmethod
    def concat(cls, parts: Sequence[MetricRows]) -> MetricRows:
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate([getattr(p, f) for p in parts])
                     for f in ("time_us", "device_id", "metric_id", "ifindex", "value")))

    def slice(self, start: int, stop: int) -> MetricRows:
        return MetricRows(self.time_us[start:stop], self.device_id[start:stop], self.metric_id[start:stop],
                          self.ifindex[start:stop], self.value[start:stop])

    def to_message(self) -> dict[str, Any]:
        """A JSON-ready columnar form for a Dramatiq message (lists, not one dict per row)."""
        return {"t": self.time_us.tolist(), "d": self.device_id.tolist(), "m": self.metric_id.tolist(),
                "i": self.ifindex.tolist(), "v": self.value.tolist()}

    @classmethod
    def from_message(cls, msg: dict[str, Any]) -> MetricRows:
        try:
            return cls(np.asarray(msg["t"], np.int64), np.asarray(msg["d"], np.int32),
                       np.asarray(msg["m"], np.int16), np.asarray(msg["i"], np.int32),
                       np.asarray(msg["v"], np.float64))
        except KeyError as exc:
            raise ValueError(f"metric message lacks column {exc.args[0]!r}") from None
