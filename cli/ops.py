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


def _runtime_and_broker(fleet: object = None):  # type: ignore[no-untyped-def]
    import redis

    from ingest.status import Hysteresis
    from workers import broker as broker_mod
    from workers import runtime

    configure_logging()
    settings = get_settings()
    # Timeouts, so a Redis that stops answering fails calls (retried, logged once) instead of hanging them.
    client = redis.Redis.from_url(settings.require_redis_url(), socket_connect_timeout=5, socket_timeout=10,
                                  health_check_interval=30)
    rt = runtime.configure(runtime.Runtime(
        settings.require_database_url(), icmp_privileged=settings.probe_privileged, icmp_pps=settings.probe_pps,
        probe_timeout_s=settings.probe_timeout_s, resolve_ttl_s=settings.probe_interval_s,
        hysteresis=Hysteresis(settings.status_down_after, settings.status_up_after, settings.status_degraded_after,
                              settings.status_clean_after),
        retention_days=settings.metrics_retention_days, partitions_ahead_days=settings.partitions_ahead_days,
        redis=client, fleet=fleet))  # type: ignore[arg-type]
    rt.evaluator.snmp_failing_intervals = settings.snmp_failing_intervals
    broker = broker_mod.install(_broker(settings, client))
    return settings, rt, broker


def _broker(settings, client):  # type: ignore[no-untyped-def]
    """The broker of NETPULSE_BROKER_URL (RabbitMQ or Redis), else Redis through ``client``."""
    from workers.broker import make_broker

    broker_url = settings.require_broker_url()
    ttl_ms = settings.broker_dead_letter_ttl_s * 1000
    if broker_url == settings.redis_url:
        return make_broker(client=client, dead_letter_ttl_ms=ttl_ms)
    return make_broker(url=broker_url, redis=client, dead_letter_ttl_ms=ttl_ms)


def _broker_kind(broker: object) -> str:
    return "RabbitMQ" if "rabbitmq" in type(broker).__name__.lower() else "Redis"


def warn_undeliverable() -> None:
    """Warn (on stderr) about organizations whose alerts cannot be delivered: no enabled channel."""
    from analytics.notify.channels import organizations_without_channels
    from cli._common import session_scope

    try:
        with session_scope() as session:
            slugs = organizations_without_channels(session)
    except Exception as exc:  # a start-up check must not stop the start (the database may come later)
        click.echo(f"Warning: could not check the notification channels: {str(exc).splitlines()[0]}", err=True)
        return
    for slug in slugs:
        click.echo(f"Warning: organization {slug!r} has no enabled notification channel: its alerts will show "
                   "'not delivered: no channel'. Add one with `netpulse notify channel add --org "
                   f"{slug} ...`.", err=True)


def _fleet(spec: str | None) -> object:
    """``devices=N,sites=S,seed=X,interval=I``: the simulated network whose devices this worker probes."""
    if spec is None:
        return None
    from ingest.simulator import Fleet
    from netpulse.errors import ValidationError

    known = {"devices": "n_devices", "sites": "n_sites", "seed": "seed", "interval": "interval_s"}
    args: dict[str, int] = {}
    for part in spec.split(","):
        key, _, value = part.partition("=")
        if key.strip() not in known or not value.strip().isdigit():
            raise ValidationError(f"--simulated-fleet: {part!r} is not one of devices=N, sites=N, seed=N, interval=S",
                                  details={"simulated_fleet": spec})
        args[known[key.strip()]] = int(value)
    try:
        return Fleet(**args)  # type: ignore[arg-type]
    except ValueError as exc:
        raise ValidationError(f"--simulated-fleet: {exc}", details={"simulated_fleet": spec}) from None


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
@click.option("--simulated-fleet", "fleet_spec", default=None, metavar="devices=N,sites=S,seed=X,interval=I",
              help="Also answer for the simulated devices of this seeded network (load tests such as "
                   "bench/soak.py); without it, simulated devices yield no rows.")
def worker(threads: int | None, fleet_spec: str | None) -> None:
    """Run a worker process: probes, loads, maintenance. Scale by running more of them."""
    from dramatiq import Worker

    settings, _, broker = _runtime_and_broker(_fleet(fleet_spec))
    warn_undeliverable()
    stop = _stop_on_signal()
    w = Worker(broker, worker_threads=threads or settings.worker_threads)
    w.start()
    click.echo(f"worker running with {threads or settings.worker_threads} threads on {_broker_kind(broker)}; "
               "Ctrl-C to stop")
    try:
        while not stop.wait(1.0):
            pass
    finally:
        w.stop()


@click.command()
def scheduler() -> None:
    """Run the scheduler: enqueues probe batches every interval and the periodic jobs.

    Several may run: they share a leader lease in Redis, one schedules and the others wait to take over
    (within NETPULSE_SCHEDULER_LEASE_S of the leader's death).
    """
    from workers.actors import probe_batch
    from workers.leader import LeaderLease
    from workers.periodic import periodic_jobs
    from workers.scheduler import Scheduler

    settings, rt, _ = _runtime_and_broker()
    sched = Scheduler(rt.engine, send_probe=lambda d, t: probe_batch.send(d, t),
                      periodic=periodic_jobs(outbox_sweep_s=settings.notify_sweep_s),
                      interval_s=settings.probe_interval_s,
                      batch_size=settings.probe_batch_size, probe_count=settings.probe_count,
                      probe_timeout_s=settings.probe_timeout_s, leases=rt.leases, telemetry=rt.telemetry)
    leader = LeaderLease(rt.redis, ttl_ms=settings.scheduler_lease_s * 1000)
    stop = _stop_on_signal()
    click.echo(f"scheduler running: each device every {settings.probe_interval_s} s unless it has its own "
               f"interval, spread over the interval; scheduling while it holds the leader lease ({leader.token}); "
               "Ctrl-C to stop")
    sched.run(stop, leader=leader)


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
    warn_undeliverable()
    app = create_app(settings, **_observability(settings))
    if get_path:
        resp = app.test_client().get(get_path)
        click.echo(resp.get_data(as_text=True))
        raise SystemExit(0 if resp.status_code == 200 else 1)
    from waitress import serve as waitress_serve

    waitress_serve(app, host=host or settings.http_host, port=port or settings.http_port, threads=8)


def _observability(settings):  # type: ignore[no-untyped-def]
    """Redis, the broker's queues and the scheduler's leader lease for the web process's /health and
    /metrics, and the sender of the report runs asked for through the API (none without Redis)."""
    if not settings.redis_url:
        return {}
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from dashboard.app import REDIS_TIMEOUT_S
    from workers.client import report_sender
    from workers.leader import GRACE_LEASES, leader_check
    from workers.queues import queue_check, queue_depths

    # Fail fast, no retries with backoff: a request falls back or answers 503 at once.
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=REDIS_TIMEOUT_S,
                                  socket_timeout=REDIS_TIMEOUT_S, retry=Retry(NoBackoff(), 0))
    broker = _broker(settings, client)   # no actor is declared on it: it reads queues and sends by name
    return {"redis_client": client,
            "queue_depths": lambda: {q: d.as_dict() for q, d in queue_depths(broker).items()},
            "checks": [queue_check(broker, settings.health_max_queue_depth),
                       leader_check(client, grace_s=GRACE_LEASES * settings.scheduler_lease_s)],
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
