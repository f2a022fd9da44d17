"""The scheduler: every interval, enqueue probe batches of a few hundred devices per message.

Ticks are aligned to multiples of the interval on the wall clock. When the scheduler wakes up
after the next tick was already due (a stalled process, a slow database), the missed ticks are
skipped and counted as late instead of being enqueued in a burst.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import Engine, text

log = structlog.get_logger("netpulse.workers.scheduler")

_DUE_DEVICES = text("""
SELECT id, name, address, simulated, coalesce(probe_count, :count) AS count,
       coalesce(probe_timeout_s, :timeout) AS timeout_s
FROM devices
WHERE probe_enabled AND status IN ('active', 'staged')
ORDER BY id
""")


@dataclass
class SchedulerStats:
    ticks: int = 0
    late_ticks: int = 0
    messages: int = 0
    devices: int = 0


@dataclass
class Scheduler:
    engine: Engine
    send_probe: Callable[[list[dict[str, Any]], int], object]
    # (every_s, send): jobs enqueued periodically besides the probes (rollups, storage upkeep).
    periodic: list[tuple[int, Callable[[], object]]] = field(default_factory=list)
    interval_s: int = 60
    batch_size: int = 250
    probe_count: int = 3
    probe_timeout_s: float = 2.0
    stats: SchedulerStats = field(default_factory=SchedulerStats)
    _last_sent: dict[int, float] = field(default_factory=dict, init=False)

    def due_devices(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(_DUE_DEVICES, {"count": self.probe_count, "timeout": self.probe_timeout_s})
            return [dict(r._mapping) for r in rows]

    def tick(self, tick_us: int) -> int:
        """Enqueue one tick's probe batches; returns the number of messages sent."""
        devices = self.due_devices()
        sent = 0
        for i in range(0, len(devices), self.batch_size):
            self.send_probe(devices[i:i + self.batch_size], tick_us)
            sent += 1
        self.stats.ticks += 1
        self.stats.messages += sent
        self.stats.devices += len(devices)
        now = time.time()
        for k, (every_s, send) in enumerate(self.periodic):
            if now - self._last_sent.get(k, 0.0) >= every_s:
                send()
                self._last_sent[k] = now
        return sent

    def run(self, stop: threading.Event) -> None:
        """Tick on interval boundaries until ``stop`` is set."""
        interval = self.interval_s
        next_tick = (int(time.time()) // interval + 1) * interval
        while not stop.is_set():
            delay = next_tick - time.time()
            if delay > 0 and stop.wait(delay):
                break
            now = time.time()
            missed = int((now - next_tick) // interval)
            if missed > 0:
                self.stats.late_ticks += missed
                log.warning("netpulse.workers.ticks_late", skipped=missed)
                next_tick += missed * interval
            try:
                self.tick(int(next_tick * 1_000_000))
            except Exception:  # the loop must outlive a database hiccup; the next tick retries
                log.critical("netpulse.workers.tick_failed", exc_info=True)
            next_tick += interval
