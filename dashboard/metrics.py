"""``/metrics``: NetPulse's own health in the Prometheus text format.

What one scrape returns, and where it comes from:

- this web process: HTTP request latency by route *template* (``/api/v1/devices/<int:device_id>``,
  never the raw path, so the series stay few), method and status; the process's CPU, memory and GC;
- every worker and the scheduler, through counters they keep in Redis (``netpulse.telemetry``):
  probes by kind and result, probe lag behind the schedule, skipped probes, loader rows, notification
  delivery attempts by state. Workers run on other machines and restart; Redis is the one place they
  all reach, so one scrape of the web sees the whole fleet (with several web replicas, every replica
  shows the same fleet counters: aggregate them with ``max without (instance)``);
- computed at scrape time: queue depth (from the broker), rollup lag (now - watermark), open alerts
  by severity and notification deliveries waiting, from a few indexed reads under a statement timeout.

A source that cannot be read is left out of the scrape and shows as ``netpulse_metrics_source_up 0``.
``/metrics`` needs no login; with ``NETPULSE_METRICS_TOKEN`` set it answers only that bearer token.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import structlog
from flask import Flask, current_app, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from sqlalchemy import Engine
from werkzeug.wrappers import Response

from netpulse import telemetry
from netpulse.db import raw_connection
from netpulse.rollups import lag_seconds

__all__ = ["install_metrics", "NetPulseCollector", "QueueDepths"]

log = structlog.get_logger("netpulse.dashboard.metrics")

# A callable giving {queue: {"ready": n, "in_progress": n, "delayed": n, "dead": n}}.
QueueDepths = Callable[[], Mapping[str, Mapping[str, int]]]
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_DB_FIGURES = """
SELECT (SELECT coalesce(json_object_agg(severity, n), '{}') FROM (
            SELECT severity, count(*) AS n FROM alerts WHERE NOT resolved GROUP BY severity) s),
       (SELECT count(*) FROM notification_outbox WHERE status IN ('queued', 'sending')
                                                  OR (status = 'failed' AND next_attempt_at IS NOT NULL))
"""


class NetPulseCollector:
    """Reads the fleet's counters and the scrape-time figures; registered on the app's registry."""

    def __init__(self, engine: Engine, redis: Any = None, queue_depths: QueueDepths | None = None) -> None:
        self.engine = engine
        self.redis = redis
        self.queue_depths = queue_depths

    def describe(self) -> list[Metric]:
        return []   # nothing to check for duplicates at registration; collect() runs per scrape only

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("netpulse_metrics_source_up", "Whether this scrape could read the source",
                               labels=["source"])
        for source, read in (("postgresql", self._database), ("redis", self._counters),
                             ("broker", self._queues)):
            if source == "redis" and self.redis is None or source == "broker" and self.queue_depths is None:
                continue
            try:
                families = list(read())
            except Exception as exc:  # noqa: BLE001 - one source down must not empty the whole scrape
                log.warning("netpulse.dashboard.metrics_source_failed", source=source, error=type(exc).__name__)
                up.add_metric([source], 0)
                continue
            up.add_metric([source], 1)
            yield from families
        yield up

    def _database(self) -> Iterator[Metric]:
        with raw_connection(self.engine) as conn:
            try:
                with conn.transaction():
                    conn.execute("SET LOCAL statement_timeout = '2s'")
                    row = conn.execute(_DB_FIGURES).fetchone()
                    lag = lag_seconds(conn)
            finally:
                conn.rollback()
        by_severity, queued = (row[0], row[1]) if row else ({}, 0)
        alerts = GaugeMetricFamily("netpulse_alerts_open", "Alerts not resolved, by severity", labels=["severity"])
        for severity in ("info", "warning", "critical"):
            alerts.add_metric([severity], float(by_severity.get(severity, 0)))
        yield alerts
        yield GaugeMetricFamily("netpulse_notification_deliveries_queued",
                                "Notifications in the outbox not yet sent: new, being sent, or failed with a retry "
                                "to come", value=float(queued))
        if lag is not None:
            yield GaugeMetricFamily("netpulse_rollup_lag_seconds",
                                    "How far the minute rollup is behind now (now - watermark)", value=lag)

    def _counters(self) -> Iterator[Metric]:
        for snap in telemetry.read(self.redis):
            f = snap.family
            if f.kind == "counter":
                counter = CounterMetricFamily(f.name, f.help, labels=list(f.labels))
                for field, value in sorted(snap.values.items()):
                    counter.add_metric(telemetry.labels_of(field, f), value)
                yield counter
            else:
                hist = HistogramMetricFamily(f.name, f.help)
                hist.add_metric([], telemetry.cumulative(f.buckets, snap.values), snap.values.get("sum", 0.0))
                yield hist

    def _queues(self) -> Iterator[Metric]:
        assert self.queue_depths is not None
        depth = GaugeMetricFamily("netpulse_queue_messages", "Messages in each work queue, by state "
                                  "(ready, in_progress, delayed, dead)", labels=["queue", "state"])
        for queue, states in sorted(self.queue_depths().items()):
            for state, n in states.items():
                depth.add_metric([queue, state], float(n))
        yield depth


def _route() -> str:
    rule = request.url_rule
    return rule.rule if rule is not None else "<unmatched>"


def install_metrics(app: Flask, *, engine: Engine, redis: Any = None, queue_depths: QueueDepths | None = None,
                    token: str | None = None) -> CollectorRegistry:
    """Time every request and serve ``/metrics``. Call first in the app factory: a request hook
    registered later (the login guard) could answer before the timer started."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    registry.register(NetPulseCollector(engine, redis, queue_depths))  # type: ignore[arg-type]
    latency = Histogram("netpulse_http_request_duration_seconds", "HTTP request latency by route template",
                        ["method", "route", "status"], registry=registry, buckets=_LATENCY_BUCKETS)

    @app.before_request
    def _start_timer() -> None:
        g.netpulse_started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        started = g.get("netpulse_started")
        if started is not None:
            method = request.method if request.method in _METHODS else "OTHER"
            latency.labels(method, _route(), str(response.status_code)).observe(time.perf_counter() - started)
        return response

    app.extensions["netpulse.metrics_registry"] = registry
    app.extensions["netpulse.metrics_token"] = token
    app.add_url_rule("/metrics", "metrics", metrics)
    return registry


def metrics() -> Response:
    token: str | None = current_app.extensions["netpulse.metrics_token"]
    if token is not None:
        sent = request.headers.get("Authorization", "")
        if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
            return Response("a bearer token is required for /metrics\n", status=401, mimetype="text/plain",
                            headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    body = generate_latest(current_app.extensions["netpulse.metrics_registry"])
    return Response(body, status=200, headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"})
