"""Production process commands: migrate, worker, scheduler, serve, maintain."""

from __future__ import annotations

import click

from netpulse.config import get_settings


@click.command()
@click.option("--storage", type=click.Choice(["auto", "postgres", "timescale"]), default="auto", show_default=True,
              help="Metrics storage variant for a new database; auto picks TimescaleDB when the extension "
                   "is available. An existing database keeps the variant it has.")
def migrate(storage: str) -> None:
    """Apply pending SQL migrations, then encrypt stored secrets still in plaintext (idempotent)."""
    from netpulse.db import connect
    from netpulse.migrations import migrate as run
    from netpulse.rekey import plaintext_count, rekey

    settings = get_settings()
    url = settings.require_database_url()
    variant, applied = run(url, requested=storage, on_apply=lambda m: click.echo(f"applying {m.label} ({m.variant})"))
    click.echo(f"{len(applied)} migration(s) applied; storage variant: {variant}"
               if applied else f"database is up to date; storage variant: {variant}")
    # The data step of encryption at rest: SQL cannot encrypt, so it runs here, on every migrate. Only
    # values without the "fernet:" marker (written before encryption existed) are touched.
    with connect(url, autocommit=True) as conn:
        plain = plaintext_count(conn)
        if plain:
            report = rekey(conn, settings.keyring(), rotate=False)
            click.echo(f"encrypted {plain} stored secret(s) in {report.changed} row(s)")


COMMANDS = [migrate]


def configure_logging() -> None:
    """The long-running processes log at info unless NETPULSE_LOG_LEVEL says otherwise."""
    from netpulse.logs import configure

    settings = get_settings()
    configure(settings.log_level or "info", settings.log_format)


def _runtime_and_broker():  # type: ignore[no-untyped-def]
    import redis

    from ingest.status import Hysteresis
    from workers import broker as broker_mod
    from workers import runtime

    configure_logging()
    settings = get_settings()
    client = redis.Redis.from_url(settings.require_redis_url())
    rt = runtime.configure(runtime.Runtime(
        settings.require_database_url(), icmp_privileged=settings.probe_privileged, icmp_pps=settings.probe_pps,
        probe_timeout_s=settings.probe_timeout_s, resolve_ttl_s=settings.probe_interval_s,
        hysteresis=Hysteresis(settings.status_down_after, settings.status_up_after),
        retention_days=settings.metrics_retention_days, partitions_ahead_days=settings.partitions_ahead_days,
        redis=client))
    rt.evaluator.snmp_failing_intervals = settings.snmp_failing_intervals
    broker = broker_mod.install(broker_mod.make_broker(client=client))
    return settings, rt, broker


def _stop_on_signal():  # type: ignore[no-untyped-def]
    """An event set by SIGINT or SIGTERM (installed before the process says it is running)."""
    import signal
    import threading

    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    return stop


@click.command()
@click.option("--threads", type=click.IntRange(1, 64), default=None,
              help="Worker threads [default: NETPULSE_WORKER_THREADS].")
def worker(threads: int | None) -> None:
    """Run a worker process: probes, loads, maintenance. Scale by running more of them."""
    from dramatiq import Worker

    settings, _, broker = _runtime_and_broker()
    stop = _stop_on_signal()
    w = Worker(broker, worker_threads=threads or settings.worker_threads)
    w.start()
    click.echo(f"worker running with {threads or settings.worker_threads} threads; Ctrl-C to stop")
    try:
        while not stop.wait(1.0):
            pass
    finally:
        w.stop()


@click.command()
def scheduler() -> None:
    """Run the scheduler: enqueues probe batches every interval (run exactly one)."""
    import signal
    import threading

    from workers.actors import advance_rollups, maintain_storage, probe_batch
    from workers.alerting import check_sla, evaluate_alerts, send_digests
    from workers.anomaly import score_anomalies
    from workers.reports import schedule_reports
    from workers.scheduler import Scheduler

    settings, rt, _ = _runtime_and_broker()
    sched = Scheduler(rt.engine, send_probe=lambda d, t: probe_batch.send(d, t),
                      periodic=[(60, advance_rollups.send), (3600, maintain_storage.send),
                                (60, evaluate_alerts.send), (900, send_digests.send), (300, check_sla.send),
                                (900, score_anomalies.send), (60, schedule_reports.send)],
                      interval_s=settings.probe_interval_s,
                      batch_size=settings.probe_batch_size, probe_count=settings.probe_count,
                      probe_timeout_s=settings.probe_timeout_s, leases=rt.leases, telemetry=rt.telemetry)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    click.echo(f"scheduler running: each device every {settings.probe_interval_s} s unless it has its own "
               "interval, spread over the interval; Ctrl-C to stop")
    sched.run(stop)


@click.command()
@click.option("--host", default=None, help="Bind address [default: NETPULSE_HTTP_HOST].")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port [default: NETPULSE_HTTP_PORT].")
@click.option("--get", "get_path", default=None, metavar="PATH",
              help="Make one in-process request (e.g. /healthz), print the answer and exit non-zero unless 200.")
def serve(host: str | None, port: int | None, get_path: str | None) -> None:
    """Serve the dashboard and the REST API (and /health, /ready, /alive, /metrics)."""
    from dashboard.app import create_app

    if not get_path:
        configure_logging()
    settings = get_settings()
    settings.require_database_url()
    settings.require_secret_key()
    app = create_app(settings, **_observability(settings))
    if get_path:
        resp = app.test_client().get(get_path)
        click.echo(resp.get_data(as_text=True))
        raise SystemExit(0 if resp.status_code == 200 else 1)
    from waitress import serve as waitress_serve

    waitress_serve(app, host=host or settings.http_host, port=port or settings.http_port, threads=8)


def _observability(settings):  # type: ignore[no-untyped-def]
    """Redis and the broker's queues for the web process's /health and /metrics, and the sender of the
    report runs asked for through the API (none without Redis)."""
    if not settings.redis_url:
        return {}
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from dashboard.app import REDIS_TIMEOUT_S
    from workers.broker import make_broker
    from workers.client import report_sender
    from workers.queues import queue_check, queue_depths

    # Fail fast, no retries with backoff: a request falls back or answers 503 at once.
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=REDIS_TIMEOUT_S,
                                  socket_timeout=REDIS_TIMEOUT_S, retry=Retry(NoBackoff(), 0))
    broker = make_broker(client=client)   # no actor is declared on it: it reads queues and sends by name
    return {"redis_client": client,
            "queue_depths": lambda: {q: d.as_dict() for q, d in queue_depths(broker).items()},
            "checks": [queue_check(broker, settings.health_max_queue_depth)],
            "send_report": report_sender(broker)}


@click.command()
def maintain() -> None:
    """Storage upkeep now: partitions ahead, expired ones dropped, rollups materialized up to the
    last closed minute (workers do the same every minute and hour)."""
    from datetime import UTC, datetime

    from netpulse.db import connect
    from netpulse.rollups import advance_all
    from netpulse.storage import maintain as run

    settings = get_settings()
    with connect(settings.require_database_url(), autocommit=True) as conn:
        now = datetime.now(UTC)
        report = run(conn, now, ahead_days=settings.partitions_ahead_days,
                     raw_retention_days=settings.metrics_retention_days)
        rows = sum(r.minute_rows for r in advance_all(conn, now))
    click.echo(f"created {len(report.created)} partition(s), dropped {len(report.dropped)}; "
               f"{rows:,} minute rollup row(s) materialized")


COMMANDS = [migrate, worker, scheduler, serve, maintain]
