"""A NOC's day in one organization, built the way the demo builds it, for the dashboard's tests.

The simulated fleet (two sites) gets a day of history through the demo's backfill (rollups and
status included), then the last 15 minutes arrive as live probes every 20 s: during them a
distribution switch is down (its whole subtree with it) and a leaf elsewhere loses packets. The
demo's rules are evaluated once, so the switch has its "device down" alert and each device behind
it one suppressed as parent-down. Users of every role share the password :data:`PASSWORD`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg

from analytics.alerts import AlertEngine
from analytics.evaluate import Evaluator
from analytics.rules import load_rules
from cli.demo.backfill import backfill, plan_history
from cli.demo.run import ensure_demo_rules, ensure_demo_targets, seed_fleet
from ingest.loader import Loader
from ingest.rows import MetricRows, to_micros
from ingest.simulator import Fleet, IncidentKind
from netpulse.db import make_engine, make_sessionmaker
from netpulse.inventory import ServiceCheckSpec, add_service_check
from netpulse.metrics import MetricKind
from netpulse.schema import Organization, Role
from netpulse.users import create_organization, create_user

PASSWORD = "correct-horse-battery"
ROLES = (Role.ADMIN, Role.OPERATOR, Role.VIEWER, Role.API_USER)
LIVE_STEP_S = 20
LIVE_SPAN = timedelta(minutes=15)
OUTAGE_AGO = timedelta(minutes=12)
SPIKE = (lambda now: now - timedelta(hours=5), lambda now: now - timedelta(hours=4))  # a latency spike, an anomaly


def email(role: Role | str) -> str:
    return f"{Role(role).value.replace('_', '-')}@acme.test"


@dataclass
class NocData:
    org_id: uuid.UUID
    users: dict[str, uuid.UUID]
    ids: dict[str, int]                      # device name -> id
    parent: str                              # the distribution switch that is down
    behind: list[str]                        # the devices down behind it
    lossy: str                               # the leaf losing packets
    sites: list[str]
    now: datetime
    fleet: Fleet = field(repr=False)


def seed_noc(db_url: str, *, devices: int = 40) -> NocData:
    now = datetime.now(UTC).replace(microsecond=0)
    fleet = Fleet(n_devices=devices, n_sites=2, seed=11, interval_s=LIVE_STEP_S, incidents_per_device_day=0.0,
                  scripted_every_h=0)
    engine = make_engine(db_url, pool_size=1, max_overflow=0)
    try:
        with make_sessionmaker(engine)() as session, session.begin():
            org = create_organization(session, "Acme Networks", "acme")
            users = {Role(r).value: create_user(session, org.id, email(r), PASSWORD, role=r).id for r in ROLES}
            found = session.get(Organization, org.id)
            assert found is not None
            ids = seed_fleet(session, found, fleet)
            org_id = org.id
    finally:
        engine.dispose()

    parents = [d.index for d in fleet.devices if d.group == "Distribution"]
    parent = parents[-1]
    behind = fleet.descendants(parent)
    lossy = next(d.index for d in fleet.devices if d.parent_index == parents[0] and not fleet.descendants(d.index))
    fleet.inject(IncidentKind.OUTAGE, parent, now - OUTAGE_AGO, now + timedelta(hours=2))
    fleet.inject(IncidentKind.PACKET_LOSS, lossy, now - timedelta(minutes=40), now + timedelta(hours=2),
                 magnitude=30.0)
    fleet.inject(IncidentKind.LATENCY_SPIKE, lossy, SPIKE[0](now), SPIKE[1](now), magnitude=6.0)

    live_from = now - LIVE_SPAN
    backfill(db_url, fleet, ids, plan_history(devices, now - timedelta(days=1), live_from), workers=1)
    device_ids = np.array([ids[d.name] for d in fleet.devices], np.int32)
    times = np.arange(to_micros(live_from), to_micros(now), LIVE_STEP_S * 1_000_000, dtype=np.int64)
    loader = Loader()
    lossy_id = ids[fleet.devices[lossy].name]
    with psycopg.connect(db_url, autocommit=True) as conn:
        for t in times:  # one batch per probe round, as the workers deliver them
            rows = fleet.sample(np.array([t]), device_ids=device_ids)
            # The simulator's rare stray loss (a device degraded for one probe) would make the picture
            # depend on the clock: the live minutes keep only the incidents' loss.
            loss = rows.metric_id == int(MetricKind.ICMP_LOSS_PCT)
            stray = loss & (rows.value < 100) & (rows.device_id != lossy_id)
            rows.value[stray] = 0.0
            loader.load(conn, rows)
        ensure_demo_rules(conn, org_id, LIVE_STEP_S)
        ensure_demo_targets(conn, org_id)
        # What the anomaly job stores for the latency spike (the detector is tested elsewhere; the pages
        # read its stored scores): high scores for the spike's minutes of the lossy leaf.
        conn.execute(
            "INSERT INTO anomaly_scores (time, device_id, metric_id, ifindex, score)"
            " SELECT t, %s, %s, 0, 0.9 FROM generate_series(%s::timestamptz, %s::timestamptz, interval '1 minute') t",
            (ids[fleet.devices[lossy].name], int(MetricKind.ICMP_RTT_MS), SPIKE[0](now), SPIKE[1](now)))
        rules = load_rules(conn, org_id)
        findings = Evaluator().evaluate(conn, org_id, rules, now)
        AlertEngine().apply(conn, org_id, findings, now)
        server = next(d for d in fleet.devices if d.group == "Servers" and d.index not in behind)
        conn.execute("INSERT INTO maintenance_windows (organization_id, scope, scope_ref, starts_at, ends_at, "
                     "reason) VALUES (%s, 'device', %s, %s, %s, 'firmware upgrade')",
                     (org_id, server.name, now - timedelta(hours=3), now - timedelta(hours=2)))
    engine = make_engine(db_url, pool_size=1, max_overflow=0)
    try:
        with make_sessionmaker(engine)() as session, session.begin():
            check = add_service_check(session, org_id, ids[server.name],
                                      ServiceCheckSpec(kind="http", url=f"https://{server.name}.acme.test/health"))
            check_id = check.id
    finally:
        engine.dispose()
    check_rows = [(int(t), ids[server.name], int(m), check_id, v) for t in times[-3:] for m, v in (
        (MetricKind.CHECK_OK, 1.0), (MetricKind.HTTP_STATUS, 200.0), (MetricKind.HTTP_RESPONSE_MS, 48.0),
        (MetricKind.TLS_CERT_DAYS, 12.0))]
    with psycopg.connect(db_url, autocommit=True) as conn:
        loader.load(conn, MetricRows.from_tuples(check_rows))
    return NocData(org_id=org_id, users={k: v for k, v in users.items()}, ids=ids,
                   parent=fleet.devices[parent].name, behind=[fleet.devices[i].name for i in behind],
                   lossy=fleet.devices[lossy].name, sites=[s.name for s in fleet.sites], now=now, fleet=fleet)
