"""Device status with hysteresis, from availability samples, vectorised over a whole batch.

Each availability sample is one of: answered (``up``, or ``degraded`` when the same probe lost
packets) or failed. A device goes ``down`` after ``down_after`` consecutive failures and comes back
after ``up_after`` consecutive answers; a shorter run changes nothing (a failure below the
threshold leaves the status as the last answer set it). While not down, the status follows each
answer. A streak carries over from one batch to the next through the device row.

Transitions become status-change events. A transition into or out of ``down`` is dated at the
first probe of the run that decided it (the outage began with the first failed probe, not with the
one that confirmed it), so availability computed from the events is exact to the probe interval;
``confirmed_at`` keeps the time of the deciding probe.

The state machine is sequential, but each run of failures or answers decides on its own: a run
of failures long enough sets down, a run of answers long enough clears it, anything else keeps the
previous decision. So the status at each sample is a forward fill of the last decisive sample,
which numpy does for every device of the batch at once.
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
    down_after: int = 3   # consecutive failed probes before a device is down
    up_after: int = 2     # consecutive answered probes before a down device is up again

    def __post_init__(self) -> None:
        if self.down_after < 1 or self.up_after < 1:
            raise ValueError("down_after and up_after must be at least 1")


@dataclass(frozen=True, slots=True)
class DeviceState:
    """What the device row remembers between batches."""

    device_id: int
    status: str
    fail_streak: int
    ok_streak: int
    streak_since_us: int | None
    last_checked_us: int | None


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
    new_run = new_device | np.append(True, answered[1:] != answered[:-1])
    run_first = np.maximum.accumulate(np.where(new_run, ar, 0))

    # Carry-in per device, broadcast to its samples.
    firsts = np.flatnonzero(new_device)
    st = [states[d] for d in dev[firsts].tolist()]
    c_status = np.array([_CODE[s.status] for s in st], np.int64)[np.cumsum(new_device) - 1]
    c_fail = np.array([s.fail_streak for s in st], np.int64)[np.cumsum(new_device) - 1]
    c_ok = np.array([s.ok_streak for s in st], np.int64)[np.cumsum(new_device) - 1]
    c_since = np.array([_or_none(s.streak_since_us) for s in st], np.int64)[np.cumsum(new_device) - 1]

    # A device's first run continues the streak it brought in, when of the same kind.
    first_run = run_first == dev_first
    carried = np.where(answered, c_ok, c_fail)
    offset = np.where(first_run & (carried > 0), carried, 0)
    streak = ar - run_first + 1 + offset
    run_since = np.where(first_run & (carried > 0) & (c_since != _NONE), c_since, t[run_first])

    decides_down = ~answered & (streak >= hysteresis.down_after)
    decides_up = answered & (streak >= hysteresis.up_after)
    last_decision = _ffill_index(decides_down | decides_up, dev_first)
    is_down = np.where(last_decision >= 0, ~answered[np.maximum(last_decision, 0)], c_status == DOWN)

    # While not down the status is the last answer's (or what the device had before the batch).
    last_answer = _ffill_index(answered, dev_first)
    shown_when_not_down = np.where(last_answer >= 0, code[np.maximum(last_answer, 0)],
                                   np.where(c_status == DOWN, UNKNOWN, c_status))
    status = np.where(is_down, DOWN, shown_when_not_down)

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
        updates.append(StatusUpdate(
            device_id=int(dev[i]), status=STATUS_NAMES[status[i]],
            status_since_us=int(began[lc]) if lc >= 0 else None,
            fail_streak=0 if answered[i] else int(streak[i]), ok_streak=int(streak[i]) if answered[i] else 0,
            streak_since_us=int(run_since[i]), last_checked_us=int(t[i]),
            last_seen_us=None if seen[k] == _NONE else int(seen[k])))
    return StatusResult(updates, events)


def _or_none(us: int | None) -> int:
    return _NONE if us is None else us


def status_devices(rows: MetricRows) -> list[int]:
    """The devices that have availability samples in ``rows`` (whose status the batch moves on)."""
    sel = (rows.metric_id == int(MetricKind.AVAILABLE)) & (rows.ifindex == 0)
    return [int(d) for d in np.unique(rows.device_id[sel])]
