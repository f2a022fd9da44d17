"""A deterministic simulated network: topology, scripted incidents and metric rows.

Every value is a pure function of (seed, device, metric, time). A counter-based hash (splitmix64,
vectorised over numpy uint64) stands in for a sequential RNG, so a (device, time) reads the same
whatever window, batch or device subset asks for it. The demo can backfill history and then tick
live, benchmarks can generate any slice, and analytics tests can compare alerts and SLAs against
incidents whose start and end are known in advance (``Fleet.incidents``).

Model, in short:

- Topology per site: a core router (+ a firewall), two distribution switches, then access switches,
  servers and access points under the distribution switches.
- ICMP: a site-dependent base RTT per device with noise and rare spikes; loss mostly 0.
- CPU and interface traffic follow a diurnal load (peak 14:00 UTC, low at night, weekends lower);
  memory drifts slowly.
- Interface rates are deltas of octet counters that are closed-form functions of time
  (``Fleet.octet_counters``): the rate at ``t`` is ``8 * (C(t) - C(t - interval_s)) / interval_s``,
  like an SNMP poller's, so traffic effects lag an incident by up to one interval.
- Incidents come from two absolute time grids, so overlapping windows see the same ones: random ones
  per (device, hour) at ``incidents_per_device_day``, plus one scripted incident every
  ``scripted_every_h`` hours cycling through every kind (so any day has each kind, and a small demo
  fleet has something going on most hours). A device has at most one incident at a time.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from ingest.rows import EPOCH, MetricRows, from_micros, to_micros
from netpulse.metrics import MetricKind

__all__ = [
    "COUNTER_ORIGIN",
    "MAX_DEVICES",
    "METRICS",
    "SITES",
    "Fleet",
    "Incident",
    "IncidentKind",
    "SimDevice",
    "SimSite",
    "align",
]

I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]
F64 = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

_US = 1_000_000
_MINUTE_US = 60 * _US
_HOUR_US = 3600 * _US
_DAY_US = 86400 * _US
_DAY_S = 86400.0
_MAX_DUR_US = 90 * _MINUTE_US
# 198.18.0.0/15 without its network and broadcast addresses.
_ADDR_BASE = (198 << 24) | (18 << 16)
MAX_DEVICES = (1 << 17) - 2
# Octet counters count from here; rates before it are still defined, counters are not.
COUNTER_ORIGIN = datetime(2020, 1, 1, tzinfo=EPOCH.tzinfo)
_ORIGIN_US = to_micros(COUNTER_ORIGIN)

# Rows per (time, device), in this order; interface metrics (ifindex 1) last.
METRICS: tuple[MetricKind, ...] = (
    MetricKind.AVAILABLE, MetricKind.ICMP_RTT_MS, MetricKind.ICMP_RTT_MIN_MS, MetricKind.ICMP_RTT_MAX_MS,
    MetricKind.ICMP_JITTER_MS, MetricKind.ICMP_LOSS_PCT, MetricKind.CPU_PCT, MetricKind.MEM_PCT,
    MetricKind.IF_IN_BPS, MetricKind.IF_OUT_BPS, MetricKind.IF_UTIL_PCT, MetricKind.IF_ERRORS_PS,
)
_METRIC_IDS = np.array([int(m) for m in METRICS], np.int16)
_IFINDEX = np.array([1 if m.name.startswith("IF_") else 0 for m in METRICS], np.int32)
_COL = {m: i for i, m in enumerate(METRICS)}
_ICMP_ONLY = [_COL[MetricKind.AVAILABLE], _COL[MetricKind.ICMP_LOSS_PCT]]  # what a down device still has
_N_IF = int(_IFINDEX.sum())
_CELLS_PER_CHUNK = 1 << 20  # (time, device) cells per vectorised pass: ~100 MB of values

# Diurnal load w(day) * (mean + swing * cos(2 pi (t - 14:00) / day)), in [0.14, 1].
_LOAD_MEAN, _LOAD_SWING, _WEEKEND = 0.6, 0.4, 0.7
_PEAK_S = 14 * 3600.0
_OMEGA_DAY = 2 * math.pi / _DAY_S
_SIN_PEAK = math.sin(_OMEGA_DAY * _PEAK_S)
# Traffic wiggles (relative to the peak rate) with per-device phases; they integrate in closed form.
_WIGGLE_PERIODS_US = (420 * _US, 1380 * _US, 5820 * _US)
_WIGGLE_AMPS = (0.03, 0.03, 0.02)
# Integral of a * sin(omega * t + phi) is -(a / omega) * cos(...): these are the a / omega.
_WIGGLE_K = tuple(a * (p / _US) / (2 * math.pi)
                  for a, p in zip(_WIGGLE_AMPS, _WIGGLE_PERIODS_US, strict=True))
# Counter noise, as a fraction of the peak rate; below the lowest load minus the wiggles, so counters
# never go backwards.
_NOISE = 0.03
# Memory drifts over days.
_MEM_PERIODS_US = (285_120 * _US, 682_560 * _US)
_MEM_AMPS = (4.0, 2.5)

# --- counter-based hashing -------------------------------------------------------------------------
_MASK = (1 << 64) - 1
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MUL1 = np.uint64(0xBF58476D1CE4E5B9)
_MUL2 = np.uint64(0x94D049BB133111EB)


def _c(i: int) -> np.uint64:
    """The i-th salt/stream constant."""
    return np.uint64((i * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) & _MASK)


_SALT_DEV, _SALT_TIME, _SALT_SLOT, _SALT_HOUR, _SALT_SCRIPT, _SALT_SITE = (_c(i) for i in range(1, 7))
(_S_RTT, _S_SHAPE, _S_LOSS, _S_CPU, _S_MEM, _S_NOISE, _S_INC, _S_ATTR, _S_ATTR2) = (
    _c(i) for i in range(11, 20))


def _mix(z: U64) -> U64:
    """splitmix64's finaliser; returns a new array."""
    z = z ^ (z >> np.uint64(30))
    z *= _MUL1
    z ^= z >> np.uint64(27)
    z *= _MUL2
    z ^= z >> np.uint64(31)
    return z


