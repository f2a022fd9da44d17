"""SLA: availability by site, group, tag or device against the targets, over the global time range.

Each row shows its availability, the target that applies (a target of its own scope, else the one for
all devices), whether it is met and the error budget left: the down time the target still allows over
the range (negative once overspent). Below: availability per day or hour, and every outage with its
duration and its cause (the device it was behind, when a parent's outage covered its start). The
table downloads as CSV; "Download PDF report" asks a worker for the availability report of the same
period (all devices, with tables by site, group, tag and device) and downloads it once made
(:mod:`dashboard.reporting`, needs ``report:write`` as ``POST /api/v1/reports/generate``). Figures come
from :mod:`analytics.sla` (status history, maintenance windows taken out).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
import polars as pl
from dash import Input, Output, State, dcc, html, no_update
from dash.exceptions import PreventUpdate
from flask import current_app
from sqlalchemy import Engine

from analytics import sla
from dashboard import ids, timerange
from dashboard.auth import current_org_id
from dashboard.charts import GRAPH_CONFIG, GRID_THEME, MUTED, axis_time, empty_figure, figure
from dashboard.permissions import allowed, forbidden, guarded
from dashboard.reporting import ask_for_report, made_file, window_period
from netpulse.db import raw_connection
from netpulse.errors import NetPulseError
from netpulse.timespec import human_duration

dash.register_page(__name__, path="/sla", title="SLA", name="SLA", order=5, permission="metrics:read")

READ = "metrics:read"   # as GET /api/v1/sla/*
REPORT_WRITE, REPORT_READ = "report:write", "report:read"   # as POST /api/v1/reports/generate, GET its file
REPORT_POLL_MS = 2_000
BY_OPTIONS = (("site", "Site"), ("group", "Group"), ("tag", "Tag"), ("device", "Device"))
MAX_DEVICE_ROWS = 1000
MAX_OUTAGES = 50

COLUMNS: list[dict[str, Any]] = [
    {"field": "name", "headerName": "Name", "minWidth": 160, "pinned": "left"},
    {"field": "devices", "headerName": "Devices", "width": 100, "type": "rightAligned"},
    {"field": "availability", "headerName": "Availability", "width": 130, "type": "rightAligned",
     "valueFormatter": {"function": "params.value == null ? 'no data' : params.value.toFixed(3) + ' %'"}},
    {"field": "target", "headerName": "Target", "width": 110, "type": "rightAligned",
     "valueFormatter": {"function": "params.value == null ? '–' : params.value + ' %'"}},
    {"field": "state", "headerName": "", "width": 110,
     "cellClass": {"function": "'np-cell-sla np-cell-sla-' + (params.value || 'none')"}},
    {"field": "budget_min", "headerName": "Budget left", "width": 130, "type": "rightAligned",
     "valueFormatter": {"function": "params.value == null ? '–' : params.value.toFixed(0) + ' min'"},
     "cellClassRules": {"np-cell-bad": "params.value != null && params.value < 0"}},
    {"field": "down", "headerName": "Down", "width": 110, "type": "rightAligned"},
    {"field": "outages", "headerName": "Outages", "width": 100, "type": "rightAligned"},
    {"field": "mttr", "headerName": "MTTR", "width": 100, "type": "rightAligned"},
    {"field": "mtbf", "headerName": "MTBF", "width": 110, "type": "rightAligned"},
]


def _engine() -> Engine:
    engine: Engine = current_app.extensions["netpulse.engine"]
    return engine


def layout(by: str | None = None, **_query: Any) -> html.Div:
    if not allowed(READ):
        return forbidden(READ)
    chosen = by if by in dict(BY_OPTIONS) else "site"
    return html.Div(
        [
            dcc.Store(id=ids.page_state("sla"), data={"by": chosen}),
            dcc.Download(id=ids.SLA_DOWNLOAD),
            html.Div([html.H1("SLA", className="np-page-title"),
                      html.Div([
                          dbc.RadioItems(id=ids.SLA_BY, value=chosen, inline=True,
                                         options=[{"label": label, "value": key} for key, label in BY_OPTIONS],
                                         input_class_name="btn-check",
                                         label_class_name="btn btn-sm btn-outline-secondary",
                                         label_checked_class_name="active", class_name="btn-group np-toggle"),
                          dbc.Button("Download CSV", id=ids.SLA_DOWNLOAD_BUTTON, size="sm", color="secondary",
                                     outline=True),
                          *_report_button()], className="np-actions-bar")],
                     className="np-page-header"),
            html.Div(id=ids.SLA_REPORT_STATUS, className="mb-2"),
            html.Div(id=ids.SLA_SUMMARY, className="mb-3"),
            html.Div(dag.AgGrid(id=ids.SLA_TABLE, columnDefs=COLUMNS, rowData=[],
                                defaultColDef={"sortable": True, "resizable": True},
                                columnSize="responsiveSizeToFit",
                                dashGridOptions={"theme": {"function": GRID_THEME}, "suppressCellFocus": True,
                                                 "domLayout": "autoHeight", "pagination": True,
                                                 "paginationPageSize": 15, "paginationPageSizeSelector": False},
                                style={"height": None}), className="np-panel np-grid-panel mb-3"),
            dbc.Row([
                dbc.Col(html.Div(dcc.Graph(id=ids.SLA_TREND, config=GRAPH_CONFIG,
                                           style={"height": "300px"}), className="np-panel"), lg=6),
                dbc.Col(html.Div([html.Div(html.Span("Outages", className="np-panel-title"), className="np-panel-head"),
                                  html.Div(id=ids.SLA_OUTAGES, className="np-table-wrap np-outages")],
                                 className="np-panel np-panel-list"), lg=6),
            ], className="g-3"),
        ]
    )


def _report_button() -> list[Any]:
    if not allowed(REPORT_WRITE):
        return []
    return [dbc.Button("Download PDF report", id=ids.SLA_REPORT_BUTTON, size="sm", color="secondary", outline=True),
            dcc.Store(id=ids.SLA_REPORT_AWAIT, data=None), dcc.Download(id=ids.SLA_REPORT_DOWNLOAD),
            dcc.Interval(id=ids.SLA_REPORT_POLL, interval=REPORT_POLL_MS, disabled=True)]


def _targets(conn: Any) -> dict[tuple[str, str | None], float]:
    return {(t.scope, t.scope_ref): t.target_pct for t in sla.list_targets(conn, current_org_id())}


def table(conn: Any, by: str, window: timerange.Window) -> tuple[pl.DataFrame, dict[str, Any], sla.Availability]:
    """The availability rows with their target, state and error budget, the organization's totals, and
    the period's figures they come from (one read of the status history, outages with their causes)."""
    figures = sla.availability_over(conn, current_org_id(), window.start, window.end, with_tags=by == "tag")
    frame, total = figures.by(by), figures.by("org").row(0, named=True)  # type: ignore[arg-type]
    targets = _targets(conn)
    default = targets.get(("all", None))
    scope = "device" if by == "device" else by
    rows = []
    for r in frame.iter_rows(named=True):
        target = targets.get((scope, r["name"]), default)
        avail = r["availability_pct"]
        state = None if target is None or avail is None else "met" if avail >= target else "breached"
        budget = None if target is None else ((1 - target / 100) * r["monitored_s"] - r["down_s"]) / 60
        rows.append({"name": r["name"] or f"(no {by})", "devices": r.get("devices", 1), "availability": avail,
                     "target": target, "state": state, "budget_min": budget, "down_s": r["down_s"],
                     "down": human_duration(r["down_s"]), "outages": r["outages"],
                     "mttr": human_duration(r["mttr_s"]), "mtbf": human_duration(r["mtbf_s"]),
                     "monitored_s": r["monitored_s"], "maintenance_s": r["maintenance_s"]})
    out = pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame()
    summary = {**total, "target": default,
               "budget_min": None if default is None else
               ((1 - default / 100) * total["monitored_s"] - total["down_s"]) / 60}
    return out, summary, figures


