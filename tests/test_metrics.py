"""/metrics: the Prometheus text a scrape returns, from this process, from the workers' counters in Redis
(written by a real in-process Dramatiq worker on the Redis broker) and from scrape-time reads."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import redis
from dramatiq import Message, Worker
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from dashboard.app import create_app
from ingest.icmp import icmp_permitted
from ingest.rows import to_micros
from netpulse import telemetry
from netpulse.config import load_settings
from tests.conftest import REDIS_URL
from tests.factories import make_org
from workers import broker as broker_mod
from workers import runtime
from workers.queues import queue_depths

SECRET = "test-secret-key-0123456789abcdef"
TOKEN = "scrape-token-0123456789abcdef"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def build(db_url: str, engine: Engine, client: object = None, broker: object = None, **settings: object) -> Flask:
    depths = (lambda: {q: d.as_dict() for q, d in queue_depths(broker).items()}) if broker is not None else None
    return create_app(load_settings(database_url=db_url,
                                    redis_url=REDIS_URL, secret_key=SECRET, env="testing", **settings),
                      engine=engine, redis_client=client, queue_depths=depths)


def scrape(app: Flask, headers: dict[str, str] | None = None) -> Samples:
    r = app.test_client().get("/metrics", headers=headers or {})
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.headers["Content-Type"].startswith("text/plain; version=")
    out: Samples = {}
    for family in text_string_to_metric_families(r.get_data(as_text=True)):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_http_latency_is_labelled_by_route_template(db_url: str, engine: Engine, db: psycopg.Connection) -> None:
    app = build(db_url, engine)
    http = app.test_client()
    for device_id in (12345, 67890):
        assert http.get(f"/api/v1/devices/{device_id}").status_code == 401
    http.get("/no/such/page/anywhere")
    samples = scrape(app)
    count = value(samples, "netpulse_http_request_duration_seconds_count", method="GET",
                  route="/api/v1/devices/<device_id>", status="401")
    assert count == 2
    routes = {dict(labels).get("route") for name, labels in samples if name.startswith("netpulse_http_request")}
    assert not any("12345" in r or "67890" in r or "/no/such" in r for r in routes if r)
    assert value(samples, "process_cpu_seconds_total") is not None


def test_scrape_time_figures_from_postgresql_and_the_broker(db_url: str, engine: Engine, db: psycopg.Connection,
                                                            redis_url: str) -> None:
    org = make_org(db)
    for severity, n in (("critical", 2), ("warning", 1)):
        for _ in range(n):
            db.execute("INSERT INTO alerts (organization_id, alert_type, severity, fingerprint, message) "
                       "VALUES (%s, 't', %s, %s, 'm')", (org, severity, uuid.uuid4().hex))
    db.execute("INSERT INTO alerts (organization_id, alert_type, severity, fingerprint, message, status, resolved) "
               "VALUES (%s, 't', 'critical', 'old', 'm', 'resolved', true)", (org,))
    client = redis.Redis.from_url(redis_url)
    broker = broker_mod.make_broker(client=client)
    broker.enqueue(Message(queue_name="probes", actor_name="workers.probe_batch", args=([], 0), kwargs={},
                           options={}))
    samples = scrape(build(db_url, engine, client, broker))
    assert value(samples, "netpulse_alerts_open", severity="critical") == 2
    assert value(samples, "netpulse_alerts_open", severity="warning") == 1
    assert value(samples, "netpulse_alerts_open", severity="info") == 0
    assert value(samples, "netpulse_queue_messages", queue="probes", state="ready") == 1
    assert value(samples, "netpulse_queue_messages", queue="loads", state="ready") == 0
    assert value(samples, "netpulse_notification_deliveries_queued") == 0
    for source in ("postgresql", "redis", "broker"):
        assert value(samples, "netpulse_metrics_source_up", source=source) == 1


@pytest.mark.plain_storage(reason="the rollup lag is arranged through the plain variant's watermark")
def test_scrape_reports_the_rollup_lag(db_url: str, engine: Engine, db: psycopg.Connection) -> None:
    db.execute("UPDATE rollup_watermark SET materialized_until = %s", (datetime.now(UTC) - timedelta(seconds=90),))
    lag = value(scrape(build(db_url, engine)), "netpulse_rollup_lag_seconds")
    assert lag is not None and 90 <= lag < 600


@pytest.fixture
def worker(db_url: str, redis_url: str) -> Iterator[tuple[object, redis.Redis]]:
    """An in-process Dramatiq worker on the Redis broker, its runtime keeping counters in Redis."""
    client = redis.Redis.from_url(redis_url)
    privileged = icmp_permitted(True)
    runtime.configure(runtime.Runtime(db_url, icmp_privileged=privileged,
                                      icmp_allowed=privileged or icmp_permitted(False), redis=client))
    b = broker_mod.install(broker_mod.make_broker(url=redis_url))
    w = Worker(b, worker_threads=2, worker_timeout=100)
    w.start()
    yield b, client
    w.stop()
    b.close()


def test_worker_counters_reach_the_scrape(db_url: str, engine: Engine, db: psycopg.Connection, worker) -> None:
    from workers.actors import LOADS, PROBES, probe_batch

    broker, client = worker
    if not icmp_permitted(True) and not icmp_permitted(False):
        pytest.skip("ICMP is not permitted here: the probe of 127.0.0.1 would be a TCP connect")
    org = make_org(db)
    device = db.execute("INSERT INTO devices (organization_id, name, address, device_type) "
                        "VALUES (%s, 'localhost', '127.0.0.1', 'server') RETURNING id", (org,)).fetchone()[0]
    db.execute("INSERT INTO service_checks (organization_id, device_id, kind, name, port) "
               "VALUES (%s, %s, 'tcp', 'closed', %s)", (org, device, closed_port()))
    tick = to_micros(datetime.now(UTC).replace(microsecond=0))
    probe_batch.send([{"id": device, "name": "localhost", "address": "127.0.0.1", "simulated": False,
                       "count": 1, "timeout_s": 1.0, "interval_s": 60}], tick)
    broker.join(PROBES)
    broker.join(LOADS)
    samples = scrape(build(db_url, engine, client, broker))
    assert value(samples, "netpulse_probes_total", kind="icmp", result="ok") == 1
    assert value(samples, "netpulse_probes_total", kind="tcp", result="failed") == 1
    inserted = value(samples, "netpulse_loader_rows_total", result="inserted")
    assert inserted == db.execute("SELECT count(*) FROM metrics WHERE device_id = %s", (device,)).fetchone()[0]
    assert value(samples, "netpulse_probe_lag_seconds_count") == 1
    assert value(samples, "netpulse_probe_lag_seconds_bucket", le="+Inf") == 1


def test_notification_counters_and_a_redis_outage(db_url: str, engine: Engine, db: psycopg.Connection,
                                                 redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    with telemetry.Telemetry(client).batch() as t:
        t.count("netpulse_notification_deliveries", ("sent",), 3)
        t.count("netpulse_notification_deliveries", ("failed",))
    samples = scrape(build(db_url, engine, client))
    assert value(samples, "netpulse_notification_deliveries_total", state="sent") == 3
    assert value(samples, "netpulse_notification_deliveries_total", state="failed") == 1
    dead = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    with telemetry.Telemetry(dead).batch() as t:   # a worker that cannot reach Redis goes on
        t.count("netpulse_probes", ("icmp", "ok"))
    samples = scrape(build(db_url, engine, dead))
    assert value(samples, "netpulse_metrics_source_up", source="redis") == 0
    assert value(samples, "netpulse_metrics_source_up", source="postgresql") == 1
    assert value(samples, "netpulse_alerts_open", severity="critical") == 0


def test_a_token_restricts_the_scrape(db_url: str, engine: Engine) -> None:
    app = build(db_url, engine, metrics_token=TOKEN)
    http = app.test_client()
    assert http.get("/metrics").status_code == 401
    wrong = http.get("/metrics", headers={"Authorization": "Bearer not-the-token-at-all"})
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"].startswith("Bearer")
    assert scrape(app, {"Authorization": f"Bearer {TOKEN}"})
    # Without a token setting the scrape needs no login at all.
    assert build(db_url, engine).test_client().get("/metrics").status_code == 200


def test_the_scheduler_counts_what_it_enqueues(db_url: str, engine: Engine, db: psycopg.Connection,
                                               redis_url: str) -> None:
    from workers.scheduler import Scheduler

    org = make_org(db)
    db.execute("INSERT INTO devices (organization_id, name, address, device_type) "
               "SELECT %s, 'd' || g, '192.0.2.' || g, 'router' FROM generate_series(1, 5) g", (org,))
    client = redis.Redis.from_url(redis_url)
    sent: list[int] = []
    sched = Scheduler(engine, send_probe=lambda devices, t: sent.extend(d["id"] for d in devices), interval_s=10,
                      telemetry=telemetry.Telemetry(client))
    t0 = 1_800_000_000
    for s in range(t0, t0 + 10):
        sched.tick(s)
    sched.tick(t0 + 40)   # a stall of three intervals: each device missed two slots
    samples = scrape(build(db_url, engine, client))
    assert value(samples, "netpulse_probes_scheduled_total") == len(sent) == 10
    assert value(samples, "netpulse_probes_skipped_total", reason="missed") == sched.stats.late_probes == 10
