"""The jobs the scheduler sends besides the probes, and how often: one list for every scheduler."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["periodic_jobs", "PERIODIC_ACTORS"]

# Runs the scheduler sends again next period: one that cannot finish is skipped, not dead-lettered.
PERIODIC_ACTORS = frozenset({"workers.advance_rollups", "workers.maintain_storage", "workers.evaluate_alerts",
                             "workers.send_digests", "workers.check_sla", "workers.score_anomalies",
                             "workers.sweep_outbox", "workers.schedule_reports"})


def periodic_jobs(*, outbox_sweep_s: int) -> list[tuple[int, Callable[[], object]]]:
    """(every seconds, send) for the rollups, storage upkeep, alerting, anomaly scores, the outbox sweeper
    and the report schedules."""
    from workers.actors import advance_rollups, maintain_storage
    from workers.alerting import check_sla, evaluate_alerts, send_digests
    from workers.anomaly import score_anomalies
    from workers.notify import sweep_outbox
    from workers.reports import schedule_reports

    return [(60, advance_rollups.send), (3600, maintain_storage.send), (60, evaluate_alerts.send),
            (900, send_digests.send), (300, check_sla.send), (900, score_anomalies.send),
            (outbox_sweep_s, sweep_outbox.send), (60, schedule_reports.send)]
