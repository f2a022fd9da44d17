"""The metric catalogue. Metric rows carry the smallint id; ``metric_kinds`` in the database holds
the same list (migrations 0002 and 0008), and a test keeps the two equal.

A row's ``ifindex`` says what within the device it measures:

- 0: the device itself (ICMP, CPU, memory, availability, and tcp_connect_ms of the TCP fallback probe);
- the SNMP ifIndex for the if_* kinds (the ``interfaces`` table);
- ``service_checks.id`` for the service-check kinds (http_response_ms, http_status, tls_cert_days,
  check_ok) and for tcp_connect_ms of a tcp service check. Check ids start at 1, so a
  tcp_connect_ms row with ifindex 0 is always the fallback probe.
"""

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
    HTTP_RESPONSE_MS = 14
    HTTP_STATUS = 15
    TLS_CERT_DAYS = 16
    CHECK_OK = 17
    DNS_RESOLVE_MS = 18

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
    MetricKind.HTTP_RESPONSE_MS: "ms",
    MetricKind.HTTP_STATUS: "1",
    MetricKind.TLS_CERT_DAYS: "d",
    MetricKind.CHECK_OK: "1",
    MetricKind.DNS_RESOLVE_MS: "ms",
}
