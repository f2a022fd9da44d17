"""The alerts report: how many alerts opened (by severity, rule and site), how fast people took and
resolved them, the noisiest devices and rules, and how many were suppressed or flapping.

Alerts are counted when they opened (``created_at`` in the period), from
:func:`analytics.alerts.alerts_frame`. Times to acknowledge and resolve count the alerts acknowledged
or resolved by the end of the period, so a report of a past month does not change when made again.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from analytics.alerts import SEVERITIES, alerts_frame
from reports.document import Chart, Column, Definitions, Figure, KeyFigures, Report, Section, Table, Text
from reports.period import ReportPeriod
from reports.scope import Scope

__all__ = ["STEPS", "build"]

Progress = Callable[[str], None]
STEPS = 2
NOISIEST = 10
_ORDER = {s: i for i, s in enumerate(reversed(SEVERITIES))}  # critical first


def _noop(_: str) -> None:
    return None


def _timings(frame: pl.DataFrame, end: datetime) -> pl.DataFrame:
    """Seconds to acknowledge and to resolve, null when not done by ``end``."""
    return frame.with_columns(
        ack_s=pl.when(pl.col("acknowledged_at") < end)
        .then((pl.col("acknowledged_at") - pl.col("created_at")).dt.total_microseconds() / 1e6),
        resolve_s=pl.when(pl.col("resolved_at") < end)
        .then((pl.col("resolved_at") - pl.col("created_at")).dt.total_microseconds() / 1e6),
    )


_TIMING_COLUMNS = [Column("alerts", "Alerts", "count", 0.8), Column("acknowledged", "Acknowledged", "count", 1.0),
                   Column("ack_median_s", "Median to ack", "duration", 1.0),
                   Column("ack_p90_s", "p90 to ack", "duration", 0.9),
                   Column("resolved", "Resolved", "count", 0.8),
                   Column("resolve_median_s", "Median to resolve", "duration", 1.1),
                   Column("resolve_p90_s", "p90 to resolve", "duration", 1.0)]
_TIMING = [pl.len().alias("alerts"), pl.col("ack_s").count().alias("acknowledged"),
           pl.col("ack_s").median().alias("ack_median_s"), pl.col("ack_s").quantile(0.9, "linear").alias("ack_p90_s"),
           pl.col("resolve_s").count().alias("resolved"), pl.col("resolve_s").median().alias("resolve_median_s"),
           pl.col("resolve_s").quantile(0.9, "linear").alias("resolve_p90_s")]


def _counts(frame: pl.DataFrame, key: str, label: str, title: str, *, note: str = "", limit: int | None = None,
            missing: str = "-", order: dict[str, int] | None = None) -> Table:
    stats = (frame.group_by(key)
             .agg(pl.len().alias("alerts"), (pl.col("severity") == "critical").sum().alias("critical"),
                  (pl.col("severity") == "warning").sum().alias("warning"),
                  (pl.col("severity") == "info").sum().alias("info"), pl.col("occurrences").sum().alias("occurrences"),
                  pl.col("suppressed").sum().alias("suppressed"), pl.col("flapping").sum().alias("flapping"))
             .sort(["alerts", key], descending=[True, False], nulls_last=True))
    if order is not None:
        stats = stats.sort(pl.col(key).replace_strict(order, default=len(order)))
    if limit is not None:
        stats = stats.head(limit)
    columns = [Column(key, label, "text", 2.0), Column("alerts", "Alerts", "count"),
               Column("critical", "Critical", "count"), Column("warning", "Warning", "count"),
               Column("info", "Info", "count"), Column("occurrences", "Times seen", "count", 1.1),
               Column("suppressed", "Suppressed", "count", 1.1), Column("flapping", "Flapping", "count")]
    rows = [(r[key] if r[key] is not None else missing, *(int(r[c.key]) for c in columns[1:]))
            for r in stats.iter_rows(named=True)]
    return Table(f"by_{key}" if limit is None else f"noisiest_{key}s", title, columns, rows, note=note,
                 empty="No alerts in this period.")


def _days(period: ReportPeriod) -> list[tuple[datetime, str]]:
    zone = period.zone
    t = period.start.astimezone(zone)
    out = []
    while t < period.end:
        out.append((t, f"{t:%d %b}"))
        nxt = datetime(t.year, t.month, t.day, tzinfo=zone) + timedelta(days=1)
        t = datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone)
    return out


def build(conn: Any, org_id: uuid.UUID, org_name: str, scope: Scope, period: ReportPeriod, *, now: datetime,
          progress: Progress = _noop) -> Report:
    frame = _timings(alerts_frame(conn, org_id, period.start, period.end, scope=scope.kind, ref=scope.ref),
                     period.end).with_columns(pl.col("rule").replace("sla_breach", "SLA breach"))
    progress("alerts")
    prior = period.previous()
    before = alerts_frame(conn, org_id, prior.start, prior.end, scope=scope.kind, ref=scope.ref)
    progress("previous period")

    total = frame.select(_TIMING).row(0, named=True)
    suppressed = frame.filter(pl.col("suppressed"))
    by_reason = dict(suppressed.group_by("suppressed_reason").len().iter_rows())
    flapping = int(frame["flapping"].sum())
    open_at_end = frame.filter(pl.col("resolve_s").is_null()).height
    summary = KeyFigures("summary", "Summary", [
        Figure("alerts", "Alerts opened", frame.height, "count", f"{before.height} in {prior.label}"),
        Figure("critical", "Critical", int((frame["severity"] == "critical").sum()), "count", ""),
        Figure("warning", "Warning", int((frame["severity"] == "warning").sum()), "count", ""),
        Figure("info", "Info", int((frame["severity"] == "info").sum()), "count", ""),
        Figure("ack_median_s", "Median time to acknowledge", total["ack_median_s"], "duration",
               f"{total['acknowledged']} acknowledged"),
        Figure("resolve_median_s", "Median time to resolve", total["resolve_median_s"], "duration",
               f"{total['resolved']} resolved"),
        Figure("open_at_end", "Still open at the end", open_at_end, "count", "not resolved by the period's end"),
        Figure("suppressed", "Suppressed", suppressed.height, "count",
               f"{by_reason.get('parent_down', 0)} behind a down parent, "
               f"{by_reason.get('maintenance', 0)} in maintenance"),
        Figure("flapping", "Flapping", flapping, "count", "notifications held"),
    ])

    severity = (frame.group_by("severity").agg(_TIMING)
                .with_columns(pl.col("severity").replace_strict(_ORDER, default=9).alias("order"))
                .sort("order"))
    timing_table = Table("response_times", "Time to acknowledge and to resolve, by severity",
                         [Column("severity", "Severity", "text", 1.0), *_TIMING_COLUMNS],
                         [(r["severity"], *(r[c.key] for c in _TIMING_COLUMNS))
                          for r in severity.iter_rows(named=True)],
                         note="Counting acknowledgements and resolutions made by the end of the period; "
                              "p90: 90 % were faster.", empty="No alerts in this period.")

    days = _days(period)
    local_day = frame.with_columns(day=pl.col("created_at").dt.convert_time_zone(period.tz).dt.strftime("%d %b"))
    per_day = {(d, s): n for d, s, n in local_day.group_by("day", "severity").len().iter_rows()}
    labels = [label for _, label in days]
    series: list[tuple[str, list[float | None]]] = [
        (sev, [float(per_day.get((label, sev), 0)) for label in labels]) for sev in reversed(SEVERITIES)]
    day_rows = [(label, *(int(per_day.get((label, sev), 0)) for sev in reversed(SEVERITIES))) for label in labels]
    day_columns = [Column("day", "Day"), Column("critical", "Critical", "count"), Column("warning", "Warning", "count"),
                   Column("info", "Info", "count")]
    day_table = Table("per_day", "Alerts opened per day", day_columns, day_rows, in_pdf=False)
    charts = [Chart("Alerts opened per day", "bars", labels, series, unit="alerts")]

    headline = {"alerts": frame.height, "previous_alerts": before.height, "ack_median_s": total["ack_median_s"],
                "resolve_median_s": total["resolve_median_s"], "suppressed": suppressed.height, "flapping": flapping}
    sections = [
        Section("Summary", [Text("Alerts are counted when they opened. Suppressed alerts (behind a down parent or "
                                 "in maintenance) and flapping ones are counted too, though nobody was notified."),
                            summary, *charts, day_table, timing_table]),
        Section("By severity, rule and site", [
            _counts(frame, "severity", "Severity", "By severity", order=_ORDER),
            _counts(frame, "rule", "Rule", "By rule"),
            _counts(frame, "site", "Site", "By site", missing="(no site)"),
        ], new_page=True),
        Section("Noisiest", [
            _counts(frame.filter(pl.col("device").is_not_null()), "device", "Device",
                    f"Noisiest devices (top {NOISIEST})", limit=NOISIEST),
            _counts(frame, "rule", "Rule", f"Noisiest rules (top {NOISIEST})", limit=NOISIEST),
        ], new_page=True),
        Section("Definitions", [Definitions([
            ("Alerts", "Alerts that opened in the period. A condition that persists keeps one alert open; "
                       "'Times seen' counts the evaluations that found it."),
            ("Time to acknowledge", "From the alert opening to a person acknowledging it."),
            ("Time to resolve", "From the alert opening to its resolution, by hand or when the condition cleared."),
            ("Suppressed", "Kept but not notified: the device's parent was down, or it was in maintenance."),
            ("Flapping", "Its fingerprint opened repeatedly within a short window; notifications were held."),
        ])], new_page=True),
    ]
    return Report("alerts", "Alerts report", org_name, scope, period, now, sections, headline)
