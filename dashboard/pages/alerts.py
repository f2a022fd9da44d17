"""Alerts: what is open now, by severity, and each alert's lifecycle (details, history, acknowledge, resolve).

One ``dcc.Interval`` (every 10 s) refreshes the KPI cards, the chart, the table and the selected alert.
Every read filters by the signed-in user's organization (the token's ``org`` claim), so another
organization's alert is never listed and, selected by id, is simply not found. The acknowledge and
resolve controls exist only for roles granted ``alert:write`` (``netpulse.users.PERMISSIONS``), and
the callback that runs them checks that permission again: a callback can be called without its button.
State changes go through :mod:`analytics.alerts` (``acknowledge``/``resolve`` write the alert and its
history event in one transaction), as the signed-in user.

The reads below are this page's own (there is no listing function in ``analytics.alerts`` yet); they are
parameterised statements kept apart from the callbacks.
"""

from __future__ import annotations

import math
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import dash
import dash_bootstrap_components as dbc
import plotly.graph_objects as go
import psycopg
import structlog
from dash import ALL, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate
from flask import current_app
from psycopg.rows import dict_row
from sqlalchemy import Engine

from analytics import alerts
from dashboard import ids
from dashboard.auth import current_claims, current_org_id, role_allows
from dashboard.charts import MUTED, TEMPLATE
from dashboard.charts import duration_text as _duration
from netpulse.db import raw_connection
from netpulse.errors import NetPulseError

dash.register_page(__name__, path="/alerts", title="Alerts", name="Alerts", order=1)

log = structlog.get_logger("netpulse.dashboard.alerts")

REFRESH_MS = 10_000
WRITE_PERMISSION = "alert:write"     # acknowledging and resolving (operator and admin in the spec's table)
MAX_ROWS = 200                       # the table shows the newest this many and says so
MAX_NOTE = 2000                      # as the REST API
CHART_HOURS = 24
CHART_HEIGHT_PX = 230
PLACEHOLDER = "–"

SEVERITY_COLORS = {"critical": "#f85149", "warning": "#d29922", "info": "#58a6ff"}
SUPPRESSION_REASONS = {"maintenance": "maintenance", "parent_down": "parent down"}
# Notes chips: (text, tooltip). Suppressed and flapping alerts are kept but not notified.
SUPPRESSION_CHIPS = {"maintenance": ("Maintenance", "Suppressed: the device is in a maintenance window"),
                     "parent_down": ("Parent down", "Suppressed: a device upstream is down")}
EVENT_LABELS = {"opened": "Opened", "repeated": "Repeated", "acknowledged": "Acknowledged", "resolved": "Resolved",
                "suppressed": "Suppressed", "unsuppressed": "Unsuppressed", "flapping": "Flapping",
                "escalated": "Escalated", "notified": "Notified", "digested": "Sent in digest", "queued": "Queued",
                "undelivered": "Not delivered"}
# Delivery chips: an alert whose notification did not reach anyone.
DELIVERY_CHIPS = {"no_channel": ("No channel", "Not delivered: no channel. This organization has no enabled "
                                                "notification channel: add one"),
                  "failed": ("Not delivered", "Not delivered: every channel failed for good (see the history)")}
# What an analytics.alerts error means to the person who clicked (its message names the alert's UUID).
ERROR_TEXT = {
    "ALERT_ALREADY_RESOLVED": "This alert is already resolved: there is nothing left to do.",
    "ALERT_ALREADY_ACKNOWLEDGED": "This alert was already acknowledged.",
    "ALERT_NOT_FOUND": "This alert no longer exists.",
}

# (key, label, accent): the accent names the CSS modifier of the card (np-kpi-<accent>).
KPI_CARDS = (
    ("critical", "Critical", "critical"),
    ("warning", "Warning", "warning"),
    ("info", "Info", "info"),
    ("acknowledged", "Acknowledged", "ack"),
    ("suppressed", "Suppressed", "suppressed"),
    ("flapping", "Flapping", "flapping"),
)

# --- reads (organization-scoped, parameterised) ------------------------------------------------------

_OPENED_PER_HOUR = """
SELECT date_trunc('hour', created_at AT TIME ZONE 'UTC') AS hour, severity, count(*) AS n
FROM alerts WHERE organization_id = %(org)s AND created_at >= %(since)s
GROUP BY 1, 2
"""


