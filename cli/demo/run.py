"""``netpulse demo``: the whole product on the embedded stack, with a simulated network.

A composition root (like the CLI): it wires storage, ingest, workers and the dashboard together.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from netpulse.schema import Device, Organization

DEMO_ORG = "demo"
DEMO_EMAIL = "admin@netpulse.local"
LOCALHOST_NAME = "localhost"
REPLAY_HOURS = 12.0  # the alerts of the last hours of history (sampled at the fine step) are replayed once


@dataclass
class DemoOptions:
    data_dir: Path
    port: int = 8050
    host: str = "127.0.0.1"
    devices: int = 200
    sites: int = 3
    history_days: float = 7.0
    backfill_step_s: int = 300
    interval_s: int = 10
    seed: int = 42
    worker_threads: int = 4


def check_same_network(opts: DemoOptions) -> None:
    """A data dir holds one simulated network: refuse to mix another into it."""
    import json

    from netpulse.errors import ConfigError

    opts.data_dir.mkdir(parents=True, exist_ok=True)
    path = opts.data_dir / "demo-network.json"
    wanted = {"devices": opts.devices, "sites": opts.sites, "seed": opts.seed}
    if path.exists():
        have = json.loads(path.read_text())
        if have != wanted:
            raise ConfigError(
                f"{opts.data_dir} holds a demo network of {have['devices']} devices in {have['sites']} sites "
                f"(seed {have['seed']}); run with those options, or pass a new --data-dir")
    else:
        path.write_text(json.dumps(wanted))


def ensure_org_and_admin(session: Session, password: str) -> Organization:
    from netpulse.users import create_organization, create_user

    org = session.scalar(select(Organization).where(Organization.slug == DEMO_ORG))
    if org is None:
        org = create_organization(session, "Demo Networks", DEMO_ORG)
        create_user(session, org.id, DEMO_EMAIL, password, role="admin", full_name="Demo Admin")
    return org


def seed_fleet(session: Session, org: Organization, fleet: object) -> dict[str, int]:
    """Create the simulated devices (and their sites, groups, tags) once; returns name -> id."""
    from ingest.simulator import Fleet
    from netpulse.inventory import get_or_create_group, get_or_create_site, get_or_create_tag

    assert isinstance(fleet, Fleet)
    existing = dict(session.execute(select(Device.name, Device.id).where(Device.organization_id == org.id)).all())
    missing = [d for d in fleet.devices if d.name not in existing]
    if missing:
        sites = {n: get_or_create_site(session, org.id, n) for n in sorted({d.site for d in missing})}
        groups = {n: get_or_create_group(session, org.id, n) for n in sorted({d.group for d in missing})}
        tags = {n: get_or_create_tag(session, org.id, n) for n in sorted({t for d in missing for t in d.tags})}
        # Bulk creation in fleet order (parents come before their children), then the parent links.
        made = {d.index: Device(organization_id=org.id, name=d.name, address=d.address, ip_address=d.address,
                                device_type=d.device_type, site_id=sites[d.site].id, group_id=groups[d.group].id,
                                simulated=True, description="simulated device", tags=[tags[t] for t in d.tags])
                for d in missing}
        session.add_all(made.values())
        session.flush()
        for d in missing:
            if d.parent_index is not None:
                parent = made.get(d.parent_index)
                made[d.index].parent_id = parent.id if parent else existing[fleet.devices[d.parent_index].name]
        session.flush()
    if LOCALHOST_NAME not in existing:
        session.add(Device(organization_id=org.id, name=LOCALHOST_NAME, address="127.0.0.1",
                           ip_address="127.0.0.1", device_type="server", description="this machine, probed for real"))
        session.flush()
    return dict(session.execute(select(Device.name, Device.id).where(Device.organization_id == org.id)).all())


def ensure_demo_rules(conn: Any, org_id: Any, interval_s: int) -> list[str]:
    """The demo's alert rules (created once, by name): one per kind of scripted incident."""
    from analytics.rules import Rule, load_rules, save_rules
    from netpulse.metrics import MetricKind

    hold = 3 * interval_s   # three probes in a row
    wanted = [
        Rule("device down", "status", "critical"),
        Rule("packet loss", "threshold", "critical", metric=MetricKind.ICMP_LOSS_PCT, comparator=">=", value=8,
             clear_value=4, for_s=hold),
        Rule("link saturation", "threshold", "warning", metric=MetricKind.IF_UTIL_PCT, comparator=">", value=90,
             clear_value=80, for_s=hold),
        Rule("latency above baseline", "dynamic", "warning", metric=MetricKind.ICMP_RTT_MS, comparator=">",
             k_mad=8, baseline_weeks=1, for_s=hold),
    ]
    have = {r.name for r in load_rules(conn, org_id, enabled_only=False)}
    missing = [r for r in wanted if r.name not in have]
    if missing:
        save_rules(conn, org_id, missing)
    return [r.name for r in missing]


