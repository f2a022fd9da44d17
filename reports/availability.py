"""The availability/SLA report: the scope against its targets, breaches first, with error budgets,
outages and what caused them, and the trend against the previous period.

Every figure comes from :mod:`analytics.sla` (device status history less maintenance windows); the
report only picks, compares and lays them out.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from analytics.sla import Availability, Target, availability, availability_over, list_targets
from netpulse.timespec import human_duration
from reports.document import (
    Chart,
    Column,
    Definitions,
    Figure,
    KeyFigures,
    Report,
    Section,
    Table,
    Text,
)
from reports.period import ReportPeriod
from reports.scope import Scope

__all__ = ["STEPS", "build", "DEFINITIONS"]

Progress = Callable[[str], None]
STEPS = 4
ROOTS_IN_PDF = 60
OUTAGES_IN_PDF = 250  # past this the PDF lists the longest outages (in time order) and the CSV all of them

DEFINITIONS: list[tuple[str, str]] = [
    ("Availability", "Monitored time when the device answered (up or degraded), as a share of its monitored "
                     "time. Time in a maintenance window and time before a device was first seen are not "
                     "monitored. For a site or group it is weighted by each device's monitored time."),
    ("Down (device-h)", "Hours a device was down, added over devices: two devices down for one hour make "
                        "2.00 device-hours. It is not wall-clock time."),
    ("Outage", "A stretch of down time. Outages wholly inside maintenance are listed but not counted."),
    ("MTTR", "Mean time to repair: down time divided by the number of outages, i.e. how long an outage "
             "lasted on average. It cannot exceed the period."),
    ("MTBF", "Mean time between failures: the available time of the average monitored device divided by "
             "the number of outages in the scope, i.e. how often an outage began somewhere in it, in "
             "wall-clock time. It cannot exceed the period."),
    ("Target", "The SLA target that applies, checked over this report's period whatever calendar period "
               "it is set for: the device's own, else its group's, site's or tags' (the strictest), else "
               "the scope's, else the organization's."),
    ("Error budget", "The down time a target allows over the monitored time: (100 % - target) x monitored "
                     "time. 'Budget used' over 100 % means the target was missed."),
    ("Cause", "An outage that began while a device above it in the dependency tree (its parent, or "
              "further up) was down is put down to the topmost such device."),
]


def _noop(_: str) -> None:
    return None


# --- targets ---------------------------------------------------------------------------------------------
class _Targets:
    """The target that applies to each row: the most specific one (see DEFINITIONS)."""

    def __init__(self, targets: list[Target], scope: Scope) -> None:
        self.by_key = {(t.scope, t.scope_ref): t.target_pct for t in targets}
        self.tags: dict[str, float] = {t.scope_ref: t.target_pct for t in targets if t.scope == "tag" and t.scope_ref}
        fallback = self.by_key.get((scope.kind, scope.ref)) if scope.kind != "all" else None
        self.fallback = fallback if fallback is not None else self.by_key.get(("all", None))

    def for_scope(self) -> float | None:
        return self.fallback

    def for_label(self, kind: str, name: str | None) -> float | None:
        found = self.by_key.get((kind, name)) if name is not None else None
        return found if found is not None else self.fallback

    def for_device(self, row: dict[str, Any]) -> float | None:
        for kind, name in (("device", row["name"]), ("group", row["group"]), ("site", row["site"])):
            if name is not None and (kind, name) in self.by_key:
                return self.by_key[(kind, name)]
        tagged = [self.tags[t] for t in row.get("tags") or [] if t in self.tags]
        return max(tagged) if tagged else self.fallback


def _budget(target: float | None, monitored_s: float, down_s: float) -> tuple[float | None, float | None, bool]:
    """(allowed down seconds, share of it used in %, breached) for a row."""
    if target is None or monitored_s <= 0:
        return None, None, False
    allowed = (1.0 - target / 100.0) * monitored_s
    used = 100.0 * down_s / allowed if allowed > 0 else None
    return allowed, used, 100.0 * (monitored_s - down_s) / monitored_s < target


# --- tables ----------------------------------------------------------------------------------------------
_AGG_COLUMNS = [
    Column("devices", "Devices", "count", 0.7), Column("availability_pct", "Availability", "pct", 1.1),
    Column("target_pct", "Target", "target", 1.0), Column("budget_used_pct", "Budget used", "pct2", 1.0),
    Column("down_device_h", "Down (device-h)", "device_h", 1.0), Column("outages", "Outages", "count", 0.8),
    Column("mttr_s", "MTTR", "duration", 0.9), Column("mtbf_s", "MTBF", "duration", 0.9),
    Column("change_pp", "vs previous", "pp", 1.0),
]
_DEVICE_COLUMNS = [
    Column("device", "Device", "text", 1.7), Column("site", "Site", "text", 1.1),
    Column("availability_pct", "Availability", "pct", 1.1), Column("target_pct", "Target", "target", 1.0),
    Column("budget_used_pct", "Budget used", "pct2", 1.0), Column("down_s", "Down", "duration", 0.8),
    Column("outages", "Outages", "count", 0.7), Column("mttr_s", "MTTR", "duration", 0.8),
    Column("mtbf_s", "MTBF", "duration", 0.8), Column("change_pp", "vs previous", "pp", 1.0),
]


def _ordered(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Breaches first, then the worst availability; rows without data last."""
    return sorted(records, key=lambda r: (not r["breached"], r["availability_pct"] is None,
                                          r["availability_pct"] if r["availability_pct"] is not None else 0.0,
                                          -(r["down_s"] or 0.0), str(r["name"])))