def _engine() -> Engine:
    engine: Engine = current_app.extensions["netpulse.engine"]
    return engine


def _rows(query: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    with raw_connection(_engine()) as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params).fetchall()


def _detail(org_id: uuid.UUID, alert_id: uuid.UUID) -> tuple[dict[str, Any] | None, list[tuple[Any, ...]]]:
    """The alert (None when this organization has no such alert) and its history, oldest event first."""
    with raw_connection(_engine()) as conn:
        row = alerts.get_alert(conn, org_id, alert_id)
        # history() does not filter by organization: it runs only once the alert was found in this one.
        events = alerts.history(conn, alert_id) if row is not None else []
    return row, list(events)


def _can_act() -> bool:
    return role_allows(str(current_claims().get("role", "")), WRITE_PERMISSION)


def _parse_id(raw: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(raw))
    except ValueError:
        return None


# --- formatting ----------------------------------------------------------------------------------------



def _ago(ts: datetime | None, now: datetime) -> str:
    return PLACEHOLDER if ts is None else f"{_duration(now - ts)} ago"


def _stamp(ts: datetime | None) -> str:
    return PLACEHOLDER if ts is None else ts.astimezone(UTC).strftime("%b %d, %H:%M:%S UTC")


_UNIT_SPACE = re.compile(r"(?<=\d) (?=%|ms\b|s\b|min\b|Mbit/s|bit/s)")


def _message(text: str) -> str:
    """The alert's message with a number and its unit kept on one line ("5 %" never splits)."""
    return _UNIT_SPACE.sub("\u00a0", text)


def _number(value: Any) -> str:
    return f"{value:,.6g}" if isinstance(value, int | float) else str(value)


def _severity(severity: str) -> html.Span:
    return html.Span(severity, className=f"np-sev np-sev-{severity}")


def _state(status: str) -> html.Span:
    return html.Span([html.Span(className="np-dot"), status.capitalize()], className=f"np-astate np-astate-{status}")


def _chips(row: dict[str, Any]) -> list[html.Span]:
    chips = []
    if row["suppressed"]:
        reason = str(row["suppressed_reason"])
        text, tip = SUPPRESSION_CHIPS.get(reason, (reason, "Suppressed"))
        chips.append(html.Span(text, title=tip, className="np-chip np-chip-suppressed"))
    if row["flapping"]:
        chips.append(html.Span("Flapping", title="Opening and clearing repeatedly: notifications are held",
                               className="np-chip np-chip-flapping"))
    if row.get("delivery_status") in DELIVERY_CHIPS:
        text, tip = DELIVERY_CHIPS[str(row["delivery_status"])]
        chips.append(html.Span(text, title=tip, className="np-chip np-chip-undelivered"))
    if row["escalation_level"]:
        chips.append(html.Span(f"Tier {row['escalation_level']}", title="Escalated to this tier of its policy",
                               className="np-chip np-chip-escalated"))
    return chips


def _device(row: dict[str, Any]) -> list[html.Div]:
    if row["device"] is None:
        return [html.Div("Organization", className="np-device np-muted")]
    return [html.Div(row["device"], className="np-device"), html.Div(row["site"] or "No site", className="np-site")]


def _kpi(key: str, label: str, accent: str) -> dbc.Col:
    return dbc.Col(
        html.Div(
            [
                html.Div(label, className="np-kpi-label"),
                html.Div(PLACEHOLDER, id=ids.ALERT_KPI[key], className="np-kpi-value"),
                html.Div("", id=ids.ALERT_KPI_SUB[key], className="np-kpi-sub"),
            ],
            className=f"np-kpi np-kpi-{accent}",
        ),
        xs=6, md=4, xl=2,
    )


def _toggle_options(values: dict[str, str], labels: dict[str, str]) -> list[dict[str, str]]:
    return [{"label": labels[k], "value": k, "label_id": label_id} for k, label_id in values.items()]


