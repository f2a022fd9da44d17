"""Overview: what is wrong right now, root cause first.

Tiles count the fleet (up, degraded, down, unreachable behind a down device, unknown) and each site;
"Needs attention" lists root causes, a down parent first with the devices behind it counted, never
its 31 unreachable children one by one; the charts show an outage as it is: how many devices were
down over the range, and the latency of the worst devices (a fleet mean would hide both).

Every element refreshes with the shell's live tick and follows the global time range; callbacks read
through :mod:`analytics.fleet` and :mod:`analytics.alerts` with the signed-in user's organization.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, dcc, html
from flask import current_app
from sqlalchemy import Engine

from analytics import alerts
from analytics.fleet import UNASSIGNED_SITE, devices_needing_attention, fleet_summary, site_status, status_over_time
from analytics.fleet import worst_latency as worst_latency_frame
from dashboard import ids, timerange
from dashboard.auth import current_org_id
from dashboard.charts import GRAPH_CONFIG, status_figure, worst_latency_figure
from dashboard.charts import duration_text as _duration
from dashboard.permissions import allowed, forbidden, guarded
from netpulse.db import raw_connection

dash.register_page(__name__, path="/", title="Overview", name="Overview", order=0, permission="device:read")

STALE_AFTER = timedelta(minutes=5)  # "last data" turns amber when nothing arrived for this long
PLACEHOLDER = "–"
ATTENTION_ROWS = 10
WORST_N = 5
CHART_HEIGHT_PX = 330
STATUS_CARDS = (("up", "Up"), ("degraded", "Degraded"), ("down", "Down"), ("unreachable", "Unreachable"),
                ("unknown", "Unknown"))
_STEPS = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15), timedelta(hours=1),
          timedelta(hours=3), timedelta(hours=6), timedelta(days=1))


def _engine() -> Engine:
    engine: Engine = current_app.extensions["netpulse.engine"]
    return engine


def _kpi(label: str, value_id: str, sub_id: str, accent: str, sub: str = "") -> dbc.Col:
    return dbc.Col(
        html.Div(
            [html.Div(label, className="np-kpi-label"),
             html.Div(PLACEHOLDER, id=value_id, className="np-kpi-value"),
             html.Div(sub, id=sub_id, className="np-kpi-sub")],
            className=f"np-kpi np-kpi-{accent}",
        ),
        xs=6, md=3, xl=True,
    )


def _alerts_card() -> dbc.Col:
    card = html.Div(
        [html.Div("Open alerts", className="np-kpi-label"),
         html.Div(PLACEHOLDER, id=ids.OPEN_ALERTS, className="np-kpi-value"),
         html.Div("", id=ids.OPEN_ALERTS_SUB, className="np-kpi-sub")],
        id=ids.OPEN_ALERTS_CARD, className="np-kpi",
    )
    return dbc.Col(dcc.Link(card, href="/alerts", className="np-kpi-link", title="Open the alerts page"),
                   xs=6, md=3, xl=True)


def _graph(graph_id: str) -> html.Div:
    return html.Div(dcc.Graph(id=graph_id, config=GRAPH_CONFIG,
                              style={"height": f"{CHART_HEIGHT_PX}px"}), className="np-panel")


def layout(**_query: Any) -> html.Div:
    if not allowed("device:read"):
        return forbidden("device:read")
    kpis = [_kpi("Devices", ids.TOTAL_DEVICES, ids.TOTAL_DEVICES_SUB, "total", "in inventory")]
    kpis += [_kpi(label, ids.STATUS_COUNT[key], ids.STATUS_SHARE[key], key) for key, label in STATUS_CARDS]
    if allowed("alert:read"):
        kpis.append(_alerts_card())
    kpis.append(_kpi("Last data", ids.LAST_DATA, ids.LAST_DATA_AGO, "fresh"))
    charts = [] if not allowed("metrics:read") else [
        dbc.Col(_graph(ids.DOWN_GRAPH), lg=6), dbc.Col(_graph(ids.LATENCY_GRAPH), lg=6)]
    return html.Div(
        [
            dcc.Store(id=ids.page_state("overview"), data={}),
            html.Div(
                [html.H1("Fleet overview", className="np-page-title"),
                 html.Div(["Updated ", html.Span(PLACEHOLDER, id=ids.UPDATED_AT)], className="np-page-meta")],
                className="np-page-header",
            ),
            dbc.Row(kpis, className="g-3 mb-3 np-kpis"),
            html.Div(id=ids.SITE_TILES, className="np-sites mb-3"),
            dbc.Row(
                [
                    dbc.Col(
                        html.Div(
                            [html.Div([html.Span("Needs attention · root causes first", className="np-panel-title"),
                                       html.Span(PLACEHOLDER, id=ids.ATTENTION_COUNT, className="np-count")],
                                      className="np-panel-head"),
                             html.Div(id=ids.ATTENTION_LIST, className="np-attention")],
                            className="np-panel np-panel-list np-attention-panel",
                        ),
                        lg=4,
                    ),
                    dbc.Col(dbc.Row(charts, className="g-3"), lg=8),
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


def _site_tile(row: dict[str, Any]) -> dcc.Link:
    total = int(row["devices"])
    bar = [html.Div(className=f"np-bar-{key}", style={"width": f"{100 * int(row[key]) / total:.2f}%"})
           for key in ("down", "unreachable", "degraded", "unknown", "up") if row[key]]
    counts = [html.Span(f"{int(row[key]):,} {key}", className=f"np-site-count np-text-{key}")
              for key in ("down", "unreachable", "degraded", "unknown") if row[key]]
    problem = row["down"] or row["unreachable"] or row["degraded"]
    href = "/devices" if row["site"] == UNASSIGNED_SITE else f"/devices?site={quote(str(row['site']))}"
    return dcc.Link(
        [html.Div([html.Span(row["site"], className="np-site-name"), html.Span(f"{total:,}", className="np-count")],
                  className="np-site-head"),
         html.Div(bar, className="np-site-bar"),
         html.Div(counts or [html.Span("all up", className="np-text-up")], className="np-site-counts")],
        href=href, className="np-site-tile" + (" np-site-problem" if problem else ""),
        title=f"{row['site']}: {row['up']} up, {row['degraded']} degraded, {row['down']} down, "
              f"{row['unreachable']} unreachable, {row['unknown']} unknown",
    )


@dash.callback(
    [Output(ids.STATUS_COUNT[k], "children") for k in ids.STATUS_KEYS]
    + [Output(ids.STATUS_SHARE[k], "children") for k in ids.STATUS_KEYS]
    + [Output(ids.TOTAL_DEVICES, "children"), Output(ids.LAST_DATA, "children"),
       Output(ids.LAST_DATA_AGO, "children"), Output(ids.LAST_DATA, "className"),
       Output(ids.UPDATED_AT, "children"), Output(ids.SITE_TILES, "children")],
    Input(ids.TICK, "n_intervals"),
)
@guarded("device:read")  # as GET /api/v1/fleet/summary
def refresh_summary(_n: int) -> list[Any]:
    org = current_org_id()
    with raw_connection(_engine()) as conn:
        sites = site_status(conn, org)
        summary = fleet_summary(conn, org)
    now = datetime.now(UTC)
    totals = {k: int(sites[k].sum()) if sites.height else 0 for k in ids.STATUS_KEYS}
    total = sum(totals.values())
    counts = [f"{totals[k]:,}" for k in ids.STATUS_KEYS]
    shares = [f"{_share(totals[k], total)} of fleet" if total else "" for k in ids.STATUS_KEYS]
    shares[ids.STATUS_KEYS.index("unreachable")] = "behind a down device" if totals["unreachable"] else ""
    last = summary.last_metric_at
    if last is None:
        last_text, ago, css = "No data", "nothing received yet", "np-kpi-value np-stale"
    else:
        last_text, ago = last.astimezone(UTC).strftime("%H:%M:%S UTC"), f"{_duration(now - last)} ago"
        css = "np-kpi-value np-stale" if now - last > STALE_AFTER else "np-kpi-value"
    tiles = [_site_tile(r) for r in sites.iter_rows(named=True)] if sites.height > 1 else []
    return [*counts, *shares, f"{total:,}", last_text, ago, css, now.strftime("%H:%M:%S UTC"), tiles]


def _step(span: timedelta) -> timedelta:
    """A bucket that gives the status chart 60 to a few hundred points."""
    for step in _STEPS:
        if span / step <= 360:
            return step
    return _STEPS[-1]


@dash.callback(Output(ids.DOWN_GRAPH, "figure"), Input(ids.TICK, "n_intervals"), Input(ids.RANGE, "data"))
@guarded("metrics:read")  # status history, as GET /api/v1/sla/outages
def refresh_status_chart(_n: int, state: dict[str, Any] | None) -> Any:
    window = timerange.window(state)
    with raw_connection(_engine()) as conn:
        frame = status_over_time(conn, current_org_id(), window.start, window.end, _step(window.span))
    return status_figure(frame, window.start, window.end)


@dash.callback(Output(ids.LATENCY_GRAPH, "figure"), Input(ids.TICK, "n_intervals"), Input(ids.RANGE, "data"))
@guarded("metrics:read")
def refresh_latency(_n: int, state: dict[str, Any] | None) -> Any:
    window = timerange.window(state)
    with raw_connection(_engine()) as conn:
        frame = worst_latency_frame(conn, current_org_id(), window.start, window.end, n=WORST_N)
    return worst_latency_figure(frame, window.start, window.end)


@dash.callback(
    Output(ids.OPEN_ALERTS, "children"), Output(ids.OPEN_ALERTS_SUB, "children"),
    Output(ids.OPEN_ALERTS_CARD, "className"),
    Input(ids.TICK, "n_intervals"),
)
@guarded("alert:read")  # as GET /api/v1/alerts
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
    behind = int(row["behind"])
    name = [dcc.Link(row["name"], href=f"/devices/{row['device_id']}", className="np-device"),
            html.Div(row["site"], className="np-site")]
    if behind:
        name.append(html.Div(f"{behind:,} device{'s' if behind != 1 else ''} behind it", className="np-behind"))
    return html.Tr(
        [
            html.Td(html.Span([html.Span(className="np-dot"), status.capitalize()],
                              className=f"np-status np-status-{status}")),
            html.Td(name),
            html.Td(f"for {_duration(now - since)}" if since is not None else "", className="np-since"),
        ],
        className="np-cause" + (" np-cause-parent" if behind else ""),
    )


@dash.callback(
    Output(ids.ATTENTION_LIST, "children"), Output(ids.ATTENTION_COUNT, "children"),
    Input(ids.TICK, "n_intervals"),
)
@guarded("device:read")
def refresh_attention(_n: int) -> tuple[Any, str]:
    with raw_connection(_engine()) as conn:
        frame = devices_needing_attention(conn, current_org_id(), limit=ATTENTION_ROWS)
    if frame.is_empty():
        return html.Div([html.Span("✓", className="np-ok-mark"), "All monitored devices are up"],
                        className="np-empty"), "0"
    now = datetime.now(UTC)
    total = int(frame["total"][0])
    body: list[Any] = [html.Table(html.Tbody([_attention_row(r, now) for r in frame.iter_rows(named=True)]),
                                  className="np-table")]
    if total > frame.height:
        body.append(dcc.Link(f"Showing {frame.height} of {total:,} root causes · all on the devices page",
                             href="/devices?status=down,degraded", className="np-more"))
    return body, f"{total:,}"