def _aggregate_table(key: str, title: str, label: str, frame: pl.DataFrame, previous: pl.DataFrame,
                     targets: _Targets) -> Table:
    before = {r["name"]: r["availability_pct"] for r in previous.iter_rows(named=True)}
    records = []
    for r in frame.iter_rows(named=True):
        target = targets.for_label(key.rstrip("s"), r["name"])
        _, used, breached = _budget(target, r["monitored_s"], r["down_s"])
        prev = before.get(r["name"])
        records.append(r | {"target_pct": target, "budget_used_pct": used, "breached": breached,
                            "down_device_h": r["down_s"],
                            "change_pp": None if prev is None or r["availability_pct"] is None
                            else r["availability_pct"] - prev})
    records = _ordered(records)
    columns = [Column(key.rstrip("s"), label, "text", 1.7), *_AGG_COLUMNS]
    rows = [(r["name"] if r["name"] is not None else f"(no {key.rstrip('s')})",
             *(r[c.key] for c in _AGG_COLUMNS)) for r in records]
    return Table(key, title, columns, rows, flagged={i for i, r in enumerate(records) if r["breached"]})


def _device_table(now: Availability, before: Availability, targets: _Targets) -> Table:
    frame = now.by("device").join(now.devices.select("device_id", "tags"), on="device_id", how="left")
    previous = {r["device_id"]: r["availability_pct"] for r in before.by("device").iter_rows(named=True)}
    records = []
    for r in frame.iter_rows(named=True):
        target = targets.for_device(r)
        _, used, breached = _budget(target, r["monitored_s"], r["down_s"])
        prev = previous.get(r["device_id"])
        records.append(r | {"device": r["name"], "target_pct": target, "budget_used_pct": used,
                            "breached": breached, "change_pp": None if prev is None or r["availability_pct"] is None
                            else r["availability_pct"] - prev})
    records = _ordered(records)
    rows = [tuple(r[c.key] for c in _DEVICE_COLUMNS) for r in records]
    return Table("devices", "Devices", list(_DEVICE_COLUMNS), rows,
                 flagged={i for i, r in enumerate(records) if r["breached"]},
                 note="Breaches first, then the lowest availability. Down is the device's own down time.")


