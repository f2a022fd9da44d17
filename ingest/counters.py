"""Counter-to-rate logic for SNMP counters: wrap and reset aware, vectorised with numpy.

A rate needs two samples of the same counter. Between them:

- the counter may wrap (at 2^32 or 2^64): a smaller new value with a sysUpTime that did not go back
  is a wrap, and the delta is taken modulo 2^bits (unsigned 64-bit arithmetic, exact);
- the agent may restart (sysUpTime smaller than before): the counters restarted too, so that
  interval has no rate (sysUpTime itself wraps after 497 days, which reads as one restart);
- the time may not advance (a clock step back, the same sample twice): no rate;
- the rate may be absurd (above ``headroom`` x the interface speed, or above ``ABSURD_BPS`` when
  the speed is unknown): a discontinuity the agent did not announce (counters cleared, a 32-bit
  counter wrapping twice), treated as a reset: no rate;
- the counter width may change (the agent started to offer 64-bit counters): no rate.

In every case the new sample becomes the baseline for the next interval. The first sample of a
counter yields nothing. A failed poll leaves the state alone, so the next good poll measures over the
longer interval (counters are cumulative).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ingest.rows import MetricRows
from netpulse.metrics import MetricKind

if TYPE_CHECKING:
    from ingest.snmp import InterfaceSample, SnmpPoll

__all__ = [
    "CounterSample", "CounterState", "counter_rate", "counter_rates", "snmp_rows", "COUNTERS",
    "trusted_speed", "ABSURD_BPS", "HEADROOM", "MIN_FRAME_BITS", "SOFTWARE_LOOPBACK",
]

# The counters kept per interface, in the column order of the rate matrix.
COUNTERS = ("in_octets", "out_octets", "in_errors", "out_errors")
HEADROOM = 1.1                # a rate may exceed the nominal speed by 10 % before it is absurd
ABSURD_BPS = 4e12             # no single interface carries 4 Tbit/s: the ceiling when the speed is unknown
MIN_FRAME_BITS = 64 * 8       # the smallest Ethernet frame: errors/s cannot exceed speed / this
SOFTWARE_LOOPBACK = 24        # IANAifType: its speed is nominal (net-snmp says 10 Mb/s for lo)
_STATE_VERSION = 1
_NO_UPTIME = -1


@dataclass(frozen=True, slots=True)
class CounterSample:
    """One reading of a counter: its value and width, when (epoch us) and at what sysUpTime."""

    value: int
    bits: int                   # 32 or 64
    time_us: int
    uptime_ticks: int | None = None


def counter_rates(prev_value: npt.ArrayLike, prev_bits: npt.ArrayLike, prev_time_us: npt.ArrayLike,
                  prev_uptime: npt.ArrayLike, cur_value: npt.ArrayLike, cur_bits: npt.ArrayLike,
                  cur_time_us: npt.ArrayLike, cur_uptime: npt.ArrayLike,
                  max_rate: npt.ArrayLike | None = None) -> npt.NDArray[np.float64]:
    """Per-second rates of many counters at once; NaN where there is no rate.

    Values are unsigned 64-bit; ``prev_bits`` 0 means "no previous sample"; an uptime of -1 means
    "unknown" (no restart check). ``max_rate`` (counter units per second, inf for none) marks
    absurd rates as resets.
    """
    pv = np.asarray(prev_value, dtype=np.uint64)
    cv = np.asarray(cur_value, dtype=np.uint64)
    pb = np.asarray(prev_bits, dtype=np.int64)
    cb = np.asarray(cur_bits, dtype=np.int64)
    pu = np.asarray(prev_uptime, dtype=np.int64)
    cu = np.asarray(cur_uptime, dtype=np.int64)
    dt = (np.asarray(cur_time_us, dtype=np.int64) - np.asarray(prev_time_us, dtype=np.int64)) / 1e6
    ok = (pb != 0) & (pb == cb) & (dt > 0)
    ok &= ~((pu != _NO_UPTIME) & (cu != _NO_UPTIME) & (cu < pu))           # agent restarted
    delta = cv - pv                                                         # wraps modulo 2^64
    delta = np.where(cb == 32, delta & np.uint64(0xFFFF_FFFF), delta)       # modulo 2^32
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = delta.astype(np.float64) / np.where(dt > 0, dt, 1.0)
    if max_rate is not None:
        ok &= rate <= np.asarray(max_rate, dtype=np.float64)
    return np.where(ok, rate, np.nan)


def counter_rate(prev: CounterSample | None, cur: CounterSample, *, max_rate: float | None = None) -> float | None:
    """The rate per second between two samples of one counter, or None (see the module docstring)."""
    if prev is None:
        return None
    r = counter_rates([prev.value], [prev.bits], [prev.time_us], [_uptime(prev.uptime_ticks)],
                      [cur.value], [cur.bits], [cur.time_us], [_uptime(cur.uptime_ticks)],
                      None if max_rate is None else [max_rate])[0]
    return None if np.isnan(r) else float(r)


def _uptime(ticks: int | None) -> int:
    return _NO_UPTIME if ticks is None else ticks


Key = tuple[int, int, str]   # (device_id, ifindex, counter)


class CounterState:
    """The previous sample of every counter, keyed by (device_id, ifindex, counter name).

    Kept in memory by a worker between polls; ``to_dict``/``from_dict`` give a JSON-ready form to
    park it elsewhere (Redis) so another worker can take over.
    """

    def __init__(self) -> None:
        self._samples: dict[Key, CounterSample] = {}

    def __len__(self) -> int:
        return len(self._samples)

    def __contains__(self, key: object) -> bool:
        return key in self._samples

    def items(self) -> list[tuple[Key, CounterSample]]:
        return list(self._samples.items())

    def get(self, device_id: int, ifindex: int, counter: str) -> CounterSample | None:
        return self._samples.get((device_id, ifindex, counter))

    def put(self, device_id: int, ifindex: int, counter: str, sample: CounterSample) -> None:
        self._samples[(device_id, ifindex, counter)] = sample

    def update(self, device_id: int, ifindex: int, counter: str, sample: CounterSample,
               *, max_rate: float | None = None) -> float | None:
        """Store ``sample`` and return the rate since the previous one (None: none)."""
        rate = counter_rate(self.get(device_id, ifindex, counter), sample, max_rate=max_rate)
        self.put(device_id, ifindex, counter, sample)
        return rate

    def forget_device(self, device_id: int) -> int:
        """Drop every counter of a device; returns how many."""
        keys = [k for k in self._samples if k[0] == device_id]
        for k in keys:
            del self._samples[k]
        return len(keys)

    def prune(self, older_than_us: int) -> int:
        """Drop samples taken before ``older_than_us`` (interfaces that went away); returns how many."""
        keys = [k for k, s in self._samples.items() if s.time_us < older_than_us]
        for k in keys:
            del self._samples[k]
        return len(keys)

    def to_dict(self) -> dict[str, Any]:
        return {"version": _STATE_VERSION,
                "counters": [[d, i, c, s.value, s.bits, s.time_us, s.uptime_ticks]
                             for (d, i, c), s in self._samples.items()]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CounterState:
        if data.get("version") != _STATE_VERSION:
            raise ValueError(f"counter state version {data.get('version')!r} is not {_STATE_VERSION}: "
                             "it was written by another NetPulse version; start from an empty state")
        state = cls()
        for d, i, c, value, bits, t, up in data["counters"]:
            state._samples[(int(d), int(i), str(c))] = CounterSample(int(value), int(bits), int(t),
                                                                     None if up is None else int(up))
        return state


def trusted_speed(iface: InterfaceSample) -> int | None:
    """The interface speed in bit/s when it means something: known, non-zero, not a loopback's."""
    if iface.speed_bps is None or iface.speed_bps <= 0 or iface.if_type == SOFTWARE_LOOPBACK:
        return None
    return iface.speed_bps


