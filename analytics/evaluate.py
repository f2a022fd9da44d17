"""Rules against stored samples: the live evaluation every tick, and the backtest over history.

Both read samples through :mod:`analytics.frames` and replay them with
:func:`analytics.rules.episodes`, so a backtest shows exactly what the live rule would have done.
The live evaluation reads a short window per rule (``for`` plus a few probe intervals) and
carries the open alerts in as "already firing", so a breach that began before the window is
neither lost nor opened twice.

Anomaly rules replay the *stored* anomaly scores (``anomaly_scores``, one per series and minute,
written every 15 minutes by the ``score_anomalies`` job: :func:`analytics.anomaly.load_scores`)
rather than raw samples: the score needs days of history per series, which a stored score has
already paid for, so a tick costs one indexed read. Scores arrive in batches, so the live window of
an anomaly rule is ``ANOMALY_LOOKBACK`` long, and an episode that began and ended between two ticks
is still reported once (opened and resolved in the same tick), unless an alert of the rule already
began at or after it for that series.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

from analytics.alerts import Finding
from analytics.anomaly.store import load_scores
from analytics.builtin import snmp_failing
from analytics.frames import Resolution, load_metrics
from analytics.rules import MAD_TO_SIGMA, Episodes, Rule, episodes
from netpulse.metrics import MetricKind

# Devices in a rule's scope (the same matching as maintenance windows).
_SCOPE = """
SELECT d.id FROM devices d
LEFT JOIN sites s ON s.id = d.site_id
LEFT JOIN device_groups g ON g.id = d.group_id
WHERE d.organization_id = %(org)s AND d.probe_enabled AND (
    %(scope)s = 'all'
    OR (%(scope)s = 'device' AND d.name = %(ref)s)
    OR (%(scope)s = 'site' AND s.name = %(ref)s)
    OR (%(scope)s = 'group' AND g.name = %(ref)s)
    OR (%(scope)s = 'tag' AND EXISTS (SELECT 1 FROM device_tags dt JOIN tags t ON t.id = dt.tag_id
                                      WHERE dt.device_id = d.id AND t.name = %(ref)s)))
ORDER BY d.id
"""

# The baseline is built from hourly means, whose spread from week to week understates the noise of
# single samples (and is 0 with one week of history): k x MAD is floored at k x 10 % of the median.
BAND_FLOOR = 0.10
_IFINDEX_BITS = 32
# Anomaly scores are stored every 15 minutes for the last hour: a live anomaly rule looks this far back.
ANOMALY_LOOKBACK = timedelta(minutes=45)


def scope_devices(conn: Any, org_id: uuid.UUID, rule: Rule) -> list[int]:
    return [r[0] for r in conn.execute(_SCOPE, {"org": org_id, "scope": rule.scope, "ref": rule.scope_ref})]


def series_keys(device_id: np.ndarray, ifindex: np.ndarray) -> np.ndarray:
    return (device_id.astype(np.int64) << _IFINDEX_BITS) | ifindex.astype(np.int64)


def split_key(key: int) -> tuple[int, int]:
    return key >> _IFINDEX_BITS, key & ((1 << _IFINDEX_BITS) - 1)


def device_filter(rule: Rule, devices: Sequence[int]) -> list[int] | None:
    """The devices to read for ``rule``: none listed for scope 'all' (the organization filter is
    enough, and a list of ten thousand ids costs more to send than it saves)."""
    return None if rule.scope == "all" else list(devices)


def hour_of_week(times_us: np.ndarray) -> np.ndarray:
    """0 = Monday 00:00 UTC ... 167 = Sunday 23:00 (1970-01-01 was a Thursday)."""
    hours = times_us // 3_600_000_000
    return ((hours // 24 + 3) % 7) * 24 + hours % 24


def baseline(conn: Any, org_id: uuid.UUID, rule: Rule, devices: Sequence[int], until: datetime) -> pl.DataFrame:
    """Per series and hour of the week: the median and MAD of the hourly means over the
    ``baseline_weeks`` weeks before ``until`` (from the 1 h rollup)."""
    assert rule.metric is not None
    start = until - timedelta(weeks=rule.baseline_weeks)
    hourly = load_metrics(conn, org_id, metrics=[rule.metric], start=start, end=until,
                          devices=device_filter(rule, devices),
                          resolution="1h")
    if hourly.height == 0:
        return pl.DataFrame(schema={"key": pl.Int64, "how": pl.Int64, "median": pl.Float64, "mad": pl.Float64})
    t = hourly["time"].dt.epoch("us").to_numpy()
    frame = pl.DataFrame({"key": series_keys(hourly["device_id"].to_numpy(), hourly["ifindex"].to_numpy()),
                          "how": hour_of_week(t), "value": hourly["value"].to_numpy()})
    med = frame.group_by("key", "how").agg(pl.col("value").median().alias("median"))
    return (frame.join(med, on=["key", "how"])
            .group_by("key", "how")
            .agg(pl.col("median").first(), (pl.col("value") - pl.col("median")).abs().median().alias("mad")))


def bands(rule: Rule, base: pl.DataFrame, keys: np.ndarray, times_us: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The band (lo, hi) at each sample; NaN where the series has no baseline for that hour."""
    assert rule.k_mad is not None
    samples = pl.DataFrame({"key": keys, "how": hour_of_week(times_us), "i": np.arange(len(keys))})
    joined = samples.join(base, on=["key", "how"], how="left").sort("i")
    med = joined["median"].fill_null(np.nan).to_numpy()
    spread = np.fmax(joined["mad"].fill_null(np.nan).to_numpy() * MAD_TO_SIGMA, np.abs(med) * BAND_FLOOR)
    spread = np.where(spread > 0, spread, 1e-9)
    return med - rule.k_mad * spread, med + rule.k_mad * spread


