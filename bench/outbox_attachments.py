"""Outbox attachments benchmark: a report PDF of 1 and 3 MB queued for email through the notification
outbox, as ``bytea`` beside the row (what the outbox does) against base64 inside the row's JSON
payload (the baseline): seconds to queue it on each channel, to claim the rows (a claim reads the
payload, never the attachment table), to read the file back for the send, and bytes stored.

    python bench/outbox_attachments.py [--channels 3] [--repeat 5]

Creates its own database on NETPULSE_BENCH_ADMIN_URL (default: the local PostgreSQL) and drops it
afterwards. The file is random bytes: PDFs of charts compress little, and random bytes keep
PostgreSQL's TOAST compression from flattering either side. The best of ``--repeat`` runs counts
(the machine is shared: figures are noisy).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analytics.notify.base import Attachment, Notification  # noqa: E402
from analytics.notify.outbox import Message, RetryPolicy, _attachments, claim, enqueue  # noqa: E402
from netpulse.migrations import migrate  # noqa: E402

ADMIN_URL = os.environ.get("NETPULSE_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
# The baseline: the same rows with the file base64-encoded in the JSON payload.
_BASELINE = """
CREATE TABLE outbox_json (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, channel_id integer NOT NULL,
                          idempotency_key text UNIQUE NOT NULL, payload jsonb NOT NULL, status text DEFAULT 'queued')
"""


def best(repeat: int, fn: Callable[[], Any]) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return min(times)


def run(url: str, size_mb: int, channels: list[int], org: uuid.UUID, repeat: int) -> dict[str, float]:
    content = os.urandom(size_mb * 1024 * 1024)
    note = Notification(title="Monthly availability report", severity="info", message="attached",
                        started_at=datetime.now(UTC), kind="report",
                        attachments=(Attachment("report.pdf", "application/pdf", content),))
    figures: dict[str, float] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        def outbox() -> None:
            with conn.transaction():
                enqueue(conn, org, Message(kind="report", key=f"bench:{uuid.uuid4()}", notification=note),
                        channel_ids=channels)

        def baseline() -> None:
            payload = Jsonb({"notification": note.to_dict()})  # to_dict base64-encodes the file
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany("INSERT INTO outbox_json (channel_id, idempotency_key, payload) VALUES (%s, %s, %s)",
                                [(c, f"bench:{uuid.uuid4()}", payload) for c in channels])

        def reset() -> None:
            conn.execute("TRUNCATE notification_outbox CASCADE")
            conn.execute("TRUNCATE outbox_json")

        reset()
        figures["queue_bytea_s"] = best(repeat, outbox)
        figures["queue_json_s"] = best(repeat, baseline)
        reset()
        outbox()
        baseline()
        figures["stored_bytea_mb"] = conn.execute(
            "SELECT (pg_total_relation_size('notification_attachments')"
            " + pg_total_relation_size('notification_outbox')) / 1048576.0").fetchone()[0]
        figures["stored_json_mb"] = conn.execute(
            "SELECT pg_total_relation_size('outbox_json') / 1048576.0").fetchone()[0]

        def claim_bytea() -> None:
            with conn.transaction():
                rows = claim(conn, lease=60, policy=RetryPolicy(), limit=len(channels))
                conn.execute("UPDATE notification_outbox SET status = 'queued', claim_token = NULL, "
                             "claimed_until = NULL WHERE id = ANY(%s)", ([r.id for r in rows],))

        def claim_json() -> None:
            with conn.transaction():
                conn.execute("SELECT id, payload FROM outbox_json WHERE status = 'queued' FOR UPDATE SKIP LOCKED"
                             ).fetchall()

        figures["claim_bytea_s"] = best(repeat, claim_bytea)
        figures["claim_json_s"] = best(repeat, claim_json)
        outbox_id = conn.execute("SELECT min(id) FROM notification_outbox").fetchone()[0]
        json_id = conn.execute("SELECT min(id) FROM outbox_json").fetchone()[0]
        figures["read_file_bytea_s"] = best(repeat, lambda: _attachments(conn, outbox_id))
        figures["read_file_json_s"] = best(repeat, lambda: Notification.from_dict(conn.execute(
            "SELECT payload FROM outbox_json WHERE id = %s", (json_id,)).fetchone()[0]["notification"]))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    name = f"netpulse_bench_outbox_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = ADMIN_URL.rpartition("/")[0] + "/" + name
    try:
        migrate(url, requested="postgres")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(_BASELINE)
            org = conn.execute("INSERT INTO organizations (name, slug) VALUES ('Bench', 'bench') RETURNING id"
                               ).fetchone()[0]
            channels = [conn.execute("INSERT INTO notification_channels (organization_id, name, kind, config) "
                                     "VALUES (%s, %s, 'smtp', '{\"to\": [\"boss@example.com\"]}') RETURNING id",
                                     (org, f"mail-{i}")).fetchone()[0] for i in range(args.channels)]
        print(f"a report file queued on {args.channels} email channel(s); best of {args.repeat} "
              "(noisy, shared machine)")
        print(f"{'file':>6} {'':>12} {'queue s':>9} {'claim s':>9} {'read s':>9} {'stored MB':>10}")
        for size in (1, 3):
            f = run(url, size, channels, org, args.repeat)
            for kind in ("bytea", "json"):
                label = "bytea" if kind == "bytea" else "base64 JSON"
                print(f"{size:>4} MB {label:>12} {f[f'queue_{kind}_s']:>9.4f} {f[f'claim_{kind}_s']:>9.4f} "
                      f"{f[f'read_file_{kind}_s']:>9.4f} {f[f'stored_{kind}_mb']:>10.2f}")
            ratios = [f[f"{what}_json_{unit}"] / f[f"{what}_bytea_{unit}"]
                      for what, unit in (("queue", "s"), ("claim", "s"), ("read_file", "s"), ("stored", "mb"))]
            print(f"{'':>6} {'ratio':>12} {ratios[0]:>9.1f} {ratios[1]:>9.1f} {ratios[2]:>9.1f} {ratios[3]:>10.2f}"
                  "   (base64 JSON / bytea)")
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
