"""One device: SmokePing-style latency, loss and jitter, CPU and memory, every interface, service checks
with TLS days left, the status timeline, its alerts, maintenance windows, parent and children.

Every chart follows the global range (raw probes up to an hour, then the 1m/1h/1d rollups), shades
the minutes whose stored anomaly score reached 0.5 and maintenance windows, and draws the threshold
rules that apply to the device. The interface picked below the interface table is kept in the URL
(``?if=3``). Series come from :func:`analytics.frames.load_metrics`, scores from
:func:`analytics.anomaly.load_scores`, the rest from :mod:`analytics.devices` and :mod:`analytics.alerts`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import wraps
from typing import Any, TypeVar

import dash
import dash_bootstrap_components as dbc
import polars as pl
from dash import ALL, Input, Output, State, ctx, dcc, html
from dash.exceptions import PreventUpdate
from flask import current_app
from sqlalchemy import Engine

from analytics import alerts
from analytics.anomaly import ANOMALOUS, load_scores
from analytics.devices import device_card, device_interfaces, maintenance_windows, service_checks, status_timeline
from analytics.devices import thresholds as device_thresholds
from analytics.frames import load_metrics
from dashboard import ids, timerange
from dashboard.auth import current_org_id
from dashboard.charts import (
    GRAPH_CONFIG,
    Span,
    Threshold,
    empty_figure,
    lines_figure,
    smoke_figure,
    timeline_figure,
)
from dashboard.charts import duration_text as _duration
from dashboard.permissions import allowed, forbidden, guarded
from netpulse.db import raw_connection
from netpulse.errors import NotFound
from netpulse.metrics import UNITS, MetricKind

R = TypeVar("R")

dash.register_page(__name__, path_template="/devices/<device_id>", title="Device", name="Device", nav=False,
                   permission="device:read")

READ, METRICS, ALERTS = "device:read", "metrics:read", "alert:read"
CHART_PX = 300
PLACEHOLDER = "–"
M = MetricKind


def _engine() -> Engine:
    engine: Engine = current_app.extensions["netpulse.engine"]
    return engine


def _graph(graph_id: str, height: int = CHART_PX) -> html.Div:
    return html.Div(dcc.Graph(id=graph_id, config=GRAPH_CONFIG,
                              style={"height": f"{height}px"}), className="np-panel")


def _section(title: str, body: Any, extra: Any = None) -> html.Div:
    return html.Div([html.Div([html.Span(title, className="np-panel-title"), extra], className="np-panel-head"),
                     body], className="np-panel np-panel-list")


def _device_id(raw: Any) -> int | None:
    try:
        value = int(str(raw))
    except ValueError:
        return None
    return value if 0 < value < 2**31 else None


def _any_device_id(callback: Callable[..., R]) -> Callable[..., R]:
    """The page's callbacks take its device id first, from a store the layout fills from the URL; a
    hand-made request may send anything there, and what is no device id names no device (0)."""

    @wraps(callback)
    def run(device_id: Any, *args: Any) -> R:
        return callback(_device_id(device_id) or 0, *args)

    return run


def layout(device_id: str | None = None, **query: Any) -> html.Div:
    if not allowed(READ):
        return forbidden(READ)
    dev = _device_id(device_id)
    if dev is None:
        return html.Div([html.H1("No such device", className="np-page-title"),
                         dcc.Link("Back to the devices", href="/devices")])
    chosen = _device_id(query.get("if"))
    charts: list[Any] = []
    if allowed(METRICS):
        charts = [
            dbc.Row([dbc.Col(_graph(ids.SMOKE_GRAPH, 360), lg=12)], className="g-3 mb-3"),
            dbc.Row([dbc.Col(_graph(ids.LOSS_GRAPH), lg=6), dbc.Col(_graph(ids.CPU_GRAPH), lg=6)],
                    className="g-3 mb-3"),
            html.Div(_graph(ids.TIMELINE_GRAPH, 150), className="mb-3"),
            dbc.Row([
                dbc.Col(_section("Interfaces", html.Div(id=ids.INTERFACES, className="np-table-wrap")), lg=6),
                dbc.Col(html.Div([html.Div(html.Span("Pick an interface", id=ids.INTERFACE_TITLE,
                                                     className="np-panel-title"), className="np-panel-head"),
                                  dcc.Graph(id=ids.INTERFACE_GRAPH, config=GRAPH_CONFIG,
                                            style={"height": f"{CHART_PX}px"})],
                                 className="np-panel np-panel-list"), lg=6),
            ], className="g-3 mb-3"),
        ]
    bottom = [dbc.Col(_section("Service checks", html.Div(id=ids.CHECKS, className="np-table-wrap")), lg=6)]
    if allowed(ALERTS):
        bottom.append(dbc.Col(_section("Alerts", html.Div(id=ids.DEVICE_ALERTS, className="np-table-wrap"),
                                       dcc.Link("all alerts →", href="/alerts", className="np-more")), lg=6))
    return html.Div(
        [
            dcc.Store(id=ids.DEVICE_ID, data=dev),
            dcc.Store(id=ids.page_state("device"), data={"if": chosen}),
            html.Div(id=ids.DEVICE_HEADER, className="np-device-header"),
            dbc.Row([dbc.Col(html.Div(id=ids.DEVICE_RELATIVES), lg=8),
                     dbc.Col(html.Div(id=ids.DEVICE_MAINTENANCE), lg=4)], className="g-3 mb-3"),
            *charts,
            dbc.Row(bottom, className="g-3"),
        ]
    )


# --- header, relatives, maintenance ----------------------------------------------------------------

def _status(status: str) -> html.Span:
    return html.Span([html.Span(className="np-dot"), status.capitalize()], className=f"np-status np-status-{status}")


def _fact(label: str, value: Any) -> html.Div:
    return html.Div([html.Div(label, className="np-fact-label"), html.Div(value, className="np-fact-value")],
                    className="np-fact")


def _link(dev_id: int, name: str, status: str | None = None) -> html.Span:
    dot = [html.Span(className=f"np-dot np-dot-{status}")] if status else []
    return html.Span([*dot, dcc.Link(name, href=f"/devices/{dev_id}")], className="np-devlink")


@dash.callback(
    Output(ids.DEVICE_HEADER, "children"), Output(ids.DEVICE_RELATIVES, "children"),
    Input(ids.DEVICE_ID, "data"), Input(ids.TICK, "n_intervals"),
)
@guarded(READ)  # as GET /api/v1/devices/<id>
@_any_device_id
def refresh_header(device_id: int, _n: int) -> tuple[Any, Any]:
    try:
        with raw_connection(_engine()) as conn:
            d = device_card(conn, current_org_id(), device_id)
    except NotFound:
        return html.Div([html.H1("No such device", className="np-page-title"),
                         html.P("It was deleted, or belongs to another organization.", className="np-muted"),
                         dcc.Link("Back to the devices", href="/devices")]), None
    now = datetime.now(UTC)
    since = d["oper_status_since"]
    status_line = [_status(d["oper_status"])]
    if since is not None:
        status_line.append(html.Span(f"for {_duration(now - since)}", className="np-muted"))
    if d["parent_status"] == "down" and d["oper_status"] == "down":
        status_line.append(html.Span(["unreachable: parent ", _link(d["parent_id"], d["parent"]), " is down"],
                                     className="np-behind"))
    facts = [
        _fact("Address", d["address"]), _fact("Type", d["device_type"].replace("_", " ")),
        _fact("Site", d["site"] or "–"), _fact("Group", d["group"] or "–"),
        _fact("RTT", f"{d['last_rtt_ms']:.1f} ms" if d["last_rtt_ms"] is not None else "–"),
        _fact("Loss", f"{d['last_loss_pct']:.0f} %" if d["last_loss_pct"] is not None else "–"),
        _fact("Last seen", f"{_duration(now - d['last_seen'])} ago" if d["last_seen"] else "never"),
        _fact("SNMP", f"v{d['snmp_version']} on port {d['snmp_port']}" if d["snmp_version"] else "not polled"),
    ]
    tags = [html.Span(t, className="np-chip") for t in d["tags"]]
    header = [
        html.Div([html.H1(d["name"], className="np-page-title"), *status_line, *tags], className="np-device-title"),
        html.Div(facts, className="np-facts"),
        html.Div(d["description"], className="np-muted") if d["description"] else None,
    ]
    parent = _link(d["parent_id"], d["parent"], d["parent_status"]) if d["parent_id"] else html.Span(
        "none (top of its tree)", className="np-muted")
    kids = d["children"]
    down = sum(1 for c in kids if c["oper_status"] == "down")
    children: Any = html.Span("none", className="np-muted") if not kids else html.Div(
        [_link(c["id"], c["name"], c["oper_status"]) for c in kids[:60]]
        + ([html.Span(f"and {len(kids) - 60} more", className="np-muted")] if len(kids) > 60 else []),
        className="np-children")
    relatives = html.Div([
        html.Div([html.Span("Parent", className="np-fact-label"), parent], className="np-rel"),
        html.Div([html.Span(f"Children ({len(kids)}{f', {down} down' if down else ''})", className="np-fact-label"),
                  children], className="np-rel"),
    ], className="np-panel np-relatives")
    return header, relatives


def _maintenance_spans(conn: Any, device_id: int, window: timerange.Window) -> list[Span]:
    return [Span(w["starts_at"], w["ends_at"], f"maintenance: {w['reason'] or w['scope']}")
            for w in maintenance_windows(conn, current_org_id(), device_id, window.start, window.end)]


@dash.callback(Output(ids.DEVICE_MAINTENANCE, "children"), Input(ids.DEVICE_ID, "data"),
               Input(ids.RANGE, "data"), Input(ids.TICK, "n_intervals"))
@guarded(READ)
@_any_device_id
def refresh_maintenance(device_id: int, state: dict[str, Any] | None, _n: int) -> Any:
    window = timerange.window(state)
    now = datetime.now(UTC)
    with raw_connection(_engine()) as conn:
        try:
            found = maintenance_windows(conn, current_org_id(), device_id, window.start,
                                        max(window.end, now + timedelta(days=30)))
        except NotFound:
            return None
    if not found:
        body: Any = html.Div("No maintenance in this range or the next 30 days.", className="np-muted")
    else:
        body = html.Ul([html.Li([
            html.Span("now · " if w["starts_at"] <= now < w["ends_at"] else "", className="np-text-degraded"),
            f"{w['starts_at']:%b %d %H:%M} – {w['ends_at']:%b %d %H:%M} UTC",
            html.Span(f" · {w['scope']}" + (f" {w['scope_ref']}" if w["scope_ref"] else ""), className="np-muted"),
            html.Div(w["reason"], className="np-muted") if w["reason"] else None]) for w in found],
            className="np-maint-list")
    return html.Div([html.Div("Maintenance windows", className="np-fact-label"), body],
                    className="np-panel np-relatives")


# --- charts -------------------------------------------------------------------------------------------

def _anomaly_spans(scores: pl.DataFrame, metric: MetricKind, ifindex: int = 0) -> list[Span]:
    """Consecutive anomalous minutes as shaded spans."""
    part = scores.filter((pl.col("metric_id") == int(metric)) & (pl.col("ifindex") == ifindex))
    spans: list[Span] = []
    minute = timedelta(minutes=1)
    for t in part["time"].to_list():
        if spans and t - spans[-1].end <= minute:
            spans[-1] = Span(spans[-1].start, t + minute, spans[-1].label)
        else:
            spans.append(Span(t, t + minute, "anomaly"))
    return spans


def _thresholds(conn: Any, device_id: int, metrics: Sequence[MetricKind]) -> list[Threshold]:
    return [Threshold(float(r.value), f"{r.name} ({r.comparator} {r.value:g} {UNITS[r.metric]})")
            for r in device_thresholds(conn, current_org_id(), device_id)
            if r.metric is not None and r.metric in metrics and r.value is not None]


def _series(frame: pl.DataFrame, metric: MetricKind, column: str = "value") -> dict[datetime, float]:
    part = frame.filter(pl.col("metric_id") == int(metric))
    if column not in part.columns:
        column = "value"
    return dict(zip(part["time"].to_list(), part[column].to_list(), strict=True))


def _read(conn: Any, device_id: int, metrics: Sequence[MetricKind], window: timerange.Window) -> pl.DataFrame:
    return load_metrics(conn, current_org_id(), metrics=list(metrics), start=window.start, end=window.end,
                        devices=[device_id])


def _scores(conn: Any, device_id: int, metrics: Sequence[MetricKind], window: timerange.Window) -> pl.DataFrame:
    return load_scores(conn, current_org_id(), start=window.start, end=window.end, devices=[device_id],
                       metrics=list(metrics), min_score=ANOMALOUS)


@dash.callback(Output(ids.SMOKE_GRAPH, "figure"), Input(ids.DEVICE_ID, "data"), Input(ids.RANGE, "data"),
               Input(ids.TICK, "n_intervals"))
@guarded(METRICS)
@_any_device_id
def refresh_smoke(device_id: int, state: dict[str, Any] | None, _n: int) -> Any:
    window = timerange.window(state)
    wanted = (M.ICMP_RTT_MS, M.ICMP_RTT_MIN_MS, M.ICMP_RTT_MAX_MS, M.ICMP_LOSS_PCT)
    with raw_connection(_engine()) as conn:
        frame = _read(conn, device_id, wanted, window)
        spans = _anomaly_spans(_scores(conn, device_id, [M.ICMP_RTT_MS], window), M.ICMP_RTT_MS)
        maintenance = _maintenance_spans(conn, device_id, window)
        lines = _thresholds(conn, device_id, [M.ICMP_RTT_MS])
    rollup = "min" in frame.columns
    median = _series(frame, M.ICMP_RTT_MS)
    loss = _series(frame, M.ICMP_LOSS_PCT)
    times = sorted(set(median) | set(loss))
    low = _series(frame, M.ICMP_RTT_MIN_MS, "min" if rollup else "value")
    high = _series(frame, M.ICMP_RTT_MAX_MS, "max" if rollup else "value")
    inner_low = _series(frame, M.ICMP_RTT_MIN_MS)
    inner_high = _series(frame, M.ICMP_RTT_MAX_MS)
    fig = smoke_figure(times, [median.get(t) for t in times], [low.get(t) for t in times],
                       [high.get(t) for t in times], [inner_low.get(t) for t in times],
                       [inner_high.get(t) for t in times], [loss.get(t) for t in times], window.start, window.end,
                       spans=spans, maintenance=maintenance, thresholds=lines)
    return fig


@dash.callback(Output(ids.LOSS_GRAPH, "figure"), Input(ids.DEVICE_ID, "data"), Input(ids.RANGE, "data"),
               Input(ids.TICK, "n_intervals"))
@guarded(METRICS)
@_any_device_id
def refresh_loss(device_id: int, state: dict[str, Any] | None, _n: int) -> Any:
    window = timerange.window(state)
    with raw_connection(_engine()) as conn:
        frame = _read(conn, device_id, (M.ICMP_LOSS_PCT, M.ICMP_JITTER_MS), window)
        spans = _anomaly_spans(_scores(conn, device_id, [M.ICMP_LOSS_PCT], window), M.ICMP_LOSS_PCT)
        maintenance = _maintenance_spans(conn, device_id, window)
        lines = _thresholds(conn, device_id, [M.ICMP_LOSS_PCT])
    series = []
    for metric, name in ((M.ICMP_LOSS_PCT, "Loss (%)"), (M.ICMP_JITTER_MS, "Jitter (ms)")):
        points = _series(frame, metric)
        series.append((name, list(points), list(points.values())))
    return lines_figure(series, window.start, window.end, title="Packet loss and jitter", y_title="Loss (%)",
                        spans=spans, maintenance=maintenance, thresholds=lines, revision="loss",
                        y2=["Jitter (ms)"], y2_title="Jitter (ms)")


@dash.callback(Output(ids.CPU_GRAPH, "figure"), Input(ids.DEVICE_ID, "data"), Input(ids.RANGE, "data"),
               Input(ids.TICK, "n_intervals"))
@guarded(METRICS)
@_any_device_id
def refresh_cpu(device_id: int, state: dict[str, Any] | None, _n: int) -> Any:
    window = timerange.window(state)
    with raw_connection(_engine()) as conn:
        frame = _read(conn, device_id, (M.CPU_PCT, M.MEM_PCT), window)
        spans = _anomaly_spans(_scores(conn, device_id, [M.CPU_PCT], window), M.CPU_PCT)
        maintenance = _maintenance_spans(conn, device_id, window)
        lines = _thresholds(conn, device_id, [M.CPU_PCT, M.MEM_PCT])
    if frame.is_empty():
        return empty_figure("No CPU or memory samples in this range (polled over SNMP)")
    series = []
    for metric, name in ((M.CPU_PCT, "CPU (%)"), (M.MEM_PCT, "Memory (%)")):
        points = _series(frame, metric)
        series.append((name, list(points), list(points.values())))
    fig = lines_figure(series, window.start, window.end, title="CPU and memory", y_title="Used (%)", spans=spans,
                       maintenance=maintenance, thresholds=lines, revision="cpu")
    fig["layout"]["yaxis"]["range"] = [0, 100]
    return fig


@dash.callback(Output(ids.TIMELINE_GRAPH, "figure"), Input(ids.DEVICE_ID, "data"), Input(ids.RANGE, "data"),
               Input(ids.TICK, "n_intervals"))
@guarded(METRICS)  # status history, as GET /api/v1/sla/outages
@_any_device_id
def refresh_timeline(device_id: int, state: dict[str, Any] | None, _n: int) -> Any:
    window = timerange.window(state)
    with raw_connection(_engine()) as conn:
        frame = status_timeline(conn, current_org_id(), device_id, window.start, window.end)
    return timeline_figure(frame, window.start, window.end)


# --- interfaces -------------------------------------------------------------------------------------

def _bps(value: float | None) -> str:
    if value is None:
        return PLACEHOLDER
    for unit, size in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value:.0f} bit/s"


def _pct(value: float | None) -> str:
    return PLACEHOLDER if value is None else f"{value:.1f} %"


@dash.callback(Output(ids.INTERFACES, "children"), Input(ids.DEVICE_ID, "data"), Input(ids.RANGE, "data"),
               Input(ids.TICK, "n_intervals"), Input(ids.page_state("device"), "data"))
@guarded(METRICS)
@_any_device_id
def refresh_interfaces(device_id: int, state: dict[str, Any] | None, _n: int, page: dict[str, Any] | None) -> Any:
    window = timerange.window(state)
    with raw_connection(_engine()) as conn:
        found = device_interfaces(conn, current_org_id(), device_id, window.start, window.end)
    if not found:
        return html.Div("No interfaces: none polled over SNMP, and no interface samples in this range.",
                        className="np-muted")
    chosen = (page or {}).get("if")
    head = html.Thead(html.Tr([html.Th("Interface"), *(html.Th(h, className="np-num") for h in ("In", "Out", "Util",
                                                                                                 "Err/s"))]))

    def pair(avg: str, peak: str) -> list[html.Div]:
        return [html.Div(avg), html.Div(f"peak {peak}", className="np-site")]

    rows = []
    for i in found:
        util = i.get("util_max_pct")
        css = "np-if-row" + (" np-selected" if i["ifindex"] == chosen else "") + (
            " np-hot" if util is not None and util >= 90 else "")
        speed = f" · {_bps(i['speed_bps'])}" if i["speed_bps"] else ""
        rows.append(html.Tr([
            html.Td([html.Div(i["name"], className="np-device"),
                     html.Div(f"ifIndex {i['ifindex']} · {i['oper_status']}{speed}", className="np-site")]),
            html.Td(pair(_bps(i.get("in_bps")), _bps(i.get("in_max_bps"))), className="np-num"),
            html.Td(pair(_bps(i.get("out_bps")), _bps(i.get("out_max_bps"))), className="np-num"),
            html.Td(pair(_pct(i.get("util_pct")), _pct(util)), className="np-num"),
            html.Td(PLACEHOLDER if i.get("errors_ps") is None else f"{i['errors_ps']:.2f}", className="np-num"),
        ], id={"type": ids.INTERFACE_ROW, "index": i["ifindex"]}, className=css, title="Show its traffic"))
    return html.Table([head, html.Tbody(rows)], className="np-table np-if-table")


@dash.callback(Output(ids.page_state("device"), "data"), Input({"type": ids.INTERFACE_ROW, "index": ALL}, "n_clicks"),
               State(ids.page_state("device"), "data"), prevent_initial_call=True)
@guarded(READ)
def pick_interface(_clicks: list[int | None], page: dict[str, Any] | None) -> dict[str, Any]:
    if not any(t.get("value") for t in ctx.triggered) or not isinstance(ctx.triggered_id, dict):
        raise PreventUpdate
    return {**(page or {}), "if": int(ctx.triggered_id["index"])}


@dash.callback(Output(ids.INTERFACE_GRAPH, "figure"), Output(ids.INTERFACE_TITLE, "children"),
               Input(ids.DEVICE_ID, "data"), Input(ids.RANGE, "data"), Input(ids.TICK, "n_intervals"),
               Input(ids.page_state("device"), "data"))
@guarded(METRICS)
@_any_device_id
def refresh_interface(device_id: int, state: dict[str, Any] | None, _n: int, page: dict[str, Any] | None) -> Any:
    ifindex = (page or {}).get("if")
    if not ifindex:
        return empty_figure("Pick an interface in the table to see its traffic"), "Interface traffic"
    window = timerange.window(state)
    wanted = (M.IF_IN_BPS, M.IF_OUT_BPS, M.IF_UTIL_PCT, M.IF_ERRORS_PS)
    with raw_connection(_engine()) as conn:
        frame = _read(conn, device_id, wanted, window).filter(pl.col("ifindex") == int(ifindex))
        spans = _anomaly_spans(_scores(conn, device_id, [M.IF_UTIL_PCT], window), M.IF_UTIL_PCT, int(ifindex))
        maintenance = _maintenance_spans(conn, device_id, window)
        lines = _thresholds(conn, device_id, [M.IF_UTIL_PCT])
    series = []
    for metric, name in ((M.IF_IN_BPS, "In"), (M.IF_OUT_BPS, "Out"), (M.IF_UTIL_PCT, "Utilisation (%)")):
        points = _series(frame, metric)
        series.append((name, list(points), list(points.values())))
    fig = lines_figure(series, window.start, window.end, title="Traffic in and out, utilisation", y_title="bit/s",
                       spans=spans, maintenance=maintenance, thresholds=lines, revision=f"if-{ifindex}",
                       y2=["Utilisation (%)"], y2_title="Utilisation (%)", y2_range=(0, 100), y2_thresholds=True)
    fig["layout"]["yaxis"]["tickformat"] = ".3s"
    errors = [v for v in _series(frame, M.IF_ERRORS_PS).values() if v is not None]
    worst = max(errors, default=0.0)
    return fig, f"Interface ifIndex {ifindex} · " + (f"errors up to {worst:.2f}/s" if worst else "no errors")


# --- checks and alerts --------------------------------------------------------------------------------

def _tls(days: float | None) -> html.Span:
    if days is None:
        return html.Span(PLACEHOLDER, className="np-muted")
    css = "np-text-down" if days < 7 else "np-text-degraded" if days < 30 else "np-text-up"
    return html.Span(f"{days:.0f} days" if days >= 0 else f"expired {-days:.0f} days ago", className=css)


@dash.callback(Output(ids.CHECKS, "children"), Input(ids.DEVICE_ID, "data"), Input(ids.TICK, "n_intervals"))
@guarded(METRICS)
@_any_device_id
def refresh_checks(device_id: int, _n: int) -> Any:
    with raw_connection(_engine()) as conn:
        checks = service_checks(conn, current_org_id(), device_id)
    if not checks:
        return html.Div("No service checks (add one with `netpulse devices check add`).", className="np-muted")
    now = datetime.now(UTC)
    rows = []
    for c in checks:
        state = "unknown" if c["ok"] is None else "up" if c["ok"] else "down"
        label = {"up": "Passing", "down": "Failing", "unknown": "Not run lately"}[state]
        target = c["url"] if c["kind"] == "http" else f"tcp/{c['port']}"
        rows.append(html.Tr([
            html.Td(html.Span([html.Span(className="np-dot"), label], className=f"np-status np-status-{state}")),
            html.Td([html.Div(c["name"], className="np-device"), html.Div(target, className="np-site")]),
            html.Td(str(int(c["http_status"])) if c["http_status"] is not None else PLACEHOLDER, className="np-num"),
            html.Td(f"{c['response_ms']:.0f} ms" if c["response_ms"] is not None else PLACEHOLDER, className="np-num"),
            html.Td(_tls(c["tls_days"])),
            html.Td(f"{_duration(now - c['checked_at'])} ago" if c["checked_at"] else "never", className="np-since"),
        ]))
    head = html.Thead(html.Tr([html.Th(h) for h in ("Status", "Check", "HTTP", "Response", "TLS expires in",
                                                    "Checked")]))
    return html.Table([head, html.Tbody(rows)], className="np-table")


@dash.callback(Output(ids.DEVICE_ALERTS, "children"), Input(ids.DEVICE_ID, "data"), Input(ids.TICK, "n_intervals"))
@guarded(ALERTS)  # as GET /api/v1/alerts?device=<id>
@_any_device_id
def refresh_alerts(device_id: int, _n: int) -> Any:
    with raw_connection(_engine()) as conn:
        found, total = alerts.list_alerts(conn, current_org_id(), alerts.AlertFilter(state="all", device_id=device_id),
                                          limit=12)
    if not found:
        return html.Div("No alerts for this device.", className="np-muted")
    now = datetime.now(UTC)
    rows = [html.Tr([
        html.Td(html.Span(a["severity"], className=f"np-sev np-sev-{a['severity']}")),
        html.Td(a["status"].capitalize(), className=f"np-astate-{a['status']}"),
        html.Td([html.Div(a["message"]),
                 html.Div(f"suppressed: behind {a['parent']}" if a["suppressed_reason"] == "parent_down" and a["parent"]
                          else "", className="np-behind")]),
        html.Td(f"{_duration(now - a['created_at'])} ago", className="np-since"),
    ]) for a in found]
    more = html.Div(f"{total - len(found):,} older", className="np-more") if total > len(found) else None
    return [html.Table(html.Tbody(rows), className="np-table"), more]

