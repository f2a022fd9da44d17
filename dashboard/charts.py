"""Plotly figures and the house template: dark, quiet gridlines, units on every axis, no legend clutter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import plotly.graph_objects as go
import polars as pl

__all__ = ["TEMPLATE", "SERIES_COLORS", "latency_figure"]

FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif'
TEXT = "#c9d1d9"
MUTED = "#8b949e"
GRID = "rgba(240, 246, 252, 0.07)"
# Categorical colours that never read as a status (no green, amber, red or grey), distinct hues first.
SERIES_COLORS = ("#58a6ff", "#bc8cff", "#39c5cf", "#f778ba", "#ffa657", "#a5d6ff", "#e2c5ff", "#ff9bce")
OTHER_COLOR = "#c9d1d9"  # the catch-all series (devices without a site): dotted, outside the palette
LEGEND_ON_TOP_MAX = 6    # more series than this: the legend moves to a column on the right

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


def latency_figure(df: pl.DataFrame, start: datetime, end: datetime, *, title: str,
                   other: str | None = None) -> go.Figure:
    """One line per site from a ``latency_series`` frame (bucket, site, rtt_ms), on a fixed time window.

    The series named ``other`` (devices without a site) is drawn last, dotted and neutral.
    """
    fig = go.Figure()
    # Plotly.js has no time zones: hand it naive UTC wall times, and say "UTC" on the axis.
    naive = df.with_columns(pl.col("bucket").dt.convert_time_zone("UTC").dt.replace_time_zone(None))
    parts = naive.sort("site", "bucket").partition_by("site", as_dict=True)
    sites = sorted((str(key[0]) for key in parts), key=lambda name: (name == other, name))
    for i, site in enumerate(sites):
        part = parts[(site,)]
        n = len(SERIES_COLORS)  # past the palette, the colours come round again dashed
        line = ({"width": 1.5, "color": OTHER_COLOR, "dash": "dot"} if site == other
                else {"width": 2, "color": SERIES_COLORS[i % n], "dash": "solid" if i < n else "dash"})
        fig.add_trace(go.Scatter(x=part["bucket"].to_list(), y=part["rtt_ms"].to_list(), name=site,
                                 mode="lines", line=line, hovertemplate="%{y:.1f} ms"))
    if len(sites) > LEGEND_ON_TOP_MAX:
        fig.update_layout(legend={"orientation": "v", "x": 1.01, "xanchor": "left", "y": 1, "yanchor": "top"},
                          margin={"r": 150})
    fig.update_layout(
        template=TEMPLATE,
        title={"text": title},
        xaxis={"title": {"text": "Time (UTC)"}, "range": [_naive_utc(start), _naive_utc(end)],
               "tickformat": "%H:%M"},
        yaxis={"title": {"text": "Round-trip time (ms)"}},
        showlegend=len(fig.data) > 1,
        uirevision="latency",  # keep a user's zoom and hidden series across refreshes
    )
    if not len(df):
        fig.add_annotation(text="No latency samples in this window", showarrow=False, xref="paper",
                           yref="paper", x=0.5, y=0.5, font={"size": 14, "color": MUTED})
        fig.update_yaxes(range=[0, 1], showticklabels=False)
    return fig


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