def _filters() -> html.Div:
    toggle = {"input_class_name": "btn-check", "label_class_name": "btn btn-sm btn-outline-secondary",
              "label_checked_class_name": "active", "class_name": "btn-group np-toggle", "inline": True}
    return html.Div(
        [
            dbc.RadioItems(id=ids.ALERTS_STATUS_FILTER, value="open",
                           options=_toggle_options(ids.ALERTS_STATUS_OPTION,
                                                   {"open": "Open", "all": "All incl. resolved"}),
                           **toggle),
            dbc.Checklist(id=ids.ALERTS_SEVERITY_FILTER, value=list(ids.ALERT_SEVERITIES),
                          options=_toggle_options(ids.ALERTS_SEVERITY_OPTION,
                                                  {s: s.capitalize() for s in ids.ALERT_SEVERITIES}),
                          **toggle),
        ],
        className="np-filters",
    )


def _actions(can_act: bool) -> list[Any]:
    if not can_act:
        return [html.Div("View only: acknowledging and resolving alerts need the operator or admin role.",
                         className="np-readonly")]
    return [
        html.Div("Note", className="np-field-label"),
        dbc.Textarea(id=ids.ALERT_NOTE_ID, rows=2, maxLength=MAX_NOTE, className="np-note",
                     placeholder="What you found or did (optional to acknowledge, required to resolve)"),
        dbc.FormFeedback("Resolving needs a note: say why the alert is resolved (e.g. “replaced the faulty SFP”).",
                         id=ids.ALERT_NOTE_FEEDBACK, type="invalid"),
        html.Div(
            [
                dbc.Button("Acknowledge", id=ids.alert_action("acknowledge"), color="info", outline=True, size="sm",
                           title="Take the alert: stops its escalation"),
                dbc.Button("Resolve", id=ids.alert_action("resolve"), color="success", size="sm",
                           title="Close the alert by hand, with a note saying why"),
            ],
            className="np-action-buttons",
        ),
    ]


# --- layout ----------------------------------------------------------------------------------------------

_ARIA_CLOSE: dict[str, Any] = {"aria-label": "Close"}  # wildcard props go in as keywords


def layout(**_query: Any) -> html.Div:
    can_act = _can_act()
    table_panel = html.Div(
        [
            html.Div([_filters(), html.Span(PLACEHOLDER, id=ids.ALERTS_COUNT, className="np-count")],
                     className="np-panel-head np-alerts-head"),
            html.Div(id=ids.ALERTS_TABLE, className="np-alerts-table-wrap"),
        ],
        className="np-panel np-panel-list",
    )
    detail_panel = html.Div(
        [
            html.Div(
                [html.Span("Alert details", className="np-panel-title"),
                 html.Button(id=ids.ALERT_CLOSE, className="btn-close", title="Close the details", hidden=True,
                             **_ARIA_CLOSE)],
                className="np-panel-head",
            ),
            html.Div(html.Div("Select an alert to see its details and history.", className="np-empty np-empty-pad"),
                     id=ids.ALERT_DETAIL),
            html.Div(_actions(can_act), id=ids.ALERT_ACTIONS, className="np-actions", hidden=True),
            html.Div(id=ids.ALERT_ACTION_RESULT),
            html.Div(id=ids.ALERT_HISTORY),
        ],
        className="np-panel np-panel-list np-detail",
    )
    return html.Div(
        [
            dcc.Interval(id=ids.ALERTS_REFRESH, interval=REFRESH_MS, n_intervals=0),
            dcc.Store(id=ids.ALERT_SELECTED, data=None),
            dcc.Store(id=ids.ALERT_VERSION, data=0),
            html.Div(
                [
                    html.H1("Alerts", className="np-page-title"),
                    html.Div(["Auto-refresh every 10 s · updated ", html.Span(PLACEHOLDER, id=ids.ALERTS_UPDATED_AT)],
                             className="np-page-meta"),
                ],
                className="np-page-header",
            ),
            dbc.Row([_kpi(*card) for card in KPI_CARDS], className="g-3 mb-3"),
            html.Div(
                dcc.Graph(id=ids.ALERTS_CHART, config={"displayModeBar": False, "responsive": True},
                          style={"height": f"{CHART_HEIGHT_PX}px"}),
                className="np-panel mb-3",
            ),
            dbc.Row([dbc.Col(table_panel, lg=8), dbc.Col(detail_panel, lg=4)], className="g-3"),
        ]
    )


# --- KPI cards and chart ---------------------------------------------------------------------------------

