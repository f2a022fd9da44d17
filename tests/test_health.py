"""/alive, /ready, /health and /healthz against the real PostgreSQL, Redis and a Redis Dramatiq broker:
what each says, when it is 503, and that no answer carries a host, a port or a driver's message."""

from __future__ import annotations

import threading
import time

import dramatiq
import psycopg
import pytest
import redis
from flask import Flask
from sqlalchemy import Engine

from dashboard.app import create_app
from netpulse.config import load_settings
from netpulse.db import make_engine
from netpulse.health import Check, CheckResult, run_checks
from tests.conftest import REDIS_URL
from workers.broker import make_broker
from workers.queues import queue_check, queue_depths

SECRET = "test-secret-key-0123456789abcdef"
DEAD_DB = "postgresql://netpulse_user@127.0.0.1:1/netpulse_secret_db"   # nothing listens on port 1
DEAD_REDIS = "redis://127.0.0.1:1/0"
LEAKS = ("127.0.0.1", "port", "netpulse_user", "netpulse_secret_db", "refused", "Error", "psycopg")


def build(db_url: str, engine: Engine, **kw: object) -> Flask:
    return create_app(load_settings(database_url=db_url,
                                    redis_url=REDIS_URL, secret_key=SECRET, env="testing"), engine=engine, **kw)


def no_leak(text: str) -> None:
    for word in LEAKS:
        assert word not in text, f"{word!r} leaked into a public answer: {text}"