def snmp_rows(polls: SnmpPoll | Iterable[SnmpPoll], state: CounterState, *, tick_us: int | None = None,
              headroom: float = HEADROOM, max_bps: float = ABSURD_BPS) -> MetricRows:
    """Metric rows from polls, updating ``state``.

    Per interface (ifindex set): IF_IN_BPS and IF_OUT_BPS (8 x octets per second), IF_UTIL_PCT (the
    larger direction against the speed, only when the speed is trusted), IF_ERRORS_PS (in + out
    errors per second). Per device (ifindex 0): CPU_PCT and MEM_PCT, which are gauges and need no
    previous sample. Failed polls yield nothing and leave the state alone. Rows are stamped with
    ``tick_us`` when given (the scheduler's tick, so a retried job writes the same keys), else
    with the poll's time; rates always use the polls' own times.
    """
    batch = [p for p in (polls if isinstance(polls, Iterable) else [polls]) if p.ok]
    gauges: list[tuple[int, int, int, int, float]] = []
    ifaces: list[tuple[SnmpPoll, InterfaceSample]] = []
    for p in batch:
        t = p.polled_at_us if tick_us is None else tick_us
        if p.cpu_pct is not None:
            gauges.append((t, p.device_id, int(MetricKind.CPU_PCT), 0, p.cpu_pct))
        if p.mem_pct is not None:
            gauges.append((t, p.device_id, int(MetricKind.MEM_PCT), 0, p.mem_pct))
        ifaces += [(p, i) for i in p.interfaces]
    rows = [MetricRows.from_tuples(gauges)]
    if ifaces:
        rows.append(_interface_rows(ifaces, state, tick_us, headroom, max_bps))
    return MetricRows.concat(rows)