def _key(values: npt.ArrayLike, salt: np.uint64) -> U64:
    return _mix(np.asarray(values, np.int64).astype(np.uint64) * _GOLDEN + salt)


def _unit(h: U64) -> F64:
    """A uniform in [0, 1) from the top 53 bits."""
    return (h >> np.uint64(11)).astype(np.float64) * (2.0 ** -53)


def _u16(h: U64, part: int) -> F64:
    """The part-th 16-bit field (0..3) of h as a uniform in (0, 1)."""
    return (((h >> np.uint64(16 * part)) & np.uint64(0xFFFF)).astype(np.float64) + 0.5) * (1 / 65536)


def _u32(h: U64, part: int) -> F64:
    return (((h >> np.uint64(32 * part)) & np.uint64(0xFFFFFFFF)).astype(np.float64) + 0.5) * (2.0 ** -32)


def _normal(h: U64) -> F64:
    """An approximately standard normal (Irwin-Hall of four 16-bit fields): arithmetic only."""
    s = _u16(h, 0) + _u16(h, 1) + _u16(h, 2) + _u16(h, 3)
    return (s - 2.0) * math.sqrt(3.0)


def _map(fn: Callable[[float], float], x: F64) -> F64:
    # Transcendentals go through math's scalar libm on 1-D per-time or per-device arrays, never
    # numpy's SIMD loops on grids: a SIMD body and its scalar tail may differ in the last bit, which
    # would make a value depend on its position in the batch. Grids then use + - * / only.
    return np.fromiter(map(fn, x.tolist()), np.float64, count=len(x))


# --- the diurnal load, its integrals and the traffic wiggles ---------------------------------------
def _day_weight(day: I64) -> F64:
    weekend = (day + 3) % 7 >= 5  # 1970-01-01 was a Thursday; Monday = 0
    return np.where(weekend, _WEEKEND, 1.0)


