"""Real probes through the workers' probe path into device status, on the namespace test network:
a host that goes away is down after N failed probes and up again after M answered ones."""

from __future__ import annotations

import psycopg

from ingest.icmp import icmp_permitted
from ingest.status import Hysteresis
from tests.factories import make_org, utc
from tests.netlab import netns_lab
from workers.probes import network_rows
from workers.runtime import Runtime

T0 = utc(2026, 11, 20, 12)
STEP_US = 10_000_000


def test_a_host_going_away_is_down_after_n_failures_and_up_after_m_answers(db_url: str,
                                                                           db: psycopg.Connection) -> None:
    with netns_lab() as lab:
        org = make_org(db)
        address = lab.hosts["fast"]
        device = db.execute("INSERT INTO devices (organization_id, name, address, ip_address, device_type) "
                            "VALUES (%s, 'edge', %s, %s, 'router') RETURNING id", (org, address, address)).fetchone()[0]
        rt = Runtime(db_url, icmp_privileged=icmp_permitted(True), hysteresis=Hysteresis(down_after=3, up_after=2))
        probe = [{"id": device, "name": "edge", "address": address, "simulated": False, "count": 1,
                  "timeout_s": 0.5, "interval_s": 10}]
        seen: list[tuple[bool, str]] = []
        tick = iter(range(100))

        def step() -> str:
            t = int(T0.timestamp() * 1e6) + next(tick) * STEP_US
            rows = network_rows(rt, probe, t)
            answered = bool(rows.value[rows.metric_id == 13][0])
            rt.loader.load(db, rows)
            status = db.execute("SELECT oper_status FROM devices WHERE id = %s", (device,)).fetchone()[0]
            seen.append((answered, status))
            return status

        assert [step() for _ in range(2)] == ["up", "up"]
        lab.set_down("fast", True)
        assert [step() for _ in range(4)] == ["up", "up", "down", "down"]
        lab.set_down("fast", False)
        assert [step() for _ in range(3)] == ["down", "up", "up"]
        assert [a for a, _ in seen] == [True, True, False, False, False, False, True, True, True], seen
        events = db.execute("SELECT time, confirmed_at, from_status, to_status FROM device_status_events "
                            "WHERE device_id = %s ORDER BY time", (device,)).fetchall()
        at = [T0.timestamp() + k * 10 for k in range(9)]
        assert [(e[0].timestamp(), e[1].timestamp(), e[2], e[3]) for e in events] == [
            (at[0], at[0], "unknown", "up"), (at[2], at[4], "up", "down"), (at[6], at[7], "down", "up")]
