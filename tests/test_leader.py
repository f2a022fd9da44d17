"""The scheduler's leader lease and the broker's handling of old and failed messages, against the real
Redis and RabbitMQ."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import dramatiq
import pytest
import redis
from dramatiq import Worker

from tests.factories import telemetry_counts
from workers.broker import REDIS_HEARTBEAT_TIMEOUT_MS
from workers.leader import LeaderLease, leader_status
from workers.scheduler import Scheduler


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url)
    yield c
    c.close()


def _wait(check: Any, timeout_s: float = 10.0) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout_s, "condition not met in time"
        time.sleep(0.02)
    return time.monotonic() - started


def test_one_leader_and_a_waiting_one_that_takes_over(client: redis.Redis,
                                                      log_events: list[dict[str, Any]]) -> None:
    first, second = LeaderLease(client, ttl_ms=1500), LeaderLease(client, ttl_ms=1500)
    assert first.hold() and not second.hold() and not second.hold()
    assert [e["event"] for e in log_events] == ["netpulse.workers.leader_acquired", "netpulse.workers.leader_waiting"]
    status = leader_status(client)
    assert status.holder == first.token and status.ttl_ms is not None and 0 < status.ttl_ms <= 1500
    assert status.as_dict()["status"] == "ok"
    # The leader stops renewing (it died): the lease runs out within its ttl and the other one takes it.
    took = _wait(lambda: second.hold())
    assert took <= 1.6 and leader_status(client).holder == second.token
    assert not first.hold()  # the old leader, if it comes back, waits
    second.release()
    assert leader_status(client).holder is None and leader_status(client).as_dict()["status"] == "no_leader"
    assert first.hold()  # released: taken at once


def test_a_leader_whose_redis_restarted_empty_takes_its_lease_back(client: redis.Redis) -> None:
    lease = LeaderLease(client, ttl_ms=3000)
    assert lease.hold()
    client.flushdb()  # Redis restarted without persistence
    lease._renew_at = 0.0  # the next renewal is due
    assert lease.hold() and leader_status(client).holder == lease.token


def test_only_the_leading_scheduler_ticks(db_url: str, client: redis.Redis) -> None:
    from netpulse.db import make_engine

    ticks: dict[str, list[int]] = {"a": [], "b": []}
    engine = make_engine(db_url, pool_size=1)

    def run(name: str, stop: threading.Event, lease: LeaderLease) -> None:
        sched = Scheduler(engine, send_probe=lambda d, t: None, periodic=[(1, lambda: ticks[name].append(1))])
        sched.run(stop, leader=lease)

    stop_a, stop_b = threading.Event(), threading.Event()
    lease_a, lease_b = LeaderLease(client, ttl_ms=1500), LeaderLease(client, ttl_ms=1500)
    # Daemon threads, stopped in `finally`: a failed assertion must not leave a scheduler running.
    a = threading.Thread(target=run, args=("a", stop_a, lease_a), daemon=True)
    b = threading.Thread(target=run, args=("b", stop_b, lease_b), daemon=True)
    try:
        a.start()
        _wait(lambda: len(ticks["a"]) >= 1)
        b.start()
        time.sleep(2.5)
        assert ticks["b"] == []  # waiting
        stop_a.set()  # a clean stop gives the lease back: the other takes over at its next second
        a.join()
        _wait(lambda: len(ticks["b"]) >= 1, timeout_s=5)
    finally:
        stop_a.set()
        stop_b.set()
        for t in (a, b):
            if t.is_alive():
                t.join(timeout=10)
        engine.dispose()


# --- old and failed messages -------------------------------------------------------------------------

@pytest.fixture(params=["redis", "rabbitmq"])
def broker(request: pytest.FixtureRequest, redis_url: str, client: redis.Redis) -> Iterator[dramatiq.Broker]:
    from workers import broker as broker_mod

    url = request.getfixturevalue("amqp_url") if request.param == "rabbitmq" else redis_url
    b = broker_mod.make_broker(url=url, redis=client, dead_letter_ttl_ms=60_000)
    dramatiq.set_broker(b)
    yield b
    b.close()


def test_an_expired_message_is_dropped_and_counted_and_a_failed_one_dead_lettered(broker: dramatiq.Broker,
                                                                               client: redis.Redis) -> None:
    from dramatiq.common import xq_name

    ran: list[str] = []

    @dramatiq.actor(broker=broker, queue_name="faults_test", max_age=1000, max_retries=1, min_backoff=10,
                    max_backoff=20)
    def job(tag: str) -> None:
        ran.append(tag)
        if tag == "broken":
            raise ValueError("broken on purpose")

    @dramatiq.actor(broker=broker, actor_name="workers.sweep_outbox", queue_name="faults_test", max_retries=1,
                    min_backoff=10, max_backoff=20)
    def periodic() -> None:  # a periodic run that cannot finish: skipped, the next period runs it
        ran.append("periodic")
        raise ConnectionError("database away")

    old = job.message("stale")
    old = old.copy(message_timestamp=old.message_timestamp - 5000)  # queued five seconds ago
    broker.enqueue(old)
    job.send("fresh")
    job.send("broken")
    periodic.send()
    worker = Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        broker.join("faults_test")
        _wait(lambda: len(telemetry_counts(client)) == 3)
    finally:
        worker.stop()
    # The stale one never ran; the broken one and the periodic one were retried once.
    assert sorted(ran) == ["broken", "broken", "fresh", "periodic", "periodic"]
    assert telemetry_counts(client) == {("netpulse_messages_dropped", "job", "expired"): 1,
                                        ("netpulse_messages_dropped", "job", "dead_lettered"): 1,
                                        ("netpulse_messages_dropped", "workers.sweep_outbox", "skipped"): 1}
    if type(broker).__name__ == "_RabbitmqBroker":
        # The dead-letter queue keeps a message for the configured time, not Dramatiq's week.
        # Declaring it again with the same arguments succeeds (RabbitMQ refuses a different TTL).
        declared = broker.channel.queue_declare(queue=xq_name("faults_test"), durable=True,
                                                arguments={"x-message-ttl": 60_000})
        assert declared.method.message_count == 1
        broker.channel.queue_delete(queue=xq_name("faults_test"))
        broker.channel.queue_delete(queue="faults_test")
        broker.channel.queue_delete(queue="faults_test.DQ")
    else:
        assert broker.dead_message_ttl == 60_000 and broker.heartbeat_timeout == REDIS_HEARTBEAT_TIMEOUT_MS
        assert client.zcard(f"netpulse:{xq_name('faults_test')}") == 1