def _outage_tables(now: Availability, period: ReportPeriod) -> tuple[Table, Table]:
    out = now.outage_list.join(now.devices.select("device_id", "site"), on="device_id", how="left")
    # What each root outage cost behind it: its children's outages that name it as their cause.
    behind = (out.filter(pl.col("cause_device_id").is_not_null())
              .group_by("cause_device_id", "cause_start")
              .agg(pl.len().alias("devices_behind"),
                   (pl.col("duration_s") - pl.col("maintenance_s")).sum().alias("behind_s")))
    roots = (out.filter(pl.col("cause_device_id").is_null())
             .join(behind, left_on=["device_id", "start"], right_on=["cause_device_id", "cause_start"], how="left")
             .with_columns(pl.col("devices_behind").fill_null(0),
                           pl.col("behind_s").fill_null(0.0),
                           counted_s=pl.col("duration_s") - pl.col("maintenance_s"))
             .with_columns(total_s=pl.col("counted_s") + pl.col("behind_s"))
             .sort("total_s", "start", descending=[True, False]))
    root_columns = [
        Column("device", "Device", "text", 1.8), Column("site", "Site", "text", 1.2),
        Column("start", "Start", "time", 1.3), Column("end", "End", "time", 1.3),
        Column("duration_s", "Length", "duration", 0.9), Column("devices_behind", "Devices behind it", "count", 1.0),
        Column("total_device_h", "Down in all (device-h)", "device_h", 1.2),
    ]
    root_rows = [(r["device"], r["site"], r["start"], r["end"], r["duration_s"], r["devices_behind"], r["total_s"])
                 for r in roots.iter_rows(named=True)]
    root_table = Table("outage_causes", "What drove the down time", root_columns, root_rows,
                       note="Outages of the devices' own, largest impact first: with the outages of the devices "
                            "behind them in the dependency tree. End '-': still down when the period ended.",
                       pdf_limit=ROOTS_IN_PDF)

    list_columns = [
        Column("device", "Device", "text", 1.6), Column("site", "Site", "text", 1.1),
        Column("start", "Start", "time", 1.25), Column("end", "End", "time", 1.25),
        Column("duration_s", "Length", "duration", 0.8), Column("maintenance_s", "In maint.", "duration", 0.8),
        Column("cause", "Cause", "text", 2.4),
    ]
    zone = period.zone
    rows = []
    for r in out.sort("start", "device").iter_rows(named=True):
        if r["cause_device"] is None:
            cause = "own"
        elif abs(r["cause_start"] - r["start"]) < timedelta(minutes=1):
            cause = f"behind {r['cause_device']}"
        else:
            cause = f"behind {r['cause_device']} (down since {r['cause_start'].astimezone(zone):%m-%d %H:%M})"
        rows.append((r["device"], r["site"], r["start"], r["end"], r["duration_s"], r["maintenance_s"] or None, cause))
    longest = sorted(range(len(rows)), key=lambda i: -(rows[i][4] or 0.0))
    list_table = Table("outages", "Every outage", list_columns, rows,
                       note="Times are local. An outage wholly in maintenance (In maint. = Length) does not count.",
                       pdf_limit=OUTAGES_IN_PDF, pdf_rows=longest)
    return root_table, list_table


