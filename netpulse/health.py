"""Health checks: a list of named checks, run together under one deadline.

The web process answers ``/health`` (every check) and ``/ready`` (the checks marked ``ready``) from
such a list; a process adds its own by appending a :class:`Check`. A check's details are safe to
publish: figures and names NetPulse owns (latencies, counts, queue names), never an error's text,
which can carry host names, ports and user names (that goes to the log)::

    checks = [database_check(engine), redis_check(client), Check("leader", lease_is_held)]
    report = run_checks(checks)
    report.ok, report.as_dict()   # False, {"status": "unhealthy", "checks": {"database": {...}, ...}}
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import Engine

__all__ = ["Check", "CheckResult", "HealthReport", "run_checks", "database_check", "redis_check",
           "migrations_check", "DEFAULT_TIMEOUT_S"]

log = structlog.get_logger("netpulse.health")

DEFAULT_TIMEOUT_S = 3.0
_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="netpulse-health")


@dataclass(frozen=True, slots=True)
class CheckResult:
    ok: bool
    details: dict[str, Any] = field(default_factory=dict)   # published as is: figures, never error text


@dataclass(frozen=True, slots=True)
class Check:
    """``run`` returns a result or raises (a failure whose text is logged, not published)."""

    name: str
    run: Callable[[], CheckResult]
    ready: bool = False          # also decides readiness (/ready), not only health


@dataclass(frozen=True, slots=True)
class HealthReport:
    results: dict[str, CheckResult]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results.values())

    def as_dict(self) -> dict[str, Any]:
        return {"status": "healthy" if self.ok else "unhealthy",
                "checks": {name: {"status": "ok" if r.ok else "fail", **r.details}
                           for name, r in self.results.items()}}


def _guarded(check: Check) -> CheckResult:
    started = time.perf_counter()
    try:
        return check.run()
    except Exception as exc:  # noqa: BLE001 - a failing dependency is the answer, not an error of ours
        log.warning("netpulse.health.check_failed", check=check.name, error=str(exc).splitlines()[0] if str(exc)
                    else type(exc).__name__, seconds=round(time.perf_counter() - started, 3))
        return CheckResult(False, {"error": "unavailable"})


def run_checks(checks: Sequence[Check], *, timeout_s: float = DEFAULT_TIMEOUT_S) -> HealthReport:
    """Run the checks concurrently; one that has not answered within ``timeout_s`` fails as a timeout."""
    futures = [(c, _POOL.submit(_guarded, c)) for c in checks]
    deadline = time.monotonic() + timeout_s
    results: dict[str, CheckResult] = {}
    for check, future in futures:
        try:
            results[check.name] = future.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            log.warning("netpulse.health.check_timeout", check=check.name, timeout_s=timeout_s)
            results[check.name] = CheckResult(False, {"error": "timeout"})
    return HealthReport(results)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def database_check(engine: Engine) -> Check:
    """PostgreSQL answers ``SELECT 1``."""
    from sqlalchemy import text

    def run() -> CheckResult:
        started = time.perf_counter()
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return CheckResult(True, {"latency_ms": _ms(started)})

    return Check("database", run, ready=True)


def redis_check(client: Any) -> Check:
    """Redis answers ``PING``."""
    def run() -> CheckResult:
        started = time.perf_counter()
        client.ping()
        return CheckResult(True, {"latency_ms": _ms(started)})

    return Check("redis", run, ready=True)


def migrations_check(engine: Engine) -> Check:
    """Every migration this code expects is applied (a new release before ``netpulse migrate``: not ready)."""
    from netpulse.db import raw_connection
    from netpulse.migrations import unapplied

    def run() -> CheckResult:
        with raw_connection(engine) as conn:
            missing = unapplied(conn)
            conn.rollback()
        return CheckResult(not missing, {"pending": len(missing)})

    return Check("migrations", run, ready=True)