def answered_only(rule: Rule, frame: pl.DataFrame) -> pl.DataFrame:
    """A probe that got no answer at all (100 % loss) is the status rule's business (device down):
    loss rules look at answered probes, so an outage does not also raise a packet-loss alert."""
    if rule.metric is MetricKind.ICMP_LOSS_PCT and frame.height:
        return frame.filter(pl.col("value") < 100.0)
    return frame


def anomaly_samples(conn: Any, org_id: uuid.UUID, rule: Rule, devices: Sequence[int] | None, start: datetime,
                    end: datetime) -> pl.DataFrame:
    """The stored anomaly scores of ``rule``'s metric in [start, end) as samples (``value`` = score)."""
    assert rule.metric is not None
    scores = load_scores(conn, org_id, start=start, end=end, metrics=[rule.metric],
                         devices=None if devices is None else list(devices))
    return scores.select("time", "device_id", "ifindex", pl.col("score").cast(pl.Float64).alias("value"))


@dataclass
class SeriesSamples:
    keys: np.ndarray
    times_us: np.ndarray
    values: np.ndarray

    @classmethod
    def from_frame(cls, frame: pl.DataFrame) -> SeriesSamples:
        if frame.height == 0:
            return cls(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0))
        keys = series_keys(frame["device_id"].to_numpy(), frame["ifindex"].to_numpy())
        times = frame["time"].dt.epoch("us").to_numpy()
        order = np.lexsort((times, keys))
        return cls(keys[order], times[order], frame["value"].to_numpy()[order])


def replay(conn: Any, org_id: uuid.UUID, rule: Rule, devices: Sequence[int], start: datetime, end: datetime, *,
           firing_keys: set[int] | None = None, baseline_until: datetime | None = None,
           resolution: Resolution = "raw") -> tuple[Episodes, SeriesSamples]:
    """The rule's episodes over [start, end) for ``devices``."""
    assert rule.metric is not None
    if rule.kind == "anomaly":
        frame = anomaly_samples(conn, org_id, rule, device_filter(rule, devices), start, end)
    else:
        frame = load_metrics(conn, org_id, metrics=[rule.metric], start=start, end=end,
                             devices=device_filter(rule, devices),
                             resolution=resolution)
    s = SeriesSamples.from_frame(answered_only(rule, frame))
    lo = hi = None
    if rule.kind == "dynamic":
        lo, hi = bands(rule, baseline(conn, org_id, rule, devices, baseline_until or start), s.keys, s.times_us)
    before = np.isin(s.keys, list(firing_keys)) if firing_keys else None
    return episodes(rule, s.keys, s.times_us, s.values, lo=lo, hi=hi, firing_before=before), s


def _us(dt: datetime) -> int:
    return int(dt.timestamp() * 1_000_000)


def _dt(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(us))