def _kpi(label: str, value: str, sub: str, accent: str) -> dbc.Col:
    return dbc.Col(html.Div([html.Div(label, className="np-kpi-label"), html.Div(value, className="np-kpi-value"),
                             html.Div(sub, className="np-kpi-sub")], className=f"np-kpi np-kpi-{accent}"),
                   xs=6, md=3)


def _step(span: timedelta) -> timedelta:
    return timedelta(hours=1) if span <= timedelta(days=3) else timedelta(days=1)


@dash.callback(Output(ids.SLA_TABLE, "rowData"), Output(ids.SLA_SUMMARY, "children"),
               Output(ids.SLA_TREND, "figure"), Output(ids.SLA_OUTAGES, "children"),
               Output(ids.page_state("sla"), "data"),
               Input(ids.SLA_BY, "value"), Input(ids.RANGE, "data"), Input(ids.TICK, "n_intervals"))
@guarded(READ)
def refresh(by: str | None, state: dict[str, Any] | None, _n: int) -> tuple[Any, ...]:
    """The whole page from one read of the status history (table, totals, trend, outages)."""
    by = by if by in dict(BY_OPTIONS) else "site"
    window = timerange.window(state)
    with raw_connection(_engine()) as conn:
        frame, total, figures = table(conn, by, window)
    recent = figures.outage_list.sort("start", descending=True).head(MAX_OUTAGES)
    rows = frame.head(MAX_DEVICE_ROWS).to_dicts() if frame.height else []
    daily = sla.trend(figures, window.start, window.end, _step(window.span))
    return (rows, _summary(total, window), _trend_figure(daily, total["target"], window), _outages(recent),
            {"by": by})


