"""The demo's workers and scheduler, in a process of their own beside the web server's.

Resolving or notifying hundreds of alerts is CPU work in Python; sharing the web server's process (and
its GIL) with it froze the pages for tens of seconds. So the demo runs them as production does,
apart: a child process (spawned, not forked: the parent holds database and Redis connections) that
rebuilds the simulated fleet from its seed, with the incidents injected in the parent, and talks to
the parent's embedded PostgreSQL and Redis over their sockets. On a new data dir it first replays
the alerts of the last hours of history (a minute of rule evaluations for 200 devices), so the web
server is up while that runs and live probing starts after it.
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["WorkerPlan", "start_workers"]


@dataclass(frozen=True)
class WorkerPlan:
    """Everything the worker process needs, as plain values (it crosses a process boundary)."""

    database_url: str
    redis_socket: str
    secret_key: str                  # the web's: the keyring that decrypts channel secrets derives from it
    devices: int
    sites: int
    seed: int
    interval_s: int
    host: str
    port: int
    worker_threads: int
    icmp_privileged: bool
    icmp_allowed: bool
    # (kind, device index, start, end, magnitude) of the incidents injected for the demo
    incidents: list[tuple[str, int, datetime, datetime, float]] = field(default_factory=list)
    # The alerts of the last hours of history, replayed once before live work starts (0: none)
    org_id: str = ""
    replay_hours: float = 0.0
    replay_step_s: int = 300
    log_level: str = "warning"


def _run(plan: WorkerPlan, stop: Any) -> None:
    """The child process: Dramatiq workers and the scheduler until ``stop`` is set."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C reaches the whole group: the parent decides
    from netpulse.logs import configure

    configure(plan.log_level)  # a spawned process starts with no logging set up
    import redis
    from dramatiq import Worker

    from ingest.simulator import Fleet, IncidentKind
    from netpulse import crypto
    from netpulse.config import load_settings
    from workers import broker as broker_mod
    from workers import notify as notify_worker
    from workers import reports as report_worker
    from workers import runtime
    from workers.actors import maintain_storage, probe_batch
    from workers.periodic import periodic_jobs
    from workers.scheduler import Scheduler

    settings = load_settings(database_url=plan.database_url, secret_key=plan.secret_key, env="development",
                             http_host=plan.host, http_port=plan.port)
    crypto.use_keyring(settings.keyring())

    fleet = Fleet(n_devices=plan.devices, n_sites=plan.sites, seed=plan.seed, interval_s=plan.interval_s)
    for kind, index, start, end, magnitude in plan.incidents:
        fleet.inject(IncidentKind(kind), index, start, end, magnitude=magnitude)
    if plan.replay_hours > 0:
        _replay(plan)
    client = redis.Redis(unix_socket_path=plan.redis_socket)
    rt = runtime.configure(runtime.Runtime(
        plan.database_url, fleet=fleet, icmp_privileged=plan.icmp_privileged, icmp_allowed=plan.icmp_allowed,
        tcp_fallback_port=plan.port, resolve_ttl_s=plan.interval_s, redis=client))
    broker = broker_mod.install(broker_mod.make_broker(client=client))
    notify_worker.configure(settings)
    report_worker.configure(settings)
    worker = Worker(broker, worker_threads=plan.worker_threads, worker_timeout=200)
    worker.start()
    maintain_storage.send()
    halt = threading.Event()
    scheduler = Scheduler(rt.engine, send_probe=lambda devs, t: probe_batch.send(devs, t),
                          periodic=periodic_jobs(outbox_sweep_s=settings.notify_sweep_s),
                          interval_s=plan.interval_s, leases=rt.leases, telemetry=rt.telemetry)
    thread = threading.Thread(target=scheduler.run, args=(halt,), name="scheduler", daemon=True)
    thread.start()
    try:
        stop.wait()
    finally:
        halt.set()
        thread.join(timeout=5)
        worker.stop(timeout=5000)
        client.close()


def _replay(plan: WorkerPlan) -> None:
    """What the demo's rules would have opened over the last hours of history (once, on a new data dir),
    before live evaluation starts, so the two never interleave."""
    import click

    from cli.demo.run import replay_recent_alerts
    from netpulse.db import connect

    with connect(plan.database_url, autocommit=True) as conn:
        opened, still = replay_recent_alerts(conn, uuid.UUID(plan.org_id), hours=plan.replay_hours,
                                             step_s=plan.replay_step_s)
    if opened:
        click.echo(f"  alerts: {opened} opened by the scripted incidents of the last {plan.replay_hours:g} h of "
                   f"history ({still} still open)")


def start_workers(plan: WorkerPlan) -> Callable[[], None]:
    """Start the worker process; returns the function that stops it (and waits for it)."""
    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    process = ctx.Process(target=_run, args=(plan, stop), name="netpulse-workers", daemon=False)
    process.start()

    def stopper() -> None:
        stop.set()
        process.join(timeout=20)
        if process.is_alive():
            process.terminate()
            process.join(timeout=5)

    return stopper
