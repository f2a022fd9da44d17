"""Maintenance tab: maintenance windows (:mod:`analytics.maintenance`, as ``netpulse maintenance`` and
``/api/v1/maintenance``): time that counts neither as monitored nor as down, whose devices' alerts are
suppressed. Readers of alerts see them; operators and admins (``alert:write``) add and remove them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, html, no_update
from dash.exceptions import PreventUpdate

from analytics import maintenance as core
from dashboard.admin import forms
from dashboard.auth import current_org_id, current_user_id
from dashboard.ids import admin_id
from dashboard.permissions import guarded
from netpulse.timespec import parse_time

TAB = forms.Tab("maintenance", "Maintenance", read="alert:read", write="alert:write")  # as /api/v1/maintenance
SHOWN = 200   # the latest windows; older ones stay readable through the API's pages

GRID = admin_id("maintenance", "grid")
VERSION = admin_id("maintenance", "version")
RESULT = admin_id("maintenance", "result")
SCOPE = admin_id("maintenance", "scope")
REF = admin_id("maintenance", "ref")
START = admin_id("maintenance", "from")
END = admin_id("maintenance", "to")
REASON = admin_id("maintenance", "reason")
ADD = admin_id("maintenance", "add")
REMOVE = admin_id("maintenance", "remove")
REMOVE_BUTTON = admin_id("maintenance", "remove-button")

COLUMNS: list[dict[str, Any]] = [
    {"field": "covers", "headerName": "Covers", "minWidth": 200},
    {"field": "starts", "headerName": "From (UTC)"}, {"field": "ends", "headerName": "To (UTC)"},
    {"field": "state", "headerName": "Now", "maxWidth": 120},
    {"field": "reason", "headerName": "Reason", "minWidth": 200, "tooltipField": "reason"},
]
_TIME = "%Y-%m-%dT%H:%M"


def panel() -> html.Div:
    writable = TAB.writable()
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    form = dbc.Card(dbc.CardBody([
        html.H2("Add a maintenance window", className="np-panel-title"),
        dbc.Row([dbc.Col(forms.field("Scope", dbc.Select(id=SCOPE, options=[{"label": s, "value": s} for s in
                                                                            ("device", "group", "site", "tag", "all")],
                                                         value="device", size="sm")), md=2),
                 dbc.Col(forms.field("Name", dbc.Input(id=REF, maxLength=100, size="sm"),
                                     "the device, group, site or tag; blank for all"), md=3),
                 dbc.Col(forms.field("From (UTC)", dbc.Input(id=START, type="datetime-local", step=60, size="sm",
                                                             value=(now + timedelta(hours=1)).strftime(_TIME))), md=2),
                 dbc.Col(forms.field("To (UTC)", dbc.Input(id=END, type="datetime-local", step=60, size="sm",
                                                           value=(now + timedelta(hours=3)).strftime(_TIME))), md=2),
                 dbc.Col(forms.field("Reason", dbc.Input(id=REASON, maxLength=core.MAX_REASON, size="sm")), md=3)]),
        dbc.Button("Add window", id=ADD, size="sm", color="success"),
    ]), className="np-admin-form")
    actions = html.Div([
        html.Div(forms.danger_button(REMOVE, "Remove selected", "Remove this maintenance window? Its time counts "
                                     "again in availability.", REMOVE_BUTTON), hidden=not writable),
        None if writable else forms.read_only("adding windows needs the operator or admin role."),
    ], className="np-actions-bar np-admin-actions")
    return html.Div([html.Div(id=RESULT), actions, forms.grid(GRID, COLUMNS), form if writable else None])


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def register() -> None:
    @dash.callback(Output(GRID, "rowData"), Input(VERSION, "data"))
    @guarded(TAB.read)  # as GET /api/v1/maintenance
    def maintenance_rows(_version: int | None) -> list[dict[str, Any]]:
        now = datetime.now(UTC)
        with forms.session() as s:
            found, _ = core.list_windows(s, current_org_id(), now=now, limit=SHOWN)
        return [{"id": w.id, "covers": "all devices" if w.scope == "all" else f"{w.scope} {w.scope_ref}",
                 "starts": _stamp(w.starts_at), "ends": _stamp(w.ends_at), "state": w.state(now),
                 "reason": w.reason} for w in found]

    @dash.callback(Output(REMOVE_BUTTON, "disabled"), Input(GRID, "selectedRows"))
    @guarded(TAB.read)
    def maintenance_selected(selected: list[dict[str, Any]] | None) -> bool:
        return not selected

    @dash.callback(
        Output(RESULT, "children"), Output(VERSION, "data"),
        Input(ADD, "n_clicks"), State(SCOPE, "value"), State(REF, "value"), State(START, "value"),
        State(END, "value"), State(REASON, "value"), State(VERSION, "data"),
        prevent_initial_call=True)
    @guarded(TAB.write)  # as POST /api/v1/maintenance
    def add_maintenance(_n: int | None, scope: str | None, ref: str | None, start: str | None, end: str | None,
                        reason: str | None, version: int | None) -> tuple[Any, ...]:
        def add() -> str:
            first = parse_time(forms.text(start), field="from")
            last = parse_time(forms.text(end), field="to")
            with forms.session() as s:
                w = core.add_window(s, current_org_id(), scope=scope or "", scope_ref=forms.text(ref) or None,
                                    start=first, end=last, reason=forms.text(reason), created_by=current_user_id())
            covers = "all devices" if w.scope == "all" else f"{w.scope} {w.scope_ref}"
            return f"Added a maintenance window for {covers}, {_stamp(w.starts_at)} to {_stamp(w.ends_at)} UTC."

        return forms.write(add, version)

    @dash.callback(
        Output(RESULT, "children", allow_duplicate=True), Output(VERSION, "data", allow_duplicate=True),
        Input(REMOVE, "submit_n_clicks"), State(GRID, "selectedRows"), State(VERSION, "data"),
        prevent_initial_call=True)
    @guarded(TAB.write)  # as DELETE /api/v1/maintenance/<id>
    def remove_maintenance(_n: int | None, selected: list[dict[str, Any]] | None,
                           version: int | None) -> tuple[Any, ...]:
        if not selected:
            raise PreventUpdate
        window_id, covers = int(selected[0]["id"]), selected[0].get("covers")

        def remove() -> None:
            with forms.session() as s:
                core.delete_window(s, current_org_id(), window_id)

        _, error = forms.outcome(remove)
        if error is not None:
            return error, no_update
        return forms.done(f"Removed the maintenance window for {covers}."), (version or 0) + 1
