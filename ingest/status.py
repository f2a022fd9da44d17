"""Device status with hysteresis, from availability samples, vectorised over a whole batch.

Each availability sample is one of: answered cleanly (``up``), answered with lost packets
(``degraded``), or failed. Two hysteresis machines decide the status:

- reachability: a device goes ``down`` after ``down_after`` consecutive failures and comes back
  after ``up_after`` consecutive answers; a shorter run changes nothing.
- answer quality, over the answered probes only (a failure below the down threshold neither breaks
  nor extends these runs): ``degraded`` after ``degraded_after`` consecutive answers that lost
  packets, ``up`` again after ``clean_after`` consecutive answers that lost none. A lossy link is
  one degraded period, not a flip at every probe.

The status is ``down`` while unreachable, else the answer quality (``up`` until decided otherwise),
and ``unknown`` until the first answer. Streaks and the quality carry over from one batch to the
next through the device row (the quality also through an outage).

Transitions become status-change events. A transition into or out of ``down`` is dated at the
first probe of the run that decided it (the outage began with the first failed probe, not with the
one that confirmed it), so availability computed from the events is exact to the probe interval;
``up`` <-> ``degraded`` is dated at the probe that decided it. ``confirmed_at`` keeps the time of
the deciding probe.

Each machine is sequential, but each of its runs decides on its own: a run long enough sets its
state, anything shorter keeps the previous decision. So the state at each sample is a forward fill
of the last decisive sample, which numpy does for every device of the batch at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ingest.rows import MetricRows
from netpulse.metrics import MetricKind

UNKNOWN, UP, DEGRADED, DOWN = 0, 1, 2, 3
STATUS_NAMES = ("unknown", "up", "degraded", "down")
_CODE = {name: code for code, name in enumerate(STATUS_NAMES)}
_NONE = np.iinfo(np.int64).min


@dataclass(frozen=True, slots=True)
class Hysteresis:
    down_after: int = 3       # consecutive failed probes before a device is down
    up_after: int = 2         # consecutive answered probes before a down device is up again
    degraded_after: int = 3   # consecutive answers with lost packets before a device is degraded
    clean_after: int = 10     # consecutive answers without loss before a degraded device is up again

    def __post_init__(self) -> None:
        if min(self.down_after, self.up_after, self.degraded_after, self.clean_after) < 1:
            raise ValueError("down_after, up_after, degraded_after and clean_after must be at least 1")


@dataclass(frozen=True, slots=True)
class DeviceState:
    """What the device row remembers between batches."""

    device_id: int
    status: str
    fail_streak: int
    ok_streak: int
    streak_since_us: int | None
    last_checked_us: int | None
    loss_streak: int = 0      # consecutive answers with lost packets (failures skipped)
    clean_streak: int = 0     # consecutive answers without loss (failures skipped)
    quality: str = "up"       # the answer quality: up or degraded (kept while down)


@dataclass(frozen=True, slots=True)
class StatusEvent:
    device_id: int
    time_us: int          # when the new status began
    confirmed_us: int     # the probe that decided it
    from_status: str
    to_status: str


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """A device's new row values after the batch (times in epoch microseconds)."""

    device_id: int
    status: str
    status_since_us: int | None   # None: unchanged
    fail_streak: int
    ok_streak: int
    streak_since_us: int
    last_checked_us: int
    last_seen_us: int | None      # the latest answered probe of the batch
    loss_streak: int = 0
    clean_streak: int = 0
    quality: str = "up"


@dataclass(frozen=True, slots=True)
class StatusResult:
    updates: list[StatusUpdate]
    events: list[StatusEvent]


