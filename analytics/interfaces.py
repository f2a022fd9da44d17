"""A device's network interfaces with their latest rates, as the last SNMP polls left them.

The ``interfaces`` table (upserted by :mod:`ingest.interfaces`) lists what the polls found; the
rates are each interface's newest ``if_*`` sample not older than ``max_age`` (None when there is
none: the interface is gone, or its device is not polled any more).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from netpulse.metrics import MetricKind

__all__ = ["RATE_METRICS", "InterfaceRates", "interface_rates"]

# The rates shown per interface, in this order.
RATE_METRICS: tuple[MetricKind, ...] = (MetricKind.IF_IN_BPS, MetricKind.IF_OUT_BPS, MetricKind.IF_UTIL_PCT,
                                        MetricKind.IF_ERRORS_PS)

# One index probe per interface and metric: the metrics key (device_id, metric_id, ifindex, time).
_LATEST = """
SELECT i.ifindex, i.name, i.speed_bps, i.oper_status, i.last_seen, m.metric_id, s.time, s.value
FROM interfaces i
JOIN devices d ON d.id = i.device_id AND d.organization_id = %(org)s
CROSS JOIN unnest(%(metrics)s::int2[]) AS m(metric_id)
LEFT JOIN LATERAL (
    SELECT r.time, r.value FROM metrics r
    WHERE r.device_id = i.device_id AND r.metric_id = m.metric_id AND r.ifindex = i.ifindex
      AND r.time > %(since)s AND r.time <= %(now)s
    ORDER BY r.time DESC LIMIT 1
) s ON true
WHERE i.device_id = %(device)s
ORDER BY i.ifindex, m.metric_id
"""


@dataclass(frozen=True, slots=True)
class InterfaceRates:
    """An interface and its latest rates (metric name -> value; None without a recent sample)."""

    ifindex: int
    name: str
    speed_bps: int | None
    oper_status: str
    last_seen: datetime
    sampled_at: datetime | None   # the newest of its samples
    rates: dict[str, float | None]


def interface_rates(conn: Any, org_id: uuid.UUID, device_id: int, now: datetime, *,
                    max_age: timedelta = timedelta(minutes=15)) -> list[InterfaceRates]:
    """The device's interfaces by ifIndex with their newest rates of the last ``max_age`` before ``now``.

    A device of another organization has no interfaces here (the caller checks that the device exists).
    """
    rows = conn.execute(_LATEST, {"org": org_id, "device": device_id, "metrics": [int(m) for m in RATE_METRICS],
                                  "since": now - max_age, "now": now}).fetchall()
    names = {int(m): m.metric_name for m in RATE_METRICS}
    out: dict[int, InterfaceRates] = {}
    for ifindex, name, speed, status, last_seen, metric_id, time, value in rows:
        item = out.get(ifindex)
        if item is None:
            item = out[ifindex] = InterfaceRates(ifindex, name, speed, status, last_seen, None,
                                                 {n: None for n in names.values()})
        item.rates[names[metric_id]] = value
        if time is not None and (item.sampled_at is None or time > item.sampled_at):
            out[ifindex] = item = InterfaceRates(ifindex, name, speed, status, last_seen, time, item.rates)
    return list(out.values())