def test_alive_ready_and_health_when_everything_answers(db_url: str, engine: Engine, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    broker = make_broker(client=client)
    app = build(db_url, engine, redis_client=client, checks=[queue_check(broker, 100)],
                queue_depths=lambda: {q: d.as_dict() for q, d in queue_depths(broker).items()})
    http = app.test_client()
    alive = http.get("/alive")
    assert (alive.status_code, alive.get_json()) == (200, {"status": "alive"})
    ready = http.get("/ready")
    assert ready.status_code == 200
    body = ready.get_json()
    assert body["status"] == "ready" and set(body["checks"]) == {"database", "redis", "migrations"}
    assert body["checks"]["migrations"] == {"status": "ok", "pending": 0}
    health = http.get("/health")
    assert health.status_code == 200 and health.headers["Cache-Control"] == "no-store"
    body = health.get_json()
    assert body["status"] == "healthy"
    assert set(body["checks"]) == {"database", "redis", "migrations", "queues"}
    assert body["checks"]["database"]["status"] == "ok" and body["checks"]["database"]["latency_ms"] >= 0
    assert body["checks"]["queues"]["queues"]["probes"] == {"ready": 0, "in_progress": 0, "delayed": 0, "dead": 0}
    assert http.get("/healthz").get_json() == {"status": "healthy"}


def test_database_down_is_503_everywhere_but_alive_and_says_nothing_of_the_server() -> None:
    dead = make_engine(DEAD_DB)
    try:
        app = create_app(load_settings(database_url=DEAD_DB,
                                    redis_url=REDIS_URL, secret_key=SECRET, env="testing"), engine=dead)
        http = app.test_client()
        answers = {path: http.get(path) for path in ("/alive", "/ready", "/health", "/healthz")}
    finally:
        dead.dispose()
    assert answers["/alive"].status_code == 200
    for path in ("/ready", "/health", "/healthz"):
        assert answers[path].status_code == 503, path
        no_leak(answers[path].get_data(as_text=True))
    assert answers["/health"].get_json()["checks"]["database"] == {"status": "fail", "error": "unavailable"}
    assert answers["/healthz"].get_json() == {"status": "unhealthy"}


def test_redis_down_makes_health_and_ready_503(db_url: str, engine: Engine) -> None:
    dead = redis.Redis.from_url(DEAD_REDIS, socket_connect_timeout=1, socket_timeout=1)
    http = build(db_url, engine, redis_client=dead).test_client()
    for path in ("/health", "/ready"):
        r = http.get(path)
        assert r.status_code == 503
        checks = r.get_json()["checks"]
        assert checks["redis"] == {"status": "fail", "error": "unavailable"}
        assert checks["database"]["status"] == "ok"
        no_leak(r.get_data(as_text=True))


def test_a_backlog_in_a_queue_makes_health_503_but_not_ready(db_url: str, engine: Engine, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    broker = make_broker(client=client)
    for i in range(3):   # no worker runs: the messages wait
        broker.enqueue(dramatiq.Message(queue_name="probes", actor_name="workers.probe_batch", args=([], i),
                                        kwargs={}, options={}))
    broker.enqueue(dramatiq.Message(queue_name="loads", actor_name="workers.load_batch", args=({},), kwargs={},
                                    options={}), delay=60_000)
    depths = queue_depths(broker)
    assert depths["probes"].ready == 3 and depths["loads"].delayed == 1 and depths["alerting"].ready == 0
    http = build(db_url, engine, redis_client=client, checks=[queue_check(broker, max_ready=2)]).test_client()
    health = http.get("/health")
    assert health.status_code == 503
    queues = health.get_json()["checks"]["queues"]
    assert queues["status"] == "fail" and queues["max_ready"] == 2
    assert queues["queues"]["probes"]["ready"] == 3 and queues["queues"]["loads"]["delayed"] == 1
    assert http.get("/ready").status_code == 200   # a backlog is not a reason to stop serving pages


def test_ready_is_503_while_a_migration_is_pending(db_url: str, engine: Engine, db: psycopg.Connection) -> None:
    row = db.execute("SELECT version, name, variant, checksum, applied_at FROM netpulse_migrations "
                     "ORDER BY version DESC LIMIT 1").fetchone()
    assert row is not None
    db.execute("DELETE FROM netpulse_migrations WHERE version = %s", (row[0],))
    try:
        r = build(db_url, engine).test_client().get("/ready")
    finally:
        db.execute("INSERT INTO netpulse_migrations (version, name, variant, checksum, applied_at) "
                   "VALUES (%s, %s, %s, %s, %s)", row)
    assert r.status_code == 503
    body = r.get_json()
    assert body["status"] == "not_ready" and body["checks"]["migrations"] == {"status": "fail", "pending": 1}


def test_checks_added_by_a_process_show_in_health(db_url: str, engine: Engine) -> None:
    lease = Check("scheduler_lease", lambda: CheckResult(False, {"holder": None}))
    app = build(db_url, engine, checks=[lease])
    app.extensions["netpulse.health_checks"].append(Check("extra", lambda: CheckResult(True, {"n": 1})))
    r = app.test_client().get("/health")
    assert r.status_code == 503
    checks = r.get_json()["checks"]
    assert checks["scheduler_lease"] == {"status": "fail", "holder": None} and checks["extra"] == {"status": "ok",
                                                                                                      "n": 1}
    assert app.test_client().get("/ready").status_code == 200   # not marked ready=True


def test_health_names_the_scheduler_lease_holder_and_fails_after_a_grace_without_one(
        db_url: str, engine: Engine, redis_url: str) -> None:
    """A real scheduler lease in Redis: /health names its holder by the token's random part (never the
    host or pid), shows a missing leader at once and fails once it has been missing for the grace;
    /ready never asks (the web serves without a scheduler)."""
    from workers.leader import LeaderLease, leader_check

    client = redis.Redis.from_url(redis_url)
    clock = [1000.0]
    app = build(db_url, engine, redis_client=client, checks=[leader_check(client, grace_s=60, clock=lambda: clock[0])])
    http = app.test_client()

    def scheduler() -> tuple[int, dict[str, object]]:
        r = http.get("/health")
        return r.status_code, r.get_json()["checks"]["scheduler"]

    lease = LeaderLease(client, ttl_ms=15_000, identity="noc-sched-1.internal:4242:3f2a9c1b")
    assert lease.hold()
    code, check = scheduler()
    assert code == 200 and check["status"] == "ok" and check["leader"] == "3f2a9c1b"
    assert 0 < check["lease_ttl_ms"] <= 15_000  # type: ignore[operator]
    assert "noc-sched-1" not in http.get("/health").get_data(as_text=True) and "4242" not in str(check)

    lease.release()  # the scheduler stopped: nobody leads
    assert scheduler() == (200, {"status": "ok", "leader": None, "no_leader_for_s": 0.0, "grace_s": 60})
    clock[0] += 59
    assert scheduler()[0] == 200  # within the grace a standby takes over, or a scheduler starts
    clock[0] += 2
    code, check = scheduler()
    assert (code, check) == (503, {"status": "fail", "leader": None, "no_leader_for_s": 61.0, "grace_s": 60})
    assert http.get("/healthz").status_code == 503 and http.get("/ready").status_code == 200

    standby = LeaderLease(client, ttl_ms=15_000)  # another scheduler takes the lease: healthy again
    assert standby.hold()
    code, check = scheduler()
    assert code == 200 and check["leader"] == standby.token.rsplit(":", 1)[1]
    clock[0] += 10
    standby.release()
    assert scheduler()[1]["no_leader_for_s"] == 0.0  # a new absence counts from its own start
    client.close()


def test_a_check_that_hangs_fails_as_a_timeout_without_holding_the_answer() -> None:
    release = threading.Event()

    def hang() -> CheckResult:
        release.wait(10)
        return CheckResult(True)

    started = time.monotonic()
    try:
        report = run_checks([Check("slow", hang), Check("fast", lambda: CheckResult(True))], timeout_s=0.3)
    finally:
        release.set()
    assert time.monotonic() - started < 5
    assert report.as_dict() == {"status": "unhealthy", "checks": {"slow": {"status": "fail", "error": "timeout"},
                                                                  "fast": {"status": "ok"}}}


def test_the_queue_list_is_every_queue_the_actors_use(redis_url: str) -> None:
    from workers.broker import install
    from workers.queues import QUEUES

    b = install(make_broker(url=redis_url))
    try:
        assert set(b.get_declared_queues()) == set(QUEUES)
    finally:
        b.close()


def test_queue_depths_on_rabbitmq() -> None:
    """The RabbitMQ broker's counts (runs where the rabbitmq extra, pika, is installed)."""
    import uuid

    pytest.importorskip("pika")
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    broker = RabbitmqBroker(url="amqp://guest:guest@127.0.0.1:5672/", middleware=[])
    queue = f"netpulse-test-{uuid.uuid4().hex[:8]}"
    try:
        broker.declare_queue(queue)
        for i in range(2):
            broker.enqueue(dramatiq.Message(queue_name=queue, actor_name="a", args=(i,), kwargs={}, options={}))
        broker.enqueue(dramatiq.Message(queue_name=queue, actor_name="a", args=(), kwargs={}, options={}),
                       delay=60_000)
        deadline = time.monotonic() + 10
        while True:   # RabbitMQ's counts catch up with the publishes a moment later
            depth = queue_depths(broker, (queue,))[queue]
            if (depth.ready, depth.delayed) == (2, 1) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert (depth.ready, depth.delayed, depth.dead) == (2, 1, 0)
    finally:
        for name in (queue, f"{queue}.DQ", f"{queue}.XQ"):
            broker.channel.queue_delete(name)
        broker.close()