def _kpi_texts(c: dict[str, int]) -> tuple[list[str], list[str]]:
    values = [f"{c[key]:,}" for key, _, _ in KPI_CARDS]
    subs = []
    for severity in ids.ALERT_SEVERITIES:
        open_, firing = c[severity], c[f"{severity}_firing"]
        parts = [f"{n:,} {what}" for n, what in ((firing, "firing"), (open_ - firing, "acknowledged")) if n]
        subs.append(" · ".join(parts) or "none open")
    subs.append("being worked on" if c["acknowledged"] else "none")
    reasons = [f"{c[k]:,} {text}" for k, text in SUPPRESSION_REASONS.items() if c[k]]
    subs.append(" · ".join(reasons) if reasons else "maintenance or parent down")
    subs.append("notifications held" if c["flapping"] else "none")
    return values, subs


@dash.callback(
    [Output(ids.ALERT_KPI[k], "children") for k in ids.ALERT_KPI_KEYS]
    + [Output(ids.ALERT_KPI_SUB[k], "children") for k in ids.ALERT_KPI_KEYS]
    + [Output(ids.ALERT_KPI[k], "className") for k in ids.ALERT_KPI_KEYS]
    + [Output(ids.ALERTS_UPDATED_AT, "children")],
    Input(ids.ALERTS_REFRESH, "n_intervals"), Input(ids.ALERT_VERSION, "data"),
)
def refresh_kpis(_n: int, _version: int) -> list[str]:
    with raw_connection(_engine()) as conn:
        counts = alerts.counts(conn, current_org_id())
    values, subs = _kpi_texts({k: int(v) for k, v in counts.items()})
    css = ["np-kpi-value" if v != "0" else "np-kpi-value np-zero" for v in values]
    return [*values, *subs, *css, datetime.now(UTC).strftime("%H:%M:%S UTC")]


def opened_figure(rows: list[dict[str, Any]], now: datetime) -> go.Figure:
    """Alerts opened per hour by severity over the last ``CHART_HOURS`` hours (stacked bars, UTC)."""
    last = now.astimezone(UTC).replace(tzinfo=None, minute=0, second=0, microsecond=0)
    hours = [last - timedelta(hours=i) for i in range(CHART_HOURS - 1, -1, -1)]
    counts = {(r["hour"], r["severity"]): int(r["n"]) for r in rows}
    fig = go.Figure()
    for severity in ids.ALERT_SEVERITIES:
        fig.add_trace(go.Bar(x=hours, y=[counts.get((h, severity), 0) for h in hours], name=severity.capitalize(),
                             marker={"color": SEVERITY_COLORS[severity], "line": {"width": 0}},
                             hovertemplate=f"%{{y}} {severity}<extra></extra>"))
    per_hour = [sum(counts.get((h, s), 0) for s in ids.ALERT_SEVERITIES) for h in hours]
    top = max(per_hour, default=0)
    fig.update_layout(
        template=TEMPLATE,
        barmode="stack",
        bargap=0.3,
        title={"text": f"Alerts opened per hour · last {CHART_HOURS} h", "y": 0.93, "yanchor": "top"},
        margin={"l": 56, "r": 16, "t": 56, "b": 36},
        xaxis={"tickformat": "%H:%M", "range": [hours[0] - timedelta(minutes=30), hours[-1] + timedelta(minutes=30)],
               "showgrid": False},
        yaxis={"title": {"text": "Alerts"}, "tick0": 0, "dtick": max(1, math.ceil(top / 4)),
               "range": [0, max(top, 1) * 1.1]},
        showlegend=top > 0,
        uirevision="alerts-opened",
    )
    if top == 0:
        fig.add_annotation(text=f"No alerts opened in the last {CHART_HOURS} h", showarrow=False, xref="paper",
                           yref="paper", x=0.5, y=0.5, font={"size": 14, "color": MUTED})
        fig.update_yaxes(showticklabels=False)
    return fig


@dash.callback(Output(ids.ALERTS_CHART, "figure"),
               Input(ids.ALERTS_REFRESH, "n_intervals"), Input(ids.ALERT_VERSION, "data"))
def refresh_chart(_n: int, _version: int) -> go.Figure:
    now = datetime.now(UTC)
    since = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=CHART_HOURS - 1)
    return opened_figure(_rows(_OPENED_PER_HOUR, {"org": current_org_id(), "since": since}), now)


# --- table -----------------------------------------------------------------------------------------------

