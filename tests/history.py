"""A scripted history for report tests: a simulated fleet loaded through the real loader (known
outages, parents taking their subtree down), alerts with known timings, SLA targets, a maintenance
window and interface names. Every report test computes its expected figures from this database
with SQL of its own."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg

from ingest.loader import Loader
from ingest.simulator import Fleet
from ingest.status import Hysteresis
from netpulse.rollups import advance_all

TZ = "Africa/Nairobi"  # UTC+03:00 all year
# The report period: two local days, and the two before them (the previous period) also loaded.
START = datetime(2026, 11, 1, 21, tzinfo=UTC)  # 2026-11-02 00:00 in Nairobi
END = START + timedelta(days=2)
STEP_S = 300


@dataclass(frozen=True)
class History:
    org: uuid.UUID
    fleet: Fleet
    ids: list[int]  # database id of fleet device i
    start: datetime
    end: datetime
    alerts: dict[str, uuid.UUID]  # label -> alert id

    def name(self, index: int) -> str:
        return self.fleet.devices[index].name


def _insert(conn: psycopg.Connection, table: str, org: uuid.UUID, name: str, **extra: object) -> int:
    columns = ["organization_id", "name", "slug", *extra]
    values = [org, name, name.lower().replace(" ", "-"), *extra.values()]
    row = conn.execute(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"
                       " RETURNING id", values).fetchone()
    assert row is not None
    return int(row[0])


def seed(conn: psycopg.Connection, *, n_devices: int = 30, n_sites: int = 3) -> History:
    org = conn.execute("INSERT INTO organizations (name, slug, time_zone) VALUES ('Acme Networks', 'acme', %s)"
                       " RETURNING id", (TZ,)).fetchone()[0]
    fleet = Fleet(n_devices=n_devices, n_sites=n_sites, seed=11, interval_s=STEP_S, incidents_per_device_day=0.1)
    sites = {s.name: _insert(conn, "sites", org, s.name, time_zone=TZ) for s in fleet.sites}
    groups = {g: _insert(conn, "device_groups", org, g) for g in sorted({d.group for d in fleet.devices})}
    tags = {t: _insert(conn, "tags", org, t) for t in sorted({t for d in fleet.devices for t in d.tags})}
    ids: list[int] = []
    for d in fleet.devices:
        row = conn.execute(
            "INSERT INTO devices (organization_id, name, address, device_type, site_id, group_id, parent_id, simulated)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, true) RETURNING id",
            (org, d.name, d.address, d.device_type, sites[d.site], groups[d.group],
             ids[d.parent_index] if d.parent_index is not None else None)).fetchone()
        ids.append(int(row[0]))
        for t in d.tags:
            conn.execute("INSERT INTO device_tags (device_id, tag_id) VALUES (%s, %s)", (ids[-1], tags[t]))
    for d in fleet.devices[:6]:
        if d.has_interface:
            conn.execute("INSERT INTO interfaces (device_id, ifindex, name, speed_bps, oper_status, last_seen)"
                         " VALUES (%s, 1, 'uplink Gi0/1', %s, 'up', %s)", (ids[d.index], d.if_speed_bps, END))

    # One failed probe is an outage: every incident shows at the 5-minute grid, exactly.
    loader = Loader(hysteresis=Hysteresis(down_after=1, up_after=1))
    times = fleet.aligned_times(START - timedelta(days=2, hours=2), END + timedelta(hours=1))
    device_ids = np.array(ids, np.int32)
    for i in range(0, len(times), 96):
        loader.load(conn, fleet.sample(times[i:i + 96], device_ids=device_ids))
    advance_all(conn, END + timedelta(hours=2))

    conn.execute("INSERT INTO sla_targets (organization_id, scope, scope_ref, target_pct, period) VALUES"
                 " (%s, 'all', NULL, 99.5, 'month'), (%s, 'site', %s, 99.95, 'month'),"
                 " (%s, 'device', %s, 99.99, 'week')",
                 (org, org, fleet.sites[0].name, org, fleet.devices[0].name))
    # Maintenance on the last site's first device for the first three hours.
    conn.execute("INSERT INTO maintenance_windows (organization_id, scope, scope_ref, starts_at, ends_at, reason)"
                 " VALUES (%s, 'device', %s, %s, %s, 'patching')",
                 (org, fleet.devices[-1].name, START, START + timedelta(hours=3)))
    return History(org, fleet, ids, START, END, _alerts(conn, org, fleet, ids))


def _alerts(conn: psycopg.Connection, org: uuid.UUID, fleet: Fleet, ids: list[int]) -> dict[str, uuid.UUID]:
    rules = {name: conn.execute("INSERT INTO alert_rules (organization_id, name, kind, metric, comparator, value,"
                                " severity) VALUES (%s, %s, 'threshold', 'icmp_loss_pct', '>=', 8, %s) RETURNING id",
                                (org, name, severity)).fetchone()[0]
             for name, severity in (("packet loss", "critical"), ("link saturation", "warning"),
                                    ("=cmd|' /C calc'!A0", "info"))}
    m = timedelta(minutes=1)
    # label: (rule, severity, device index or None, opened (minutes after START), acked after, resolved after,
    #         suppressed reason, flapping, occurrences)
    script: dict[str, tuple[str | None, str, int | None, int, int | None, int | None, str | None, bool, int]] = {
        "loss-1": ("packet loss", "critical", 0, 30, 5, 40, None, False, 3),
        "loss-2": ("packet loss", "critical", 0, 600, 12, 95, None, False, 1),
        "loss-3": ("packet loss", "critical", 11, 700, None, 30, None, False, 2),
        "loss-child": ("packet loss", "critical", 12, 701, None, 30, "parent_down", False, 1),
        "sat-1": ("link saturation", "warning", 1, 120, 45, 300, None, False, 7),
        "sat-2": ("link saturation", "warning", 1, 1500, None, None, None, False, 4),   # still open
        "sat-3": ("link saturation", "warning", 21, 2000, 3, 2900, None, False, 2),      # resolved after the end
        "flap-1": ("packet loss", "critical", 22, 900, None, 2, None, True, 1),
        "flap-2": ("packet loss", "critical", 22, 910, None, 2, None, True, 1),
        "maint": ("packet loss", "critical", len(fleet.devices) - 1, 60, None, 20, "maintenance", False, 1),
        "info-1": ("=cmd|' /C calc'!A0", "info", 5, 1000, 1, 1, None, False, 1),
        "sla": (None, "critical", None, 1200, 30, 600, None, False, 5),
        "before": ("packet loss", "critical", 0, -300, 4, 20, None, False, 1),            # previous period
        "after": ("packet loss", "critical", 0, 2 * 1440 + 10, None, None, None, False, 1),  # after the end
    }
    out = {}
    for label, (rule, severity, device, opened, acked, resolved, reason, flapping, occurrences) in script.items():
        created = START + opened * m
        row = conn.execute(
            "INSERT INTO alerts (organization_id, device_id, rule_id, alert_type, severity, status, fingerprint,"
            " message, occurrences, acknowledged, acknowledged_at, resolved, resolved_at, created_at, last_seen,"
            " started_at, suppressed, suppressed_reason, flapping) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
            " %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (org, ids[device] if device is not None else None, rules.get(rule) if rule else None,
             rule or "sla_breach", severity,
             "resolved" if resolved is not None else "acknowledged" if acked is not None else "firing",
             f"{label}:{opened}", f"{label} happened", occurrences, acked is not None,
             created + acked * m if acked is not None else None, resolved is not None,
             created + resolved * m if resolved is not None else None, created, created, created,
             reason is not None, reason, flapping)).fetchone()
        out[label] = row[0]
    return out