def _interface_rows(ifaces: list[tuple[SnmpPoll, InterfaceSample]], state: CounterState, tick_us: int | None,
                    headroom: float, max_bps: float) -> MetricRows:
    n, k = len(ifaces), len(COUNTERS)
    present = np.zeros((n, k), bool)
    cur_v = np.zeros((n, k), np.uint64)
    prev_v = np.zeros((n, k), np.uint64)
    prev_b = np.zeros((n, k), np.int64)
    prev_t = np.zeros((n, k), np.int64)
    prev_u = np.full((n, k), _NO_UPTIME, np.int64)
    cur_b = np.array([[i.counter_bits, i.counter_bits, 32, 32] for _, i in ifaces], np.int64).reshape(n, k)
    cur_t = np.array([p.polled_at_us for p, _ in ifaces], np.int64)
    cur_u = np.array([_uptime(p.sys_uptime_ticks) for p, _ in ifaces], np.int64)
    speed = np.array([trusted_speed(i) or 0 for _, i in ifaces], np.float64)
    for r, (p, iface) in enumerate(ifaces):
        for c, name in enumerate(COUNTERS):
            value = getattr(iface, name)
            if value is None:
                continue
            present[r, c] = True
            cur_v[r, c] = value
            prev = state.get(p.device_id, iface.ifindex, name)
            if prev is not None:
                prev_v[r, c], prev_b[r, c], prev_t[r, c] = prev.value, prev.bits, prev.time_us
                prev_u[r, c] = _uptime(prev.uptime_ticks)
            state.put(p.device_id, iface.ifindex, name,
                      CounterSample(int(value), int(cur_b[r, c]), int(cur_t[r]), p.sys_uptime_ticks))
    # Ceilings per counter: octets/s from the speed, errors/s from the smallest frame's packet rate.
    max_bytes = np.where(speed > 0, speed * headroom, max_bps) / 8.0
    max_errors = np.where(speed > 0, speed * headroom, max_bps) / MIN_FRAME_BITS
    ceiling = np.stack([max_bytes, max_bytes, max_errors, max_errors], axis=1)
    rates = counter_rates(prev_v, prev_b, prev_t, prev_u, cur_v, cur_b,
                          np.repeat(cur_t[:, None], k, axis=1), np.repeat(cur_u[:, None], k, axis=1), ceiling)
    rates[~present] = np.nan

    in_bps, out_bps = rates[:, 0] * 8.0, rates[:, 1] * 8.0
    with np.errstate(invalid="ignore"):
        larger = np.fmax(in_bps, out_bps)                   # NaN only when both are NaN
        util = np.where(speed > 0, larger / np.where(speed > 0, speed, 1.0) * 100.0, np.nan)
    err_present = present[:, 2:]
    err_rates = rates[:, 2:]
    # Errors: the sum of the directions the agent exposes; none when any of them has no rate.
    errors = np.where(err_present.any(axis=1) & ~(err_present & np.isnan(err_rates)).any(axis=1),
                      np.nansum(np.where(err_present, err_rates, 0.0), axis=1), np.nan)

    t = cur_t if tick_us is None else np.full(n, tick_us, np.int64)
    device = np.array([p.device_id for p, _ in ifaces], np.int32)
    ifindex = np.array([i.ifindex for _, i in ifaces], np.int32)
    parts = []
    for kind, values in ((MetricKind.IF_IN_BPS, in_bps), (MetricKind.IF_OUT_BPS, out_bps),
                         (MetricKind.IF_UTIL_PCT, util), (MetricKind.IF_ERRORS_PS, errors)):
        sel = ~np.isnan(values)
        parts.append(MetricRows(t[sel], device[sel], np.full(int(sel.sum()), int(kind), np.int16),
                                ifindex[sel], values[sel]))
    return MetricRows.concat(parts)