TABLE_HEADINGS = ("Severity", "Status", "Device", "Message", "Began", "Opened", "Count", "Notes")


def _table_row(row: dict[str, Any], now: datetime, selected: str | None) -> html.Tr:
    alert_id = str(row["id"])
    css = "np-alert-row" + (" np-selected" if alert_id == selected else "")
    if row["status"] == "resolved":
        css += " np-resolved"
    return html.Tr(
        [
            html.Td(_severity(row["severity"])),
            html.Td(_state(row["status"])),
            html.Td(_device(row)),
            html.Td(_message(row["message"]), className="np-message"),
            html.Td(_ago(row["started_at"], now), title=_stamp(row["started_at"]), className="np-when"),
            html.Td(_ago(row["created_at"], now), title=_stamp(row["created_at"]), className="np-when"),
            html.Td(f"{row['occurrences']:,}", className="np-num"),
            html.Td(html.Div(_chips(row), className="np-notes")),
        ],
        id=ids.alert_row(alert_id),
        className=css,
    )


@dash.callback(
    Output(ids.ALERTS_TABLE, "children"), Output(ids.ALERTS_COUNT, "children"),
    Input(ids.ALERTS_REFRESH, "n_intervals"), Input(ids.ALERTS_STATUS_FILTER, "value"),
    Input(ids.ALERTS_SEVERITY_FILTER, "value"), Input(ids.ALERT_SELECTED, "data"), Input(ids.ALERT_VERSION, "data"),
)
def refresh_table(_n: int, status: str | None, severities: list[str] | None, selected: str | None,
                  _version: int) -> tuple[Any, str]:
    show_all = status == "all"
    chosen = [s for s in (severities or []) if s in ids.ALERT_SEVERITIES]
    if not chosen:
        return html.Div("Pick at least one severity to list alerts.", className="np-empty np-empty-pad"), "0"
    where = alerts.AlertFilter(state="all" if show_all else "open", severities=chosen)
    with raw_connection(_engine()) as conn:
        rows, total = alerts.list_alerts(conn, current_org_id(), where, limit=MAX_ROWS)
    count = f"{total:,} {'in all' if show_all else 'open'}"
    if not rows:
        text = "No alerts match these filters." if show_all else "No open alerts: all clear."
        return html.Div([html.Span("✓", className="np-ok-mark"), text], className="np-empty np-empty-pad"), count
    now = datetime.now(UTC)
    body: list[Any] = [html.Table(
        [html.Thead(html.Tr([html.Th(h) for h in TABLE_HEADINGS])),
         html.Tbody([_table_row(r, now, selected) for r in rows])],
        className="np-table np-alerts-table",
    )]
    if total > len(rows):
        body.append(html.Div(f"Showing the newest {len(rows):,} of {total:,}", className="np-more"))
    return body, count


@dash.callback(
    Output(ids.ALERT_SELECTED, "data"),
    Input({"type": ids.ALERT_ROW, "index": ALL}, "n_clicks"), Input(ids.ALERT_CLOSE, "n_clicks"),
    prevent_initial_call=True,
)
def select_alert(_rows: list[int | None], _close: int | None) -> str | None:
    # Re-rendered rows (every refresh) come without clicks: only a real click selects.
    if not any(t.get("value") for t in ctx.triggered):
        raise PreventUpdate
    trigger = ctx.triggered_id
    if trigger == ids.ALERT_CLOSE:
        return None
    return str(trigger["index"])


# --- details, history and actions -------------------------------------------------------------------------

def _event_details(kind: str, details: Any) -> str:
    """One line for an event's ``details`` (jsonb written by analytics.alerts)."""
    if not isinstance(details, dict) or not details:
        return ""
    d = details
    if kind == "notified" and d.get("channel"):
        return f"tier {d.get('tier') or 0} via {d['channel']} (attempt {d.get('attempt', 1)})"
    if kind in ("notified", "escalated", "queued"):
        channels = ", ".join(str(c) for c in d.get("channels") or []) or "no channels"
        return f"tier {d.get('tier') or 0} → {channels}"
    if kind == "undelivered":  # the note says why
        return f"last tried via {d['channel']}" if d.get("channel") else ""
    if kind == "suppressed":
        return SUPPRESSION_REASONS.get(str(d.get("reason")), str(d.get("reason", "")))
    if kind == "flapping":
        window = d.get("window_s")
        minutes = f" in {float(window) / 60:g} min" if isinstance(window, int | float) else ""
        return f"opened {d.get('opened_in_window', '?')}×{minutes}"
    if kind == "digested":
        channels = ", ".join(str(c) for c in d.get("channels") or []) or "no channels"
        return f"{d.get('alerts', '?')} alerts → {channels}"
    parts = []
    if d.get("rule"):
        parts.append(f"rule {d['rule']}")
    if d.get("value") is not None:
        parts.append(f"value {_number(d['value'])}")
    if parts:
        return " · ".join(parts)
    return " · ".join(f"{k.replace('_', ' ')} {_number(v)}" for k, v in d.items()
                      if not isinstance(v, dict | list) and k not in ("started_at",))


