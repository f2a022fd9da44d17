"""A deterministic simulated network: topology, metric streams and scripted incidents.

Every value is a pure function of (seed, device, metric, time) through a counter-based hash, so a
sample does not depend on the window or batch it was asked for in. Incidents are drawn on a fixed
hourly grid, so any window sees the same incidents; analytics tests check alerts and SLAs against
their known start and end.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from ingest.rows import MetricRows, from_micros, to_micros
from netpulse.metrics import MetricKind

SITES = (("Nairobi", "nbo"), ("Mombasa", "mba"), ("Kisumu", "ksm"), ("Lagos", "los"), ("Accra", "acc"),
         ("Kampala", "kla"), ("Kigali", "kgl"), ("Dar es Salaam", "dar"), ("Addis Ababa", "add"),
         ("Lusaka", "lun"), ("Harare", "hre"), ("Johannesburg", "jnb"))
HOUR_US = 3_600_000_000
_U64 = np.uint64


class IncidentKind(StrEnum):
    OUTAGE = "outage"
    LATENCY_SPIKE = "latency_spike"
    PACKET_LOSS = "packet_loss"
    LINK_SATURATION = "link_saturation"


@dataclass(frozen=True, slots=True)
class SimDevice:
    index: int
    name: str
    device_type: str
    site: str
    site_slug: str
    group: str
    parent_index: int | None
    address: str
    tags: tuple[str, ...]
    has_interface: bool


@dataclass(frozen=True, slots=True)
class Incident:
    kind: IncidentKind
    device_index: int
    start: datetime
    end: datetime      # exclusive
    magnitude: float   # latency multiplier, loss %, utilisation %; unused for outages


def _mix(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64's finaliser: a good 64-bit hash, vectorised."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> _U64(27))) * _U64(0x94D049BB133111EB)
        return x ^ (x >> _U64(31))


def _uniform(seed: int, stream: int, a: npt.ArrayLike, b: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Deterministic U[0,1) for each (a, b) pair in a numbered stream."""
    with np.errstate(over="ignore"):
        x = (np.asarray(a).astype(np.uint64) * _U64(0x9E3779B97F4A7C15)
             + np.asarray(b).astype(np.uint64) * _U64(0xD1B54A32D192ED03)
             + _U64((seed * 1_000_003 + stream * 7919) & 0xFFFFFFFFFFFFFFFF))
    return (_mix(_mix(x)) >> _U64(11)).astype(np.float64) / float(1 << 53)


def _normal(seed: int, stream: int, a: npt.ArrayLike, b: npt.ArrayLike) -> npt.NDArray[np.float64]:
    u1 = np.maximum(_uniform(seed, stream, a, b), 1e-12)
    u2 = _uniform(seed, stream + 1000, a, b)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


