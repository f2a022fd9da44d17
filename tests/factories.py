"""Small builders of test data through the real schema."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg

from ingest.rows import MetricRows, to_micros
from netpulse.metrics import MetricKind


def make_org(conn: psycopg.Connection, slug: str = "acme") -> uuid.UUID:
    row = conn.execute("INSERT INTO organizations (name, slug) VALUES (%s, %s) RETURNING id",
                       (slug.title(), slug)).fetchone()
    assert row is not None
    return row[0]


def make_channel(conn: psycopg.Connection, org: uuid.UUID, name: str, kind: str, config: dict[str, object], *,
                 enabled: bool = True) -> int:
    """A notification channel (config as stored; not checked here)."""
    from psycopg.types.json import Jsonb

    row = conn.execute("INSERT INTO notification_channels (organization_id, name, kind, config, enabled) "
                       "VALUES (%s, %s, %s, %s, %s) RETURNING id", (org, name, kind, Jsonb(config), enabled)).fetchone()
    assert row is not None
    return int(row[0])


def make_devices(conn: psycopg.Connection, org: uuid.UUID, n: int) -> list[int]:
    ids = []
    for i in range(n):
        row = conn.execute(
            "INSERT INTO devices (organization_id, name, address, ip_address, device_type) "
            "VALUES (%s, %s, %s, %s, 'router') RETURNING id",
            (org, f"dev-{i}", f"192.0.2.{i + 1}", f"192.0.2.{i + 1}"),
        ).fetchone()
        assert row is not None
        ids.append(row[0])
    return ids


def grid_rows(device_ids: list[int], start: datetime, n_times: int, step_s: int = 20,
              metrics: tuple[MetricKind, ...] = (MetricKind.ICMP_RTT_MS, MetricKind.CPU_PCT),
              seed: int = 1) -> MetricRows:
    """Every device x metric x time on a grid, random values (rows of a probe run)."""
    rng = np.random.default_rng(seed)
    t0 = to_micros(start)
    times = t0 + np.arange(n_times, dtype=np.int64) * step_s * 1_000_000
    d, m, t = np.meshgrid(np.array(device_ids), np.array([int(x) for x in metrics]), times, indexing="ij")
    n = d.size
    return MetricRows(t.ravel(), d.ravel(), m.ravel(), np.zeros(n, np.int32), rng.uniform(0, 100, n))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def telemetry_counts(client: object) -> dict[tuple[str, ...], float]:
    """The counters NetPulse keeps in Redis for /metrics, as {(family, *label values): value}; nonzero only."""
    from netpulse.telemetry import labels_of, read

    return {(s.family.name, *labels_of(k, s.family)): v for s in read(client) if s.family.kind == "counter"
            for k, v in s.values.items() if v}
