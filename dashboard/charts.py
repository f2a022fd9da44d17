"""Plotly figures and the house template: dark, quiet gridlines, units on every axis, no legend clutter.

Figures are built as plain dicts (``{"data": [...], "layout": {...}}``), which dcc.Graph takes as they
are: plotly's graph objects validate every property as it is set, which cost 50-80 ms per chart, more
than the query behind it. The template goes along as a dict and Plotly.js applies it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import plotly.graph_objects as go
import polars as pl

__all__ = ["Figure", "figure", "GRAPH_CONFIG", "GRID_THEME", "TEMPLATE", "SERIES_COLORS", "STATUS_COLORS",
           "duration_text", "empty_figure", "status_figure", "worst_latency_figure", "smoke_figure", "lines_figure",
           "timeline_figure", "Span", "Threshold", "axis_time"]

FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif'
TEXT = "#c9d1d9"
MUTED = "#8b949e"
GRID = "rgba(240, 246, 252, 0.07)"
# Categorical colours that never read as a status (no green, amber, red or grey), distinct hues first.
SERIES_COLORS = ("#58a6ff", "#bc8cff", "#39c5cf", "#f778ba", "#ffa657", "#a5d6ff", "#e2c5ff", "#ff9bce")
STATUS_COLORS = {"up": "#3fb950", "degraded": "#d29922", "down": "#f85149", "unreachable": "#a371f7",
                 "unknown": "#6e7681"}
# SmokePing's loss colours for the median line: none, a little, some, a lot, nearly all.
LOSS_BINS: tuple[tuple[float, str, str], ...] = (
    (0.0, "#3fb950", "0 %"), (5.0, "#58a6ff", "≤ 5 %"), (20.0, "#d29922", "≤ 20 %"), (50.0, "#f0883e", "≤ 50 %"),
    (100.0, "#f85149", "> 50 %"))
ANOMALY_FILL = "rgba(188, 140, 255, 0.16)"
MAINTENANCE_FILL = "rgba(139, 148, 158, 0.16)"

# AG Grid's Quartz theme in the page's colours.
GRID_THEME = ("themeQuartz.withParams({backgroundColor: '#161b22', foregroundColor: '#e6edf3', "
              "accentColor: '#58a6ff', borderColor: '#30363d', headerBackgroundColor: '#1c2128', "
              "oddRowBackgroundColor: '#171c23', fontSize: 13, headerFontSize: 12, rowHeight: 36, "
              "headerHeight: 38, fontFamily: 'inherit'})")

# dcc.Graph config of every chart: zoom by dragging, double-click to reset; no toolbar over the titles.
GRAPH_CONFIG: Any = {"displaylogo": False, "responsive": True, "displayModeBar": False}

TEMPLATE = go.layout.Template(
    layout=go.Layout(
        font={"family": FONT, "size": 12, "color": TEXT},
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="rgba(0,0,0,0)",
        colorway=list(SERIES_COLORS),
        title={"x": 0, "xanchor": "left", "font": {"size": 15, "color": "#e6edf3"}},
        margin={"l": 64, "r": 24, "t": 72, "b": 52},
        hovermode="x unified",
        modebar={"bgcolor": "rgba(0,0,0,0)", "color": MUTED, "activecolor": TEXT},
        hoverlabel={"bgcolor": "#161b22", "bordercolor": "#30363d", "font": {"family": FONT, "color": TEXT}},
        legend={"orientation": "h", "x": 1, "xanchor": "right", "y": 1.02, "yanchor": "bottom",
                "font": {"size": 11, "color": MUTED}, "bgcolor": "rgba(0,0,0,0)", "title": {"text": ""}},
        xaxis={"gridcolor": GRID, "zeroline": False, "showline": False, "ticks": "outside",
               "tickcolor": GRID, "title": {"font": {"size": 12, "color": MUTED}}, "color": MUTED},
        yaxis={"gridcolor": GRID, "zeroline": False, "showline": False, "rangemode": "tozero",
               "title": {"font": {"size": 12, "color": MUTED}}, "color": MUTED},
    )
)


def _naive_utc(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo else ts


def duration_text(delta: timedelta) -> str:
    """A short human duration: 45 s, 12 min, 3 h 5 min, 2 d 4 h."""
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    big, small, big_unit, small_unit = ((seconds // 3600, seconds % 3600 // 60, "h", "min") if seconds < 86400
                                        else (seconds // 86400, seconds % 86400 // 3600, "d", "h"))
    return f"{big} {big_unit} {small} {small_unit}" if small else f"{big} {big_unit}"


@dataclass(frozen=True, slots=True)
class Span:
    """A shaded stretch of a time axis (an anomaly, a maintenance window)."""

    start: datetime
    end: datetime
    label: str


@dataclass(frozen=True, slots=True)
class Threshold:
    value: float
    label: str


def axis_time(start: datetime, end: datetime) -> dict[str, Any]:
    span = end - start
    fmt = "%H:%M" if span <= timedelta(hours=30) else "%b %d %H:%M" if span <= timedelta(days=8) else "%b %d"
    return {"range": [_naive_utc(start), _naive_utc(end)], "tickformat": fmt, "title": {"text": "Time (UTC)"}}


def _naive(values: Sequence[datetime]) -> list[datetime]:
    return [_naive_utc(v) for v in values]


# The template as Plotly.js takes it (validated once, here).
TEMPLATE_JSON: dict[str, Any] = TEMPLATE.to_plotly_json()
Figure = dict[str, Any]
_SPAN_LEGEND = "Anomaly (score ≥ 0.5)"


def figure(data: list[dict[str, Any]], **layout: Any) -> Figure:
    """A figure in the house template."""
    return {"data": data, "layout": {"template": TEMPLATE_JSON, **layout}}


def _note(text: str, **where: Any) -> dict[str, Any]:
    return {"text": text, "showarrow": False, "xref": "paper", "yref": "paper", "x": 0.5, "y": 0.5,
            "font": {"size": 14, "color": MUTED}, **where}


def empty_figure(text: str, *, height: int | None = None) -> Figure:
    fig = figure([], xaxis={"visible": False}, yaxis={"visible": False}, annotations=[_note(text)],
                 margin={"l": 16, "r": 16, "t": 16, "b": 16})
    if height:
        fig["layout"]["height"] = height
    return fig


def _decorate(data: list[dict[str, Any]], start: datetime, end: datetime, *, title: str, y_title: str,
              spans: Sequence[Span] = (), maintenance: Sequence[Span] = (),
              thresholds: Sequence[Threshold] = (), revision: str, y_ref: str = "y") -> Figure:
    """The time chart's frame: shading (maintenance, anomalies), threshold lines, axes and legend."""
    shapes: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []
    for span in maintenance:
        x0, x1 = _naive_utc(max(span.start, start)), _naive_utc(min(span.end, end))
        shapes.append({"type": "rect", "xref": "x", "yref": "paper", "x0": x0, "x1": x1, "y0": 0, "y1": 1,
                       "fillcolor": MAINTENANCE_FILL, "line": {"width": 0}, "layer": "below"})
        notes.append({"text": span.label, "x": x0, "xref": "x", "y": 1, "yref": "paper", "xanchor": "left",
                      "yanchor": "top", "showarrow": False, "font": {"size": 10, "color": MUTED}})
    for span in spans:
        shapes.append({"type": "rect", "xref": "x", "yref": "paper", "x0": _naive_utc(span.start),
                       "x1": _naive_utc(span.end), "y0": 0, "y1": 1, "fillcolor": ANOMALY_FILL,
                       "line": {"width": 0}, "layer": "below"})
    if spans:  # one legend entry for the shading
        data = [*data, {"type": "scatter", "x": [None], "y": [None], "mode": "markers", "name": _SPAN_LEGEND,
                        "marker": {"size": 12, "color": ANOMALY_FILL, "symbol": "square"}}]
    for t in thresholds:
        shapes.append({"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": y_ref, "y0": t.value,
                       "y1": t.value, "line": {"color": "#f85149", "width": 1, "dash": "dash"}})
        notes.append({"text": t.label, "x": 1, "xref": "paper", "y": t.value, "yref": y_ref, "xanchor": "right",
                      "yanchor": "bottom", "showarrow": False, "font": {"size": 10, "color": "#ffa198"}})
    return figure(data, title={"text": title}, xaxis={**axis_time(start, end), "title": {"text": ""}},
                  yaxis={"title": {"text": y_title}}, uirevision=revision, shapes=shapes, annotations=notes,
                  legend={"orientation": "h", "x": 0, "xanchor": "left", "y": -0.16, "yanchor": "top"},
                  margin={"l": 64, "r": 24, "t": 48, "b": 72})