class Fleet:
    """``n_devices`` devices over ``n_sites`` sites: per site a core router and a firewall, two
    distribution switches under the router, and access switches, servers and access points under
    the distribution switches."""

    def __init__(self, n_devices: int = 200, n_sites: int = 3, seed: int = 42, interval_s: int = 60,
                 incidents_per_device_day: float = 0.25):
        if n_devices < 1:
            raise ValueError("n_devices must be at least 1")
        self.seed = seed
        self.interval_s = interval_s
        self.incident_rate = incidents_per_device_day
        self.devices = self._build(n_devices, max(1, min(n_sites, len(SITES), n_devices)))
        n = len(self.devices)
        idx = np.arange(n)
        self._parent = np.array([-1 if d.parent_index is None else d.parent_index for d in self.devices])
        self._has_if = np.array([d.has_interface for d in self.devices])
        site_of = {s: k for k, (s, _) in enumerate(SITES)}
        site_idx = np.array([site_of[d.site] for d in self.devices])
        self._base_rtt = 0.4 + 3.0 * site_idx + 4.0 * _uniform(seed, 1, idx, 0)
        self._cpu_base = 10 + 30 * _uniform(seed, 2, idx, 0)
        self._mem_base = 30 + 40 * _uniform(seed, 3, idx, 0)
        self._speed_bps = np.where(_uniform(seed, 4, idx, 0) < 0.3, 10e9, 1e9)
        self._load = 0.05 + 0.35 * _uniform(seed, 5, idx, 0)  # peak share of link speed

    def _build(self, n: int, n_sites: int) -> list[SimDevice]:
        out: list[SimDevice] = []
        per_site = [n // n_sites + (1 if k < n % n_sites else 0) for k in range(n_sites)]
        for k, count in enumerate(per_site):
            site, slug = SITES[k]
            core = len(out)
            plan: list[tuple[str, str, str, int | None]] = [("core-1", "router", "Core", None)]
            if count >= 2:
                plan.append(("fw-1", "firewall", "Core", core))
            dists = [core + len(plan) + j for j in range(min(2, max(0, count - len(plan))))]
            plan += [(f"dist-{j + 1}", "switch", "Distribution", core) for j in range(len(dists))]
            kinds = (("acc", "switch", "Access"), ("srv", "server", "Servers"), ("ap", "access_point", "Wireless"))
            for j in range(count - len(plan)):
                short, dtype, group = kinds[j % 3]
                parent = dists[j % len(dists)] if dists else core
                plan.append((f"{short}-{j // 3 + 1}", dtype, group, parent))
            for name, dtype, group, parent in plan:
                i = len(out)
                addr = f"198.{18 + (i >> 16) % 2}.{(i >> 8) & 255}.{i & 255}"
                tags = ("critical",) if group == "Core" else ("edge",) if group in ("Access", "Wireless") else ()
                out.append(SimDevice(i, f"{slug}-{name}", dtype, site, slug, group, parent, addr, tags,
                                     dtype in ("router", "switch", "firewall")))
        return out

    # -- incidents -------------------------------------------------------------------------------

    def incidents(self, start: datetime, end: datetime) -> list[Incident]:
        """Incidents overlapping [start, end). Drawn per device per hour slot from the seed."""
        first = to_micros(start) // HOUR_US - 2  # incidents last at most 90 minutes
        last = to_micros(end) // HOUR_US
        hours = np.arange(first, last + 1, dtype=np.int64)
        n = len(self.devices)
        dev, hr = np.meshgrid(np.arange(n), hours, indexing="ij")
        dev, hr = dev.ravel(), hr.ravel()
        hit = _uniform(self.seed, 10, dev, hr) < self.incident_rate / 24.0
        out: list[Incident] = []
        kinds = list(IncidentKind)
        for d, h in zip(dev[hit].tolist(), hr[hit].tolist(), strict=True):
            u = _uniform(self.seed, 11, d, h)
            kind = kinds[int(float(_uniform(self.seed, 12, d, h)) * 4)]
            if kind is IncidentKind.LINK_SATURATION and not self.devices[d].has_interface:
                kind = IncidentKind.LATENCY_SPIKE
            begin = h * HOUR_US + int(float(u) * 59) * 60_000_000
            length = (5 + int(float(_uniform(self.seed, 13, d, h)) * 86)) * 60_000_000
            mag_u = float(_uniform(self.seed, 14, d, h))
            magnitude = {IncidentKind.OUTAGE: 0.0, IncidentKind.LATENCY_SPIKE: 5 + 15 * mag_u,
                         IncidentKind.PACKET_LOSS: 10 + 50 * mag_u, IncidentKind.LINK_SATURATION: 95 + 5 * mag_u}[kind]
            inc = Incident(kind, d, from_micros(begin), from_micros(begin + length), round(magnitude, 2))
            if inc.end > start and inc.start < end:
                out.append(inc)
        return sorted(out, key=lambda i: (i.start, i.device_index))

    def _descendants(self, index: int) -> list[int]:
        out, frontier = [], [index]
        while frontier:
            kids = np.flatnonzero(np.isin(self._parent, frontier)).tolist()
            out += kids
            frontier = kids
        return out

    def affected(self, at: datetime) -> dict[int, IncidentKind]:
        """Device index -> incident in effect at ``at``; descendants of a device in outage included."""
        state: dict[int, IncidentKind] = {}
        for inc in self.incidents(at, at + timedelta(microseconds=1)):
            state.setdefault(inc.device_index, inc.kind)
            if inc.kind is IncidentKind.OUTAGE:
                for child in self._descendants(inc.device_index):
                    state[child] = IncidentKind.OUTAGE
        return state

    # -- samples ---------------------------------------------------------------------------------

    def sample(self, times_us: npt.ArrayLike, device_indices: npt.ArrayLike | None = None,
               device_ids: npt.ArrayLike | None = None) -> MetricRows:
        """Rows for every (time, device): probe results and, for devices with an uplink, interface rates."""
        times = np.asarray(times_us, np.int64)
        n_all = len(self.devices)
        devs = np.arange(n_all) if device_indices is None else np.asarray(device_indices, np.int64)
        ids = (np.arange(n_all, dtype=np.int32) + 1) if device_ids is None else np.asarray(device_ids, np.int32)
        if len(times) == 0 or len(devs) == 0:
            return MetricRows.empty()
        t, d = np.meshgrid(times, devs, indexing="ij")  # time-major: rows sorted by (time, device)
        t, d = t.ravel(), d.ravel()
        seed = self.seed

        # Incident effects, per (time, device).
        outage = np.zeros(len(t), bool)
        rtt_mult = np.ones(len(t))
        loss_pct = np.where(_uniform(seed, 20, d, t) < 0.02, 1.0 + 2 * _uniform(seed, 21, d, t), 0.0)
        util_force = np.full(len(t), np.nan)
        start = from_micros(int(times.min()))
        end = from_micros(int(times.max()) + 1)
        for inc in self.incidents(start, end):
            lo, hi = to_micros(inc.start), to_micros(inc.end)
            in_time = (t >= lo) & (t < hi)
            if not in_time.any():
                continue
            if inc.kind is IncidentKind.OUTAGE:
                targets = [inc.device_index, *self._descendants(inc.device_index)]
                outage |= in_time & np.isin(d, targets)
                continue
            m = in_time & (d == inc.device_index)
            if inc.kind is IncidentKind.LATENCY_SPIKE:
                rtt_mult[m] = inc.magnitude
            elif inc.kind is IncidentKind.PACKET_LOSS:
                loss_pct[m] = np.clip(inc.magnitude + 3 * _normal(seed, 22, d[m], t[m]), 0.5, 99.0)
            else:
                util_force[m] = inc.magnitude
                rtt_mult[m] = np.maximum(rtt_mult[m], 1.8)

        # Diurnal load: peak at 14:00 UTC, low at night, weekends at 60 %.
        hour = (t // 1_000_000 % 86_400) / 3600.0
        weekday = (t // 86_400_000_000 + 3) % 7  # 1970-01-01 was a Thursday
        diurnal = (0.55 + 0.45 * np.cos((hour - 14.0) / 24.0 * 2 * np.pi)) * np.where(weekday >= 5, 0.6, 1.0)

        base = self._base_rtt[d]
        rtt = base * rtt_mult * (1 + 0.08 * np.abs(_normal(seed, 30, d, t))) + 0.3 * diurnal
        jitter = base * 0.05 * rtt_mult * (1 + np.abs(_normal(seed, 31, d, t)))
        rtt_min = rtt - jitter * (0.5 + _uniform(seed, 32, d, t))
        rtt_max = rtt + jitter * (0.5 + 2 * _uniform(seed, 33, d, t))
        cpu = np.clip(self._cpu_base[d] * (0.5 + diurnal) + 4 * _normal(seed, 34, d, t), 0.5, 100)
        mem = np.clip(self._mem_base[d] + 5 * np.sin(t / 86_400e6 * 2 * np.pi / 7 + d) + _normal(seed, 35, d, t),
                      1, 99)
        speed = self._speed_bps[d]
        util = np.clip(100 * self._load[d] * diurnal * (1 + 0.1 * _normal(seed, 36, d, t)), 0.1, 100)
        util = np.where(np.isnan(util_force), util, np.clip(util_force + _normal(seed, 37, d, t), 90, 100))
        in_bps = util / 100 * speed
        out_bps = in_bps * (0.3 + 0.5 * _uniform(seed, 38, d, 0))
        errors = np.where(_uniform(seed, 39, d, t) < 0.01, 5 * _uniform(seed, 40, d, t), 0.0)

        up = ~outage
        ids_of = ids[d]
        cols: list[tuple[npt.NDArray[np.bool_], MetricKind, int, npt.NDArray[np.float64]]] = [
            (np.ones(len(t), bool), MetricKind.AVAILABLE, 0, up.astype(np.float64)),
            (np.ones(len(t), bool), MetricKind.ICMP_LOSS_PCT, 0, np.where(outage, 100.0, np.round(loss_pct, 2))),
            (up, MetricKind.ICMP_RTT_MS, 0, rtt),
            (up, MetricKind.ICMP_RTT_MIN_MS, 0, np.maximum(rtt_min, 0.05)),
            (up, MetricKind.ICMP_RTT_MAX_MS, 0, rtt_max),
            (up, MetricKind.ICMP_JITTER_MS, 0, jitter),
            (up, MetricKind.CPU_PCT, 0, cpu),
            (up, MetricKind.MEM_PCT, 0, mem),
        ]
        iface = up & self._has_if[d]
        cols += [(iface, MetricKind.IF_IN_BPS, 1, in_bps), (iface, MetricKind.IF_OUT_BPS, 1, out_bps),
                 (iface, MetricKind.IF_UTIL_PCT, 1, np.maximum(in_bps, out_bps) / speed * 100),
                 (iface, MetricKind.IF_ERRORS_PS, 1, errors)]
        parts = [MetricRows(t[m], ids_of[m], np.full(int(m.sum()), int(k), np.int16),
                            np.full(int(m.sum()), i, np.int32), v[m]) for m, k, i, v in cols]
        return MetricRows.concat(parts)


def align(ts: datetime, interval_s: int) -> datetime:
    """``ts`` rounded down to a multiple of the interval (tick times)."""
    us = to_micros(ts.astimezone(UTC))
    step = interval_s * 1_000_000
    return from_micros(us - us % step)
