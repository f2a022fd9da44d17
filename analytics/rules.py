"""Alert rules: what they say, where they come from, and when each series breaks them.

A rule names a metric, a scope (device, group, site, tag or all), and a condition:

- **threshold**: ``value <comparator> threshold`` held for ``for`` (a duration), cleared when the
  value crosses ``clear`` (hysteresis: between the two, a firing rule keeps firing);
- **dynamic**: the value leaves the series' seasonal baseline band, median +- k x MAD of the same
  hour of the week over the trailing weeks (``comparator`` '>' or '<' watches one side only);
  cleared when it is back inside the band shrunk to ``CLEAR_FRACTION`` of its width;
- **status**: the device's probed status (down, with the probes' own hysteresis);
- **anomaly**: the metric's anomaly score (:mod:`analytics.anomaly`, as stored in ``anomaly_scores``)
  at or above ``k`` (a score in (0, 1]; 0.5 is the detector's own line) for ``for``; cleared by the
  first score below ``k``. The detector scores the first point of an episode and damps what follows,
  so an anomaly alert usually opens and resolves within a few minutes: ``for`` is best left at 0.

:func:`episodes` replays a rule over stored samples (many series at once, vectorised); the live
engine and the backtest both use it, so a backtest shows exactly what the live rule would do.
A series fires at the first sample where its current run of breaching samples has lasted ``for``
seconds, and resolves at the first sample that clears.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import polars as pl

from netpulse import timespec
from netpulse.errors import Conflict, NotFound, ValidationError
from netpulse.metrics import MetricKind
from netpulse.text import name_problem

Kind = Literal["threshold", "dynamic", "status", "anomaly"]
KINDS = ("threshold", "dynamic", "status", "anomaly")
Scope = Literal["device", "group", "site", "tag", "all"]
Severity = Literal["info", "warning", "critical"]
COMPARATORS = (">", ">=", "<", "<=")
SEVERITIES = ("info", "warning", "critical")
SCOPES = ("device", "group", "site", "tag", "all")
CLEAR_FRACTION = 0.75          # a dynamic alert clears inside 75 % of the band that fired it
MAD_TO_SIGMA = 1.4826          # MAD x this estimates the standard deviation of normal noise


def parse_duration(text: str | int | float, *, field_name: str = "duration") -> int:
    """Whole seconds from ``90``, ``"90s"``, ``"5m"``, ``"2h"``, ``"7d"``, ``"1w"`` or ``"1d12h"`` (zero allowed):
    :func:`netpulse.timespec.parse_duration`, the parser the CLI and the API use too."""
    return int(timespec.parse_duration(text, field=field_name, allow_zero=True).total_seconds())


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    kind: Kind
    severity: Severity
    metric: MetricKind | None = None
    comparator: str | None = None
    value: float | None = None
    clear_value: float | None = None
    for_s: int = 0
    scope: Scope = "all"
    scope_ref: str | None = None
    k_mad: float | None = None       # dynamic: the band's half-width in MADs; anomaly: the score threshold
    baseline_weeks: int = 4
    escalation_policy: str | None = None
    id: int | None = None
    enabled: bool = True

    def __post_init__(self) -> None:
        problems: dict[str, str] = {}
        if not self.name or len(self.name) > 100:
            problems["name"] = "a rule needs a name of at most 100 characters"
        if self.kind not in KINDS:
            problems["kind"] = f"kind {self.kind!r} is not one of {', '.join(KINDS)}"
        if self.severity not in SEVERITIES:
            problems["severity"] = f"severity {self.severity!r} is not one of {', '.join(SEVERITIES)}"
        if self.scope not in SCOPES:
            problems["scope"] = f"scope {self.scope!r} is not one of {', '.join(SCOPES)}"
        elif (self.scope == "all") != (self.scope_ref is None):
            problems["scope"] = ("scope 'all' takes no name" if self.scope == "all"
                                 else f"scope {self.scope!r} needs a name, e.g. {self.scope}:core-1")
        if self.comparator is not None and self.comparator not in COMPARATORS:
            problems["comparator"] = f"comparator {self.comparator!r} is not one of {' '.join(COMPARATORS)}"
        if self.kind == "threshold":
            if self.metric is None:
                problems["metric"] = "a threshold rule needs a metric"
            if self.comparator is None:
                problems["comparator"] = "a threshold rule needs a comparator (> >= < <=)"
            if self.value is None or not np.isfinite(self.value):
                problems["value"] = "a threshold rule needs a finite value"
            elif self.clear_value is not None and self.comparator in COMPARATORS:
                if self.comparator.startswith(">") and self.clear_value > self.value:
                    problems["clear"] = f"clear {self.clear_value} must not be above the threshold {self.value}"
                if self.comparator.startswith("<") and self.clear_value < self.value:
                    problems["clear"] = f"clear {self.clear_value} must not be below the threshold {self.value}"
        if self.kind == "dynamic":
            if self.metric is None:
                problems["metric"] = "a dynamic rule needs a metric"
            if self.k_mad is None or not self.k_mad > 0:
                problems["k"] = "a dynamic rule needs k > 0 (the band's half-width in MADs)"
            if not 1 <= self.baseline_weeks <= 12:
                problems["baseline_weeks"] = "baseline_weeks must be between 1 and 12"
            if self.comparator not in (None, ">", "<"):
                problems["comparator"] = "a dynamic rule watches '>' (above the band), '<' (below) or both"
        if self.kind == "anomaly":
            if self.metric is None:
                problems["metric"] = "an anomaly rule needs a metric (whose anomaly score it watches)"
            if self.k_mad is None or not 0 < self.k_mad <= 1:
                problems["k"] = "an anomaly rule needs k in (0, 1] (the score that fires it; 0.5 is anomalous)"
            if self.comparator is not None:
                problems["comparator"] = "an anomaly rule takes no comparator (it fires at score >= k)"
        if self.for_s < 0:
            problems["for"] = "for cannot be negative"
        if problems:
            raise ValidationError(f"rule {self.name!r}: " + "; ".join(problems.values()), details=problems)

    @property
    def above(self) -> bool:
        return self.comparator is None or self.comparator.startswith(">")

    @property
    def below(self) -> bool:
        return self.comparator is None or self.comparator.startswith("<")

    def fingerprint(self, device_id: int, ifindex: int = 0) -> str:
        """One open alert per rule and series: a repeat bumps it instead of opening another."""
        metric = self.metric.metric_name if self.metric is not None else "status"
        return f"rule:{self.id if self.id is not None else self.name}:dev:{device_id}:{metric}:{ifindex}"

    def summary(self, value: float | None) -> str:
        """What a firing series of this rule says, with its value (the alert's message)."""
        if self.kind == "status" or self.metric is None:
            return f"{self.name}: {self.describe()}"
        shown = "no value" if value is None else f"{value:.4g}"
        if self.kind == "threshold":
            hold = f" for {self.for_s} s" if self.for_s else ""
            return f"{self.metric.metric_name} is {shown} ({self.comparator} {self.value:g}{hold})"
        if self.kind == "anomaly":
            return f"{self.metric.metric_name} anomaly score is {shown} (>= {self.k_mad:g})"
        return f"{self.metric.metric_name} is {shown}, outside its usual range for this hour of the week"

    def describe(self) -> str:
        scope = "all devices" if self.scope == "all" else f"{self.scope} {self.scope_ref}"
        hold = f" for {self.for_s} s" if self.for_s else ""
        if self.kind == "status":
            return f"device down ({scope})"
        metric = self.metric.metric_name if self.metric is not None else "?"
        if self.kind == "threshold":
            clear = f", clears at {self.clear_value:g}" if self.clear_value is not None else ""
            return f"{metric} {self.comparator} {self.value:g}{hold}{clear} ({scope})"
        if self.kind == "anomaly":
            return f"{metric} anomaly score >= {self.k_mad:g}{hold} ({scope})"
        side = {">": "above", "<": "below"}.get(self.comparator or "", "outside")
        return f"{metric} {side} its baseline +- {self.k_mad:g} MAD{hold} ({scope})"


# --- where rules are kept (rule files: analytics.rulefile) ----------------------------------------------

_RULE_COLUMNS = ("id, name, kind, severity, metric, comparator, value, clear_value, for_s, scope, scope_ref, k_mad, "
                 "baseline_weeks, enabled, (SELECT name FROM escalation_policies p WHERE p.id = escalation_policy_id)")


def _rule_of(r: Any) -> Rule:
    return Rule(id=r[0], name=r[1], kind=r[2], severity=r[3], metric=MetricKind.from_name(r[4]) if r[4] else None,
                comparator=r[5], value=r[6], clear_value=r[7], for_s=r[8], scope=r[9], scope_ref=r[10], k_mad=r[11],
                baseline_weeks=r[12] or 4, enabled=r[13], escalation_policy=r[14])


def load_rules(conn: Any, org_id: Any, *, enabled_only: bool = True) -> list[Rule]:
    """The organization's rules from the ``alert_rules`` table, by id."""
    rows = conn.execute(f"SELECT {_RULE_COLUMNS} FROM alert_rules WHERE organization_id = %s"
                        + (" AND enabled" if enabled_only else "") + " ORDER BY id", (org_id,)).fetchall()
    return [_rule_of(r) for r in rows]


def _policy_id(conn: Any, org_id: Any, rule: Rule) -> int | None:
    if rule.escalation_policy is None:
        return None
    row = conn.execute("SELECT id FROM escalation_policies WHERE organization_id = %s AND name = %s",
                       (org_id, rule.escalation_policy)).fetchone()
    if row is None:
        raise ValidationError(f"rule {rule.name!r}: no escalation policy named {rule.escalation_policy!r}",
                              details={"escalation_policy": rule.escalation_policy})
    return int(row[0])


def _values(conn: Any, org_id: Any, r: Rule) -> tuple[Any, ...]:
    """The stored columns of ``r`` after org_id, in ``_STORED`` order; every way in checks the name."""
    problem = name_problem(r.name)   # checked on the way in, not in Rule: stored rules keep loading
    if problem is not None:
        raise ValidationError(f"rule name {r.name!r} {problem}", details={"name": problem})
    return (r.name, r.kind, r.severity, r.metric.metric_name if r.metric else None, r.comparator, r.value,
            r.clear_value, r.for_s, r.scope, r.scope_ref, r.k_mad, r.baseline_weeks, r.enabled,
            _policy_id(conn, org_id, r))


_STORED = ("name, kind, severity, metric, comparator, value, clear_value, for_s, scope, scope_ref, k_mad, "
           "baseline_weeks, enabled, escalation_policy_id")


def save_rules(conn: Any, org_id: Any, rules: Sequence[Rule]) -> list[Rule]:
    """Insert or update rules by name; returns them with their ids."""
    saved = []
    for r in rules:
        row = conn.execute(f"""
            INSERT INTO alert_rules (organization_id, {_STORED})
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (organization_id, name) DO UPDATE SET kind = EXCLUDED.kind, severity = EXCLUDED.severity,
                metric = EXCLUDED.metric, comparator = EXCLUDED.comparator, value = EXCLUDED.value,
                clear_value = EXCLUDED.clear_value, for_s = EXCLUDED.for_s, scope = EXCLUDED.scope,
                scope_ref = EXCLUDED.scope_ref, k_mad = EXCLUDED.k_mad, baseline_weeks = EXCLUDED.baseline_weeks,
                enabled = EXCLUDED.enabled, escalation_policy_id = EXCLUDED.escalation_policy_id
            RETURNING id""", (org_id, *_values(conn, org_id, r))).fetchone()
        saved.append(replace(r, id=row[0]))
    return saved


def _rule_not_found(rule_id: int) -> NotFound:
    return NotFound(f"no alert rule {rule_id} in this organization", code="RULE_NOT_FOUND",
                    details={"rule_id": str(rule_id)})


def _name_taken(conn: Any, org_id: Any, name: str, other_than: int | None = None) -> None:
    row = conn.execute("SELECT id FROM alert_rules WHERE organization_id = %s AND name = %s AND id IS DISTINCT FROM %s",
                       (org_id, name, other_than)).fetchone()
    if row is not None:
        raise Conflict(f"a rule named {name!r} already exists (id {row[0]}); choose another name or update that rule",
                       code="RULE_ALREADY_EXISTS", details={"name": "already exists"})


def get_rule(conn: Any, org_id: Any, rule_id: int) -> Rule:
    """One rule of the organization by id; NotFound (RULE_NOT_FOUND) otherwise."""
    row = conn.execute(f"SELECT {_RULE_COLUMNS} FROM alert_rules WHERE organization_id = %s AND id = %s",
                       (org_id, rule_id)).fetchone()
    if row is None:
        raise _rule_not_found(rule_id)
    return _rule_of(row)


def create_rule(conn: Any, org_id: Any, rule: Rule) -> Rule:
    """Insert a new rule; Conflict (RULE_ALREADY_EXISTS) when its name is taken. Returns it with its id."""
    _name_taken(conn, org_id, rule.name)
    row = conn.execute(f"INSERT INTO alert_rules (organization_id, {_STORED}) VALUES "
                       "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                       (org_id, *_values(conn, org_id, rule))).fetchone()
    return replace(rule, id=row[0])


def update_rule(conn: Any, org_id: Any, rule_id: int, rule: Rule) -> Rule:
    """Replace rule ``rule_id`` by ``rule`` (renaming it is allowed); its open alerts keep pointing at it."""
    get_rule(conn, org_id, rule_id)
    _name_taken(conn, org_id, rule.name, other_than=rule_id)
    columns = ", ".join(f"{c.strip()} = %s" for c in _STORED.split(","))
    conn.execute(f"UPDATE alert_rules SET {columns} WHERE organization_id = %s AND id = %s",
                 (*_values(conn, org_id, rule), org_id, rule_id))
    return replace(rule, id=rule_id)


def delete_rule(conn: Any, org_id: Any, rule_id: int) -> None:
    """Remove a rule; its alerts stay (their ``rule_id`` becomes null) and resolve or age as they are."""
    if conn.execute("DELETE FROM alert_rules WHERE organization_id = %s AND id = %s", (org_id, rule_id)).rowcount == 0:
        raise _rule_not_found(rule_id)


# --- when a series breaks a rule ---------------------------------------------------------------------------

def _compare(values: np.ndarray, comparator: str, threshold: np.ndarray | float) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return {">": values > threshold, ">=": values >= threshold, "<": values < threshold,
                "<=": values <= threshold}[comparator]


def breach_and_clear(rule: Rule, values: np.ndarray, lo: np.ndarray | None = None,
                     hi: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per sample: does it breach, and does it clear (the two never both hold). ``lo``/``hi`` are
    the baseline band of a dynamic rule, per sample."""
    if rule.kind == "threshold":
        assert rule.comparator is not None and rule.value is not None
        breach = _compare(values, rule.comparator, rule.value)
        if rule.clear_value is None:
            return breach, ~breach
        # Cleared strictly on the other side of the clear value; between the two, nothing changes.
        clear = values < rule.clear_value if rule.above else values > rule.clear_value
        return breach, clear & ~breach
    if rule.kind == "anomaly":
        assert rule.k_mad is not None
        with np.errstate(invalid="ignore"):
            breach = values >= rule.k_mad
            return breach, ~breach & np.isfinite(values)
    if rule.kind == "dynamic":
        assert lo is not None and hi is not None
        mid, half = (hi + lo) / 2, (hi - lo) / 2
        with np.errstate(invalid="ignore"):
            breach = np.zeros(len(values), bool)
            clear = np.ones(len(values), bool)
            if rule.above:
                breach |= values > hi
                clear &= values <= mid + half * CLEAR_FRACTION
            if rule.below:
                breach |= values < lo
                clear &= values >= mid - half * CLEAR_FRACTION
        known = np.isfinite(lo) & np.isfinite(hi)   # no baseline yet: neither
        return breach & known, clear & known & ~breach
    raise ValueError(f"rule {rule.name!r} of kind {rule.kind} is not evaluated on samples")


EPISODE_SCHEMA = {"series": pl.Int64, "started_us": pl.Int64, "opened_us": pl.Int64, "resolved_us": pl.Int64,
                  "worst": pl.Float64, "last_value": pl.Float64}


@dataclass(frozen=True, slots=True)
class Episodes:
    """Each time a series fired: its key, when the breach began, when it fired, when it resolved
    (None: still firing at the last sample), and the worst value while firing."""

    frame: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=EPISODE_SCHEMA))

    def __len__(self) -> int:
        return self.frame.height


def episodes(rule: Rule, series: np.ndarray, times_us: np.ndarray, values: np.ndarray, *,
             lo: np.ndarray | None = None, hi: np.ndarray | None = None,
             firing_before: np.ndarray | None = None) -> Episodes:
    """Replay ``rule`` over samples sorted by (series, time), every series at once.

    ``firing_before``: per sample, whether its series was already firing before its first sample
    (the live engine's open alerts); such an episode reports ``started_us``/``opened_us`` as -1.
    """
    n = len(series)
    if n == 0:
        return Episodes()
    breach, clear = breach_and_clear(rule, values, lo, hi)
    ar = np.arange(n)
    new_series = np.append(True, series[1:] != series[:-1])
    series_first = np.maximum.accumulate(np.where(new_series, ar, 0))
    new_run = new_series | np.append(True, breach[1:] != breach[:-1])
    run_first = np.maximum.accumulate(np.where(new_run, ar, 0))
    # The state machine as a forward fill: the last sample that fired or cleared decides.
    fires = breach & (times_us - times_us[run_first] >= rule.for_s * 1_000_000)
    decided = np.maximum.accumulate(np.where(fires | clear, ar, -1))
    decided = np.where(decided >= series_first, decided, -1)
    carried = firing_before if firing_before is not None else np.zeros(n, bool)
    firing = np.where(decided >= 0, fires[np.maximum(decided, 0)], carried)
    before = np.where(new_series, carried, np.append(False, firing[:-1]))
    closes = np.flatnonzero(~firing & before)
    # Opens and closes alternate within a series; a carried-in episode opens "before" its first sample.
    virtual = np.flatnonzero(new_series & carried)
    real = np.flatnonzero(firing & ~before)
    starts = np.concatenate([virtual, real])
    is_virtual = np.concatenate([np.ones(len(virtual), bool), np.zeros(len(real), bool)])
    order = np.argsort(starts, kind="stable")
    starts, is_virtual = starts[order], is_virtual[order]
    nxt = np.searchsorted(closes, starts, side="left")
    end = closes[np.minimum(nxt, max(len(closes) - 1, 0))] if len(closes) else np.full(len(starts), -1)
    resolved = (nxt < len(closes)) & (series[np.maximum(end, 0)] == series[starts]) if len(closes) else \
        np.zeros(len(starts), bool)
    firsts = np.flatnonzero(new_series)
    series_last = np.append(firsts[1:] - 1, n - 1)[np.searchsorted(firsts, series_first[starts])]
    stop = np.where(resolved, end, series_last + 1)     # firing samples are [start, stop)
    worst = np.where(stop > starts, _segment_reduce(values, starts, np.maximum(stop, starts + 1), high=rule.above),
                     np.nan)  # a carried-in episode that clears at once had no firing sample
    frame = pl.DataFrame({
        "series": series[starts].astype(np.int64),
        "started_us": np.where(is_virtual, -1, times_us[run_first[starts]]),
        "opened_us": np.where(is_virtual, -1, times_us[starts]),
        "resolved_us": np.where(resolved, times_us[np.maximum(end, 0)], -1),
        "worst": worst,
        "last_value": values[np.maximum(stop - 1, starts)],
    }, schema=EPISODE_SCHEMA).with_columns(
        pl.when(pl.col("resolved_us") < 0).then(None).otherwise(pl.col("resolved_us")).alias("resolved_us"))
    return Episodes(frame)


def _segment_reduce(values: np.ndarray, starts: np.ndarray, stops: np.ndarray, *, high: bool) -> np.ndarray:
    """Max (``high``) or min of values[start:stop) per disjoint, ascending segment, NaNs ignored."""
    if len(starts) == 0:
        return np.empty(0)
    bounds = np.empty(2 * len(starts), np.int64)
    bounds[0::2], bounds[1::2] = starts, stops
    padded = np.append(values, np.nan)   # a segment may end at the last sample
    reducer = np.fmax if high else np.fmin
    return np.asarray(reducer.reduceat(padded, bounds)[0::2], float)