def status_figure(frame: pl.DataFrame, start: datetime, end: datetime) -> Figure:
    """Devices down and degraded over time (the most at any moment of each bucket), stacked."""
    if frame.is_empty():
        return empty_figure("No status history in this range")
    x = _naive(frame["bucket"].to_list())
    data = [{"type": "scatter", "x": x, "y": frame[key].to_list(), "name": label, "mode": "lines",
             "stackgroup": "status", "line": {"width": 1.2, "shape": "hv", "color": STATUS_COLORS[key]},
             "hovertemplate": f"%{{y}} {label.lower()}<extra></extra>"}
            for key, label in (("down", "Down"), ("degraded", "Degraded"))]
    top = max(1, max(a + b for a, b in zip(frame["down"].to_list(), frame["degraded"].to_list(), strict=True)))
    fig = _decorate(data, start, end, title="Devices down and degraded", y_title="Devices", revision="status")
    fig["layout"]["yaxis"].update(range=[0, top * 1.15], rangemode="tozero", tick0=0, dtick=max(1, -(-top // 5)))
    return fig


def worst_latency_figure(frame: pl.DataFrame, start: datetime, end: datetime) -> Figure:
    """One line per device: the ``worst_latency`` frame, worst first."""
    if frame.is_empty():
        return empty_figure("No latency samples in this range")
    data = [{"type": "scatter", "x": _naive(part["bucket"].to_list()), "y": part["rtt_ms"].to_list(),
             "name": part["device"][0], "mode": "lines", "hovertemplate": "%{y:.1f} ms",
             "line": {"width": 1.8, "color": SERIES_COLORS[i % len(SERIES_COLORS)]}}
            for i, part in enumerate(frame.partition_by("device_id", maintain_order=True))]
    return _decorate(data, start, end, title=f"Worst {frame['device_id'].n_unique()} devices by round-trip time",
                     y_title="Round-trip time (ms)", revision="worst")


def _loss_bin(loss: float | None) -> int:
    if loss is None or loss <= 0:
        return 0
    for i, (upper, _, _) in enumerate(LOSS_BINS[1:], start=1):
        if loss <= upper:
            return i
    return len(LOSS_BINS) - 1


def smoke_figure(times: Sequence[datetime], median: Sequence[float | None], low: Sequence[float | None],
                 high: Sequence[float | None], inner_low: Sequence[float | None], inner_high: Sequence[float | None],
                 loss: Sequence[float | None], start: datetime, end: datetime, *, spans: Sequence[Span] = (),
                 maintenance: Sequence[Span] = (), thresholds: Sequence[Threshold] = ()) -> Figure:
    """SmokePing's latency graph: the spread of each bucket as smoke (outer: fastest to slowest echo,
    inner: the buckets' typical fastest to slowest), the average as a line whose points are coloured
    by the bucket's packet loss."""
    x = _naive(times)
    data: list[dict[str, Any]] = []
    for lo, hi, alpha, name in ((low, high, 0.18, "min – max"), (inner_low, inner_high, 0.35, "typical spread")):
        data.append({"type": "scatter", "x": x, "y": list(hi), "mode": "lines", "line": {"width": 0},
                     "hoverinfo": "skip", "showlegend": False})
        data.append({"type": "scatter", "x": x, "y": list(lo), "mode": "lines", "line": {"width": 0},
                     "fill": "tonexty", "fillcolor": f"rgba(139, 148, 158, {alpha})", "name": name,
                     "hoverinfo": "skip"})
    data.append({"type": "scatter", "x": x, "y": list(median), "mode": "lines", "name": "average",
                 "line": {"width": 1, "color": TEXT}, "hovertemplate": "%{y:.2f} ms<extra>average</extra>"})
    bins = [_loss_bin(v) for v in loss]
    for i, (_, color, label) in enumerate(LOSS_BINS):
        pts = [(t, m) for t, m, b in zip(x, median, bins, strict=True) if b == i and m is not None]
        if not pts and i:
            continue
        data.append({"type": "scatter", "x": [p[0] for p in pts], "y": [p[1] for p in pts], "mode": "markers",
                     "name": f"loss {label}", "marker": {"size": 4, "color": color},
                     "hovertemplate": f"%{{y:.2f}} ms · loss {label}<extra></extra>"})
    fig = _decorate(data, start, end, title="Latency (SmokePing view: smoke = spread, points coloured by loss)",
                    y_title="Round-trip time (ms)", spans=spans, maintenance=maintenance, thresholds=thresholds,
                    revision="smoke")
    if not any(v is not None for v in median):
        fig["layout"]["annotations"].append(_note("No answered probes in this range"))
    return fig


def lines_figure(series: Sequence[tuple[str, Sequence[datetime], Sequence[float | None]]], start: datetime,
                 end: datetime, *, title: str, y_title: str, spans: Sequence[Span] = (),
                 maintenance: Sequence[Span] = (), thresholds: Sequence[Threshold] = (), revision: str,
                 y2: Sequence[str] = (), y2_title: str = "", y2_range: tuple[float, float] | None = None,
                 y2_thresholds: bool = False) -> Figure:
    """Named series over time (``y2`` names the ones drawn against a second axis on the right;
    ``y2_thresholds``: the threshold lines belong to that axis)."""
    data = []
    for i, (name, times, values) in enumerate(series):
        right = name in y2
        data.append({"type": "scatter", "x": _naive(times), "y": list(values), "name": name, "mode": "lines",
                     "yaxis": "y2" if right else "y",
                     "line": {"width": 1.6, "color": SERIES_COLORS[i % len(SERIES_COLORS)],
                              "dash": "dot" if right else "solid"}})
    fig = _decorate(data, start, end, title=title, y_title=y_title, spans=spans, maintenance=maintenance,
                    thresholds=thresholds, revision=revision, y_ref="y2" if y2_thresholds else "y")
    if y2:
        axis: dict[str, Any] = {"title": {"text": y2_title, "font": {"color": MUTED}}, "overlaying": "y",
                                "side": "right", "rangemode": "tozero", "showgrid": False, "color": MUTED}
        if y2_range is not None:
            axis["range"] = list(y2_range)
        fig["layout"]["yaxis2"] = axis
        fig["layout"]["margin"]["r"] = 64
    if not any(len(t) for _, t, _ in series):
        fig["layout"]["annotations"].append(_note("No samples in this range"))
    return fig


def timeline_figure(frame: pl.DataFrame, start: datetime, end: datetime) -> Figure:
    """The status as coloured bars along one row."""
    data = []
    seen: set[str] = set()
    for row in frame.iter_rows(named=True):
        status = row["status"]
        width_ms = (row["end"] - row["start"]).total_seconds() * 1000
        data.append({"type": "bar", "x": [width_ms], "y": ["status"], "base": [_naive_utc(row["start"])],
                     "orientation": "h", "marker": {"color": STATUS_COLORS.get(status, MUTED), "line": {"width": 0}},
                     "name": status.capitalize(), "showlegend": status not in seen,
                     "hovertemplate": f"{status} from %{{base|%b %d %H:%M}}<extra></extra>"})
        seen.add(status)
    return figure(data, barmode="overlay", height=150, title={"text": "Status"},
                  xaxis={**axis_time(start, end), "type": "date"}, yaxis={"visible": False},
                  margin={"l": 24, "r": 24, "t": 40, "b": 36}, uirevision="timeline", hovermode="closest")
