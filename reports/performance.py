"""The performance report: round-trip time (p50/p95), packet loss and jitter per site and group, the
worst devices, and interface utilisation with the links that saturated.

Figures are read from the one-minute rollup through :func:`analytics.frames.load_metrics` (the hourly
one for periods over eight days, which the report says): percentiles are of one-minute (hourly)
mean round-trip times; loss and jitter are means weighted by probe count, over the minutes a device
answered (its outages are in the availability report).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from analytics.frames import Level, device_frame, interface_frame, load_metrics
from reports.document import Chart, Column, Definitions, Figure, KeyFigures, Report, Section, Table, Text
from reports.period import ReportPeriod
from reports.scope import Scope

__all__ = ["STEPS", "SATURATED_PCT", "build", "resolution_for"]

Progress = Callable[[str], None]
STEPS = 4
SATURATED_PCT = 90.0  # a bucket at or above this mean utilisation counts as saturated
WORST = 10
_FINE_UP_TO = timedelta(days=8)


def _noop(_: str) -> None:
    return None


def resolution_for(period: ReportPeriod) -> Level:
    """One-minute buckets up to eight days, hourly ones beyond (a month of minutes is too much to read)."""
    return "1m" if period.end - period.start <= _FINE_UP_TO else "1h"


def _scope_args(scope: Scope) -> dict[str, Any]:
    if scope.kind == "all":
        return {}
    if scope.kind == "device":
        return {"devices": [scope.ref]}
    return {scope.kind: scope.ref}


def _icmp(conn: Any, org_id: uuid.UUID, scope: Scope, start: datetime, end: datetime, level: Level,
          devices: pl.DataFrame) -> pl.DataFrame:
    """One row per device and bucket it answered in: rtt, loss, jitter (bucket means) and probe count."""
    frame = load_metrics(conn, org_id, metrics=["icmp_rtt_ms", "icmp_loss_pct", "icmp_jitter_ms"], start=start,
                         end=end, resolution=level, **_scope_args(scope))
    wide = (frame.filter(pl.col("ifindex") == 0)
            .pivot(on="metric", index=["device_id", "time"], values=["value", "count"])
            .rename({"value_icmp_rtt_ms": "rtt", "value_icmp_loss_pct": "loss", "value_icmp_jitter_ms": "jitter",
                     "count_icmp_rtt_ms": "rtt_n", "count_icmp_loss_pct": "loss_n",
                     "count_icmp_jitter_ms": "jitter_n"}, strict=False))
    for name in ("rtt", "loss", "jitter", "rtt_n", "loss_n", "jitter_n"):
        if name not in wide.columns:
            wide = wide.with_columns(pl.lit(None, pl.Float64 if not name.endswith("_n") else pl.Int64).alias(name))
    return wide.filter(pl.col("rtt").is_not_null()).join(devices, on="device_id", how="left")


def _weighted(value: str, weight: str) -> pl.Expr:
    ok = pl.col(value).is_not_null() & pl.col(weight).is_not_null()
    return ((pl.col(value) * pl.col(weight)).filter(ok).sum() / pl.col(weight).filter(ok).sum())


_STATS = [pl.col("device_id").n_unique().alias("devices"),
          pl.col("rtt").quantile(0.5, "linear").alias("p50_ms"), pl.col("rtt").quantile(0.95, "linear").alias("p95_ms"),
          _weighted("loss", "loss_n").alias("loss_pct"), _weighted("jitter", "jitter_n").alias("jitter_ms")]

_GROUP_COLUMNS = [Column("devices", "Devices", "count", 0.7), Column("p50_ms", "p50 RTT (ms)", "ms", 1.0),
                  Column("p95_ms", "p95 RTT (ms)", "ms", 1.0), Column("loss_pct", "Loss", "pct2", 0.9),
                  Column("jitter_ms", "Jitter (ms)", "ms", 0.9), Column("p95_change_ms", "p95 vs previous (ms)",
                                                                        "ms", 1.2)]


def _by(icmp: pl.DataFrame, before: pl.DataFrame, key: str, label: str, title: str) -> Table:
    stats = icmp.group_by(key).agg(_STATS)
    prev = before.group_by(key).agg(pl.col("rtt").quantile(0.95, "linear").alias("p95_before"))
    stats = (stats.join(prev, on=key, how="left", nulls_equal=True)
             .with_columns(p95_change_ms=pl.col("p95_ms") - pl.col("p95_before"))
             .sort("p95_ms", descending=True, nulls_last=True))
    rows = [(r[key] if r[key] is not None else f"(no {key})", *(r[c.key] for c in _GROUP_COLUMNS))
            for r in stats.iter_rows(named=True)]
    return Table(f"{key}s", title, [Column(key, label, "text", 1.6), *_GROUP_COLUMNS], rows,
                 note="Highest p95 first.")


def build(conn: Any, org_id: uuid.UUID, org_name: str, scope: Scope, period: ReportPeriod, *, now: datetime,
          progress: Progress = _noop) -> Report:
    level = resolution_for(period)
    bucket = "minute" if level == "1m" else "hour"
    devices = device_frame(conn, org_id)
    icmp = _icmp(conn, org_id, scope, period.start, period.end, level, devices)
    progress("latency and loss")
    prior = period.previous()
    before = _icmp(conn, org_id, scope, prior.start, prior.end, resolution_for(prior), devices)
    progress("previous period")
    util = load_metrics(conn, org_id, metrics=["if_util_pct"], start=period.start, end=period.end,
                        resolution=level, **_scope_args(scope)).filter(pl.col("ifindex") > 0)
    names = interface_frame(conn, org_id).select("device_id", "ifindex", pl.col("name").alias("interface"),
                                                 "speed_bps")
    progress("interfaces")

    total = icmp.select(_STATS).row(0, named=True)
    total_before = before.select(pl.col("rtt").quantile(0.95, "linear").alias("p95")).row(0, named=True)
    change = (None if total["p95_ms"] is None or total_before["p95"] is None
              else total["p95_ms"] - total_before["p95"])

    per_device = (icmp.group_by("device_id", "name", "site").agg(_STATS[1:]))
    device_columns = [Column("device", "Device", "text", 1.8), Column("site", "Site", "text", 1.2),
                      Column("p50_ms", "p50 RTT (ms)", "ms", 1.0), Column("p95_ms", "p95 RTT (ms)", "ms", 1.0),
                      Column("loss_pct", "Loss", "pct2", 0.9), Column("jitter_ms", "Jitter (ms)", "ms", 0.9)]

    def worst(by: str) -> list[tuple[Any, ...]]:
        top = per_device.sort(by, "name", descending=[True, False], nulls_last=True).head(WORST)
        return [(r["name"], r["site"], r["p50_ms"], r["p95_ms"], r["loss_pct"], r["jitter_ms"])
                for r in top.iter_rows(named=True)]

    minutes = 1 if level == "1m" else 60
    links = (util.group_by("device_id", "ifindex")
             .agg(_weighted("value", "count").alias("mean_pct"),
                  pl.col("value").quantile(0.95, "linear").alias("p95_pct"),
                  pl.col("max").max().alias("max_pct"),
                  ((pl.col("value") >= SATURATED_PCT).sum() * minutes).cast(pl.Int64).alias("saturated_min"))
             .join(devices.select("device_id", "name", "site"), on="device_id", how="left")
             .join(names, on=["device_id", "ifindex"], how="left")
             .with_columns(pl.coalesce("interface", pl.format("ifIndex {}", "ifindex")).alias("interface")))
    link_columns = [Column("device", "Device", "text", 1.7), Column("site", "Site", "text", 1.1),
                    Column("interface", "Interface", "text", 1.2), Column("mean_pct", "Mean", "pct2", 0.9),
                    Column("p95_pct", "p95", "pct2", 0.9), Column("max_pct", "Peak", "pct2", 0.9),
                    Column("saturated_min", "Saturated (min)", "count", 1.2)]

    def link_rows(frame: pl.DataFrame) -> list[tuple[Any, ...]]:
        return [(r["name"], r["site"], r["interface"], r["mean_pct"], r["p95_pct"], r["max_pct"], r["saturated_min"])
                for r in frame.iter_rows(named=True)]

    saturated = links.filter(pl.col("saturated_min") > 0).sort("saturated_min", "p95_pct", descending=True)
    busiest = links.sort("p95_pct", "name", descending=[True, False], nulls_last=True).head(WORST)

    summary = KeyFigures("summary", "Summary", [
        Figure("p50_ms", "Median RTT (ms)", total["p50_ms"], "ms", f"of {bucket} means"),
        Figure("p95_ms", "p95 RTT (ms)", total["p95_ms"], "ms", f"of {bucket} means"),
        Figure("p95_change_ms", "p95 vs previous (ms)", change, "ms", prior.label,
               bad=change is not None and change > 0),
        Figure("loss_pct", "Packet loss", total["loss_pct"], "pct2", "while answering"),
        Figure("jitter_ms", "Jitter (ms)", total["jitter_ms"], "ms", "mean"),
        Figure("devices", "Devices measured", total["devices"], "count", ""),
        Figure("links", "Interfaces measured", links.height, "count", ""),
        Figure("saturated_links", "Saturated interfaces", saturated.height, "count",
               f"a {bucket} at or above {SATURATED_PCT:g} %", bad=saturated.height > 0),
    ])

    charts: list[Any] = []
    if icmp.height:
        width = "1h" if level == "1m" else "1d"
        series = (icmp.with_columns(pl.col("time").dt.truncate(width).alias("bucket"))
                  .group_by("site", "bucket").agg(_weighted("rtt", "rtt_n").alias("rtt_ms")))
        buckets = sorted(series["bucket"].unique().to_list())
        step = max(1, len(buckets) // 8)
        labels = [f"{b.astimezone(period.zone):%d %b %H:%M}" if i % step == 0 else "" for i, b in enumerate(buckets)]
        busiest_sites = (series.group_by("site").agg(pl.col("rtt_ms").mean()).sort("rtt_ms", descending=True)
                         ["site"].head(6).to_list())
        lines = []
        for site in busiest_sites:
            by_time = dict(series.filter(pl.col("site").eq_missing(site)).select("bucket", "rtt_ms").iter_rows())
            lines.append((site or "(no site)", [by_time.get(b) for b in buckets]))
        charts.append(Chart(f"Mean round-trip time per site, per {'hour' if width == '1h' else 'day'} (ms)", "lines",
                            labels, lines, unit="ms",
                            note="The six slowest sites." if len(busiest_sites) == 6 else ""))
    site_table = _by(icmp, before, "site", "Site", "Sites")
    if site_table.rows:
        top = sorted(site_table.rows, key=lambda r: -(r[4] or 0.0))[:12]
        charts.append(Chart("Packet loss per site (%)", "hbars", [str(r[0]) for r in top],
                            [("loss %", [r[4] for r in top])], unit="%"))
    if busiest.height:
        charts.append(Chart("Busiest interfaces: p95 utilisation (%)", "hbars",
                            [f"{r['name']} {r['interface']}" for r in busiest.iter_rows(named=True)],
                            [("p95 %", busiest["p95_pct"].to_list())], unit="%",
                            reference=("saturated", SATURATED_PCT), value_range=(0.0, 100.0)))

    headline = {"p50_ms": total["p50_ms"], "p95_ms": total["p95_ms"], "p95_change_ms": change,
                "loss_pct": total["loss_pct"], "jitter_ms": total["jitter_ms"], "saturated_links": saturated.height}
    basis = (f"Percentiles are of {bucket} mean round-trip times (the {level} rollup); loss and jitter are "
             "means weighted by probe count over the buckets a device answered in. Outages are in the "
             "availability report.")
    sections = [
        Section("Summary", [Text(basis), summary, *charts]),
        Section("Sites and groups", [site_table, _by(icmp, before, "group", "Group", "Groups")], new_page=True),
        Section("Worst devices", [
            Table("worst_latency", f"Highest p95 round-trip time (top {WORST})", device_columns, worst("p95_ms")),
            Table("worst_loss", f"Highest packet loss (top {WORST})", device_columns, worst("loss_pct")),
        ], new_page=True),
        Section("Interfaces", [
            Table("saturated_links", "Saturated interfaces", link_columns, link_rows(saturated),
                  note=f"Interfaces with at least one {bucket} at or above {SATURATED_PCT:g} % mean utilisation "
                       "(the busier direction), most saturated first.",
                  flagged=set(range(saturated.height)), empty="No interface saturated in this period."),
            Table("busiest_links", f"Busiest interfaces by p95 utilisation (top {WORST})", link_columns,
                  link_rows(busiest)),
        ], new_page=True),
        Section("Definitions", [Definitions([
            ("p50 / p95 RTT", f"The median and 95th percentile of {bucket} mean ICMP round-trip times: 95 % of "
                              f"{bucket}s were at or below p95."),
            ("Loss", "Share of ICMP probes lost, over the buckets in which the device answered at least once."),
            ("Jitter", "Mean variation between consecutive round trips, as the probes measure it."),
            ("Utilisation", "The busier direction's rate over the interface speed. Peak is the highest sample."),
            ("vs previous", f"The difference with the previous period ({prior.label}); positive is slower."),
        ])], new_page=True),
    ]
    return Report("performance", "Performance report", org_name, scope, period, now, sections, headline)
