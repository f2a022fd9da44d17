"""The scheduler: enqueue each device's probe at its own slots, in batches of a few hundred.

Each device is probed every ``interval`` seconds (its own ``probe_interval_s`` or the default) at
slots ``k * interval + offset``. The offset is a hash of the device id, so ten thousand devices on a
60 s interval arrive about 167 a second rather than all on the minute: the probes, the queue and
the loader see an even load. The scheduler wakes once a second, takes the devices whose slot came
due since its last wake-up and sends them in messages of at most ``batch_size`` devices.

Falling behind never piles work up:
- a wake-up that comes late (a stalled process) sends each due device once, stamped now, and
  counts the slots it missed (``late_ticks`` for wake-ups, ``late_probes`` for device slots);
- with leases (``workers.leases``), a device whose previous probe is still queued or running is not
  sent again: never two probes of one device at once, and a backlog cannot grow. Its slot counts
  as a late probe. The probe actor also drops a message older than the device's interval.

Exactly one scheduler acts: given a :class:`~workers.leader.LeaderLease`, :meth:`Scheduler.run`
ticks only while it holds the lease, and a second scheduler waits to take over. A tick that fails
(the database, Redis or the broker away) is retried on the next second; the outage is logged once
when it starts and once when it ends, with the count of failed ticks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import structlog
from sqlalchemy import Engine, text

from netpulse.telemetry import Telemetry
from workers.leader import LeaderLease
from workers.leases import ProbeLeases
from workers.outage import OutageLog

log = structlog.get_logger("netpulse.workers.scheduler")

_DEVICES = text("""
SELECT id, name, address, simulated, coalesce(probe_count, :count) AS count,
       coalesce(probe_timeout_s, :timeout) AS timeout_s, coalesce(probe_interval_s, :interval) AS interval_s
FROM devices
WHERE probe_enabled AND status IN ('active', 'staged')
ORDER BY id
""")

_GOLDEN = 2654435761  # Knuth's multiplicative hash: consecutive ids land far apart


def slot_offsets(device_ids: np.ndarray, intervals_s: np.ndarray) -> np.ndarray:
    """Each device's offset in [0, interval) seconds: stable for a device, spread over the fleet."""
    return (device_ids.astype(np.uint64) * np.uint64(_GOLDEN) % np.uint64(2**32)).astype(np.int64) % intervals_s


class ProbesInFlight(Exception):
    """Not raised: the state of workers being behind, for the state log."""


@dataclass
class SchedulerStats:
    ticks: int = 0
    late_ticks: int = 0      # wake-ups missed (the process stalled)
    late_probes: int = 0     # device slots not probed: missed in a stall, or the previous probe still in flight
    messages: int = 0
    devices: int = 0         # device probes enqueued


@dataclass
class _Plan:
    devices: list[dict[str, Any]]
    ids: np.ndarray
    interval_s: np.ndarray
    offset_s: np.ndarray
    loaded_at: float