def _weekend_days_before(day: I64) -> I64:
    """Weekend days in [epoch day 0, day)."""
    y = day + 3  # days since Monday 1969-12-29
    return 2 * (y // 7) + np.maximum(0, y % 7 - 5)


def _load_at(t_us: I64) -> F64:
    day = t_us // _DAY_US
    sod = (t_us - day * _DAY_US) / _US
    return _day_weight(day) * (_LOAD_MEAN + _LOAD_SWING * _map(math.cos, _OMEGA_DAY * (sod - _PEAK_S)))


def _load_in_day(t_us: I64) -> F64:
    """Integral of the load from the start of t's day to t (load-seconds)."""
    day = t_us // _DAY_US
    sod = (t_us - day * _DAY_US) / _US
    wave = _map(math.sin, _OMEGA_DAY * (sod - _PEAK_S)) + _SIN_PEAK
    return _day_weight(day) * (_LOAD_MEAN * sod + (_LOAD_SWING / _OMEGA_DAY) * wave)


def _load_integral(a_us: I64, b_us: I64) -> F64:
    """Integral of the load over [a, b], for a <= b <= a + 1 day."""
    da = a_us // _DAY_US
    ga, gb = _load_in_day(a_us), _load_in_day(b_us)
    rest_of_a = _day_weight(da) * (_LOAD_MEAN * _DAY_S) - ga
    return np.where(b_us // _DAY_US == da, gb - ga, rest_of_a + gb)


def _load_cumulative(t_us: I64) -> F64:
    """Integral of the load from COUNTER_ORIGIN (a midnight) to t."""
    day = t_us // _DAY_US
    d0 = _ORIGIN_US // _DAY_US
    weekend = _weekend_days_before(day) - _weekend_days_before(np.array([d0], np.int64))[0]
    weighted_days = (day - d0 - weekend) + _WEEKEND * weekend
    return _LOAD_MEAN * _DAY_S * weighted_days + _load_in_day(t_us)


def _wiggle_terms(a_us: I64, b_us: I64) -> list[tuple[F64, F64]]:
    """Per wiggle k, the per-time factors (X, Y) such that the wiggle's integral over [a, b] for a
    device with phase phi is X * cos(phi) - Y * sin(phi) (angle addition keeps grids trig-free)."""
    out = []
    for period, k in zip(_WIGGLE_PERIODS_US, _WIGGLE_K, strict=True):
        omega = 2 * math.pi / (period / _US)
        pa = omega * ((a_us % period) / _US)  # reduced exactly in integer microseconds
        pb = omega * ((b_us % period) / _US)
        x = k * (_map(math.cos, pa) - _map(math.cos, pb))
        y = k * (_map(math.sin, pa) - _map(math.sin, pb))
        out.append((x, y))
    return out


# --- public types ----------------------------------------------------------------------------------
class IncidentKind(StrEnum):
    OUTAGE = "outage"
    LATENCY_SPIKE = "latency_spike"
    PACKET_LOSS = "packet_loss"
    LINK_SATURATION = "link_saturation"


# When several apply to one device (its own incident and a parent's outage), the first listed wins.
_PRIORITY = (IncidentKind.OUTAGE, IncidentKind.PACKET_LOSS, IncidentKind.LINK_SATURATION,
             IncidentKind.LATENCY_SPIKE)


@dataclass(frozen=True, slots=True)
class SimSite:
    index: int
    name: str
    slug: str


@dataclass(frozen=True, slots=True)
class SimDevice:
    index: int  # 0..n-1, position in Fleet.devices
    name: str  # "nbo-core-1", "nbo-dist-2", "nbo-acc-17"
    device_type: str  # router, switch, firewall, server, access_point
    site: str
    site_slug: str
    group: str  # Core, Distribution, Access, Servers, Wireless
    parent_index: int | None  # None for core routers
    address: str  # unique, in 198.18.0.0/15 (benchmarking range: never probed)
    tags: tuple[str, ...]
    has_interface: bool  # emits IF_* metrics for ifindex 1
    if_speed_bps: int = 0  # 1 or 10 Gb/s when has_interface, else 0


@dataclass(frozen=True, slots=True)
class Incident:
    kind: IncidentKind
    device_index: int
    start: datetime  # tz-aware UTC, on a whole minute
    end: datetime  # exclusive
    magnitude: float  # latency multiplier, loss %, utilisation %; 0 for an outage

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    def covers(self, at: datetime) -> bool:
        return self.start <= at < self.end


class _Inc(NamedTuple):
    start_us: int
    end_us: int
    device: int
    kind: IncidentKind
    magnitude: float

    def public(self) -> Incident:
        return Incident(self.kind, self.device, from_micros(self.start_us), from_micros(self.end_us),
                        self.magnitude)


# --- topology tables -------------------------------------------------------------------------------
SITES: tuple[tuple[str, str], ...] = (
    ("Nairobi", "nbo"), ("Mombasa", "mba"), ("Kisumu", "ksm"), ("Lagos", "los"), ("Accra", "acc"),
    ("Kampala", "kla"), ("Dar es Salaam", "dar"), ("Kigali", "kgl"), ("Addis Ababa", "add"),
    ("Johannesburg", "jnb"), ("Cape Town", "cpt"), ("Cairo", "cai"), ("Casablanca", "cmn"),
    ("Dakar", "dkr"), ("Lusaka", "lun"), ("Harare", "hre"),
)

# Roles: (name part, device_type, group, has_interface, critical)
_CORE, _FW, _DIST, _ACC, _SRV, _AP = range(6)
_ROLES = (
    ("core", "router", "Core", True, True),
    ("fw", "firewall", "Core", True, True),
    ("dist", "switch", "Distribution", True, True),
    ("acc", "switch", "Access", True, False),
    ("srv", "server", "Servers", True, False),
    ("ap", "access_point", "Wireless", False, False),
)
# Leaves (site position >= 4) cycle through this pattern: half access switches, some servers and APs.
_LEAF_PATTERN = np.array([_ACC, _SRV, _AP, _ACC, _ACC, _AP, _SRV, _ACC, _AP, _ACC], np.int64)
_LEAF_RANK = np.array([int((_LEAF_PATTERN[:i] == r).sum()) for i, r in enumerate(_LEAF_PATTERN)], np.int64)
_LEAF_COUNT = np.array([int((_LEAF_PATTERN == r).sum()) for r in range(6)], np.int64)

# Per-role parameter ranges (low, high).
_PEAK_UTIL = np.array([[0.25, 0.55], [0.20, 0.45], [0.20, 0.50], [0.10, 0.45], [0.10, 0.55], [0.0, 0.0]])
_CPU_BASE = np.array([[20, 40], [25, 45], [10, 25], [5, 20], [15, 55], [5, 15]], np.float64)

# Scripted incidents cycle through these (kind, pool); a 24 h window holds at least one full cycle.
_SCRIPT_CYCLE = (
    (IncidentKind.OUTAGE, "leaves"),
    (IncidentKind.LATENCY_SPIKE, "all"),
    (IncidentKind.PACKET_LOSS, "all"),
    (IncidentKind.LINK_SATURATION, "interfaces"),
    (IncidentKind.OUTAGE, "parents"),  # a distribution switch: its subtree goes dark too
)


def _magnitude(kind: IncidentKind, u: float) -> float:
    if kind is IncidentKind.LATENCY_SPIKE:
        return round(5.0 + 15.0 * u, 2)  # RTT multiplier
    if kind is IncidentKind.PACKET_LOSS:
        return round(10.0 + 50.0 * u, 2)  # loss %
    if kind is IncidentKind.LINK_SATURATION:
        return round(95.0 + 3.0 * u, 2)  # util %; noise (< 2 % of speed) keeps it <= 100
    return 0.0


class Fleet:
    """A seeded simulated network of ``n_devices`` devices over ``n_sites`` sites.

    Parameters:
      n_devices: 1..131070 (each gets an address in 198.18.0.0/15), divided evenly over the sites.
      seed: decides every parameter, value and incident.
      interval_s: the polling interval: interface rates at ``t`` cover (t - interval_s, t].
      incidents_per_device_day: expected random incidents per device and day (~2 % by default).
      scripted_every_h: one scripted incident every this many hours, cycling outage, latency spike,
        packet loss, link saturation and a distribution-switch outage; 0 turns them off.
    """

    def __init__(self, n_devices: int = 200, n_sites: int = 3, seed: int = 42, interval_s: int = 60,
                 *, incidents_per_device_day: float = 0.02, scripted_every_h: int = 2) -> None:
        if not 1 <= n_devices <= MAX_DEVICES:
            raise ValueError(f"n_devices={n_devices}: must be 1..{MAX_DEVICES} (addresses in 198.18.0.0/15)")
        if n_sites < 1:
            raise ValueError(f"n_sites={n_sites}: must be at least 1")
        if not 1 <= interval_s <= 86400:
            raise ValueError(f"interval_s={interval_s}: must be 1..86400 seconds")
        if incidents_per_device_day < 0:
            raise ValueError(f"incidents_per_device_day={incidents_per_device_day}: must be >= 0")
        if not 0 <= scripted_every_h <= 4:
            # A 24 h window must hold a whole cycle of five slots for every kind to show up each day.
            raise ValueError(f"scripted_every_h={scripted_every_h}: must be 0 (off) to 4 hours")
        self.n_devices = n_devices
        self.n_sites = n_sites
        self.seed = seed
        self.interval_s = interval_s
        self.incidents_per_device_day = incidents_per_device_day
        self.scripted_every_h = scripted_every_h
        self._seed_key = _mix(np.array([seed & _MASK], np.uint64))[0] ^ _c(0)
        self._build_topology()
        self._build_parameters()
        self._injected: list[_Inc] = []

    # -- construction --------------------------------------------------------------------------------
    def _build_topology(self) -> None:
        n, ns = self.n_devices, self.n_sites
        sizes = np.array([n // ns + (1 if s < n % ns else 0) for s in range(ns)], np.int64)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        site_of = np.repeat(np.arange(ns, dtype=np.int64), sizes)
        pos = np.arange(n, dtype=np.int64) - starts[site_of]
        leaf = pos >= 4
        k = np.where(leaf, pos - 4, 0)
        role = np.select([pos == 0, pos == 1, pos <= 3], [_CORE, _FW, _DIST], _LEAF_PATTERN[k % 10])
        number = np.where(leaf, (k // 10) * _LEAF_COUNT[role] + _LEAF_RANK[k % 10] + 1,
                          np.where(role == _DIST, pos - 1, 1))
        base = starts[site_of]
        parent = np.select([pos == 0, pos <= 3], [-1, base], base + 2 + k % 2)
        grand = np.where(leaf, base, -1)
        self._site_of, self._role, self._parent, self._grand = site_of, role, parent, grand
        self.sites = [SimSite(s, *self._site_name(s)) for s in range(ns) if sizes[s] > 0]
        names = {s.index: s for s in self.sites}

        # Speeds: 10G in the core and distribution, 1G at the access layer, servers either.
        has_if = np.array([_ROLES[r][3] for r in range(6)])[role]
        srv_10g = _unit(_mix(self._dev_keys_raw() + _c(30))) < 0.5
        ten = (role <= _DIST) | ((role == _SRV) & srv_10g)
        self._speed = np.where(has_if, np.where(ten, 1e10, 1e9), 0.0)
        self._has_if = has_if

        devices: list[SimDevice] = []
        addr = _ADDR_BASE + 1
        for i, (s, r, num, p, sp) in enumerate(zip(site_of.tolist(), role.tolist(), number.tolist(),
                                                   parent.tolist(), self._speed.tolist(), strict=True)):
            part, dtype, group, iface, critical = _ROLES[r]
            site = names[s]
            a = addr + i
            tags = ("simulated", group.lower(), "critical") if critical else ("simulated", group.lower())
            devices.append(SimDevice(
                i, f"{site.slug}-{part}-{num}", dtype, site.name, site.slug, group,
                None if p < 0 else p, f"{a >> 24}.{(a >> 16) & 255}.{(a >> 8) & 255}.{a & 255}", tags,
                iface, int(sp)))
        self.devices = devices

        # Pools for scripted incidents.
        has_children = np.zeros(n, bool)
        has_children[parent[parent >= 0]] = True
        parents = np.flatnonzero(role == _DIST)
        if not len(parents):
            parents = np.flatnonzero(has_children)
        leaves = np.flatnonzero(~has_children)
        self._pools: dict[str, I64] = {
            "all": np.arange(n, dtype=np.int64),
            "leaves": leaves,
            "interfaces": np.flatnonzero(has_if),
            "parents": parents if len(parents) else leaves,
        }

    @staticmethod
    def _site_name(s: int) -> tuple[str, str]:
        name, slug = SITES[s % len(SITES)]
        lap = s // len(SITES)
        return (name, slug) if lap == 0 else (f"{name} {lap + 1}", f"{slug}{lap + 1}")

    def _dev_keys_raw(self) -> U64:
        return _key(np.arange(self.n_devices) + 1, _SALT_DEV) ^ self._seed_key

    def _build_parameters(self) -> None:
        role = self._role
        hd = _mix(self._dev_keys_raw())
        self._dev_key = hd

        def u(stream: int) -> F64:
            return _unit(_mix(hd + _c(100 + stream)))

        def span(table: npt.NDArray[np.float64], stream: int) -> F64:
            lo, hi = table[role, 0], table[role, 1]
            return lo + (hi - lo) * u(stream)

        # RTT: the first site is the NOC's own (LAN latencies), the others sit behind a WAN.
        site_u = _unit(_key(np.arange(self.n_sites), _SALT_SITE) ^ self._seed_key)
        site_rtt = np.where(np.arange(self.n_sites) == 0, 0.5 + 1.5 * site_u, 4.0 + 30.0 * site_u)
        extra = np.where(role == _AP, 1.0 + 3.0 * u(1), 0.1 * u(1))  # wireless hop
        self._rtt = np.clip(site_rtt[self._site_of] * (0.85 + 0.3 * u(2)) + extra, 0.3, 40.0)
        self._jitter = (0.03 + self._rtt * (0.03 + 0.07 * u(3))) * np.where(role == _AP, 3.0, 1.0)
        self._cpu_base = span(_CPU_BASE, 4)
        self._cpu_sd = 1.0 + 3.0 * u(5)
        self._mem_base = 30.0 + 40.0 * u(6)
        mem_phase = [2 * math.pi * u(7 + j) for j in range(len(_MEM_PERIODS_US))]
        self._mem_cos = [a * np.cos(p) for a, p in zip(_MEM_AMPS, mem_phase, strict=True)]
        self._mem_sin = [a * np.sin(p) for a, p in zip(_MEM_AMPS, mem_phase, strict=True)]

        # Traffic: peak rate (octets/s) per direction and the wiggles' phases.
        peak_in = span(_PEAK_UTIL, 10) * self._speed / 8.0
        self._rate = (peak_in, peak_in * (0.35 + 0.65 * u(11)))
        self._phase_cos: list[list[F64]] = []
        self._phase_sin: list[list[F64]] = []
        for d in range(2):
            phases = [2 * math.pi * u(20 + 5 * d + k) for k in range(len(_WIGGLE_PERIODS_US))]
            self._phase_cos.append([np.cos(p) for p in phases])
            self._phase_sin.append([np.sin(p) for p in phases])
        # Counters start at a random "uptime" worth of traffic, plus enough that the wiggles' integral
        # (which can dip below its starting value) never takes them below zero.
        floor = 2 * sum(_WIGGLE_K)
        self._counter0 = tuple(r * (_DAY_S * u(40 + d) + floor) for d, r in enumerate(self._rate))

    # -- topology helpers ----------------------------------------------------------------------------
    def descendants(self, index: int) -> list[int]:
        """Devices below ``index`` (children and grandchildren), which an outage of it takes down."""
        return np.flatnonzero((self._parent == index) | (self._grand == index)).tolist()

    @property
    def if_speed_bps(self) -> F64:
        """Interface speed per device index (bit/s; 0 without an interface)."""
        return self._speed.copy()

    def aligned_times(self, start: datetime, end: datetime) -> I64:
        """Epoch microseconds on the ``interval_s`` grid in [start, end)."""
        step = self.interval_s * _US
        a, b = to_micros(start), to_micros(end)
        first = -(-a // step) * step
        return np.arange(first, b, step, dtype=np.int64)

    # -- incidents -----------------------------------------------------------------------------------
    def inject(self, kind: IncidentKind, device_index: int, start: datetime, end: datetime,
               magnitude: float | None = None) -> Incident:
        """Add an incident of our own (the demo starts one soon after it starts, so there is something
        to see at once). It takes part like a scripted one: overlapping random incidents give way."""
        if not 0 <= device_index < self.n_devices:
            raise ValueError(f"device_index={device_index}: must be 0..{self.n_devices - 1}")
        if end <= start:
            raise ValueError("an incident must end after it starts")
        inc = _Inc(to_micros(start), to_micros(end), device_index, kind,
                   _magnitude(kind, 0.5) if magnitude is None else magnitude)
        self._injected.append(inc)
        return inc.public()

    def incidents(self, start: datetime, end: datetime) -> list[Incident]:
        """Incidents overlapping [start, end), by start then device. Devices that are down only because
        an ancestor is down are not listed (see ``affected``)."""
        return [i.public() for i in self._incidents_us(None, to_micros(start), to_micros(end))]

    def affected(self, at: datetime) -> dict[int, IncidentKind]:
        """Device index -> the incident kind in effect at ``at``, descendants of an outage included."""
        t = to_micros(at)
        out: dict[int, IncidentKind] = {}
        rank = {k: i for i, k in enumerate(_PRIORITY)}
        for inc in self._incidents_us(None, t, t + 1):
            hit = [inc.device] + (self.descendants(inc.device) if inc.kind is IncidentKind.OUTAGE else [])
            for d in hit:
                if d not in out or rank[inc.kind] < rank[out[d]]:
                    out[d] = inc.kind
        return out

    def _incidents_us(self, devs: I64 | None, t0: int, t1: int) -> list[_Inc]:
        """Resolved incidents overlapping [t0, t1) of ``devs`` (None: all).

        Scripted incidents always stand (they never overlap each other). A random one is dropped when
        it overlaps a scripted one or an earlier random candidate of the same device: that rule looks
        only at candidates within 90 minutes of it, so it comes out the same for any window.
        """
        if t1 <= t0:
            return []
        lo = t0 - _MAX_DUR_US  # candidates that can overlap anything overlapping [t0, t1)
        scripted = self._scripted_candidates(lo, t1)
        rand = sorted(self._random_candidates(devs, lo, t1))
        busy: dict[int, list[_Inc]] = {}
        for s in scripted:
            busy.setdefault(s.device, []).append(s)
        last_end: dict[int, int] = {}
        kept = list(scripted) + [i for i in self._injected if i.start_us < t1 and i.end_us > lo]
        for r in rand:
            clash = last_end.get(r.device, -1) > r.start_us or any(
                s.start_us < r.end_us and r.start_us < s.end_us for s in busy.get(r.device, ()))
            last_end[r.device] = max(last_end.get(r.device, r.end_us), r.end_us)
            if not clash:
                kept.append(r)
        member = None
        if devs is not None:
            member = np.zeros(self.n_devices, bool)
            member[devs] = True
        out = [i for i in kept if i.start_us < t1 and i.end_us > t0 and (member is None or member[i.device])]
        out.sort(key=lambda i: (i.start_us, i.device))
        return out

    def _random_candidates(self, devs: I64 | None, t0: int, t1: int) -> list[_Inc]:
        """Per (device, hour) a Bernoulli draw; the incident starts on a minute of that hour."""
        p_hour = self.incidents_per_device_day / 24.0
        if p_hour <= 0:
            return []
        threshold = np.uint64(min(int(p_hour * 2.0 ** 64), _MASK))
        dev = np.arange(self.n_devices, dtype=np.int64) if devs is None else np.asarray(devs, np.int64)
        if not len(dev):
            return []
        hours = np.arange((t0 - _HOUR_US - _MAX_DUR_US) // _HOUR_US, (t1 - 1) // _HOUR_US + 1,
                          dtype=np.int64)
        hd = self._dev_key[dev]
        step = max(1, (1 << 22) // len(dev))
        out: list[_Inc] = []
        for i in range(0, len(hours), step):
            hs = hours[i:i + step]
            h = _mix((_key(hs, _SALT_HOUR)[:, None] ^ hd[None, :]) + _S_INC)
            hi, di = np.nonzero(h < threshold)
            if not len(hi):
                continue
            g = _mix(h[hi, di] + _S_ATTR)
            device = dev[di]
            start = hs[hi] * _HOUR_US + np.floor(_u16(g, 1) * 60).astype(np.int64) * _MINUTE_US
            end = start + (5 + np.floor(_u16(g, 2) * 86).astype(np.int64)) * _MINUTE_US  # 5..90 min
            ku = _u16(g, 0)
            kind = np.select([ku < 0.30, ku < 0.60, ku < 0.85], [0, 1, 2], 3)
            kind = np.where((kind == 3) & ~self._has_if[device], 1, kind)  # saturation needs a link
            mag_u = _u16(g, 3)
            keep = (start < t1) & (end > t0)
            kinds = (IncidentKind.OUTAGE, IncidentKind.LATENCY_SPIKE, IncidentKind.PACKET_LOSS,
                     IncidentKind.LINK_SATURATION)
            for s, e, d, k, m in zip(start[keep].tolist(), end[keep].tolist(), device[keep].tolist(),
                                     kind[keep].tolist(), mag_u[keep].tolist(), strict=True):
                out.append(_Inc(s, e, d, kinds[k], _magnitude(kinds[k], m)))
        return out

    def _scripted_candidates(self, t0: int, t1: int) -> list[_Inc]:
        """One incident per ``scripted_every_h`` slot, inside its slot, kinds in a fixed cycle."""
        if not self.scripted_every_h:
            return []
        slot_us = self.scripted_every_h * _HOUR_US
        slot_min = self.scripted_every_h * 60
        slots = np.arange(t0 // slot_us, (t1 - 1) // slot_us + 1, dtype=np.int64)
        g = _mix(_key(slots, _SALT_SCRIPT) ^ self._seed_key)
        g2 = _mix(g + _S_ATTR2)
        out: list[_Inc] = []
        for j, a, b in zip(slots.tolist(), g.tolist(), g2.tolist(), strict=True):
            kind, pool_name = _SCRIPT_CYCLE[j % len(_SCRIPT_CYCLE)]
            pool = self._pools[pool_name]
            device = int(pool[((a >> 32) * len(pool)) >> 32])
            if pool_name == "parents":
                minutes = 5 + ((b & 0xFFFF) * 11 >> 16)  # 5..15: short, the subtree is large
            else:
                dmax = min(60, slot_min)
                minutes = 10 + ((b & 0xFFFF) * (dmax - 9) >> 16)  # 10..60
            offset = ((b >> 16) & 0xFFFF) * (slot_min - minutes + 1) >> 16
            start = j * slot_us + offset * _MINUTE_US
            end = start + minutes * _MINUTE_US
            if start < t1 and end > t0:
                out.append(_Inc(start, end, device, kind, _magnitude(kind, ((b >> 32) & 0xFFFF) / 65536)))
        return out

    # -- metrics -------------------------------------------------------------------------------------
    def _indices(self, device_indices: npt.ArrayLike | None) -> I64:
        if device_indices is None:
            return np.arange(self.n_devices, dtype=np.int64)
        idx = np.asarray(device_indices, np.int64).ravel()
        if len(idx) and (idx.min() < 0 or idx.max() >= self.n_devices):
            raise ValueError(f"device_indices must be in 0..{self.n_devices - 1}")
        return idx

    def sample(self, times_us: npt.ArrayLike, device_indices: npt.ArrayLike | None = None,
               device_ids: npt.ArrayLike | None = None) -> MetricRows:
        """Metric rows for every time x device, ordered by (time, device) as given, then metric.

        ``device_ids[index]`` is the database id of fleet device ``index`` (default index + 1).
        A down device (own outage or an ancestor's) has only AVAILABLE=0 and ICMP_LOSS_PCT=100 rows.
        """
        t = np.ascontiguousarray(times_us, dtype=np.int64).ravel()
        idx = self._indices(device_indices)
        if device_ids is None:
            ids = idx + 1
        else:
            id_map = np.asarray(device_ids, np.int64).ravel()
            if len(id_map) < self.n_devices:
                raise ValueError(f"device_ids has {len(id_map)} entries; the fleet has {self.n_devices} "
                                 "devices (device_ids[index] is the id of device index)")
            ids = id_map[idx]
        if not len(t) or not len(idx):
            return MetricRows.empty()
        step = max(1, _CELLS_PER_CHUNK // len(idx))
        chunks = [self._sample_chunk(t[i:i + step], idx, ids) for i in range(0, len(t), step)]
        return MetricRows.concat(chunks)

    def _relevant(self, idx: I64) -> I64:
        rel = np.unique(np.concatenate([idx, self._parent[idx], self._grand[idx]]))
        return rel[rel >= 0]

    def _sample_chunk(self, t: I64, idx: I64, ids: I64) -> MetricRows:
        n_t, n_d = len(t), len(idx)
        dt_us = self.interval_s * _US
        incs = self._incidents_us(self._relevant(idx), int(t.min()) - dt_us, int(t.max()) + 1)

        # Incident effects on the (time, device) grid.
        down = np.zeros((n_t, n_d), bool)
        rtt_mult = np.ones((n_t, n_d))
        jit_mult = np.ones((n_t, n_d))
        lossy = np.zeros((n_t, n_d), bool)
        loss_mag = np.zeros((n_t, n_d))
        sat = np.zeros((n_t, n_d), bool)
        sats: list[tuple[_Inc, Bools]] = []
        parent, grand = self._parent[idx], self._grand[idx]
        for inc in incs:
            own = idx == inc.device
            cols = (own | (parent == inc.device) | (grand == inc.device)) if inc.kind is IncidentKind.OUTAGE \
                else own
            if not cols.any():
                continue
            if inc.kind is IncidentKind.LINK_SATURATION:
                sats.append((inc, cols))
            rows = (t >= inc.start_us) & (t < inc.end_us)
            if not rows.any():
                continue
            cell = np.ix_(rows, cols)
            if inc.kind is IncidentKind.OUTAGE:
                down[cell] = True
            elif inc.kind is IncidentKind.LATENCY_SPIKE:
                rtt_mult[cell] = inc.magnitude
                jit_mult[cell] = 0.5 * inc.magnitude
            elif inc.kind is IncidentKind.PACKET_LOSS:
                lossy[cell] = True
                loss_mag[cell] = inc.magnitude
                rtt_mult[cell] = 1.2
            else:  # saturation: queues fill, RTT and jitter rise
                sat[cell] = True
                rtt_mult[cell] = 2.5
                jit_mult[cell] = 4.0

        load = _load_at(t)
        base = _key(t, _SALT_TIME)[:, None] ^ self._dev_key[idx][None, :]
        values = np.empty((n_t, n_d, len(METRICS)))
        col = _COL

        # ICMP.
        rtt0 = self._rtt[idx]
        shape = _mix(base + _S_SHAPE)
        spike = _u16(shape, 3)
        spike *= spike
        spike *= spike
        spike = spike * spike * spike  # u^12: rare spikes
        rtt = rtt0 * (1.0 + 0.04 * load)[:, None] * (1.0 + 0.05 * _normal(_mix(base + _S_RTT)))
        rtt += rtt0 * 0.6 * spike
        rtt *= rtt_mult
        jitter = self._jitter[idx] * (0.5 + _u16(shape, 0)) * jit_mult
        values[:, :, col[MetricKind.ICMP_RTT_MS]] = rtt
        rtt_min = np.maximum(rtt - jitter * (0.3 + 0.7 * _u16(shape, 1)), 0.2 * rtt)
        values[:, :, col[MetricKind.ICMP_RTT_MIN_MS]] = rtt_min
        values[:, :, col[MetricKind.ICMP_RTT_MAX_MS]] = rtt + jitter * (0.5 + 1.5 * _u16(shape, 2))
        values[:, :, col[MetricKind.ICMP_JITTER_MS]] = jitter
        lh = _mix(base + _S_LOSS)
        lu = _u16(lh, 1)
        loss = np.where(_u16(lh, 0) < 0.004, 1.0 + 4.0 * lu, 0.0)  # rare small losses
        loss = np.where(lossy, np.clip(loss_mag + 6.0 * (lu - 0.5), 0.0, 100.0), loss)
        loss = np.where(sat, 0.5 + 2.5 * lu, loss)
        values[:, :, col[MetricKind.ICMP_LOSS_PCT]] = np.where(down, 100.0, loss)
        values[:, :, col[MetricKind.AVAILABLE]] = np.where(down, 0.0, 1.0)

        # CPU follows the load; memory drifts over days.
        cpu = self._cpu_base[idx] * (0.55 + 0.45 * load)[:, None]
        cpu += self._cpu_sd[idx] * _normal(_mix(base + _S_CPU))
        values[:, :, col[MetricKind.CPU_PCT]] = np.clip(cpu + 25.0 * sat, 0.5, 100.0)
        mem = self._mem_base[idx] + 0.3 * _normal(_mix(base + _S_MEM))
        for period, mc, ms in zip(_MEM_PERIODS_US, self._mem_cos, self._mem_sin, strict=True):
            ph = (2 * math.pi / (period / _US)) * ((t % period) / _US)
            mem += _map(math.sin, ph)[:, None] * mc[idx] + _map(math.cos, ph)[:, None] * ms[idx]
        values[:, :, col[MetricKind.MEM_PCT]] = np.clip(mem, 1.0, 99.0)

        # Interfaces: octets over (t - interval, t], i.e. counter deltas.
        if self._has_if[idx].any():
            octets = self._window_octets(t, idx)
            for inc, cols in sats:
                self._saturate(octets[0], inc, cols, t - dt_us, t, idx)
            speed = np.where(self._speed[idx] > 0, self._speed[idx], 1.0)
            in_bps = octets[0] * (8.0 / self.interval_s)
            out_bps = octets[1] * (8.0 / self.interval_s)
            values[:, :, col[MetricKind.IF_IN_BPS]] = in_bps
            values[:, :, col[MetricKind.IF_OUT_BPS]] = out_bps
            values[:, :, col[MetricKind.IF_UTIL_PCT]] = np.maximum(in_bps, out_bps) / speed * 100.0
            eu = _u16(lh, 3)
            errors = np.where(_u16(lh, 2) < 0.01, 1.0 + np.floor(5.0 * eu), 0.0)
            errors = np.where(sat, 5.0 + np.floor(55.0 * eu), errors)
            values[:, :, col[MetricKind.IF_ERRORS_PS]] = errors / self.interval_s

        # Which rows exist.
        present = np.ones((n_t, n_d, len(METRICS)), bool)
        present[:, ~self._has_if[idx], len(METRICS) - _N_IF:] = False
        if down.any():
            present[down] = False
            for c in _ICMP_ONLY:
                present[down, c] = True
        return self._assemble(t, ids, values, present)

    @staticmethod
    def _assemble(t: I64, ids: I64, values: F64, present: Bools) -> MetricRows:
        n_t, n_d, n_m = values.shape
        per_cell = present.sum(axis=2)
        return MetricRows(
            time_us=np.repeat(t, per_cell.sum(axis=1)),
            device_id=np.repeat(np.tile(ids, n_t), per_cell.ravel()),
            metric_id=np.broadcast_to(_METRIC_IDS, (n_t, n_d, n_m))[present],
            ifindex=np.broadcast_to(_IFINDEX, (n_t, n_d, n_m))[present],
            value=values[present],
        )

    # -- traffic -------------------------------------------------------------------------------------
    def _wiggles(self, terms: list[tuple[F64, F64]], direction: int, idx: I64) -> F64:
        pc, ps = self._phase_cos[direction], self._phase_sin[direction]
        acc: F64 | None = None
        for k, (x, y) in enumerate(terms):
            part = x[:, None] * pc[k][idx][None, :] - y[:, None] * ps[k][idx][None, :]
            acc = part if acc is None else acc + part
        assert acc is not None
        return acc

    def _noise_units(self, slots: I64, idx: I64) -> tuple[F64, F64]:
        h = _mix((_key(slots, _SALT_SLOT)[:, None] ^ self._dev_key[idx][None, :]) + _S_NOISE)
        return _u32(h, 0), _u32(h, 1)

    def _window_octets(self, t: I64, idx: I64) -> tuple[F64, F64]:
        """Octets in (t - interval, t] per direction, without incidents: C(t) - C(t - interval)."""
        dt_us = self.interval_s * _US
        a = t - dt_us
        load = _load_integral(a, t)
        terms = _wiggle_terms(a, t)
        k = t // dt_us
        f = ((t - k * dt_us) / dt_us)[:, None]
        prev, cur = self._noise_units(k - 1, idx), self._noise_units(k, idx)
        nxt = self._noise_units(k + 1, idx) if f.any() else cur
        out = []
        for d in range(2):
            rate = self._rate[d][idx]
            d1 = cur[d] - prev[d]
            noise = d1 + ((nxt[d] - cur[d]) - d1) * f if nxt is not cur else d1
            out.append(rate * (load[:, None] + self._wiggles(terms, d, idx))
                       + (_NOISE * self.interval_s) * rate * noise)
        return out[0], out[1]

    def _saturate(self, octets_in: F64, inc: _Inc, cols: Bools, a_us: I64, b_us: I64, idx: I64) -> None:
        """Replace the base inbound traffic by the saturating rate where [a, b] overlaps the incident."""
        rows = (b_us > inc.start_us) & (a_us < inc.end_us)
        if not rows.any():
            return
        lo = np.maximum(a_us[rows], inc.start_us)
        hi = np.minimum(b_us[rows], inc.end_us)
        i = np.array([inc.device])
        target = self._speed[inc.device] / 8.0 * inc.magnitude / 100.0
        base = self._rate[0][inc.device] * (_load_integral(lo, hi)
                                            + self._wiggles(_wiggle_terms(lo, hi), 0, i)[:, 0])
        octets_in[np.ix_(rows, cols)] += (target * ((hi - lo) / _US) - base)[:, None]

    def octet_counters(self, times_us: npt.ArrayLike,
                       device_indices: npt.ArrayLike | None = None) -> tuple[U64, U64]:
        """(ifHCInOctets, ifHCOutOctets) per time x device, from COUNTER_ORIGIN on.

        ``8 * (C(t) - C(t - interval_s)) / interval_s`` equals the IF_IN/OUT_BPS that ``sample`` emits
        at ``t``. Counters keep counting through outages (nobody polls them then). The cost grows with
        the time since COUNTER_ORIGIN (every past saturation counts): meant for a few devices at a time.
        """
        t = np.ascontiguousarray(times_us, dtype=np.int64).ravel()
        idx = self._indices(device_indices)
        if len(t) and t.min() < _ORIGIN_US:
            raise ValueError(f"octet counters start at {COUNTER_ORIGIN.isoformat()}")
        dt_us = self.interval_s * _US
        load = _load_cumulative(t)
        terms = _wiggle_terms(np.full(len(t), _ORIGIN_US, np.int64), t)
        k = t // dt_us
        f = ((t - k * dt_us) / dt_us)[:, None]
        cur, nxt = self._noise_units(k, idx), self._noise_units(k + 1, idx)
        counters = []
        for d in range(2):
            rate = self._rate[d][idx]
            noise = cur[d] + (nxt[d] - cur[d]) * f
            counters.append(self._counter0[d][idx] + rate * (load[:, None] + self._wiggles(terms, d, idx))
                            + (_NOISE * self.interval_s) * rate * noise)
        if len(t):
            for inc in self._incidents_us(idx, _ORIGIN_US, int(t.max()) + 1):
                if inc.kind is IncidentKind.LINK_SATURATION:
                    self._saturate(counters[0], inc, idx == inc.device,
                                   np.full(len(t), _ORIGIN_US, np.int64), t, idx)
        return np.floor(counters[0]).astype(np.uint64), np.floor(counters[1]).astype(np.uint64)


def align(ts: datetime, interval_s: int) -> datetime:
    """``ts`` rounded down to a multiple of the interval (tick times)."""
    us = to_micros(ts)
    step = interval_s * _US
    return from_micros(us - us % step)
