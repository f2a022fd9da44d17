"""How many messages wait in each of NetPulse's Dramatiq queues, read per broker type.

Dramatiq has no broker-neutral "queue size" call, so each broker type is read its own way:

- Redis: the queue is a list of message ids (``<ns>:<queue>``) beside a hash of the messages
  (``<ns>:<queue>.msgs``) that also holds those a worker has taken and not yet acknowledged; delayed
  messages (retries, backoffs) live in ``<ns>:<queue>.DQ.msgs`` and dead letters in ``<ns>:<queue>.XQ``.
  One MULTI reads them all, so the figures are of one instant.
- RabbitMQ: a passive count of each queue, its delay queue and its dead-letter queue.

``QUEUES`` names every queue the actors use (a test keeps it equal to the declared actors' queues),
so a process that declares no actors (the web server) reads the same list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dramatiq

from netpulse.health import Check, CheckResult

__all__ = ["QUEUES", "QueueDepth", "queue_depths", "queue_check"]

QUEUES = ("probes", "loads", "maintenance", "alerting", "notifications", "reports")


@dataclass(frozen=True, slots=True)
class QueueDepth:
    ready: int          # waiting for a worker
    in_progress: int    # taken by a worker (prefetched or running), not yet acknowledged
    delayed: int        # waiting for their time (retries with backoff, delayed sends)
    dead: int           # dead-lettered after their last retry

    def as_dict(self) -> dict[str, int]:
        return {"ready": self.ready, "in_progress": self.in_progress, "delayed": self.delayed, "dead": self.dead}


def _redis_depths(broker: Any, names: tuple[str, ...]) -> dict[str, QueueDepth]:
    ns = broker.namespace
    pipe = broker.client.pipeline(transaction=True)
    for q in names:
        pipe.llen(f"{ns}:{q}")
        pipe.hlen(f"{ns}:{q}.msgs")
        pipe.hlen(f"{ns}:{q}.DQ.msgs")
        pipe.zcard(f"{ns}:{q}.XQ")
    values = pipe.execute()
    out = {}
    for i, q in enumerate(names):
        ready, held, delayed, dead = (int(v) for v in values[4 * i: 4 * i + 4])
        out[q] = QueueDepth(ready, max(0, held - ready), delayed, dead)
    return out


def queue_depths(broker: dramatiq.Broker, names: tuple[str, ...] = QUEUES) -> dict[str, QueueDepth]:
    """The depth of each named queue on ``broker`` (a Redis or RabbitMQ broker)."""
    from dramatiq.brokers.redis import RedisBroker

    if isinstance(broker, RedisBroker):
        return _redis_depths(broker, names)
    try:
        from dramatiq.brokers.rabbitmq import RabbitmqBroker
    except ImportError:  # pika not installed: no RabbitMQ broker can exist either
        RabbitmqBroker = None  # type: ignore[assignment,misc]  # noqa: N806
    if RabbitmqBroker is not None and isinstance(broker, RabbitmqBroker):
        out = {}
        for q in names:
            ready, delayed, dead = broker.get_queue_message_counts(q)
            # RabbitMQ counts only what is not delivered yet; unacknowledged messages are not in it.
            out[q] = QueueDepth(int(ready), 0, int(delayed), int(dead))
        return out
    raise TypeError(f"reading queue depths of a {type(broker).__name__} is not supported")


def queue_check(broker: dramatiq.Broker, max_ready: int) -> Check:
    """Unhealthy when a queue holds more than ``max_ready`` messages waiting for a worker (a backlog
    the workers are not draining: too few of them, or none running)."""
    def run() -> CheckResult:
        depths = queue_depths(broker)
        worst = max((d.ready for d in depths.values()), default=0)
        return CheckResult(worst <= max_ready, {"max_ready": max_ready,
                                                "queues": {q: d.as_dict() for q, d in depths.items()}})

    return Check("queues", run)