def samples(rows: MetricRows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per availability sample, sorted by (device, time): device ids, times and the sample's code
    (UP, DEGRADED when the same probe lost packets, DOWN when it was not answered)."""
    sel = (rows.metric_id == int(MetricKind.AVAILABLE)) & (rows.ifindex == 0)
    dev, t, v = rows.device_id[sel].astype(np.int64), rows.time_us[sel], rows.value[sel]
    order = np.lexsort((t, dev))
    dev, t, v = dev[order], t[order], v[order]
    # A duplicate (device, time) sample (a batch repeating itself) counts once.
    keep = np.ones(len(dev), bool)
    keep[1:] = (dev[1:] != dev[:-1]) | (t[1:] != t[:-1])
    dev, t, v = dev[keep], t[keep], v[keep]
    # Loss of each sample, by binary search over the batch's (device, time) loss keys.
    lsel = (rows.metric_id == int(MetricKind.ICMP_LOSS_PCT)) & (rows.ifindex == 0)
    ld, lt, lv = rows.device_id[lsel].astype(np.int64), rows.time_us[lsel], rows.value[lsel]
    lorder = np.lexsort((lt, ld))
    keys = np.rec.fromarrays([ld[lorder], lt[lorder]])
    want = np.rec.fromarrays([dev, t])
    loss = np.zeros(len(dev))
    if len(keys) and len(want):
        pos = np.minimum(np.searchsorted(keys, want), len(keys) - 1)
        hit = keys[pos] == want
        loss[hit] = lv[lorder][pos[hit]]
    code = np.where(v <= 0, DOWN, np.where(loss > 0, DEGRADED, UP))
    return dev, t, code


def _ffill_index(mask: np.ndarray, group_start: np.ndarray) -> np.ndarray:
    """For each position, the index of the last position at or before it where ``mask`` holds,
    within its group (``group_start`` is each position's group's first index); -1 when none."""
    idx = np.where(mask, np.arange(len(mask)), -1)
    idx = np.maximum.accumulate(idx) if len(idx) else idx
    return np.where(idx >= group_start, idx, -1)


def apply(rows: MetricRows, states: dict[int, DeviceState], hysteresis: Hysteresis | None = None) -> StatusResult:
    """New status rows and status-change events for the devices of ``rows``.

    Samples at or before a device's ``last_checked`` are ignored (a late or redelivered batch
    never moves a device back in time, nor repeats an event). Devices without a state in
    ``states`` are skipped (e.g. deleted meanwhile).
    """
    hysteresis = hysteresis or Hysteresis()
    dev, t, code = samples(rows)
    if len(dev):
        known = np.array([d in states for d in dev.tolist()], bool) if states else np.zeros(len(dev), bool)
        last_checked = np.array([_or_none(states[d].last_checked_us) if d in states else _NONE
                                 for d in dev.tolist()], np.int64)
        fresh = known & (t > last_checked)
        dev, t, code = dev[fresh], t[fresh], code[fresh]
    if len(dev) == 0:
        return StatusResult([], [])
    n = len(dev)
    ar = np.arange(n)
    answered = code != DOWN
    new_device = np.append(True, dev[1:] != dev[:-1])
    dev_first = np.maximum.accumulate(np.where(new_device, ar, 0))

    # Carry-in per device, broadcast to its samples.
    firsts = np.flatnonzero(new_device)
    st = [states[d] for d in dev[firsts].tolist()]
    per_sample = np.cumsum(new_device) - 1
    c_status = np.array([_CODE[s.status] for s in st], np.int64)[per_sample]
    c_since = np.array([_or_none(s.streak_since_us) for s in st], np.int64)[per_sample]
    c_quality = np.array([_CODE[s.quality] for s in st], np.int64)[per_sample]

    # Reachability: runs of answers and of failures.
    streak, run_since = _streaks(dev, answered, np.array([s.ok_streak for s in st], np.int64)[per_sample],
                                 np.array([s.fail_streak for s in st], np.int64)[per_sample], c_since, t)
    decides_down = ~answered & (streak >= hysteresis.down_after)
    decides_up = answered & (streak >= hysteresis.up_after)
    last_decision = _ffill_index(decides_down | decides_up, dev_first)
    is_down = np.where(last_decision >= 0, ~answered[np.maximum(last_decision, 0)], c_status == DOWN)

    # Answer quality: runs of lossy and of clean answers, over the answered samples only.
    ans = np.flatnonzero(answered)
    lossy = code[ans] == DEGRADED
    last_answer = _ffill_index(answered, dev_first)
    quality = c_quality
    q_streak: np.ndarray | None = None
    if len(ans):
        q_streak, _ = _streaks(dev[ans], ~lossy,
                               np.array([s.clean_streak for s in st], np.int64)[per_sample[ans]],
                               np.array([s.loss_streak for s in st], np.int64)[per_sample[ans]],
                               np.full(len(ans), _NONE), t[ans])
        q_decides = np.where(lossy, q_streak >= hysteresis.degraded_after, q_streak >= hysteresis.clean_after)
        q_first = np.searchsorted(ans, dev_first[ans])      # each device's first answered sample, in ``ans``
        q_last = _ffill_index(q_decides, q_first)
        q_at_answer = np.where(q_last >= 0, np.where(lossy[np.maximum(q_last, 0)], DEGRADED, UP), c_quality[ans])
        quality = np.where(last_answer >= 0, q_at_answer[np.searchsorted(ans, np.maximum(last_answer, 0))],
                           c_quality)

    # Down while unreachable; else the quality, once the device has answered at all.
    has_answered = (last_answer >= 0) | (c_status == UP) | (c_status == DEGRADED)
    status = np.where(is_down, DOWN, np.where(has_answered, quality, np.where(c_status == DOWN, UNKNOWN, c_status)))

    before = np.where(new_device, c_status, np.append(c_status[:1], status[:-1]))
    changed = status != before
    # Into or out of down: dated at the first probe of the deciding run; up <-> degraded at the probe.
    involves_down = (status == DOWN) | (before == DOWN)
    began = np.where(involves_down, run_since, t)
    events = [StatusEvent(int(dev[i]), int(began[i]), int(t[i]), STATUS_NAMES[before[i]], STATUS_NAMES[status[i]])
              for i in np.flatnonzero(changed).tolist()]

    lasts = np.append(firsts[1:] - 1, n - 1)
    last_change = _ffill_index(changed, dev_first)
    seen = np.maximum.reduceat(np.where(answered, t, _NONE), firsts)
    updates = []
    for k, i in enumerate(lasts.tolist()):
        lc = int(last_change[i])
        la = int(last_answer[i])
        if la >= 0:   # the quality runs as of the device's last answer in the batch
            j = int(np.searchsorted(ans, la))
            assert q_streak is not None
            loss_streak = int(q_streak[j]) if lossy[j] else 0
            clean_streak = 0 if lossy[j] else int(q_streak[j])
        else:
            loss_streak, clean_streak = st[k].loss_streak, st[k].clean_streak
        updates.append(StatusUpdate(
            device_id=int(dev[i]), status=STATUS_NAMES[status[i]],
            status_since_us=int(began[lc]) if lc >= 0 else None,
            fail_streak=0 if answered[i] else int(streak[i]), ok_streak=int(streak[i]) if answered[i] else 0,
            streak_since_us=int(run_since[i]), last_checked_us=int(t[i]),
            last_seen_us=None if seen[k] == _NONE else int(seen[k]),
            loss_streak=loss_streak, clean_streak=clean_streak, quality=STATUS_NAMES[quality[i]]))
    return StatusResult(updates, events)


def _streaks(dev: np.ndarray, kind: np.ndarray, carried_yes: np.ndarray, carried_no: np.ndarray,
             carried_since: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per sample (sorted by device, then time): the length of its run of equal ``kind`` and the time
    of the run's first sample. A device's first run continues the streak it brought in when of the
    same kind (``carried_yes`` for kind True, ``carried_no`` for False; ``carried_since`` its start)."""
    ar = np.arange(len(dev))
    new_device = np.append(True, dev[1:] != dev[:-1])
    dev_first = np.maximum.accumulate(np.where(new_device, ar, 0))
    new_run = new_device | np.append(True, kind[1:] != kind[:-1])
    run_first = np.maximum.accumulate(np.where(new_run, ar, 0))
    carried = np.where(kind, carried_yes, carried_no)
    continues = (run_first == dev_first) & (carried > 0)
    streak = ar - run_first + 1 + np.where(continues, carried, 0)
    since = np.where(continues & (carried_since != _NONE), carried_since, t[run_first])
    return streak, since


def _or_none(us: int | None) -> int:
    return _NONE if us is None else us


def status_devices(rows: MetricRows) -> list[int]:
    """The devices that have availability samples in ``rows`` (whose status the batch moves on)."""
    sel = (rows.metric_id == int(MetricKind.AVAILABLE)) & (rows.ifindex == 0)
    return [int(d) for d in np.unique(rows.device_id[sel])]
