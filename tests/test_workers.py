"""Actors and the scheduler against a real Redis broker and the real database."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import psycopg
import pytest
from dramatiq import Worker

from ingest.icmp import icmp_permitted
from ingest.rows import MetricRows, to_micros
from ingest.simulator import Fleet
from netpulse.db import make_engine
from netpulse.metrics import MetricKind
from tests.factories import make_org
from workers import broker as broker_mod
from workers import runtime
from workers.scheduler import Scheduler

FLEET = Fleet(n_devices=15, n_sites=2, seed=11)


@pytest.fixture
def broker(redis_url: str, db_url: str) -> Iterator[object]:
    privileged = icmp_permitted(True)
    runtime.configure(runtime.Runtime(db_url, fleet=FLEET, icmp_privileged=privileged,
                                      icmp_allowed=privileged or icmp_permitted(False)))
    b = broker_mod.install(broker_mod.make_broker(url=redis_url))
    worker = Worker(b, worker_threads=2, worker_timeout=100)
    worker.start()
    yield b
    worker.stop()
    b.close()


def _devices(conn: psycopg.Connection) -> list[dict]:
    org = make_org(conn, "wk")
    out = []
    for d in FLEET.devices:
        i = conn.execute("INSERT INTO devices (organization_id, name, address, device_type, simulated) "
                         "VALUES (%s, %s, %s, %s, true) RETURNING id", (org, d.name, d.address, d.device_type)
                         ).fetchone()[0]
        out.append({"id": i, "name": d.name, "address": d.address, "simulated": True, "count": 2,
                    "timeout_s": 1.0})
    i = conn.execute("INSERT INTO devices (organization_id, name, address, device_type) "
                     "VALUES (%s, 'localhost', '127.0.0.1', 'server') RETURNING id", (org,)).fetchone()[0]
    out.append({"id": i, "name": "localhost", "address": "127.0.0.1", "simulated": False, "count": 2,
                "timeout_s": 1.0})
    return out


def test_probe_batch_feeds_the_loader_through_redis(broker, db: psycopg.Connection) -> None:
    from workers.actors import LOADS, PROBES, probe_batch

    devices = _devices(db)
    tick = to_micros(datetime.now(UTC).replace(microsecond=0))
    probe_batch.send(devices, tick)
    broker.join(PROBES)
    broker.join(LOADS)
    ids = np.array([d["id"] for d in devices[:-1]], np.int32)
    expected = FLEET.sample(np.array([tick]), device_ids=ids)
    got = db.execute("SELECT count(*) FROM metrics WHERE device_id = ANY(%s)", (ids.tolist(),)).fetchone()[0]
    assert got == len(expected)
    local = devices[-1]["id"]
    available = db.execute("SELECT value FROM metrics WHERE device_id = %s AND metric_id = %s",
                           (local, int(MetricKind.AVAILABLE))).fetchone()
    assert available == (1.0,)
    status = db.execute("SELECT oper_status, last_seen FROM devices WHERE id = %s", (local,)).fetchone()
    assert status[0] == "up" and status[1] is not None


def test_a_redelivered_load_message_stores_nothing_twice(broker, db: psycopg.Connection) -> None:
    from workers.actors import LOADS, load_batch

    devices = _devices(db)
    ids = np.array([d["id"] for d in devices[:-1]], np.int32)
    rows = FLEET.sample(to_micros(datetime(2026, 11, 20, 10, tzinfo=UTC)) + np.arange(3) * 60_000_000,
                        device_ids=ids)
    message = rows.to_message()
    load_batch.send(message)
    load_batch.send(message)
    broker.join(LOADS)
    assert db.execute("SELECT count(*) FROM metrics").fetchone()[0] == len(rows)
    assert db.execute("SELECT sum(count) FROM metrics_1m").fetchone()[0] == len(rows)
    assert len(MetricRows.from_message(message)) == len(rows)


def test_scheduler_sends_batches_of_the_configured_size(db_url: str, db: psycopg.Connection) -> None:
    org = make_org(db, "sch")
    db.execute("INSERT INTO devices (organization_id, name, address, device_type) "
               "SELECT %s, 'd' || g, '10.' || g, 'router' FROM generate_series(1, 601) g", (org,))
    db.execute("UPDATE devices SET probe_enabled = false WHERE name = 'd1'")
    sent: list[tuple[int, int]] = []
    periodic: list[int] = []
    sched = Scheduler(make_engine(db_url), send_probe=lambda devs, t: sent.append((len(devs), t)),
                      periodic=[(3600, lambda: periodic.append(1))], batch_size=250)
    assert sched.tick(1_000_000) == 3
    assert [n for n, _ in sent] == [250, 250, 100]
    assert sched.tick(2_000_000) == 3 and periodic == [1]  # hourly job sent once
    assert sched.stats.devices == 1200


def test_scheduler_skips_and_counts_late_ticks(db_url: str, db: psycopg.Connection) -> None:
    make_org(db, "late")
    sched = Scheduler(make_engine(db_url), send_probe=lambda devs, t: None, interval_s=1)
    original = sched.tick

    def stalling_tick(t: int) -> int:
        result = original(t)
        if len(sched_ticks) == 0:
            time.sleep(2.5)  # a stall: the next two ticks come due meanwhile
        sched_ticks.append(t)
        return result

    sched_ticks: list[int] = []
    sched.tick = stalling_tick  # type: ignore[method-assign]
    stop = threading.Event()
    thread = threading.Thread(target=sched.run, args=(stop,))
    thread.start()
    deadline = time.monotonic() + 10
    while len(sched_ticks) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join()
    assert sched.stats.late_ticks >= 1
    assert len(set(sched_ticks)) == len(sched_ticks)  # no tick enqueued twice
    gaps = np.diff(sched_ticks)
    assert gaps.max() >= 2_000_000  # the missed ticks were skipped, not replayed in a burst
