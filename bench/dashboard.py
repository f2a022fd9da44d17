"""Dashboard benchmark: each page's callbacks (server time) against the raw SQL of the same queries.

    NETPULSE_BENCH_REDIS_URL=redis://127.0.0.1:6379/N python bench/dashboard.py [--devices 10000] [--days 7]
        [--alerts 1000] [--repeat 15] [--keep NAME]

Builds a database on NETPULSE_BENCH_ADMIN_URL (default: the local PostgreSQL): ``--devices`` simulated
devices in sites of 250, ``--days`` of history loaded the way the demo loads it (rollups written with
the rows, status history from the samples; hourly samples at this size), and ``--alerts`` open alerts:
distribution switches down with their subtrees behind them (one alert each, suppressed as
parent-down) and packet loss on leaves elsewhere. ``--keep NAME`` keeps the database under that
name and reuses it on the next run.

Then, for each page, the callbacks its browser fires on load are POSTed to ``/_dash-update-component``
in-process (Flask test client: auth, the callback, the figure's JSON; no network) ``--repeat`` times,
and every SQL statement they ran is recorded and replayed alone on a plain connection: the "sql"
column is what the same queries cost without NetPulse around them. Pages: overview (last 6 h),
devices grid (first page, filtered by site and text), device (30-day charts), alerts (first page of
root-cause groups) and SLA (7 days by site).

Last, the overview's callbacks again while another process resolves 500 open alerts (as the alert
engine does when they clear, notifications included): the web process never does that work, so
its latency should not move.

Figures on this shared 2-core machine are noisy; p50 and p95 are over ``--repeat`` page loads.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ADMIN_URL = os.environ.get("NETPULSE_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("NETPULSE_BENCH_REDIS_URL", os.environ.get("NETPULSE_REDIS_URL", ""))
SECRET = "bench-secret-0123456789abcdef0123456789"
PASSWORD = "bench-password-123"
SITE_SIZE = 250


# --- building the database -------------------------------------------------------------------------------

def build(url: str, devices: int, days: float, n_alerts: int) -> None:
    from analytics.alerts import AlertEngine, Finding
    from analytics.rules import load_rules
    from cli.demo.backfill import backfill, plan_history
    from cli.demo.run import ensure_demo_rules, ensure_demo_targets, seed_fleet
    from ingest.simulator import Fleet
    from netpulse.db import make_engine, make_sessionmaker
    from netpulse.migrations import migrate
    from netpulse.schema import Organization, Role
    from netpulse.users import create_organization, create_user

    started = time.perf_counter()
    migrate(url, requested="postgres")
    fleet = Fleet(n_devices=devices, n_sites=max(1, devices // SITE_SIZE), seed=3, interval_s=60)
    engine = make_engine(url, pool_size=1, max_overflow=0)
    with make_sessionmaker(engine)() as session, session.begin():
        org = create_organization(session, "Bench Networks", "bench")
        create_user(session, org.id, "admin@bench.test", PASSWORD, role=Role.ADMIN)
        found = session.get(Organization, org.id)
        assert found is not None
        ids = seed_fleet(session, found, fleet)
        org_id = org.id
    engine.dispose()
    now = datetime.now(UTC)
    plan = plan_history(devices, now - timedelta(days=days), now, fine_step_s=3600)
    from tqdm import tqdm

    with tqdm(total=plan.steps, desc="history", unit="step") as bar:
        rows = backfill(url, fleet, ids, plan, bar.update)
    print(f"history: {rows:,} rows of {devices:,} devices over {days:g} days (a sample every "
          f"{plan.coarse_step_s // 60} min; {time.perf_counter() - started:.0f} s)")

    # Open alerts: distribution switches down, their subtrees suppressed behind them, and packet loss elsewhere.
    parents = [d for d in fleet.devices if d.group == "Distribution"]
    down: list[int] = []
    chosen_parents = 0
    for p in parents:
        subtree = [p.index, *fleet.descendants(p.index)]
        if len(down) + len(subtree) > n_alerts * 0.9:
            break
        down += subtree
        chosen_parents += 1
    losing = [d.index for d in fleet.devices if d.index not in set(down) and d.group == "Access"][:n_alerts - len(down)]
    with psycopg.connect(url, autocommit=True) as conn:
        ensure_demo_rules(conn, org_id, 60)
        ensure_demo_targets(conn, org_id)
        rules = {r.name: r for r in load_rules(conn, org_id)}
        conn.execute("UPDATE devices SET oper_status = 'down', oper_status_since = %s, fail_streak = 3"
                     " WHERE id = ANY(%s)", (now - timedelta(minutes=20), [ids[fleet.devices[i].name] for i in down]))
        conn.execute("UPDATE devices SET oper_status = 'degraded', oper_status_since = %s WHERE id = ANY(%s)",
                      (now - timedelta(minutes=30), [ids[fleet.devices[i].name] for i in losing]))
        findings = [Finding(rules["device down"], ids[fleet.devices[i].name], True, now) for i in down]
        findings += [Finding(rules["packet loss"], ids[fleet.devices[i].name], True, now, value=30.0) for i in losing]
        report = AlertEngine().apply(conn, org_id, findings, now)
        conn.execute("VACUUM ANALYZE")
    print(f"alerts: {len(report.opened):,} open ({len(report.suppressed):,} suppressed behind {chosen_parents} "
          f"switches down, {len(losing)} losing packets)")


# --- calling callbacks --------------------------------------------------------------------------------

@dataclass
class Recorder:
    """Records the SQL that runs while ``on``: (statement, params, is_copy)."""

    on: bool = False
    statements: list[tuple[Any, Any, bool]] = field(default_factory=list)

    def install(self) -> None:
        execute, copy = psycopg.Cursor.execute, psycopg.Cursor.copy
        recorder = self

        def recording_execute(cur: Any, query: Any, params: Any = None, **kw: Any) -> Any:
            if recorder.on:
                recorder.statements.append((query, params, False))
            return execute(cur, query, params, **kw)

        def recording_copy(cur: Any, statement: Any, params: Any = None, **kw: Any) -> Any:
            if recorder.on:
                recorder.statements.append((statement, params, True))
            return copy(cur, statement, params, **kw)

        psycopg.Cursor.execute = recording_execute  # type: ignore[method-assign]
        psycopg.Cursor.copy = recording_copy  # type: ignore[method-assign]


def replay(conn: psycopg.Connection, statements: list[tuple[Any, Any, bool]]) -> float:
    """The statements alone, their results read to the end; seconds."""
    started = time.perf_counter()
    with conn.cursor() as cur:
        for query, params, is_copy in statements:
            if is_copy:
                with cur.copy(query, params) as copy:
                    for _ in copy:
                        pass
            else:
                cur.execute(query, params)
                if cur.description is not None:
                    cur.fetchall()
    return time.perf_counter() - started


class Client:
    def __init__(self, app: Any, token: str) -> None:
        self.app, self.token = app, token
        self.specs = {k: v for k, v in app.extensions["netpulse.dash"].callback_map.items() if "callback" in v}

    def key(self, name: str) -> str:
        page, _, fn = name.rpartition(".")
        found = [k for k, v in self.specs.items() if v["callback"].__name__ == fn
                 and v["callback"].__module__.endswith(f".{page}")]
        assert len(found) == 1, name
        return found[0]

    def call(self, name: str, values: dict[str, Any]) -> None:
        key = self.key(name)
        spec = self.specs[key]

        def dep(d: dict[str, Any]) -> Any:
            if isinstance(d["id"], dict) and any(not isinstance(v, str | int) for v in d["id"].values()):
                return []
            return {"id": d["id"], "property": d["property"], "value": values.get(f"{d['id']}.{d['property']}")}

        def out(o: Any) -> Any:
            if isinstance(o.component_id, dict) and any(not isinstance(v, str | int) for v in o.component_id.values()):
                return []
            return {"id": o.component_id, "property": o.component_property}

        outputs = [out(o) for o in spec["output"]] if isinstance(spec["output"], list) else out(spec["output"])
        body = {"output": key, "outputs": outputs, "inputs": [dep(d) for d in spec["inputs"]],
                "state": [dep(d) for d in spec["state"]],
                "changedPropIds": [f"{spec['inputs'][0]['id']}.{spec['inputs'][0]['property']}"]}
        answer = self.app.test_client().post("/_dash-update-component", json=body,
                                             headers={"Authorization": f"Bearer {self.token}"})
        assert answer.status_code in (200, 204), (name, answer.status_code, answer.get_data(as_text=True)[:300])


@dataclass
class Page:
    name: str
    calls: list[tuple[str, dict[str, Any]]]
    charts: set[str] = field(default_factory=set)   # callbacks that draw a chart (reported apart)


def pages(device_id: int, site: str) -> list[Page]:
    from dashboard import ids

    tick = {f"{ids.TICK}.n_intervals": 0}
    six = {**tick, f"{ids.RANGE}.data": {"range": "6h"}}
    month = {**tick, f"{ids.RANGE}.data": {"range": "30d"}, f"{ids.DEVICE_ID}.data": device_id}
    week = {**tick, f"{ids.RANGE}.data": {"range": "7d"}}
    alerts = {**tick, f"{ids.ALERTS_STATUS_FILTER}.value": "open", f"{ids.ALERTS_PAGE}.active_page": 1,
              f"{ids.ALERTS_SEVERITY_FILTER}.value": ["critical", "warning", "info"]}
    grid = {f"{ids.GRID}.getRowsRequest": {"startRow": 0, "endRow": 100, "sortModel": [], "filterModel": {}},
            f"{ids.GRID_SITE}.value": site, f"{ids.GRID_SEARCH}.value": "acc"}
    charts = {"device.refresh_smoke", "device.refresh_loss", "device.refresh_cpu", "device.refresh_interface",
              "device.refresh_timeline"}
    return [
        Page("overview", [("overview.refresh_summary", tick), ("overview.refresh_status_chart", six),
                          ("overview.refresh_latency", six), ("overview.refresh_open_alerts", tick),
                          ("overview.refresh_attention", tick)]),
        Page("devices grid", [("devices.rows", grid)]),
        Page("device (30 days)", [("device.refresh_header", month), ("device.refresh_maintenance", month),
                                  *((c, {**month, f'{{"page":"device","type":"{ids.PAGE_STATE}"}}.data': {"if": 1}})
                                    for c in sorted(charts)),
                                  ("device.refresh_interfaces", month), ("device.refresh_checks", month),
                                  ("device.refresh_alerts", month)], charts),
        Page("alerts", [("alerts.refresh_kpis", tick), ("alerts.refresh_chart", tick),
                        ("alerts.refresh_table", alerts)]),
        Page("sla (7 days)", [("sla.refresh", {**week, f"{ids.SLA_BY}.value": "site"})]),
    ]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def measure(client: Client, recorder: Recorder, conn: psycopg.Connection, page: Page,
            repeat: int) -> tuple[list[float], list[float], dict[str, list[float]]]:
    """Server seconds per page load, raw-SQL seconds per page load, and per-callback seconds."""
    server: list[float] = []
    sql: list[float] = []
    per: dict[str, list[float]] = {c: [] for c, _ in page.calls}
    client_calls = [(c, v) for c, v in page.calls]
    for _ in range(repeat):
        recorder.statements.clear()
        total = 0.0
        for name, values in client_calls:
            recorder.on = True
            started = time.perf_counter()
            client.call(name, values)
            spent = time.perf_counter() - started
            recorder.on = False
            per[name].append(spent)
            total += spent
        server.append(total)
        statements = list(recorder.statements)
        sql.append(replay(conn, statements))
    return server, sql, per


def resolve_alerts(url: str, n: int, done: Any, resolved: Any) -> None:
    """Another process: resolve ``n`` open alerts as the engine does when their condition clears."""
    from analytics.alerts import AlertEngine, Finding
    from analytics.rules import load_rules

    # One outer transaction, rolled back at the end: the work is done (and felt) in full, and the database
    # keeps its open alerts for the next run.
    with psycopg.connect(url) as conn:
        org = conn.execute("SELECT id FROM organizations WHERE slug = 'bench'").fetchone()[0]  # type: ignore[index]
        rules = {r.id: r for r in load_rules(conn, org)}
        rows = conn.execute("SELECT rule_id, device_id FROM alerts WHERE organization_id = %s AND NOT resolved"
                            " AND rule_id IS NOT NULL ORDER BY created_at LIMIT %s", (org, n)).fetchall()
        engine = AlertEngine()
        now = datetime.now(UTC)
        for i in range(0, len(rows), 50):  # as the evaluation ticks hand them over
            engine.apply(conn, org, [Finding(rules[r], d, False, now) for r, d in rows[i:i + 50]], now)
        resolved.value = conn.execute("SELECT count(*) FROM alerts WHERE resolved AND resolved_at = %s",
                                      (now,)).fetchone()[0]  # type: ignore[index]
        conn.rollback()
    done.set()


def main() -> None:
    from netpulse.logs import configure

    configure("warning")
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument("--days", type=float, default=7.0)
    ap.add_argument("--alerts", type=int, default=1_000)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--keep", default=None, help="keep the database under this name (and reuse it)")
    args = ap.parse_args()

    name = args.keep or f"netpulse_bench_{uuid.uuid4().hex[:8]}"
    url = f"{ADMIN_URL.rpartition('/')[0]}/{name}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as c:
        exists = c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            c.execute(f'CREATE DATABASE "{name}"')
    try:
        if not exists:
            build(url, args.devices, args.days, args.alerts)
        else:
            print(f"reusing database {name}")
        run(url, args.repeat)
    finally:
        if not args.keep:
            with psycopg.connect(ADMIN_URL, autocommit=True) as c:
                c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(url: str, repeat: int) -> None:
    from dashboard.app import create_app
    from netpulse.config import load_settings
    from netpulse.db import make_engine

    recorder = Recorder()
    recorder.install()
    engine = make_engine(url, pool_size=4, max_overflow=4)
    if not REDIS_URL:
        raise SystemExit("set NETPULSE_BENCH_REDIS_URL (or NETPULSE_REDIS_URL) to a Redis database the bench may use")
    app = create_app(load_settings(database_url=url, redis_url=REDIS_URL, secret_key=SECRET, env="testing"),
                     engine=engine)
    token = app.test_client().post("/api/v1/auth/login", json={"email": "admin@bench.test", "password": PASSWORD}
                                   ).get_json()["data"]["access_token"]
    client = Client(app, token)
    with psycopg.connect(url, autocommit=True) as conn:
        # The replay plans as the web's connections do (dashboard.app: no parallel workers, no JIT).
        conn.execute("SET max_parallel_workers_per_gather = 0")
        conn.execute("SET jit = off")
        devices = conn.execute("SELECT count(*) FROM devices").fetchone()[0]  # type: ignore[index]
        open_alerts = conn.execute("SELECT count(*) FROM alerts WHERE NOT resolved").fetchone()[0]  # type: ignore[index]
        device_id, site = conn.execute(
            "SELECT d.id, s.name FROM devices d JOIN sites s ON s.id = d.site_id WHERE d.name LIKE '%%-dist-1'"
            " ORDER BY d.id LIMIT 1").fetchone()  # type: ignore[misc]
        print(f"{devices:,} devices, {open_alerts:,} open alerts; {repeat} loads of each page; times in ms")
        print(f"{'page':<20} {'server p50':>11} {'p95':>8} {'sql p50':>9} {'p95':>8}   slowest callback at p95")
        results: dict[str, tuple[float, float]] = {}
        for page in pages(device_id, site):
            for name, values in page.calls:  # warm: first imports, plans, caches
                client.call(name, values)
            server, sql, per = measure(client, recorder, conn, page, repeat)
            slowest = max(per, key=lambda c: pct(per[c], 0.95))
            print(f"{page.name:<20} {1000 * pct(server, .5):>11.0f} {1000 * pct(server, .95):>8.0f} "
                  f"{1000 * pct(sql, .5):>9.0f} {1000 * pct(sql, .95):>8.0f}   {slowest.split('.')[-1]} "
                  f"{1000 * pct(per[slowest], .95):.0f}")
            if page.charts:
                worst = max(pct(per[c], 0.95) for c in page.charts)
                print(f"{'  its charts':<20} each p95 at most {1000 * worst:.0f} ms "
                      f"({', '.join(c.split('.')[-1] for c in sorted(page.charts))})")
            results[page.name] = (statistics.median(server), statistics.median(sql))

        overview = pages(device_id, site)[0]
        ctx = multiprocessing.get_context("spawn")
        done = ctx.Event()
        resolved = ctx.Value("i", 0)
        worker = ctx.Process(target=resolve_alerts, args=(url, 500, done, resolved))
        worker.start()
        busy: list[float] = []
        while not done.is_set() and len(busy) < 200:
            started = time.perf_counter()
            for name, values in overview.calls:
                client.call(name, values)
            busy.append(time.perf_counter() - started)
        worker.join()
        print(f"overview while another process resolved {resolved.value} alerts: "
              f"p50 {1000 * pct(busy, .5):.0f} ms, p95 {1000 * pct(busy, .95):.0f} ms, worst {1000 * max(busy):.0f} ms "
              f"over {len(busy)} loads")
    engine.dispose()
    server_s, sql_s = results["overview"]
    print(f"overview/sql ratio: {server_s / sql_s:.2f}")




if __name__ == "__main__":
    main()
