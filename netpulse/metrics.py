"""The metric catalogue. Metric rows carry the smallint id; ``metric_kinds`` in the database holds
the same list (migration 0002), and a test keeps the two equal."""

from __future__ import annotations

from enum import IntEnum


class MetricKind(IntEnum):
    ICMP_RTT_MS = 1
    ICMP_RTT_MIN_MS = 2
    ICMP_RTT_MAX_MS = 3
    ICMP_JITTER_MS = 4
    ICMP_LOSS_PCT = 5
    TCP_CONNECT_MS = 6
    CPU_PCT = 7
    MEM_PCT = 8
    IF_IN_BPS = 9
    IF_OUT_BPS = 10
    IF_UTIL_PCT = 11
    IF_ERRORS_PS = 12
    AVAILABLE = 13

    @property
    def metric_name(self) -> str:
        """The name stored in ``metric_kinds.name`` (e.g. ``icmp_rtt_ms``)."""
        return self.name.lower()

    @classmethod
    def from_name(cls, name: str) -> MetricKind:
        try:
            return cls[name.upper()]
        except KeyError:
            known = ", ".join(m.metric_name for m in cls)
            raise ValueError(f"unknown metric {name!r}; known metrics: {known}") from None


UNITS: dict[MetricKind, str] = {
    MetricKind.ICMP_RTT_MS: "ms",
    MetricKind.ICMP_RTT_MIN_MS: "ms",
    MetricKind.ICMP_RTT_MAX_MS: "ms",
    MetricKind.ICMP_JITTER_MS: "ms",
    MetricKind.ICMP_LOSS_PCT: "%",
    MetricKind.TCP_CONNECT_MS: "ms",
    MetricKind.CPU_PCT: "%",
    MetricKind.MEM_PCT: "%",
    MetricKind.IF_IN_BPS: "bit/s",
    MetricKind.IF_OUT_BPS: "bit/s",
    MetricKind.IF_UTIL_PCT: "%",
    MetricKind.IF_ERRORS_PS: "1/s",
    MetricKind.AVAILABLE: "1",
}
