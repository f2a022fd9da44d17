"""Work handed to the workers by a process that runs no actors (the web server).

Such a process declares no actor (declaring one binds it to a global broker), so it sends messages by
actor name onto the broker's queues; the actor modules take their names from here, so the two never
drift apart. The composition root builds a sender on its broker and gives it to the app::

    send_report = report_sender(make_broker(client=redis_client))
    send_report(run_id)   # a worker makes report run ``run_id``
"""

from __future__ import annotations

from collections.abc import Callable

import dramatiq

__all__ = ["REPORTS", "GENERATE_REPORT", "report_sender"]

REPORTS = "reports"                            # the queue of the report actors
GENERATE_REPORT = "workers.generate_report"    # makes one report run (workers.reports.generate_report)


def report_sender(broker: dramatiq.Broker) -> Callable[[int], None]:
    """A function that asks a worker to make report run ``run_id`` (one message on ``broker``)."""

    def send(run_id: int) -> None:
        broker.enqueue(dramatiq.Message(queue_name=REPORTS, actor_name=GENERATE_REPORT, args=(run_id,), kwargs={},
                                        options={}))

    return send