def _history(events: list[tuple[Any, ...]], alert: dict[str, Any]) -> html.Div:
    who = {"acknowledged": alert["acknowledged_by_email"], "resolved": alert["resolved_by_email"]}
    items = []
    for at, kind, note, details in events:
        kind = str(kind)
        by = who.get(kind)
        extra = _event_details(kind, details)
        items.append(html.Li(
            [
                html.Div([html.Span([html.Span(EVENT_LABELS.get(kind, kind.capitalize()), className="np-ev-kind"),
                                     html.Span(f" by {by}", className="np-ev-by") if by else None]),
                          html.Span(_stamp(at), className="np-ev-time")], className="np-ev-head"),
                html.Div(f"“{note}”", className="np-ev-note") if note else None,
                html.Div(extra, className="np-ev-details") if extra else None,
            ],
            className=f"np-ev np-ev-{kind}",
        ))
    return html.Div([html.Div(["History", html.Span(str(len(items)), className="np-count")],
                              className="np-section-title"),
                     html.Ol(items, className="np-timeline")])


def _field(label: str, *value: Any) -> list[Any]:
    return [html.Dt(label), html.Dd(list(value))]


def _detail_body(a: dict[str, Any], now: datetime) -> list[Any]:
    where = (f"{a['device']} · {a['site']}" if a["device"] and a["site"]
             else a["device"] or "Organization-wide")
    fields: list[Any] = _field("Device", where)
    if a["metric"]:
        measured = f"{a['metric']} = {_number(a['value'])}" if a["value"] is not None else a["metric"]
        if a["threshold"] is not None:
            measured += f" (threshold {_number(a['threshold'])})"
        fields += _field("Measured", measured)
    # The type is the rule's name for rule alerts, e.g. sla_breach otherwise.
    fields += _field("Rule" if a["rule_id"] is not None else "Type", a["alert_type"])
    for label, key in (("Began", "started_at"), ("Opened", "created_at"), ("Last seen", "last_seen")):
        fields += _field(label, _ago(a[key], now), html.Span(_stamp(a[key]), className="np-abs"))
    fields += _field("Occurrences", f"{a['occurrences']:,}")
    for label, at, by, note in (("Acknowledged", "acknowledged_at", "acknowledged_by_email", "acknowledged_note"),
                                ("Resolved", "resolved_at", "resolved_by_email", "resolution_note")):
        if a[at] is not None:
            quoted = html.Div(f"“{a[note]}”", className="np-ev-note") if a[note] else None
            fields += _field(label, f"{_ago(a[at], now)} by {a[by] or 'the system'}", quoted)
    chips = _chips(a)
    return [
        html.Div([_severity(a["severity"]), _state(a["status"])], className="np-detail-badges"),
        html.Div(_message(a["message"]), className="np-detail-message"),
        html.Div(chips, className="np-notes np-detail-chips") if chips else None,
        html.Dl(fields, className="np-dl"),
    ]