def _summary(total: dict[str, Any], window: timerange.Window) -> dbc.Row:
    avail, target, budget = total["availability_pct"], total["target"], total["budget_min"]
    accent = "up" if avail is None or target is None or avail >= target else "down"
    return dbc.Row([
        _kpi("Availability", "no data" if avail is None else f"{avail:.3f} %", window.label, accent),
        _kpi("Target", "none" if target is None else f"{target:g} %", "for all devices" if target else
             "set one with `netpulse sla targets`", "total"),
        _kpi("Error budget left", "–" if budget is None else f"{budget:,.0f} min",
             "overspent" if budget is not None and budget < 0 else "down time still allowed", accent),
        _kpi("Outages", f"{total['outages']:,}", f"MTTR {human_duration(total['mttr_s'])}", "degraded"
             if total["outages"] else "up"),
    ], className="g-3")


def _trend_figure(trend: pl.DataFrame, target: float | None, window: timerange.Window) -> Any:
    if trend.is_empty() or trend["availability_pct"].is_null().all():
        return empty_figure("Nothing monitored in this range")
    values = trend["availability_pct"].to_list()
    data = [{"type": "bar", "x": [t.replace(tzinfo=None) for t in trend["bucket"].to_list()], "y": values,
             "marker": {"color": "#3fb950"}, "hovertemplate": "%{y:.3f} %<extra></extra>"}]
    low = min(v for v in values if v is not None)
    unit = "hour" if _step(window.span) < timedelta(days=1) else "day"
    shapes, notes = [], []
    if target is not None:
        shapes.append({"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": target, "y1": target,
                       "line": {"color": "#f85149", "dash": "dash", "width": 1}})
        notes.append({"text": f"target {target:g} %", "x": 1, "xref": "paper", "y": target, "yref": "y",
                      "xanchor": "right", "yanchor": "bottom", "showarrow": False,
                      "font": {"size": 10, "color": "#ffa198"}})
    return figure(data, title={"text": f"Availability per {unit}"}, xaxis=axis_time(window.start, window.end),
                  yaxis={"title": {"text": "Available (%)"}, "range": [max(0.0, min(low, target or 100) - 0.5), 100.05],
                         "rangemode": "normal", "color": MUTED},
                  shapes=shapes, annotations=notes, margin={"l": 64, "r": 24, "t": 56, "b": 48}, bargap=0.15,
                  uirevision="sla-trend")