@dataclass
class Evaluator:
    """Live evaluation: each call reads the last window of every enabled rule of an organization, and
    applies the built-in rules (:mod:`analytics.builtin`)."""

    lookback: timedelta = timedelta(minutes=3)     # samples before the ``for`` window (a few intervals)
    snmp_failing_intervals: int = 3                # the built-in SNMP rule's N; 0: off
    _baselines: dict[tuple[int | str, datetime], pl.DataFrame] = field(default_factory=dict, init=False)

    def evaluate(self, conn: Any, org_id: uuid.UUID, rules: Sequence[Rule], now: datetime) -> list[Finding]:
        findings: list[Finding] = []
        active = [r for r in rules if r.enabled]
        # One read of the latest samples for every metric rule (one scan of the newest partition,
        # not one per rule); each rule then takes its metric, window and devices from it.
        on_samples = [r for r in active if r.kind not in ("status", "anomaly") and r.metric is not None]
        recent = None
        if on_samples:
            start = min(self._window_start(r, now) for r in on_samples)
            recent = load_metrics(conn, org_id, metrics=sorted({r.metric for r in on_samples if r.metric}),
                                  start=start, end=now + timedelta(microseconds=1), resolution="raw")
        open_by_rule: dict[int | None, dict[int, datetime]] = {}
        for rule_id, key, started in conn.execute(
                "SELECT rule_id, device_id::bigint << 32 | ifindex, started_at FROM alerts "
                "WHERE organization_id = %s AND rule_id IS NOT NULL AND NOT resolved", (org_id,)):
            open_by_rule.setdefault(rule_id, {})[key] = started
        for rule in active:
            devices: list[int] | None = None   # scope 'all': the organization filter is the scope
            if rule.kind == "status" or rule.scope != "all":
                devices = scope_devices(conn, org_id, rule)
                if not devices:
                    continue
            open_alerts = open_by_rule.get(rule.id, {})
            if rule.kind == "status":
                findings += self._status(conn, rule, devices or [], open_alerts, now)
            elif rule.kind == "anomaly":
                findings += self._anomaly(conn, org_id, rule, devices, open_alerts, now)
            elif recent is not None:
                findings += self._samples(conn, org_id, rule, devices, recent, open_alerts, now)
        findings += snmp_failing(conn, org_id, now, self.snmp_failing_intervals)
        return findings

    def _window_start(self, rule: Rule, now: datetime) -> datetime:
        return now - timedelta(seconds=rule.for_s) - self.lookback

    def _status(self, conn: Any, rule: Rule, devices: list[int], open_alerts: dict[int, datetime],
                now: datetime) -> list[Finding]:
        out = []
        for device_id, status, since in conn.execute(
                "SELECT id, oper_status, oper_status_since FROM devices WHERE id = ANY(%s)", (devices,)):
            down = status == "down"
            if down or (device_id << _IFINDEX_BITS) in open_alerts:
                message = (f"no answer to its probes since {since:%d %b %H:%M} UTC" if down and since
                           else f"the device is {status}")
                out.append(Finding(rule, device_id, down, now, started_at=since if down else None, message=message))
        return out

    def _samples(self, conn: Any, org_id: uuid.UUID, rule: Rule, devices: list[int] | None, recent: pl.DataFrame,
                 open_alerts: dict[int, datetime], now: datetime) -> list[Finding]:
        assert rule.metric is not None
        window = recent.filter((pl.col("metric_id") == int(rule.metric))
                               & (pl.col("time") >= self._window_start(rule, now)))
        if devices is not None:
            window = window.filter(pl.col("device_id").is_in(devices))
        s = SeriesSamples.from_frame(answered_only(rule, window))
        lo = hi = None
        if rule.kind == "dynamic":
            hour = now.replace(minute=0, second=0, microsecond=0)
            cache_key = (rule.id if rule.id is not None else rule.name, hour)
            if cache_key not in self._baselines:   # the baseline moves by the hour, not by the tick
                self._baselines = {k: v for k, v in self._baselines.items() if k[1] == hour}
                self._baselines[cache_key] = baseline(conn, org_id, rule, devices or [], hour)
            lo, hi = bands(rule, self._baselines[cache_key], s.keys, s.times_us)
        before = np.isin(s.keys, list(open_alerts)) if open_alerts else None
        eps = episodes(rule, s.keys, s.times_us, s.values, lo=lo, hi=hi, firing_before=before)
        return findings_from(rule, eps, s, open_alerts, now)


    def _anomaly(self, conn: Any, org_id: uuid.UUID, rule: Rule, devices: list[int] | None,
                 open_alerts: dict[int, datetime], now: datetime) -> list[Finding]:
        start = now - timedelta(seconds=rule.for_s) - ANOMALY_LOOKBACK
        s = SeriesSamples.from_frame(anomaly_samples(conn, org_id, rule, devices, start,
                                                     now + timedelta(microseconds=1)))
        before = np.isin(s.keys, list(open_alerts)) if open_alerts else None
        eps = episodes(rule, s.keys, s.times_us, s.values, firing_before=before)
        out = findings_from(rule, eps, s, open_alerts, now)
        # Episodes that began and ended inside the window: reported once, opened and resolved at once.
        done = eps.frame.filter(pl.col("resolved_us").is_not_null() & (pl.col("opened_us") >= 0))
        if done.is_empty():
            return out
        reported = {s for f in out for s in [(f.device_id << _IFINDEX_BITS) | f.ifindex]}
        known = dict(conn.execute("SELECT device_id::bigint << 32 | ifindex, max(started_at) FROM alerts "
                                  "WHERE organization_id = %s AND rule_id = %s GROUP BY 1",
                                  (org_id, rule.id)).fetchall()) if rule.id is not None else {}
        last = done.sort("opened_us").group_by("series", maintain_order=True).last()
        for key, started_us, worst, last_value in last.select("series", "started_us", "worst",
                                                              "last_value").iter_rows():
            began = _dt(started_us)
            if key in reported or (key in known and known[key] >= began):
                continue
            device_id, ifindex = split_key(key)
            out.append(Finding(rule, device_id, True, now, ifindex=ifindex, value=worst, started_at=began))
            out.append(Finding(rule, device_id, False, now, ifindex=ifindex, value=last_value))
        return out