@dash.callback(
    Output(ids.ALERT_DETAIL, "children"), Output(ids.ALERT_HISTORY, "children"),
    Output(ids.ALERT_ACTIONS, "hidden"), Output(ids.ALERT_CLOSE, "hidden"),
    Output({"type": ids.ALERT_ACTION, "action": ALL}, "disabled"),
    Input(ids.ALERT_SELECTED, "data"), Input(ids.ALERTS_REFRESH, "n_intervals"), Input(ids.ALERT_VERSION, "data"),
)
def refresh_detail(selected: str | None, _n: int, _version: int) -> tuple[Any, Any, bool, bool, list[bool]]:
    buttons = ctx.outputs_list[4]
    if selected is None:
        placeholder = html.Div("Select an alert to see its details and history.", className="np-empty np-empty-pad")
        return placeholder, None, True, True, [True] * len(buttons)
    alert_id = _parse_id(selected)
    row, events = _detail(current_org_id(), alert_id) if alert_id is not None else (None, [])
    if row is None:
        gone = html.Div("This alert no longer exists.", className="np-empty np-empty-pad")
        return gone, None, True, False, [True] * len(buttons)
    status = str(row["status"])
    disabled = [status != "firing" if b["id"]["action"] == "acknowledge" else status == "resolved" for b in buttons]
    return _detail_body(row, datetime.now(UTC)), _history(events, row), status == "resolved", False, disabled


def _result(color: str, text: str) -> dbc.Alert:
    return dbc.Alert(text, color=color, dismissable=True, className="np-action-result")


@dash.callback(
    Output(ids.ALERT_ACTION_RESULT, "children"), Output(ids.ALERT_VERSION, "data"),
    Output({"type": ids.ALERT_NOTE, "index": ALL}, "value"), Output({"type": ids.ALERT_NOTE, "index": ALL}, "invalid"),
    Input({"type": ids.ALERT_ACTION, "action": ALL}, "n_clicks"), Input(ids.ALERT_SELECTED, "data"),
    Input({"type": ids.ALERT_NOTE, "index": ALL}, "value"),
    State(ids.ALERT_VERSION, "data"),
    prevent_initial_call=True,
)
def act(_clicks: list[int | None], selected: str | None, notes: list[str | None],
        version: int | None) -> tuple[Any, Any, list[Any], list[Any]]:
    """Acknowledge or resolve the selected alert as the signed-in user; errors become an inline message.

    Also resets the form when another alert is selected, and clears the "note required" mark as the
    user types (the note is an input and an output of this one callback).
    """
    n = len(notes)
    keep: list[Any] = [no_update] * n
    trigger = ctx.triggered_id
    if trigger == ids.ALERT_SELECTED:
        return None, no_update, [""] * n, [False] * n
    if isinstance(trigger, dict) and trigger.get("type") == ids.ALERT_NOTE:
        return no_update, no_update, keep, [False] * n
    if not isinstance(trigger, dict) or trigger.get("type") != ids.ALERT_ACTION or not any(
            t.get("value") for t in ctx.triggered):
        raise PreventUpdate
    action = str(trigger["action"])
    note = (notes[0] or "").strip() if notes else ""
    bumped = (version or 0) + 1
    alert_id = _parse_id(selected) if selected is not None else None
    if alert_id is None:
        return _result("warning", "Select an alert first."), no_update, keep, keep
    if not _can_act():
        return _result("danger", "Your role may not acknowledge or resolve alerts."), no_update, keep, keep
    if action == "resolve" and not note:
        return None, no_update, keep, [True] * n
    if len(note) > MAX_NOTE:
        return _result("warning", f"The note is too long ({len(note):,} characters; at most {MAX_NOTE:,})."), \
            no_update, keep, keep
    claims = current_claims()
    user_id = _parse_id(claims.get("sub"))
    try:
        with raw_connection(_engine()) as conn:
            if action == "acknowledge":
                alerts.acknowledge(conn, current_org_id(), alert_id, user_id, note or None, datetime.now(UTC))
            else:
                alerts.resolve(conn, current_org_id(), alert_id, user_id, note, datetime.now(UTC))
            conn.commit()  # a pooled connection may already be in a transaction (making act's a savepoint)
    except NetPulseError as exc:
        return _result("warning", ERROR_TEXT.get(exc.code, exc.message)), bumped, keep, [False] * n
    except psycopg.errors.ForeignKeyViolation:
        return _result("danger", "Your user no longer exists: sign in again."), no_update, keep, keep
    except psycopg.Error as exc:
        log.error("netpulse.dashboard.alert_action_failed", action=action, alert_id=str(alert_id), error=str(exc))
        return _result("danger", "The database did not take the change; try again."), no_update, keep, keep
    done = "Acknowledged: escalation stops for this alert." if action == "acknowledge" else "Resolved."
    return _result("success", done), bumped, [""] * n, [False] * n