def _outages(frame: pl.DataFrame) -> Any:
    if frame.is_empty():
        return html.Div("No outages in this range.", className="np-muted")
    rows = []
    for r in frame.iter_rows(named=True):
        cause = r["cause_device"]
        rows.append(html.Tr([
            html.Td(dcc.Link(r["device"], href=f"/devices/{r['device_id']}", className="np-device")),
            html.Td(r["start"].astimezone(UTC).strftime("%b %d %H:%M"), className="np-since"),
            html.Td(human_duration(r["duration_s"]) + ("" if r["end"] is not None else " (ongoing)"),
                    className="np-num"),
            html.Td(f"behind {cause}" if cause else ("maintenance" if not r["counted"] else "own outage"),
                    className="np-behind" if cause else "np-muted"),
        ]))
    head = html.Thead(html.Tr([html.Th(h) for h in ("Device", "Began (UTC)", "Duration", "Cause")]))
    return html.Table([head, html.Tbody(rows)], className="np-table")


@dash.callback(Output(ids.SLA_DOWNLOAD, "data"), Input(ids.SLA_DOWNLOAD_BUTTON, "n_clicks"),
               State(ids.SLA_BY, "value"), State(ids.RANGE, "data"), prevent_initial_call=True)
@guarded(READ)
def download(clicks: int | None, by: str | None, state: dict[str, Any] | None) -> Any:
    if not clicks:
        raise PreventUpdate
    by = by if by in dict(BY_OPTIONS) else "site"
    window = timerange.window(state)
    with raw_connection(_engine()) as conn:
        frame, _, _ = table(conn, by, window)
    columns = ["name", "devices", "availability", "target", "state", "budget_min", "down_s", "outages", "mttr",
               "mtbf", "monitored_s", "maintenance_s"]
    text = frame.select(columns).write_csv() if frame.height else ",".join(columns) + "\n"
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
    return dcc.send_string(text, f"netpulse-sla-by-{by}-{stamp}.csv", type="text/csv")


@dash.callback(Output(ids.SLA_REPORT_AWAIT, "data"), Output(ids.SLA_REPORT_POLL, "disabled"),
               Output(ids.SLA_REPORT_STATUS, "children"),
               Input(ids.SLA_REPORT_BUTTON, "n_clicks"), State(ids.RANGE, "data"), prevent_initial_call=True)
@guarded(REPORT_WRITE)
def ask_for_pdf(clicks: int | None, state: dict[str, Any] | None) -> tuple[Any, ...]:
    """The availability report of the period shown, made by a worker (listed on the Reports page too)."""
    if not clicks:
        raise PreventUpdate
    try:
        run = ask_for_report(kind="availability", scope="all", period=window_period(timerange.window(state)),
                             fmt="pdf")
    except NetPulseError as exc:
        return None, True, dbc.Alert(exc.message, color="danger", className="py-1 px-2 mb-0 small", fade=False)
    text = f"Making the availability report of {run.period.label}; it downloads when ready."
    return run.id, False, html.Div(text, className="np-muted small")


@dash.callback(Output(ids.SLA_REPORT_DOWNLOAD, "data"), Output(ids.SLA_REPORT_AWAIT, "data", allow_duplicate=True),
               Output(ids.SLA_REPORT_POLL, "disabled", allow_duplicate=True),
               Output(ids.SLA_REPORT_STATUS, "children", allow_duplicate=True),
               Input(ids.SLA_REPORT_POLL, "n_intervals"), State(ids.SLA_REPORT_AWAIT, "data"),
               prevent_initial_call=True)
@guarded(REPORT_READ)
def download_pdf(_n: int | None, run_id: int | None) -> tuple[Any, ...]:
    if not run_id:
        raise PreventUpdate
    run, file = made_file(run_id)
    if file is None and run.status == "failed":
        return no_update, None, True, dbc.Alert(f"The report could not be made: {run.error}", color="danger",
                                                className="py-1 px-2 mb-0 small", fade=False)
    if file is None:
        raise PreventUpdate
    return dcc.send_bytes(file[1], file[0]), None, True, html.Div(f"Downloaded {file[0]}.", className="np-muted small")