@dataclass
class Scheduler:
    engine: Engine
    send_probe: Callable[[list[dict[str, Any]], int], object]
    # (every_s, send): jobs enqueued periodically besides the probes (rollups, storage upkeep).
    periodic: list[tuple[int, Callable[[], object]]] = field(default_factory=list)
    interval_s: int = 60                 # for devices without their own probe_interval_s
    batch_size: int = 250
    probe_count: int = 3
    probe_timeout_s: float = 2.0
    leases: ProbeLeases | None = None
    refresh_s: float = 30.0              # how often the device list is re-read
    telemetry: Telemetry | None = None   # counters for /metrics (probes scheduled and skipped)
    stats: SchedulerStats = field(default_factory=SchedulerStats)
    _last_sent: dict[int, float] = field(default_factory=dict, init=False)
    _plan: _Plan | None = field(default=None, init=False)
    _last_tick_s: int | None = field(default=None, init=False)
    _outage: OutageLog = field(default_factory=lambda: OutageLog(log, "scheduler tick"), init=False)
    _stale_plan: OutageLog = field(default_factory=lambda: OutageLog(log, "device list (kept)"), init=False)
    # Workers behind: previous probes still in flight (logged when it starts and ends, not each second).
    _behind: OutageLog = field(default_factory=lambda: OutageLog(log, "probe capacity"), init=False)

    def refresh(self) -> _Plan:
        """Re-read the devices to probe (also done every ``refresh_s`` by ``tick``)."""
        with self.engine.connect() as conn:
            devices = [dict(r._mapping) for r in conn.execute(_DEVICES, {
                "count": self.probe_count, "timeout": self.probe_timeout_s, "interval": self.interval_s})]
        ids = np.array([d["id"] for d in devices], np.int64)
        intervals = np.array([d["interval_s"] for d in devices], np.int64)
        self._plan = _Plan(devices, ids, intervals, slot_offsets(ids, intervals), time.monotonic())
        return self._plan

    def due(self, after_s: int, until_s: int) -> tuple[np.ndarray, int]:
        """Indices (into the plan) of the devices with a slot in (after_s, until_s], and how many
        slots beyond one per device fell in that window (missed)."""
        plan = self._plan if self._plan is not None else self.refresh()
        if len(plan.ids) == 0 or until_s <= after_s:
            return np.empty(0, np.int64), 0
        slots = (until_s - plan.offset_s) // plan.interval_s - (after_s - plan.offset_s) // plan.interval_s
        due = np.flatnonzero(slots > 0)
        return due, int((slots[due] - 1).sum())

    def tick(self, now_s: int) -> int:
        """Send the probes that came due since the last tick (the first tick: this second's).
        Returns the number of messages sent."""
        if self._plan is None or time.monotonic() - self._plan.loaded_at >= self.refresh_s:
            try:
                self.refresh()
                self._stale_plan.ok()
            except Exception as exc:
                if self._plan is None:
                    raise
                # The database is away: go on with the devices known, and re-read them once it is back.
                self._stale_plan.failed(exc)
        assert self._plan is not None
        after = self._last_tick_s if self._last_tick_s is not None else now_s - 1
        self._last_tick_s = max(after, now_s)
        due, missed = self.due(after, now_s)
        stalled, busy = missed, 0
        tick_us = now_s * 1_000_000
        devices = [self._plan.devices[i] for i in due.tolist()]
        if self.leases is not None and devices:
            # A lease outlives a few intervals: long enough for a queued probe, short enough to
            # recover from a lost message.
            ttl_ms = 3 * 1000 * max(d["interval_s"] for d in devices)
            taken = self.leases.acquire([d["id"] for d in devices], tick_us, ttl_ms)
            busy = len(devices) - sum(taken)
            devices = [d for d, ok in zip(devices, taken, strict=True) if ok]
            if busy:
                missed += busy
                self._behind.failed(ProbesInFlight(f"{busy} device(s) still in flight"))
            else:
                self._behind.ok()
        sent = 0
        for i in range(0, len(devices), self.batch_size):
            self.send_probe(devices[i:i + self.batch_size], tick_us)
            sent += 1
        self.stats.ticks += 1
        self.stats.late_probes += missed
        self.stats.messages += sent
        self.stats.devices += len(devices)
        if self.telemetry is not None:
            with self.telemetry.batch() as t:
                t.count("netpulse_probes_scheduled", (), len(devices))
                t.count("netpulse_probes_skipped", ("missed",), stalled)
                t.count("netpulse_probes_skipped", ("in_flight",), busy)
        now = time.time()
        for k, (every_s, send) in enumerate(self.periodic):
            if now - self._last_sent.get(k, 0.0) >= every_s:
                send()
                self._last_sent[k] = now
        return sent

    def run(self, stop: threading.Event, leader: LeaderLease | None = None) -> None:
        """Tick every second, on the second, until ``stop`` is set; with ``leader``, only while this
        process holds it (the lease is given back on the way out)."""
        next_tick = int(time.time()) + 1
        try:
            while not stop.is_set():
                delay = next_tick - time.time()
                if delay > 0 and stop.wait(delay):
                    break
                missed = int(time.time() - next_tick)
                if missed > 0:
                    self.stats.late_ticks += missed
                    if not self._outage.down:  # a tick that hung on a dead service is part of the outage
                        log.warning("netpulse.workers.ticks_late", skipped=missed)
                    next_tick += missed
                if leader is not None and not leader.hold():
                    self._last_tick_s = None  # on taking over, start from that second: no replay of others' slots
                    self._last_sent.clear()
                    next_tick += 1
                    continue
                try:
                    self.tick(next_tick)
                except Exception as exc:  # the loop must outlive any outage; the next tick retries
                    self._outage.failed(exc)
                else:
                    self._outage.ok()
                next_tick += 1
        finally:
            if leader is not None:
                leader.release()
