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
from tests.factories import make_org, telemetry_counts
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


def _many_devices(db: psycopg.Connection, n: int) -> None:
    org = make_org(db, "sch")
    db.execute("INSERT INTO devices (organization_id, name, address, device_type) "
               "SELECT %s, 'd' || g, '10.0.' || (g / 250) || '.' || (g %% 250), 'router' FROM generate_series(1, %s) g",
               (org, n))


def test_scheduler_spreads_each_device_over_its_interval_in_batches(db_url: str, db: psycopg.Connection) -> None:
    _many_devices(db, 601)
    db.execute("UPDATE devices SET probe_enabled = false WHERE name = 'd1'")
    db.execute("UPDATE devices SET probe_interval_s = 10 WHERE name = 'd2'")
    sent: list[tuple[list[int], int]] = []
    periodic: list[int] = []
    sched = Scheduler(make_engine(db_url), send_probe=lambda devs, t: sent.append(([d["id"] for d in devs], t)),
                      periodic=[(3600, lambda: periodic.append(1))], batch_size=4, interval_s=60)
    t0 = 1_800_000_000  # on a minute boundary
    for s in range(t0, t0 + 120):
        sched.tick(s)
    per_device: dict[int, list[int]] = {}
    per_second: dict[int, int] = {}
    for ids, t in sent:
        assert len(ids) <= 4
        per_second[t] = per_second.get(t, 0) + len(ids)
        for i in ids:
            per_device.setdefault(i, []).append(t)
    d2 = db.execute("SELECT id FROM devices WHERE name = 'd2'").fetchone()[0]
    assert len(per_device) == 600  # d1 is disabled
    assert all(np.all(np.diff(ts) == 60_000_000) and len(ts) == 2 for i, ts in per_device.items() if i != d2)
    assert len(per_device[d2]) == 12 and set(np.diff(per_device[d2])) == {10_000_000}
    # Spread: probes land on (nearly) every second of the interval, none carries a large share.
    assert len(per_second) >= 110 and max(per_second.values()) <= 30
    assert sched.stats.late_probes == 0 and periodic == [1]
    assert sched.stats.devices == sum(len(ts) for ts in per_device.values())


def test_a_device_still_in_flight_is_not_sent_again(db_url: str, db: psycopg.Connection, redis_url: str) -> None:
    import redis

    from workers.leases import ProbeLeases

    _many_devices(db, 30)
    leases = ProbeLeases(redis.Redis.from_url(redis_url))
    sent: list[tuple[list[int], int]] = []
    sched = Scheduler(make_engine(db_url), send_probe=lambda devs, t: sent.append(([d["id"] for d in devs], t)),
                      interval_s=5, leases=leases)
    t0 = 1_800_000_000
    for s in range(t0, t0 + 5):
        sched.tick(s)
    first_interval = list(sent)
    first = {i for ids, _ in sent for i in ids}
    assert len(first) == 30 and sched.stats.late_probes == 0
    # Nobody released the leases (workers are behind): the next interval sends nothing, counts 30 late.
    sent.clear()
    for s in range(t0 + 5, t0 + 10):
        sched.tick(s)
    assert sent == [] and sched.stats.late_probes == 30
    # The worker finishes the first interval's probes and gives their leases back: due again.
    assert leases.release(list(first), 0) == 0  # another tick's token releases nothing
    assert sum(leases.release(ids, t) for ids, t in first_interval) == 30
    assert not any(leases.held(sorted(first)))
    for s in range(t0 + 10, t0 + 15):
        sched.tick(s)
    assert {i for ids, _ in sent for i in ids} == first


def test_a_stale_probe_message_is_dropped_and_its_leases_given_back(broker, db: psycopg.Connection,
                                                                     redis_url: str) -> None:
    import redis

    from netpulse.telemetry import Telemetry
    from workers.actors import LOADS, PROBES, probe_batch
    from workers.leases import ProbeLeases

    devices = [dict(d, interval_s=60) for d in _devices(db)]
    client = redis.Redis.from_url(redis_url)
    leases = ProbeLeases(client)
    runtime.current().leases = leases
    runtime.current().telemetry = Telemetry(client)
    old_tick = to_micros(datetime.now(UTC).replace(microsecond=0)) - 120_000_000  # two intervals ago
    assert all(leases.acquire([d["id"] for d in devices], old_tick, 600_000))
    probe_batch.send(devices, old_tick)
    broker.join(PROBES)
    broker.join(LOADS)
    assert db.execute("SELECT count(*) FROM metrics").fetchone()[0] == 0
    assert not any(leases.held([d["id"] for d in devices]))
    # Dropped and counted, not kept.
    assert telemetry_counts(client)[("netpulse_probes_skipped", "stale")] == len(devices)


def test_scheduler_skips_and_counts_late_ticks(db_url: str, db: psycopg.Connection) -> None:
    _many_devices(db, 20)
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
    assert len(set(sched_ticks)) == len(sched_ticks)  # no tick run twice
    assert max(np.diff(sched_ticks)) >= 2  # the missed ticks were skipped, not replayed in a burst
    # Each device was sent once per tick that ran; its missed slots were counted, not sent.
    assert sched.stats.devices == 20 * len(sched_ticks)
    assert sched.stats.late_probes >= 20


def test_a_worker_can_answer_for_a_simulated_fleet() -> None:
    """``netpulse worker --simulated-fleet`` (load tests): the same seeded network the devices came from."""
    from click.testing import CliRunner

    from cli import main
    from cli.ops import _fleet

    fleet = _fleet("devices=40,sites=2,seed=7,interval=30")
    assert isinstance(fleet, Fleet)
    assert [d.name for d in fleet.devices] == [d.name for d in Fleet(n_devices=40, n_sites=2, seed=7,
                                                                       interval_s=30).devices]
    for bad, words in [("devices=ten", "is not one of"), ("colour=3", "is not one of"),
                       ("devices=0", "n_devices=0")]:
        result = CliRunner().invoke(main, ["worker", "--simulated-fleet", bad])
        assert result.exit_code == 1 and words in result.stderr and "Traceback" not in result.output