def _buckets(period: ReportPeriod) -> list[tuple[datetime, datetime, str]]:
    """Local days (periods of up to 62 days) or months, as (start, end, label), clipped to the period."""
    zone = period.zone
    out: list[tuple[datetime, datetime, str]] = []
    t = period.start.astimezone(zone)
    daily = period.seconds <= 62 * 86400
    while t < period.end:
        if daily:
            nxt = datetime(t.year, t.month, t.day, tzinfo=zone) + timedelta(days=1)
            nxt = datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone)  # local midnight across a DST change
            label = f"{t:%d %b}"
        else:
            total = t.year * 12 + t.month
            nxt = datetime(total // 12, total % 12 + 1, 1, tzinfo=zone)
            label = f"{t:%b %Y}"
        end = min(nxt.astimezone(UTC), period.end)
        out.append((t.astimezone(UTC), end, label))
        t = nxt
    return out


def build(conn: Any, org_id: uuid.UUID, org_name: str, scope: Scope, period: ReportPeriod, *, now: datetime,
          progress: Progress = _noop) -> Report:
    kind, ref = scope.kind, scope.ref
    current = availability_over(conn, org_id, period.start, period.end, scope=kind, ref=ref)
    progress("status history")
    prior = period.previous()
    before = availability_over(conn, org_id, prior.start, prior.end, scope=kind, ref=ref)
    progress("previous period")
    trend = []
    for start, end, label in _buckets(period):
        row = availability(conn, org_id, start, end, by="org", scope=kind, ref=ref).row(0, named=True)
        trend.append((label, start, row["availability_pct"], row["down_s"], row["outages"]))
    progress("trend")
    targets = _Targets(list_targets(conn, org_id), scope)
    progress("targets")

    total = current.by("org").row(0, named=True)
    previous_total = before.by("org").row(0, named=True)
    target = targets.for_scope()
    allowed, used, breached = _budget(target, total["monitored_s"], total["down_s"])
    behind_parent = current.outage_list.filter(pl.col("cause_device_id").is_not_null() & pl.col("counted"))
    change = (None if total["availability_pct"] is None or previous_total["availability_pct"] is None
              else total["availability_pct"] - previous_total["availability_pct"])
    monitored_devices = int((current.devices["monitored_s"] > 0).sum())
    summary = KeyFigures("summary", "Summary", [
        Figure("availability_pct", "Availability", total["availability_pct"], "pct",
               "" if target is None else f"target {target:g} %", bad=breached),
        Figure("target_pct", "Target", target, "target", "" if target is not None else "no SLA target applies"),
        Figure("budget_allowed_device_h", "Error budget (device-h)", allowed, "device_h",
               "down time the target allows"),
        Figure("budget_used_pct", "Error budget used", used, "pct2", "over 100 %: target missed", bad=breached),
        Figure("down_device_h", "Down (device-h)", total["down_s"], "device_h",
               f"{human_duration(total['down_s'] / monitored_devices) if monitored_devices else '-'} per device"),
        Figure("outages", "Outages", total["outages"], "count",
               f"{behind_parent.height} caused by a parent outage"),
        Figure("mttr_s", "MTTR", total["mttr_s"], "duration", "mean length of an outage"),
        Figure("mtbf_s", "MTBF", total["mtbf_s"], "duration", "mean time between outages"),
        Figure("previous_availability_pct", "Previous period", previous_total["availability_pct"], "pct",
               prior.label),
        Figure("change_pp", "Change", change, "pp", "against the previous period",
               bad=change is not None and change < 0),
        Figure("devices_monitored", "Devices monitored", monitored_devices, "count",
               f"of {current.devices.height} in scope"),
    ])

    site_table = _aggregate_table("sites", "Sites", "Site", current.by("site"), before.by("site"), targets)
    group_table = _aggregate_table("groups", "Groups", "Group", current.by("group"), before.by("group"), targets)
    # Tags too when devices carry any (the SLA page groups by tag): a device counts under each of its tags.
    tag_tables = ([replace(_aggregate_table("tags", "Tags", "Tag", current.by("tag"), before.by("tag"), targets),
                           note="A device with several tags counts under each of them.")]
                  if current.devices["tags"].list.len().sum() > 0 else [])
    device_table = _device_table(current, before, targets)
    causes, every = _outage_tables(current, period)
    breaches = len(site_table.flagged) + len(group_table.flagged) + len(device_table.flagged)
    below = ", ".join(f"{len(t.flagged)} {t.key if len(t.flagged) != 1 else t.key[:-1]}"
                      for t in (site_table, group_table, device_table))

    trend_columns = [Column("day", "Day", "text"), Column("start", "Start", "time"),
                     Column("availability_pct", "Availability", "pct"),
                     Column("down_device_h", "Down (device-h)", "device_h"), Column("outages", "Outages", "count")]
    trend_table = Table("trend", "Availability over the period", trend_columns, trend, in_pdf=False)
    values = [t[2] for t in trend]
    low = min([v for v in values if v is not None] + [target if target is not None else 100.0], default=100.0)
    chart = Chart("Availability per day" if len(trend) and period.seconds <= 62 * 86400 else "Availability per month",
                  "bars", [t[0] for t in trend], [("availability %", values)], unit="%",
                  reference=("target", target) if target is not None else None,
                  value_range=(max(0.0, low - max(0.5, (100.0 - low) * 0.25)), 100.0))

    headline = {"availability_pct": total["availability_pct"], "target_pct": target, "breached": breached,
                "budget_used_pct": used, "down_device_h": total["down_s"] / 3600, "outages": total["outages"],
                "mttr_s": total["mttr_s"], "mtbf_s": total["mtbf_s"],
                "previous_availability_pct": previous_total["availability_pct"], "breaches": breaches}
    verdict = ("No SLA target applies to this scope." if target is None
               else f"<b>Target {'missed' if breached else 'met'}</b>: {total['availability_pct'] or 0:.3f} % "
                    f"against {target:g} %." if total["availability_pct"] is not None
               else "Nothing was monitored in this period.")
    sections = [
        Section("Summary", [Text(f"{verdict} Below their target: {below}."),
                            summary, chart, trend_table]),
        Section("Sites and groups", [site_table, group_table, *tag_tables]),
        Section("Outages", [causes, every], new_page=True),
        Section("Devices", [device_table], new_page=True),
        Section("Definitions", [Definitions(DEFINITIONS)]),
    ]
    return Report("availability", "Availability and SLA report", org_name, scope, period, now, sections, headline)
