"""The ``interfaces`` table: each SNMP poll's interface list, upserted in one statement."""

from __future__ import annotations

from collections.abc import Iterable

import psycopg

from ingest.rows import from_micros
from ingest.snmp import InterfaceSample, SnmpPoll

__all__ = ["upsert_interfaces"]

_UPSERT = """
INSERT INTO interfaces (device_id, ifindex, name, speed_bps, oper_status, last_seen)
SELECT u.device_id, u.ifindex, u.name, u.speed_bps, u.oper_status, u.last_seen
FROM unnest(%s::integer[], %s::integer[], %s::text[], %s::bigint[], %s::text[], %s::timestamptz[])
     AS u(device_id, ifindex, name, speed_bps, oper_status, last_seen)
ON CONFLICT (device_id, ifindex) DO UPDATE SET
    name = EXCLUDED.name, speed_bps = EXCLUDED.speed_bps, oper_status = EXCLUDED.oper_status,
    last_seen = EXCLUDED.last_seen
WHERE interfaces.last_seen <= EXCLUDED.last_seen
"""


def upsert_interfaces(conn: psycopg.Connection, polls: SnmpPoll | Iterable[SnmpPoll]) -> int:
    """Insert or refresh the interfaces of successful polls; returns the rows written.

    One statement for the whole batch. An older poll never overwrites a newer one (a late or
    retried job), and interfaces that a poll no longer lists are left as they were: their
    ``last_seen`` tells how long they have been gone.
    """
    latest: dict[tuple[int, int], tuple[int, InterfaceSample]] = {}
    for p in (polls if isinstance(polls, Iterable) else [polls]):
        if not p.ok:
            continue
        for iface in p.interfaces:
            key = (p.device_id, iface.ifindex)
            if key not in latest or latest[key][0] <= p.polled_at_us:   # one row per key per statement
                latest[key] = (p.polled_at_us, iface)
    if not latest:
        return 0
    items = list(latest.items())
    cur = conn.execute(_UPSERT, (
        [d for (d, _), _ in items],
        [i for (_, i), _ in items],
        [f.name or "" for _, (_, f) in items],
        [f.speed_bps for _, (_, f) in items],
        [f.oper_status or "unknown" for _, (_, f) in items],
        [from_micros(t) for _, (t, _) in items],
    ))
    return cur.rowcount
