"""What actors need at run time, set once by the process that runs them (a composition root)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg
from sqlalchemy import Engine

from ingest.loader import Loader
from ingest.simulator import Fleet
from netpulse.db import make_engine, raw_connection


@dataclass
class Runtime:
    database_url: str
    fleet: Fleet | None = None          # the simulated network, when the process simulates one
    icmp_privileged: bool = True
    icmp_allowed: bool = True           # False: real devices are probed over TCP instead
    tcp_fallback_port: int = 22
    retention_days: int = 90
    partitions_ahead_days: int = 3
    engine: Engine = field(init=False)
    fleet_index: dict[str, int] = field(init=False, default_factory=dict)
    loader: Loader = field(init=False, default_factory=Loader)

    def __post_init__(self) -> None:
        self.engine = make_engine(self.database_url)
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
