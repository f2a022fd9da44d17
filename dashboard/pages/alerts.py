"""Alerts, grouped by root cause: the parent's alert with the alerts it explains folded under it.

A device whose parent is down gets its alert suppressed, and here it is folded under the alert of
the device it sits behind, which the row names ("behind nbo-dist-2"); the groups come most severe
and largest first, so a distribution-switch outage with 31 suppressed children is one row at the top,
not 31 rows above the unrelated alerts. Filters (state, severity, site, rule, text, hide suppressed)
and the page number live in the URL; pagination is on the server with the totals shown (no cap).
Operators acknowledge one alert or whole groups at once; every device links to its page.

Reads and writes go through :mod:`analytics.alerts` (``alert_groups``, ``get_alert``, ``history``,
``acknowledge``, ``acknowledge_many``, ``resolve``) with the signed-in user's organization. Every
callback checks the API's permission: ``alert:read`` to read, ``alert:write`` to change.
"""

from __future__ import annotations

import math
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import dash
import dash_bootstrap_components as dbc
import psycopg
import structlog
from dash import ALL, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate
from flask import current_app
from sqlalchemy import Engine

from analytics import alerts
from dashboard import ids
from dashboard.auth import current_claims, current_org_id
from dashboard.charts import MUTED, Figure, figure
from dashboard.charts import duration_text as _duration
from dashboard.permissions import allowed, forbidden, guarded
from netpulse.db import raw_connection
from netpulse.errors import NetPulseError

dash.register_page(__name__, path="/alerts", title="Alerts", name="Alerts", order=3, permission="alert:read")

log = structlog.get_logger("netpulse.dashboard.alerts")

WRITE_PERMISSION = "alert:write"     # acknowledging and resolving (operator and admin in the spec's table)
READ_PERMISSION = "alert:read"
GROUPS_PER_PAGE = 20                 # root-cause groups per page (a group folds any number of alerts)
FOLDED_SHOWN = 8                     # folded alerts listed under their cause (the count says how many in all)
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

def _engine() -> Engine:
    engine: Engine = current_app.extensions["netpulse.engine"]
    return engine


def _detail(org_id: uuid.UUID, alert_id: uuid.UUID) -> tuple[dict[str, Any] | None, list[tuple[Any, ...]]]:
    """The alert (None when this organization has no such alert) and its history, oldest event first."""
    with raw_connection(_engine()) as conn:
        row = alerts.get_alert(conn, org_id, alert_id)
        # history() does not filter by organization: it runs only once the alert was found in this one.
        events = alerts.history(conn, alert_id) if row is not None else []
    return row, list(events)


def _can_act() -> bool:
    return allowed(WRITE_PERMISSION)


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


def _device(row: dict[str, Any]) -> list[Any]:
    if row["device"] is None:
        return [html.Div("Organization", className="np-device np-muted")]
    out: list[Any] = [dcc.Link(row["device"], href=f"/devices/{row['device_id']}", className="np-device"),
                      html.Div(row["site"] or "No site", className="np-site")]
    return out


def _behind(row: dict[str, Any]) -> html.Div | None:
    """Where a suppressed alert's cause is: the device it sits behind, or its parent."""
    if row.get("suppressed_reason") != "parent_down":
        return None
    cause = row.get("root_cause") or row.get("parent")
    if not cause:
        return None
    target = row.get("root_cause_id")
    name: Any = dcc.Link(cause, href=f"/devices/{target}") if target else cause
    return html.Div(["Behind ", name, " (down)"], className="np-behind")


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


def _csv(value: Any) -> list[str]:
    return [v for v in str(value or "").split(",") if v]


