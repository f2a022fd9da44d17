"""Outages logged as state changes: one line when a dependency starts failing, one when it is back.

A loop that retries every second must not write a traceback every second (a 60 s Redis outage once
filled 4.8 MB of scheduler log). :class:`OutageLog` turns the stream of failures into two lines::

    >>> from structlog.testing import CapturingLogger
    >>> log = CapturingLogger()
    >>> redis_down = OutageLog(log, "redis")
    >>> for _ in range(60):
    ...     redis_down.failed(ConnectionError("Connection refused"))
    >>> redis_down.ok()
    >>> [(call.method_name, call.args[0], call.kwargs.get("failures")) for call in log.calls]
    [('warning', 'netpulse.workers.outage_started', None), ('info', 'netpulse.workers.outage_ended', 60)]

:func:`retry_on_outage` does the same for actors: an infrastructure error (the database, Redis or
the broker away) becomes a ``dramatiq.Retry`` instead of a logged traceback, the message is retried
with the usual backoff, and the process logs the outage once when it starts and once when an actor
succeeds again.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import dramatiq
import psycopg
import redis
import sqlalchemy.exc
import structlog

from netpulse.errors import StorageError

__all__ = ["OutageLog", "OutageRetry", "INFRASTRUCTURE_ERRORS", "retry_on_outage", "describe"]

# Errors that mean "a service is away", not "this code is wrong": retried quietly.
INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (
    psycopg.OperationalError, sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, StorageError,
    redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, dramatiq.errors.ConnectionError,
    ConnectionError, TimeoutError,
)


def describe(exc: BaseException) -> str:
    """The first line of an error, without the SQL or traceback that some drivers add."""
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).strip()
    return f"{type(inner).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


class OutageLog:
    """Tracks one dependency; ``failed(exc)`` on each failure, ``ok()`` on each success."""

    def __init__(self, log: Any, what: str) -> None:
        self.log = log
        self.what = what
        self.failures = 0
        self.since: float | None = None
        self._kind: str | None = None

    @property
    def down(self) -> bool:
        return self.since is not None

    def failed(self, exc: BaseException) -> None:
        kind = type(getattr(exc, "orig", None) or exc).__name__
        self.failures += 1
        if self.since is None or kind != self._kind:  # a new outage, or a different failure: a new state
            if self.since is None:
                self.since = time.monotonic()
            self._kind = kind
            # A traceback only for what is not a service being away (a bug), and once per state.
            trace = {} if isinstance(exc, INFRASTRUCTURE_ERRORS) else {"exc_info": exc}
            self.log.warning("netpulse.workers.outage_started", what=self.what, error=describe(exc), **trace)

    def ok(self) -> None:
        if self.since is None:
            return
        self.log.info("netpulse.workers.outage_ended", what=self.what, failures=self.failures,
                      seconds=round(time.monotonic() - self.since, 1))
        self.failures, self.since, self._kind = 0, None, None


P = ParamSpec("P")
R = TypeVar("R")


class OutageRetry(dramatiq.Retry):
    """An actor's message retried because a service is away (logged once per outage, not per message)."""


def retry_on_outage(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn an infrastructure error raised by actor ``fn`` into a Dramatiq retry (:class:`OutageRetry`):
    retried with the backoff of the Retries middleware, without a traceback. Each actor of the process
    logs one line when its runs start failing and one when a run succeeds again (with how many failed
    meanwhile), instead of a line per failed message."""
    outage = OutageLog(structlog.get_logger("netpulse.workers"), f"actor {fn.__name__}")

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            result = fn(*args, **kwargs)
        except INFRASTRUCTURE_ERRORS as exc:
            outage.failed(exc)
            raise OutageRetry(describe(exc)) from None
        outage.ok()
        return result

    return wrapper
