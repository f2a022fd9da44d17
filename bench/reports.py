"""Report benchmark: a monthly availability/SLA PDF for 1,000 devices: seconds, pages, and the share
spent in SQL; the CSV of the same report is the baseline (same reads, no layout or PDF).

    python bench/reports.py [--devices 1000] [--sites 10] [--repeat 3]

Creates its own database on NETPULSE_BENCH_ADMIN_URL (default: the local PostgreSQL) and drops it
afterwards. The simulated fleet's outages (random ones at 2 % per device and day, plus the scripted
ones, parents taking their subtree down) over two months become the status history, so the report
has a full month and a previous month to compare with, and SLA targets for the organization and a
site. Time in SQL is measured by a cursor class that times every execute, fetch and COPY of the
report's connection. Each variant runs ``--repeat`` times, alternating; the best run counts (the
machine is shared: figures are noisy).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingest.simulator import Fleet, IncidentKind  # noqa: E402
from netpulse.migrations import migrate  # noqa: E402
from reports.generate import generate  # noqa: E402
from reports.period import ReportPeriod  # noqa: E402
from reports.scope import Scope  # noqa: E402

ADMIN_URL = os.environ.get("NETPULSE_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
MONTH = (datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC))
SQL_SECONDS = [0.0]


class TimedCursor(psycopg.Cursor[Any]):
    """A cursor that adds the time of each round trip to the database to ``SQL_SECONDS``."""

    def execute(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        began = time.perf_counter()
        try:
            return super().execute(*args, **kwargs)
        finally:
            SQL_SECONDS[0] += time.perf_counter() - began

    def fetchall(self) -> Any:
        began = time.perf_counter()
        try:
            return super().fetchall()
        finally:
            SQL_SECONDS[0] += time.perf_counter() - began

    def copy(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        inner = super().copy(*args, **kwargs)

        class Timed:
            def __enter__(self) -> Any:
                self.began = time.perf_counter()
                return inner.__enter__()

            def __exit__(self, *exc: Any) -> Any:
                try:
                    return inner.__exit__(*exc)
                finally:
                    SQL_SECONDS[0] += time.perf_counter() - self.began

        return Timed()


def seed(conn: psycopg.Connection, n_devices: int, n_sites: int) -> uuid.UUID:
    org = conn.execute("INSERT INTO organizations (name, slug) VALUES ('Bench Networks', 'bench') RETURNING id"
                       ).fetchone()[0]
    fleet = Fleet(n_devices=n_devices, n_sites=n_sites, seed=7, interval_s=60)
    sites = {s.name: conn.execute("INSERT INTO sites (organization_id, name, slug) VALUES (%s, %s, %s) RETURNING id",
                                  (org, s.name, s.slug)).fetchone()[0] for s in fleet.sites}
    groups = {g: conn.execute("INSERT INTO device_groups (organization_id, name, slug) VALUES (%s, %s, %s)"
                              " RETURNING id", (org, g, g.lower())).fetchone()[0]
              for g in sorted({d.group for d in fleet.devices})}
    ids: list[int] = []
    for d in fleet.devices:
        ids.append(conn.execute(
            "INSERT INTO devices (organization_id, name, address, device_type, site_id, group_id, parent_id, simulated)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, true) RETURNING id",
            (org, d.name, d.address, d.device_type, sites[d.site], groups[d.group],
             ids[d.parent_index] if d.parent_index is not None else None)).fetchone()[0])
    begin = MONTH[0] - timedelta(days=31)
    down: dict[int, list[tuple[datetime, datetime]]] = {}
    for inc in fleet.incidents(begin, MONTH[1]):
        if inc.kind is IncidentKind.OUTAGE:
            for index in (inc.device_index, *fleet.descendants(inc.device_index)):
                down.setdefault(index, []).append((inc.start, inc.end))
    events = [(org, ids[i], begin - timedelta(hours=1), "unknown", "up") for i in range(len(ids))]
    for index, spans in down.items():
        merged: list[list[datetime]] = []
        for start, end in sorted(spans):
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        for start, end in merged:
            events += [(org, ids[index], start, "up", "down"), (org, ids[index], end, "down", "up")]
    with conn.cursor() as cur, cur.copy("COPY device_status_events (organization_id, device_id, time, confirmed_at,"
                                        " from_status, to_status) FROM STDIN") as copy:
        for o, device, at, before, after in events:
            copy.write_row((o, device, at, at + timedelta(minutes=3), before, after))
    conn.execute("INSERT INTO sla_targets (organization_id, scope, scope_ref, target_pct) VALUES (%s, 'all', NULL,"
                 " 99.9), (%s, 'site', %s, 99.95)", (org, org, fleet.sites[0].name))
    print(f"history: {n_devices} devices in {n_sites} sites, {len(events):,} status events over two months")
    return org


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--sites", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--output", type=Path, help="Also write the PDF here, to look at.")
    args = ap.parse_args()

    name = f"netpulse_bench_reports_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = ADMIN_URL.rpartition("/")[0] + "/" + name
    try:
        migrate(url, requested="postgres")
        with psycopg.connect(url, autocommit=True) as conn:
            org = seed(conn, args.devices, args.sites)
        period = ReportPeriod(*MONTH, "UTC", "month")
        best: dict[str, tuple[float, float, int | None]] = {}
        with psycopg.connect(url, autocommit=True, cursor_factory=TimedCursor) as conn:
            for _ in range(args.repeat):
                for fmt in ("pdf", "csv"):
                    SQL_SECONDS[0] = 0.0
                    began = time.perf_counter()
                    made = generate(conn, org, "availability", Scope("all"), period, fmt)
                    took = time.perf_counter() - began
                    if fmt not in best or took < best[fmt][0]:
                        best[fmt] = (took, SQL_SECONDS[0], made.pages)
            if args.output:
                args.output.write_bytes(generate(conn, org, "availability", Scope("all"), period, "pdf").content)
        pdf, csv = best["pdf"], best["csv"]
        print(f"monthly availability report, {args.devices} devices, {period.label} (best of {args.repeat})")
        print(f"  PDF: {pdf[0]:.2f} s, {pdf[2]} pages, SQL {pdf[1]:.2f} s ({100 * pdf[1] / pdf[0]:.0f} %), "
              f"layout and rendering {pdf[0] - pdf[1]:.2f} s")
        print(f"  CSV (baseline: the same reads, no layout): {csv[0]:.2f} s, SQL {csv[1]:.2f} s "
              f"({100 * csv[1] / csv[0]:.0f} %)")
        print(f"  PDF / CSV: {pdf[0] / csv[0]:.2f}x; target under 10 s: {'met' if pdf[0] < 10 else 'MISSED'}")
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
