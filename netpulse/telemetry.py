"""NetPulse's own counters, kept in Redis so one scrape sees the work of every process.

Workers and the scheduler are separate processes, often on other machines; the web process serves
``/metrics``. Each process adds to shared counters in Redis (one pipelined round trip per batch of
work, never per device), and the web's collector reads them with one ``HGETALL`` per family at
scrape time. Counters survive a worker's restart, so ``rate()`` sees no resets but Redis's own.

    >>> FAMILIES["netpulse_probes"].labels
    ('kind', 'result')
    >>> cumulative((1.0, 5.0), {"b:1.0": 2, "b:5.0": 1, "b:+Inf": 1})
    [('1.0', 2.0), ('5.0', 3.0), ('+Inf', 4.0)]

Writing (a failure to reach Redis is logged and dropped: telemetry never fails the work itself)::

    with Telemetry(client).batch() as t:
        t.count("netpulse_probes", ("snmp", "failed"), 3)
        t.observe("netpulse_probe_lag_seconds", 1.7, n=250)
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog

__all__ = ["Family", "FAMILIES", "Telemetry", "Batch", "Snapshot", "read", "labels_of", "cumulative", "KEY_PREFIX"]

log = structlog.get_logger("netpulse.telemetry")

KEY_PREFIX = "netpulse:telemetry:"
_SEP = "\t"     # between label values in a hash field (label values come from fixed sets)


@dataclass(frozen=True, slots=True)
class Family:
    name: str                                   # the Prometheus name (a counter gets "_total" on export)
    kind: Literal["counter", "histogram"]
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()             # histogram upper bounds, ascending (+Inf is implied)


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("netpulse_probes", "counter",
           "Probes run by the workers, by kind (icmp, snmp, tcp, http) and result (ok, failed)", ("kind", "result")),
    Family("netpulse_probes_skipped", "counter",
           "Device probes not run: stale (older than the device's interval when a worker took it), "
           "in_flight (the previous probe still queued or running) or missed (the scheduler stalled)",
           ("reason",)),
    Family("netpulse_probes_scheduled", "counter", "Device probes the scheduler enqueued"),
    Family("netpulse_probe_lag_seconds", "histogram",
           "How long after its scheduled slot each device probe started",
           buckets=(0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)),
    Family("netpulse_loader_rows", "counter",
           "Metric rows handed to the loader, by result (inserted, duplicate, rejected)", ("result",)),
    Family("netpulse_notification_deliveries", "counter",
           "Notification delivery attempts made, by state (sent, failed, rate_limited)", ("state",)),
    Family("netpulse_messages_dropped", "counter",
           "Broker messages not processed to the end, by actor and reason: expired (older than the actor's "
           "max_age), skipped (a periodic run whose retries ran out; the next period runs it) or "
           "dead_lettered (failed all its retries)", ("actor", "reason")),
    Family("netpulse_organization_failures", "counter",
           "Organizations whose part of a periodic job failed (the others went on), by job", ("job",)),
)}


def _field(labels: Sequence[str]) -> str:
    return _SEP.join(labels)


def _bucket_field(bound: float) -> str:
    return "b:+Inf" if math.isinf(bound) else f"b:{float(bound)}"


@dataclass
class Batch:
    """Increments collected in memory and written in one pipeline when the batch closes."""

    counts: dict[tuple[str, str], float] = field(default_factory=dict)
    sums: dict[tuple[str, str], float] = field(default_factory=dict)

    def count(self, family: str, labels: Sequence[str] = (), n: float = 1) -> None:
        f = FAMILIES[family]
        if f.kind != "counter" or len(labels) != len(f.labels):
            raise ValueError(f"{family} is a {f.kind} with labels {f.labels}, not counted with {tuple(labels)}")
        if n:
            key = (family, _field(labels))
            self.counts[key] = self.counts.get(key, 0) + n

    def observe(self, family: str, value: float, n: int = 1) -> None:
        """``n`` observations of ``value`` (a batch of devices that all started equally late)."""
        f = FAMILIES[family]
        if f.kind != "histogram":
            raise ValueError(f"{family} is a {f.kind}, not a histogram")
        if n <= 0:
            return
        bound = next((b for b in f.buckets if value <= b), math.inf)
        for name, amount in ((_bucket_field(bound), n), ("count", n)):
            self.counts[(family, name)] = self.counts.get((family, name), 0) + amount
        self.sums[(family, "sum")] = self.sums.get((family, "sum"), 0.0) + value * n


class Telemetry:
    """Writes batches of increments to Redis; ``client`` None makes every batch a no-op."""

    def __init__(self, client: Any) -> None:
        self.client = client

    @contextmanager
    def batch(self) -> Iterator[Batch]:
        b = Batch()
        yield b
        self.write(b)

    def write(self, b: Batch) -> None:
        if self.client is None or not (b.counts or b.sums):
            return
        try:
            pipe = self.client.pipeline(transaction=False)
            for (family, name), n in b.counts.items():
                if float(n).is_integer():
                    pipe.hincrby(KEY_PREFIX + family, name, int(n))
                else:
                    pipe.hincrbyfloat(KEY_PREFIX + family, name, float(n))
            for (family, name), total in b.sums.items():
                pipe.hincrbyfloat(KEY_PREFIX + family, name, total)
            pipe.execute()
        except Exception as exc:  # noqa: BLE001 - counters are best effort; the probe or load went through
            log.warning("netpulse.telemetry.write_failed", error=type(exc).__name__)


@dataclass(frozen=True, slots=True)
class Snapshot:
    family: Family
    values: dict[str, float]          # hash field -> value, as stored


def read(client: Any) -> list[Snapshot]:
    """Every family's stored values, in one pipelined round trip."""
    pipe = client.pipeline(transaction=False)
    for name in FAMILIES:
        pipe.hgetall(KEY_PREFIX + name)
    out = []
    for family, raw in zip(FAMILIES.values(), pipe.execute(), strict=True):
        values = {(k.decode() if isinstance(k, bytes) else str(k)): float(v) for k, v in raw.items()}
        out.append(Snapshot(family, values))
    return out


def labels_of(field_name: str, family: Family) -> list[str]:
    """The label values of a counter's hash field."""
    return field_name.split(_SEP) if family.labels else []


def cumulative(buckets: Sequence[float], values: Mapping[str, float]) -> list[tuple[str, float]]:
    """A histogram's stored per-bucket counts as Prometheus's cumulative (le, count) pairs."""
    out, running = [], 0.0
    for bound in [*buckets, math.inf]:
        running += values.get(_bucket_field(bound), 0.0)
        out.append(("+Inf" if math.isinf(bound) else str(float(bound)), running))
    return out