def inject_demo_incidents(fleet: Any, now: datetime) -> tuple[list[str], list[Any]]:
    """Two incidents in the first minutes, so a short look shows alerts and notifications: packet
    loss on a leaf (a critical alert, notified at once and again when it clears) and an outage of a
    distribution switch (one critical alert; its children's alerts are suppressed). Returns what to
    print and the incidents (for the worker process's copy of the fleet)."""
    from ingest.simulator import IncidentKind

    injected = []
    parents = [d.index for d in fleet.devices if fleet.descendants(d.index)]
    leaves = [d.index for d in fleet.devices if not fleet.descendants(d.index) and d.index not in parents]
    lines = ["  demo incidents (besides the scripted ones every 2 hours):"]
    if leaves:
        leaf = leaves[len(leaves) // 2]
        start = now + timedelta(minutes=1)
        injected.append(fleet.inject(IncidentKind.PACKET_LOSS, leaf, start, start + timedelta(minutes=6),
                                     magnitude=35.0))
        lines.append(f"    packet loss on {fleet.devices[leaf].name} from {start:%H:%M} to "
                     f"{start + timedelta(minutes=6):%H:%M} UTC")
    if parents:
        parent = parents[-1]
        start = now + timedelta(minutes=4)
        injected.append(fleet.inject(IncidentKind.OUTAGE, parent, start, start + timedelta(minutes=5)))
        lines.append(f"    outage of {fleet.devices[parent].name} and the {len(fleet.descendants(parent))} devices "
                     f"behind it from {start:%H:%M} to {start + timedelta(minutes=5):%H:%M} UTC")
    return (lines if len(lines) > 1 else []), injected


def ensure_demo_targets(conn: Any, org_id: Any) -> None:
    """An availability target for every device (99.5 % a month), so the SLA page has a budget to show."""
    conn.execute("INSERT INTO sla_targets (organization_id, scope, scope_ref, target_pct, period, severity) "
                 "VALUES (%s, 'all', NULL, 99.5, 'month', 'warning') ON CONFLICT DO NOTHING", (org_id,))


def ensure_demo_channels(session: Session, org_id: Any, sink_url: str, secret: str) -> None:
    """Webhook and Slack channels pointing at the local sink (its port changes per run: an existing
    channel is pointed at it again), and a default escalation policy: both channels at once, the
    webhook again after ten minutes, warnings in a digest every fifteen minutes."""
    from analytics.notify.channels import create_channel, set_channel_config
    from analytics.policies import DEFAULT_POLICY, PolicySpec, Tier, add_policy
    from netpulse.schema import EscalationPolicy, NotificationChannel

    have = set(session.scalars(select(NotificationChannel.name).where(NotificationChannel.organization_id == org_id)))
    for name, kind, config in (("demo-webhook", "webhook", {"url": f"{sink_url}/webhook", "secret": secret}),
                               ("demo-slack", "slack", {"url": f"{sink_url}/slack"})):
        if name in have:
            set_channel_config(session, org_id, name, config)
        else:
            create_channel(session, org_id, name, kind, config, rate_limit_per_minute=30)
    if session.scalar(select(EscalationPolicy.id).where(EscalationPolicy.organization_id == org_id,
                                                       EscalationPolicy.name == DEFAULT_POLICY)) is None:
        add_policy(session, org_id, PolicySpec(name=DEFAULT_POLICY, tiers=[
            Tier(0, ("demo-webhook", "demo-slack")), Tier(600, ("demo-webhook",))]))


def replay_recent_alerts(conn: Any, org_id: Any, *, hours: float, step_s: int) -> tuple[int, int]:
    """Open the alerts the demo's rules would have raised over the last ``hours`` of backfilled
    history (once, on a new data dir), without notifying anyone. Returns (opened, still open)."""
    from analytics.alerts import AlertEngine
    from analytics.evaluate import Evaluator
    from analytics.rules import load_rules

    if conn.execute("SELECT 1 FROM alerts WHERE organization_id = %s LIMIT 1", (org_id,)).fetchone():
        return 0, 0
    rules = [r for r in load_rules(conn, org_id) if r.kind != "status"]   # status alerts come from the live probes
    evaluator = Evaluator(lookback=timedelta(seconds=2 * step_s))         # history has a sample every step
    engine = AlertEngine()
    now = datetime.now(UTC)
    t = now - timedelta(hours=hours)
    opened = 0
    while t < now:
        opened += len(engine.apply(conn, org_id, evaluator.evaluate(conn, org_id, rules, t), t).opened)
        t += timedelta(seconds=step_s)
    still = conn.execute("SELECT count(*) FROM alerts WHERE organization_id = %s AND NOT resolved",
                         (org_id,)).fetchone()[0]
    return opened, int(still)


def start_local_snmpd(stack: Any, engine: Any, data_dir: Path) -> Any:
    """This machine answers SNMP too when net-snmp's snmpd is installed: a private agent on a free
    loopback port, and the localhost device polled through it. Returns the agent or None."""
    from cli.demo.snmpd import LocalAgent, find_snmpd
    from netpulse.crypto import encrypt
    from netpulse.errors import NetPulseError

    if find_snmpd() is None:
        click.echo("  SNMP: snmpd is not installed, so localhost shows ICMP only (Debian: apt-get install snmpd)")
        with engine.begin() as c:
            c.execute(text("UPDATE devices SET snmp_version = NULL WHERE name = :n AND NOT simulated"),
                      {"n": LOCALHOST_NAME})
        return None
    try:
        agent = LocalAgent.start(data_dir / "snmpd", community=stack.secret("snmp-community"))
    except NetPulseError as exc:
        click.echo(f"  SNMP: the local snmpd did not start ({exc}); localhost shows ICMP only")
        return None
    with engine.begin() as c:
        c.execute(text("UPDATE devices SET snmp_version = '2c', snmp_port = :p, snmp_community = :c "
                       "WHERE name = :n AND NOT simulated"),
                  {"p": agent.port, "c": encrypt(agent.community), "n": LOCALHOST_NAME})
    click.echo(f"  SNMP: localhost polled through a private snmpd on udp/127.0.0.1:{agent.port}")
    return agent


def run_demo(opts: DemoOptions) -> None:
    from cli.demo.embedded import EmbeddedStack
    from dashboard.app import create_app
    from ingest.icmp import icmp_permitted
    from ingest.simulator import Fleet
    from netpulse import crypto
    from netpulse.config import load_settings
    from netpulse.db import connect, make_engine, make_sessionmaker
    from netpulse.migrations import migrate
    from netpulse.rekey import plaintext_count, rekey
    from workers import broker as broker_mod

    t_start = time.monotonic()
    click.echo(f"NetPulse demo: data in {opts.data_dir}")
    check_same_network(opts)
    stack = EmbeddedStack.start(opts.data_dir)
    stop = threading.Event()
    stoppers: list[Callable[[], None]] = []
    try:
        click.echo(f"  embedded PostgreSQL and Redis up ({time.monotonic() - t_start:.1f} s)")
        variant, applied = migrate(stack.database_url, requested="postgres")
        click.echo(f"  schema: {len(applied)} migration(s) applied, storage variant {variant}")
        settings = load_settings(database_url=stack.database_url, secret_key=stack.secret("secret-key"),
                                 env="development")
        crypto.use_keyring(settings.keyring())
        with connect(stack.database_url, autocommit=True) as conn:
            if plaintext_count(conn):  # a data dir from before secrets were encrypted
                rekey(conn, settings.keyring(), rotate=False)
        password = stack.secret("demo-password")
        engine = make_engine(stack.database_url)
        fleet = Fleet(n_devices=opts.devices, n_sites=opts.sites, seed=opts.seed, interval_s=opts.interval_s)
        with make_sessionmaker(engine)() as session, session.begin():
            org = ensure_org_and_admin(session, password)
            ids = seed_fleet(session, org, fleet)
            org_id = org.id
        click.echo(f"  inventory: {len(ids)} devices ({len(fleet.devices)} simulated in {opts.sites} sites "
                   "+ this machine)")

        now = datetime.now(UTC)
        with engine.connect() as c:
            last = c.execute(text("SELECT max(last_checked) FROM devices WHERE simulated")).scalar()
        start = max(last, now - timedelta(days=opts.history_days)) if last else now - timedelta(days=opts.history_days)
        if now - start > timedelta(seconds=opts.backfill_step_s):
            from tqdm import tqdm

            from cli.demo.backfill import backfill, plan_history

            plan = plan_history(len(fleet.devices), start, now, fine_step_s=opts.backfill_step_s)
            with tqdm(total=plan.steps, desc="  backfilling history", unit="step", leave=True) as bar:
                stored = backfill(stack.database_url, fleet, ids, plan, bar.update)
            sparse = (f", every {plan.coarse_step_s // 60} min before {plan.fine_from:%H:%M}"
                      if plan.coarse_step_s != plan.fine_step_s else "")
            click.echo(f"  history: {stored:,} rows from {start:%Y-%m-%d %H:%M} UTC to now, rollups included "
                       f"(a sample every {plan.fine_step_s // 60} min{sparse}; {time.monotonic() - t_start:.0f} s)")

        from analytics.notify.webhook import verify
        from cli.demo.notify_sink import NotificationSink

        sink_secret = stack.secret("webhook-secret")
        sink = NotificationSink(echo=click.echo, verify=lambda body, ts, sig: verify(sink_secret, body, ts, sig))
        sink.start(opts.host)
        stoppers.append(sink.stop)
        with make_sessionmaker(engine)() as session, session.begin():
            ensure_demo_channels(session, org_id, sink.url, sink_secret)
        with connect(stack.database_url, autocommit=True) as conn:
            added = ensure_demo_rules(conn, org_id, opts.interval_s)
            ensure_demo_targets(conn, org_id)
        if added:
            click.echo(f"  alert rules: {', '.join(added)}")
        click.echo(f"  notifications: webhook and Slack channels post to a local sink at {sink.url}; "
                   "what it receives prints here")
        agent = start_local_snmpd(stack, engine, opts.data_dir)
        if agent is not None:
            stoppers.append(agent.stop)

        lines, injected = inject_demo_incidents(fleet, datetime.now(UTC))
        for line in lines:
            click.echo(line)

        privileged = icmp_permitted(True)
        icmp_ok = privileged or icmp_permitted(False)
        if not icmp_ok:
            click.echo("  ICMP is not permitted for this process (neither root/CAP_NET_RAW nor a group in "
                       f"net.ipv4.ping_group_range): probing localhost over TCP port {opts.port} instead")
        from cli.demo.workers import WorkerPlan, start_workers

        stoppers.append(start_workers(WorkerPlan(
            database_url=stack.database_url, redis_socket=stack.redis_socket, secret_key=settings.secret_key or "",
            devices=opts.devices, sites=opts.sites, seed=opts.seed, interval_s=opts.interval_s, host=opts.host,
            port=opts.port, worker_threads=opts.worker_threads, icmp_privileged=privileged, icmp_allowed=icmp_ok,
            incidents=[(str(i.kind), i.device_index, i.start, i.end, i.magnitude) for i in injected],
            org_id=str(org_id), replay_hours=min(REPLAY_HOURS, opts.history_days * 24) if added else 0.0,
            replay_step_s=opts.backfill_step_s)))
        click.echo("  workers and scheduler: a process of their own (the web server never waits on them)"
                   + ("; they first replay the alerts of the last hours of history" if added else ""))
        # The web process only reads the queues' depths (for /health and /metrics): a broker, no worker.
        broker = broker_mod.install(broker_mod.make_broker(client=stack.redis))
        from workers.client import report_sender
        from workers.leader import GRACE_LEASES, leader_check
        from workers.queues import queue_check, queue_depths

        app = create_app(settings, engine=engine, redis_client=stack.redis,
                         queue_depths=lambda: {q: d.as_dict() for q, d in queue_depths(broker).items()},
                         checks=[queue_check(broker, settings.health_max_queue_depth),
                                 leader_check(stack.redis, grace_s=GRACE_LEASES * settings.scheduler_lease_s)],
                         send_report=report_sender(broker))
        from werkzeug.serving import make_server

        server = make_server(opts.host, opts.port, app, threaded=True)
        http_thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
        http_thread.start()
        stoppers.append(server.shutdown)

        click.echo("")
        click.echo(f"  Dashboard: http://{opts.host}:{opts.port}/")
        click.echo(f"  Login:     {DEMO_EMAIL} / {password}")
        click.echo(f"  Probing every {opts.interval_s} s; started in {time.monotonic() - t_start:.1f} s. "
                   "Press Ctrl-C to stop.")

        def _on_signal(signum: int, frame: object) -> None:
            stop.set()

        signal.signal(signal.SIGINT, _on_signal)
        signal.signal(signal.SIGTERM, _on_signal)
        while not stop.wait(1.0):
            pass
        click.echo("\nstopping...")
    finally:
        stop.set()
        for fn in reversed(stoppers):
            try:
                fn()
            except Exception as exc:  # keep stopping the rest
                click.echo(f"  while stopping: {exc}", err=True)
        stack.stop()
        click.echo("stopped")