def findings_from(rule: Rule, eps: Episodes, samples: SeriesSamples, open_alerts: dict[int, Any],
                  now: datetime) -> list[Finding]:
    """Each series' state at its last sample: firing (an unresolved episode) or cleared."""
    out = []
    still = eps.frame.filter(pl.col("resolved_us").is_null())
    firing = set(still["series"].to_list())
    for key, started_us, last_value in still.select("series", "started_us", "last_value").iter_rows():
        device_id, ifindex = split_key(key)
        started = open_alerts.get(key) if started_us < 0 else _dt(started_us)
        out.append(Finding(rule, device_id, True, now, ifindex=ifindex, value=last_value, started_at=started))
    seen = set(np.unique(samples.keys).tolist())
    for key in open_alerts:
        if key in seen and key not in firing:
            device_id, ifindex = split_key(key)
            last = samples.values[np.flatnonzero(samples.keys == key)[-1]]
            out.append(Finding(rule, device_id, False, now, ifindex=ifindex, value=float(last)))
    return out


# --- the backtest: what a rule would have done over stored history ----------------------------------

@dataclass(frozen=True, slots=True)
class BacktestAlert:
    """One alert a rule would have opened: when its breach began, when it fired, when it cleared
    (None: still firing at the end) and its worst value while firing (None when unknown)."""

    device_id: int
    ifindex: int
    started_at: datetime
    opened_at: datetime
    resolved_at: datetime | None
    worst: float | None


@dataclass(frozen=True, slots=True)
class Backtest:
    """A rule replayed over ``[start, end)``: the alerts it would have opened, by opening time, and how
    much it read (devices in scope, series with samples, samples)."""

    rule: Rule
    start: datetime
    end: datetime
    alerts: list[BacktestAlert]
    devices: int
    series: int
    samples: int

    @property
    def still_open(self) -> int:
        return sum(a.resolved_at is None for a in self.alerts)


def backtest(conn: Any, org_id: uuid.UUID, rule: Rule, start: datetime, end: datetime, *,
             resolution: Resolution = "raw") -> Backtest:
    """Replay ``rule`` over stored samples of ``[start, end)`` without writing anything; the live
    engine replays the same way (:func:`analytics.rules.episodes`), so this is what it would have done.

    Raises:
        ValidationError: a status rule (it follows the probes' device status: see the outages of
            :mod:`analytics.sla`), a naive or empty period, or an unknown resolution.
    """
    from netpulse.errors import ValidationError

    if rule.kind == "status" or rule.metric is None:
        raise ValidationError(f"rule {rule.name!r} is a status rule: it follows the probes' device status, which "
                              "the SLA outages show; only threshold and dynamic rules are replayed",
                              details={"kind": "status rules are not replayed"})
    devices = scope_devices(conn, org_id, rule)
    if not devices:
        return Backtest(rule, start, end, [], 0, 0, 0)
    eps, samples = replay(conn, org_id, rule, devices, start, end, baseline_until=start, resolution=resolution)
    alerts = []
    for key, started, opened, resolved, worst in eps.frame.sort("opened_us").select(
            "series", "started_us", "opened_us", "resolved_us", "worst").iter_rows():
        device_id, ifindex = split_key(key)
        alerts.append(BacktestAlert(device_id, ifindex, _dt(started), _dt(opened),
                                    _dt(resolved) if resolved is not None else None,
                                    None if worst is None or worst != worst else float(worst)))
    return Backtest(rule, start, end, alerts, len(devices), len(np.unique(samples.keys)), len(samples.keys))
