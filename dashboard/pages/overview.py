"""Overview: fleet status counts, device total, freshness of the data and live latency by site.

Everything on the page is refreshed by one ``dcc.Interval`` (every 5 s). Callbacks take the
organization from the signed-in user's token and read through ``analytics.fleet``; the one statement
here counts the open alerts for the card that links to the alerts page.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import dash
import dash_bootstrap_components as dbc
import polars as pl
from dash import Input, Output, dcc, html
from flask import current_app
from sqlalchemy import Engine

from analytics import alerts
from analytics.fleet import UNASSIGNED_SITE, devices_needing_attention, fleet_summary, latency_series
from dashboard import ids
from dashboard.auth import current_org_id
from dashboard.charts import duration_text as _duration
from dashboard.charts import latency_figure
from netpulse.db import raw_connection

dash.register_page(__name__, path="/", title="Overview", name="Overview", order=0)

REFRESH_MS = 5_000
LATENCY_WINDOW = timedelta(minutes=60)
STALE_AFTER = timedelta(minutes=5)  # "last data" turns amber when nothing arrived for this long

# (status key, label, accent): the accent names the CSS modifier and matches NetBox-like conventions.
STATUS_CARDS = (
    ("up", "Up", "up"),
    ("degraded", "Degraded", "degraded"),
    ("down", "Down", "down"),
    ("unknown", "Unknown", "unknown"),
)
PLACEHOLDER = "–"
ATTENTION_ROWS = 8
CHART_HEIGHT_PX = 470


def _engine() -> Engine:
    engine: Engine = current_app.extensions["netpulse.engine"]
    return engine


def _kpi(label: str, value_id: str, sub_id: str, accent: str, sub: str = "") -> dbc.Col:
    return dbc.Col(
        html.Div(
            [
                html.Div(label, className="np-kpi-label"),
                html.Div(PLACEHOLDER, id=value_id, className="np-kpi-value"),
                html.Div(sub, id=sub_id, className="np-kpi-sub"),
            ],
            className=f"np-kpi np-kpi-{accent}",
        ),
        xs=6, md=3, xl=True,  # seven cards share one row on wide screens
    )


def _alerts_card() -> dbc.Col:
    card = html.Div(
        [
            html.Div("Open alerts", className="np-kpi-label"),
            html.Div(PLACEHOLDER, id=ids.OPEN_ALERTS, className="np-kpi-value"),
            html.Div("", id=ids.OPEN_ALERTS_SUB, className="np-kpi-sub"),
        ],
        id=ids.OPEN_ALERTS_CARD,
        className="np-kpi",
    )
    return dbc.Col(dcc.Link(card, href="/alerts", className="np-kpi-link", title="Open the alerts page"),
                   xs=6, md=3, xl=True)


def layout(**_query: Any) -> html.Div:
    status_cards = [_kpi(label, ids.STATUS_COUNT[key], ids.STATUS_SHARE[key], accent)
                    for key, label, accent in STATUS_CARDS]
    return html.Div(
        [
            dcc.Interval(id=ids.REFRESH_INTERVAL, interval=REFRESH_MS, n_intervals=0),
            html.Div(
                [
                    html.H1("Fleet overview", className="np-page-title"),
                    html.Div(["Auto-refresh every 5 s · updated ", html.Span(PLACEHOLDER, id=ids.UPDATED_AT)],
                             className="np-page-meta"),
                ],
                className="np-page-header",
            ),
            dbc.Row(
                [_kpi("Devices", ids.TOTAL_DEVICES, ids.TOTAL_DEVICES_SUB, "total", "in inventory"), *status_cards,
                 _kpi("Last data", ids.LAST_DATA, ids.LAST_DATA_AGO, "fresh"), _alerts_card()],
                className="g-3 mb-3",
            ),
            dbc.Row(
                [
                    dbc.Col(
                        html.Div(
                            dcc.Graph(
                                id=ids.LATENCY_GRAPH,
                                config={"displaylogo": False, "responsive": True,
                                        "modeBarButtonsToRemove": ["lasso2d", "select2d", "autoScale2d"]},
                                style={"height": f"{CHART_HEIGHT_PX}px"},
                            ),
                            className="np-panel",
                        ),
                        lg=8,
                    ),
                    dbc.Col(
                        html.Div(
                            [
                                html.Div(
                                    [html.Span("Needs attention", className="np-panel-title"),
                                     html.Span(PLACEHOLDER, id=ids.ATTENTION_COUNT, className="np-count")],
                                    className="np-panel-head",
                                ),
                                html.Div(id=ids.ATTENTION_LIST, className="np-attention"),
                            ],
                            className="np-panel np-panel-list",
                            style={"height": f"{CHART_HEIGHT_PX + 14}px"},
                        ),
                        lg=4,
                    ),
                ],
                className="g-3",
            ),
        ]
    )




def _share(part: int, whole: int) -> str:
    """A percentage that never rounds a non-empty share to 0 % or a partial one to 100 %."""
    if part == 0 or part == whole:
        return f"{100 * part // whole} %"
    pct = 100 * part / whole
    return "<1 %" if pct < 1 else ">99 %" if pct > 99 else f"{pct:.0f} %"


def _ago(delta: timedelta) -> str:
    return f"{_duration(delta)} ago"


@dash.callback(
    [Output(ids.STATUS_COUNT[k], "children") for k in ids.STATUS_KEYS]
    + [Output(ids.STATUS_SHARE[k], "children") for k in ids.STATUS_KEYS]
    + [Output(ids.TOTAL_DEVICES, "children"), Output(ids.LAST_DATA, "children"),
       Output(ids.LAST_DATA_AGO, "children"), Output(ids.LAST_DATA, "className"),
       Output(ids.UPDATED_AT, "children")],
    Input(ids.REFRESH_INTERVAL, "n_intervals"),
)
def refresh_summary(_n: int) -> list[str]:
    with raw_connection(_engine()) as conn:
        summary = fleet_summary(conn, current_org_id())
    now = datetime.now(UTC)
    total = summary.total_devices
    counts = [f"{summary.status_counts[k]:,}" for k in ids.STATUS_KEYS]
    shares = [f"{_share(summary.status_counts[k], total)} of fleet" if total else "" for k in ids.STATUS_KEYS]
    last = summary.last_metric_at
    if last is None:
        last_text, ago, css = "No data", "nothing received yet", "np-kpi-value np-stale"
    else:
        last_text, ago = last.astimezone(UTC).strftime("%H:%M:%S UTC"), _ago(now - last)
        css = "np-kpi-value np-stale" if now - last > STALE_AFTER else "np-kpi-value"
    return [*counts, *shares, f"{total:,}", last_text, ago, css, now.strftime("%H:%M:%S UTC")]


@dash.callback(Output(ids.LATENCY_GRAPH, "figure"), Input(ids.REFRESH_INTERVAL, "n_intervals"))
def refresh_latency(_n: int) -> Any:
    end = datetime.now(UTC)
    start = end - LATENCY_WINDOW
    with raw_connection(_engine()) as conn:
        frame = latency_series(conn, current_org_id(), start, end)
    return latency_figure(frame, start, end, title="ICMP round-trip time by site · last 60 minutes",
                          other=UNASSIGNED_SITE)


@dash.callback(
    Output(ids.OPEN_ALERTS, "children"), Output(ids.OPEN_ALERTS_SUB, "children"),
    Output(ids.OPEN_ALERTS_CARD, "className"),
    Input(ids.REFRESH_INTERVAL, "n_intervals"),
)
def refresh_open_alerts(_n: int) -> tuple[str, str, str]:
    with raw_connection(_engine()) as conn:
        c = alerts.counts(conn, current_org_id())
    total, critical, warning, info = c["open"], c["critical"], c["warning"], c["info"]
    parts = [f"{n:,} {name}" for n, name in ((critical, "critical"), (warning, "warning"), (info, "info")) if n]
    accent = "down" if critical else "degraded" if warning else "total" if total else "up"
    return f"{total:,}", " · ".join(parts) or "all clear", f"np-kpi np-kpi-{accent}"


def _attention_row(row: dict[str, Any], now: datetime) -> html.Tr:
    status = str(row["oper_status"])
    since = row["since"]
    return html.Tr(
        [
            html.Td(html.Span([html.Span(className="np-dot"), status.capitalize()],
                              className=f"np-status np-status-{status}")),
            html.Td([html.Div(row["name"], className="np-device"), html.Div(row["site"], className="np-site")]),
            html.Td(f"for {_duration(now - since)}" if since is not None else "", className="np-since"),
        ]
    )


@dash.callback(
    Output(ids.ATTENTION_LIST, "children"), Output(ids.ATTENTION_COUNT, "children"),
    Input(ids.REFRESH_INTERVAL, "n_intervals"),
)
def refresh_attention(_n: int) -> tuple[Any, str]:
    with raw_connection(_engine()) as conn:
        frame: pl.DataFrame = devices_needing_attention(conn, current_org_id(), limit=ATTENTION_ROWS + 1)
    if frame.is_empty():
        return html.Div([html.Span("✓", className="np-ok-mark"), "All monitored devices are up"],
                        className="np-empty"), "0"
    now = datetime.now(UTC)
    rows = [_attention_row(r, now) for r in frame.head(ATTENTION_ROWS).iter_rows(named=True)]
    more = frame.height > ATTENTION_ROWS
    body: list[Any] = [html.Table(html.Tbody(rows), className="np-table")]
    if more:
        body.append(html.Div(f"Showing the first {ATTENTION_ROWS}", className="np-more"))
    return body, f"{ATTENTION_ROWS}+" if more else str(frame.height)