def _filters(query: dict[str, Any], sites: list[str], rules: list[tuple[int, str]]) -> html.Div:
    toggle = {"input_class_name": "btn-check", "label_class_name": "btn btn-sm btn-outline-secondary",
              "label_checked_class_name": "active", "class_name": "btn-group np-toggle", "inline": True}
    severities = [s for s in _csv(query.get("severity")) if s in ids.ALERT_SEVERITIES] or list(ids.ALERT_SEVERITIES)
    rule = query.get("rule")
    return html.Div(
        [
            html.Div([
                dbc.RadioItems(id=ids.ALERTS_STATUS_FILTER, value="all" if query.get("state") == "all" else "open",
                               options=_toggle_options(ids.ALERTS_STATUS_OPTION,
                                                       {"open": "Open", "all": "All incl. resolved"}), **toggle),
                dbc.Checklist(id=ids.ALERTS_SEVERITY_FILTER, value=severities,
                              options=_toggle_options(ids.ALERTS_SEVERITY_OPTION,
                                                      {s: s.capitalize() for s in ids.ALERT_SEVERITIES}), **toggle),
                dbc.Switch(id=ids.ALERTS_HIDE_SUPPRESSED, label="Hide suppressed", value=query.get("hide") == "1",
                           className="np-switch"),
            ], className="np-filters"),
            html.Div([
                dbc.Select(id=ids.ALERTS_SITE_FILTER, value=query.get("site") or "", size="sm",
                           placeholder="All sites",
                           options=[{"label": "All sites", "value": ""}, *({"label": x, "value": x} for x in sites)]),
                dbc.Select(id=ids.ALERTS_RULE_FILTER, value=str(rule) if rule else "", size="sm",
                           placeholder="All rules",
                           options=[{"label": "All rules", "value": ""},
                                    *({"label": name, "value": str(i)} for i, name in rules)]),
                dbc.Input(id=ids.ALERTS_SEARCH, value=query.get("q") or "", placeholder="Device or message",
                          size="sm", debounce=True, type="search"),
            ], className="np-filters np-filters-2"),
        ],
        className="np-filter-block",
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


def _choices() -> tuple[list[str], list[tuple[int, str]]]:
    from analytics.devices import label_names
    from analytics.rules import load_rules

    with raw_connection(_engine()) as conn:
        sites = label_names(conn, current_org_id())["sites"]
        rules = [(r.id, r.name) for r in load_rules(conn, current_org_id(), enabled_only=False) if r.id is not None]
    return sites, rules


def layout(**query: Any) -> html.Div:
    if not allowed(READ_PERMISSION):
        return forbidden(READ_PERMISSION)
    can_act = _can_act()
    sites, rules = _choices()
    bulk = [dbc.Button("Acknowledge selected", id=ids.ALERTS_BULK_ACK, size="sm", color="info", outline=True,
                       title="Acknowledge every firing alert of the ticked groups (the folded ones too)")] \
        if can_act else []
    try:
        page = max(1, int(str(query.get("page") or 1)))
    except ValueError:
        page = 1
    table_panel = html.Div(
        [
            html.Div([_filters(query, sites, rules), html.Span(PLACEHOLDER, id=ids.ALERTS_COUNT, className="np-count")],
                     className="np-panel-head np-alerts-head"),
            html.Div(id=ids.ALERTS_BULK_RESULT),
            html.Div(id=ids.ALERTS_TABLE, className="np-alerts-table-wrap"),
            html.Div([dbc.Pagination(id=ids.ALERTS_PAGE, max_value=max(page, 1), active_page=page,
                                     fully_expanded=False, first_last=True, previous_next=True, size="sm"),
                      *bulk], className="np-table-foot"),
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
            dcc.Store(id=ids.page_state("alerts"), data={}),
            dcc.Store(id=ids.ALERT_SELECTED, data=None),
            dcc.Store(id=ids.ALERT_VERSION, data=0),
            dcc.Store(id=ids.ALERTS_GROUP_IDS, data={}),
            html.Div(
                [
                    html.H1("Alerts", className="np-page-title"),
                    html.Div(["Grouped by root cause · updated ", html.Span(PLACEHOLDER, id=ids.ALERTS_UPDATED_AT)],
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
    Input(ids.TICK, "n_intervals"), Input(ids.ALERT_VERSION, "data"),
)
@guarded(READ_PERMISSION)
def refresh_kpis(_n: int, _version: int) -> list[str]:
    with raw_connection(_engine()) as conn:
        counts = alerts.counts(conn, current_org_id())
    values, subs = _kpi_texts({k: int(v) for k, v in counts.items()})
    css = ["np-kpi-value" if v != "0" else "np-kpi-value np-zero" for v in values]
    return [*values, *subs, *css, datetime.now(UTC).strftime("%H:%M:%S UTC")]


def opened_figure(rows: list[tuple[datetime, str, int]], now: datetime) -> Figure:
    """Alerts opened per hour by severity over the last ``CHART_HOURS`` hours (stacked bars, UTC)."""
    last = now.astimezone(UTC).replace(tzinfo=None, minute=0, second=0, microsecond=0)
    hours = [last - timedelta(hours=i) for i in range(CHART_HOURS - 1, -1, -1)]
    counts = {(hour, severity): n for hour, severity, n in rows}
    data = [{"type": "bar", "x": hours, "y": [counts.get((h, severity), 0) for h in hours],
             "name": severity.capitalize(), "marker": {"color": SEVERITY_COLORS[severity], "line": {"width": 0}},
             "hovertemplate": f"%{{y}} {severity}<extra></extra>"} for severity in ids.ALERT_SEVERITIES]
    per_hour = [sum(counts.get((h, s), 0) for s in ids.ALERT_SEVERITIES) for h in hours]
    top = max(per_hour, default=0)
    fig = figure(
        data, barmode="stack", bargap=0.3,
        title={"text": f"Alerts opened per hour · last {CHART_HOURS} h", "y": 0.93, "yanchor": "top"},
        margin={"l": 56, "r": 16, "t": 56, "b": 36},
        xaxis={"tickformat": "%H:%M", "range": [hours[0] - timedelta(minutes=30), hours[-1] + timedelta(minutes=30)],
               "showgrid": False},
        yaxis={"title": {"text": "Alerts"}, "tick0": 0, "dtick": max(1, math.ceil(top / 4)),
               "range": [0, max(top, 1) * 1.1], "showticklabels": top > 0},
        showlegend=top > 0, uirevision="alerts-opened",
        annotations=[] if top else [{"text": f"No alerts opened in the last {CHART_HOURS} h", "showarrow": False,
                                     "xref": "paper", "yref": "paper", "x": 0.5, "y": 0.5,
                                     "font": {"size": 14, "color": MUTED}}])
    return fig


@dash.callback(Output(ids.ALERTS_CHART, "figure"),
               Input(ids.TICK, "n_intervals"), Input(ids.ALERT_VERSION, "data"))
@guarded(READ_PERMISSION)
def refresh_chart(_n: int, _version: int) -> Figure:
    now = datetime.now(UTC)
    since = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=CHART_HOURS - 1)
    with raw_connection(_engine()) as conn:
        rows = alerts.opened_per_hour(conn, current_org_id(), since)
    return opened_figure(rows, now)


# --- table -----------------------------------------------------------------------------------------------

TABLE_HEADINGS = ("", "Severity", "Status", "Device", "Message", "Began", "Opened", "Count", "Notes")


def _table_row(row: dict[str, Any], now: datetime, selected: str | None, *, pick: Any = None,
               folded: int = 0) -> html.Tr:
    alert_id = str(row["id"])
    css = "np-alert-row" + (" np-selected" if alert_id == selected else "")
    if row["status"] == "resolved":
        css += " np-resolved"
    if row.get("root_cause_id") is not None:
        css += " np-folded"
    message: list[Any] = [html.Div(_message(row["message"]))]
    behind = _behind(row)
    if behind is not None:
        message.append(behind)
    if folded:
        message.append(html.Div(f"{folded:,} suppressed alert{'s' if folded != 1 else ''} behind it",
                                className="np-behind-count"))
    return html.Tr(
        [
            html.Td(pick, className="np-pick"),
            html.Td(_severity(row["severity"])),
            html.Td(_state(row["status"])),
            html.Td(_device(row)),
            html.Td(message, className="np-message"),
            html.Td(_ago(row["started_at"], now), title=_stamp(row["started_at"]), className="np-when"),
            html.Td(_ago(row["created_at"], now), title=_stamp(row["created_at"]), className="np-when"),
            html.Td(f"{row['occurrences']:,}", className="np-num"),
            html.Td(html.Div(_chips(row), className="np-notes")),
        ],
        id=ids.alert_row(alert_id),
        className=css,
    )


def _group_rows(group: alerts.AlertGroup, now: datetime, selected: str | None, can_act: bool,
                ticked: bool = False) -> list[html.Tr]:
    pick = dbc.Checkbox(id={"type": ids.ALERT_PICK, "index": group.key}, value=ticked,
                        class_name="np-pick-box") if can_act else None
    rows = [_table_row(group.head, now, selected, pick=pick, folded=group.folded_total)]
    if group.folded:
        cause = group.folded[0].get("root_cause") or group.head["device"] or "its parent"
        shown = group.folded[:FOLDED_SHOWN]
        inner_rows = [_table_row(r, now, selected) for r in shown]
        if group.folded_total > len(shown):
            rest = group.folded_total - len(shown)
            inner_rows.append(html.Tr(html.Td(
                [f"and {rest:,} more behind {cause}: ", dcc.Link("list them on the devices page",
                                                                 href="/devices?status=down")],
                colSpan=len(TABLE_HEADINGS), className="np-more")))
        inner = html.Table(html.Tbody(inner_rows), className="np-table np-alerts-table np-folded-table")
        rows.append(html.Tr(html.Td(html.Details(
            [html.Summary(f"{group.folded_total:,} suppressed alert{'s' if group.folded_total != 1 else ''} "
                          f"of devices behind {cause}", className="np-fold-summary"), inner]),
            colSpan=len(TABLE_HEADINGS)), className="np-fold-row"))
    return rows


def _filter_of(status: str | None, severities: list[str] | None, site: str | None, rule: str | None,
               hide: bool | None, search: str | None) -> alerts.AlertFilter:
    rule_id = int(rule) if rule and str(rule).isdigit() else None
    return alerts.AlertFilter(state="all" if status == "all" else "open",
                              severities=[s for s in (severities or []) if s in ids.ALERT_SEVERITIES],
                              site=site or None, rule_id=rule_id, suppressed=False if hide else None,
                              search=(search or "").strip() or None)


@dash.callback(
    Output(ids.ALERTS_TABLE, "children"), Output(ids.ALERTS_COUNT, "children"),
    Output(ids.ALERTS_PAGE, "max_value"), Output(ids.ALERTS_PAGE, "active_page"),
    Output(ids.ALERTS_GROUP_IDS, "data"), Output(ids.page_state("alerts"), "data"),
    Input(ids.TICK, "n_intervals"), Input(ids.ALERTS_STATUS_FILTER, "value"),
    Input(ids.ALERTS_SEVERITY_FILTER, "value"), Input(ids.ALERTS_SITE_FILTER, "value"),
    Input(ids.ALERTS_RULE_FILTER, "value"), Input(ids.ALERTS_HIDE_SUPPRESSED, "value"),
    Input(ids.ALERTS_SEARCH, "value"), Input(ids.ALERTS_PAGE, "active_page"),
    Input(ids.ALERT_SELECTED, "data"), Input(ids.ALERT_VERSION, "data"),
    State({"type": ids.ALERT_PICK, "index": ALL}, "value"), State({"type": ids.ALERT_PICK, "index": ALL}, "id"),
)
@guarded(READ_PERMISSION)  # as GET /api/v1/alerts
def refresh_table(_n: int, status: str | None, severities: list[str] | None, site: str | None, rule: str | None,
                  hide: bool | None, search: str | None, page: int | None, selected: str | None,
                  _version: int, picked: list[bool | None] | None,
                  pick_ids: list[dict[str, str]] | None) -> tuple[Any, ...]:
    filters = (ids.ALERTS_STATUS_FILTER, ids.ALERTS_SEVERITY_FILTER, ids.ALERTS_SITE_FILTER, ids.ALERTS_RULE_FILTER,
               ids.ALERTS_HIDE_SUPPRESSED, ids.ALERTS_SEARCH)
    page = 1 if ctx.triggered_id in filters or not page else int(page)
    show_all = status == "all"
    state = {"state": "all" if show_all else None, "site": site or None, "rule": rule or None,
             "hide": bool(hide), "q": (search or "").strip() or None, "page": page if page > 1 else None,
             "severity": ",".join(severities or []) if set(severities or []) != set(ids.ALERT_SEVERITIES) else None}
    where = _filter_of(status, severities, site, rule, hide, search)
    if not where.severities:
        empty = html.Div("Pick at least one severity to list alerts.", className="np-empty np-empty-pad")
        return empty, "0", 1, 1, {}, state
    with raw_connection(_engine()) as conn:
        result = alerts.alert_groups(conn, current_org_id(), where, limit=GROUPS_PER_PAGE,
                                     offset=(page - 1) * GROUPS_PER_PAGE, folded_rows=FOLDED_SHOWN)
    pages = max(1, -(-result.total_groups // GROUPS_PER_PAGE))
    word = "in all" if show_all else "open"
    count = f"{result.total_alerts:,} {word}"
    if result.total_groups != result.total_alerts:
        count += f" · {result.total_groups:,} root causes"
    if not result.groups:
        text = ("No alerts match these filters." if show_all or result.total_alerts or where.site or where.search
                or where.rule_id else "No open alerts: all clear.")
        return (html.Div([html.Span("✓", className="np-ok-mark"), text], className="np-empty np-empty-pad"), count,
                pages, min(page, pages), {}, state)
    now = datetime.now(UTC)
    can_act = _can_act()
    # A live refresh keeps the user's ticks (an acknowledgement after an action resets them: version).
    ticked = set() if ctx.triggered_id == ids.ALERT_VERSION else {
        p["index"] for p, on in zip(pick_ids or [], picked or [], strict=False) if on}
    body = [r for g in result.groups for r in _group_rows(g, now, selected, can_act, g.key in ticked)]
    table = html.Table([html.Thead(html.Tr([html.Th(h) for h in TABLE_HEADINGS])), html.Tbody(body)],
                       className="np-table np-alerts-table")
    first = (page - 1) * GROUPS_PER_PAGE + 1
    shown = html.Div(f"Root causes {first:,}–{first + len(result.groups) - 1:,} of {result.total_groups:,} "
                     f"({result.total_alerts:,} alerts)", className="np-more")
    group_ids = {g.key: [str(a) for a in g.alert_ids] for g in result.groups}
    return [table, shown], count, pages, page, group_ids, state


@dash.callback(
    Output(ids.ALERTS_BULK_RESULT, "children"), Output(ids.ALERT_VERSION, "data", allow_duplicate=True),
    Input(ids.ALERTS_BULK_ACK, "n_clicks"),
    State({"type": ids.ALERT_PICK, "index": ALL}, "value"), State({"type": ids.ALERT_PICK, "index": ALL}, "id"),
    State(ids.ALERTS_GROUP_IDS, "data"), State(ids.ALERT_VERSION, "data"),
    prevent_initial_call=True,
)
@guarded(WRITE_PERMISSION)  # as POST /api/v1/alerts/<id>/acknowledge
def bulk_acknowledge(clicks: int | None, picked: list[bool | None], pick_ids: list[dict[str, str]],
                     groups: dict[str, list[str]] | None, version: int | None) -> tuple[Any, Any]:
    if not clicks:
        raise PreventUpdate
    keys = [p["index"] for p, on in zip(pick_ids or [], picked or [], strict=True) if on]
    chosen = [uuid.UUID(a) for k in keys for a in (groups or {}).get(k, [])]
    if not chosen:
        return _result("warning", "Tick the groups to acknowledge first."), no_update
    user_id = _parse_id(current_claims().get("sub"))
    try:
        with raw_connection(_engine()) as conn:
            done = alerts.acknowledge_many(conn, current_org_id(), chosen, user_id, "acknowledged as a group",
                                           datetime.now(UTC))
            conn.commit()
    except psycopg.errors.ForeignKeyViolation:
        return _result("danger", "Your user no longer exists: sign in again."), no_update
    skipped = len(chosen) - len(done)
    text = f"Acknowledged {len(done):,} alert{'s' if len(done) != 1 else ''} in {len(keys)} group" \
           f"{'s' if len(keys) != 1 else ''}."
    if skipped:
        text += f" {skipped:,} were already acknowledged or resolved."
    return _result("success", text), (version or 0) + 1


@dash.callback(
    Output(ids.ALERT_SELECTED, "data"),
    Input({"type": ids.ALERT_ROW, "index": ALL}, "n_clicks"), Input(ids.ALERT_CLOSE, "n_clicks"),
    prevent_initial_call=True,
)
@guarded(READ_PERMISSION)
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
    Input(ids.ALERT_SELECTED, "data"), Input(ids.TICK, "n_intervals"), Input(ids.ALERT_VERSION, "data"),
)
@guarded(READ_PERMISSION)  # as GET /api/v1/alerts/<id>
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
    Output(ids.ALERT_ACTION_RESULT, "children"),
    Output({"type": ids.ALERT_NOTE, "index": ALL}, "value"), Output({"type": ids.ALERT_NOTE, "index": ALL}, "invalid"),
    Input(ids.ALERT_SELECTED, "data"), Input({"type": ids.ALERT_NOTE, "index": ALL}, "value"),
    prevent_initial_call=True,
)
@guarded(READ_PERMISSION)
def reset_form(_selected: str | None, notes: list[str | None]) -> tuple[Any, list[Any], list[Any]]:
    """Another alert selected: a fresh form. Typing: the "note required" mark goes."""
    n = len(notes)
    if ctx.triggered_id == ids.ALERT_SELECTED:
        return None, [""] * n, [False] * n
    return no_update, [no_update] * n, [False] * n


@dash.callback(
    Output(ids.ALERT_ACTION_RESULT, "children", allow_duplicate=True),
    Output(ids.ALERT_VERSION, "data"),
    Output({"type": ids.ALERT_NOTE, "index": ALL}, "value", allow_duplicate=True),
    Output({"type": ids.ALERT_NOTE, "index": ALL}, "invalid", allow_duplicate=True),
    Input({"type": ids.ALERT_ACTION, "action": ALL}, "n_clicks"),
    State(ids.ALERT_SELECTED, "data"), State({"type": ids.ALERT_NOTE, "index": ALL}, "value"),
    State(ids.ALERT_VERSION, "data"),
    prevent_initial_call=True,
)
@guarded(WRITE_PERMISSION)  # as POST /api/v1/alerts/<id>/acknowledge and /resolve
def act(_clicks: list[int | None], selected: str | None, notes: list[str | None],
        version: int | None) -> tuple[Any, Any, list[Any], list[Any]]:
    """Acknowledge or resolve the selected alert as the signed-in user; errors become an inline message."""
    n = len(notes)
    keep: list[Any] = [no_update] * n
    trigger = ctx.triggered_id
    if not isinstance(trigger, dict) or trigger.get("type") != ids.ALERT_ACTION or not any(
            t.get("value") for t in ctx.triggered):
        raise PreventUpdate
    action = str(trigger["action"])
    note = (notes[0] or "").strip() if notes else ""
    bumped = (version or 0) + 1
    alert_id = _parse_id(selected) if selected is not None else None
    if alert_id is None:
        return _result("warning", "Select an alert first."), no_update, keep, keep
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
