"""SLA targets tab: availability targets per scope and calendar period (:mod:`analytics.sla_targets`, as
``netpulse sla target`` and ``/api/v1/sla/targets``). Whoever reads metrics sees them (how each stands
is on the SLA page); admins add and remove them."""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, html
from dash.exceptions import PreventUpdate

from analytics import sla_targets as core
from dashboard.admin import forms
from dashboard.auth import current_org_id
from dashboard.ids import admin_id
from dashboard.permissions import guarded

TAB = forms.Tab("sla", "SLA targets", read="metrics:read", write="admin")  # as /api/v1/sla/targets

GRID = admin_id("sla", "grid")
VERSION = admin_id("sla", "version")
RESULT = admin_id("sla", "result")
SCOPE = admin_id("sla", "scope")
REF = admin_id("sla", "ref")
PCT = admin_id("sla", "pct")
PERIOD = admin_id("sla", "period")
SEVERITY = admin_id("sla", "severity")
ADD = admin_id("sla", "add")
REMOVE = admin_id("sla", "remove")
REMOVE_BUTTON = admin_id("sla", "remove-button")

COLUMNS: list[dict[str, Any]] = [
    {"field": "covers", "headerName": "Covers", "minWidth": 200}, {"field": "target", "headerName": "Target"},
    {"field": "period", "headerName": "Period"}, {"field": "severity", "headerName": "Breach alert"},
]


def _select(select_id: str, values: tuple[str, ...], value: str) -> dbc.Select:
    return dbc.Select(id=select_id, options=[{"label": v, "value": v} for v in values], value=value, size="sm")


def panel() -> html.Div:
    writable = TAB.writable()
    form = dbc.Card(dbc.CardBody([
        html.H2("Add an SLA target", className="np-panel-title"),
        dbc.Row([dbc.Col(forms.field("Scope", _select(SCOPE, ("all", "device", "group", "site", "tag"), "all")), md=2),
                 dbc.Col(forms.field("Name", dbc.Input(id=REF, maxLength=100, size="sm"), "blank for all"), md=3),
                 dbc.Col(forms.field("Availability %", dbc.Input(id=PCT, size="sm", placeholder="99.9")), md=2),
                 dbc.Col(forms.field("Period", _select(PERIOD, ("day", "week", "month", "quarter", "year"), "month")),
                         md=2),
                 dbc.Col(forms.field("Breach alert", _select(SEVERITY, ("info", "warning", "critical"), "critical")),
                         md=3)]),
        dbc.Button("Add target", id=ADD, size="sm", color="success"),
    ]), className="np-admin-form")
    actions = html.Div([
        html.Div(forms.danger_button(REMOVE, "Remove selected", "Remove this SLA target? Its open breach alert is "
                                     "resolved.", REMOVE_BUTTON), hidden=not writable),
        None if writable else forms.read_only("changing targets needs the admin role."),
    ], className="np-actions-bar np-admin-actions")
    return html.Div([html.Div(id=RESULT), actions, forms.grid(GRID, COLUMNS), form if writable else None])


def register() -> None:
    @dash.callback(Output(GRID, "rowData"), Input(VERSION, "data"))
    @guarded(TAB.read)  # as GET /api/v1/sla/targets
    def sla_target_rows(_version: int | None) -> list[dict[str, Any]]:
        with forms.session() as s:
            return [{"id": t.id, "covers": core.describe_scope(t.scope, t.scope_ref),
                     "target": f"{core.format_pct(t.target_pct)}", "period": t.period, "severity": t.severity}
                    for t in core.list_sla_targets(s, current_org_id())]

    @dash.callback(Output(REMOVE_BUTTON, "disabled"), Input(GRID, "selectedRows"))
    @guarded(TAB.read)
    def sla_target_selected(selected: list[dict[str, Any]] | None) -> bool:
        return not selected

    @dash.callback(
        Output(RESULT, "children"), Output(VERSION, "data"),
        Input(ADD, "n_clicks"), State(SCOPE, "value"), State(REF, "value"), State(PCT, "value"),
        State(PERIOD, "value"), State(SEVERITY, "value"), State(VERSION, "data"),
        prevent_initial_call=True)
    @guarded(TAB.write)  # as POST /api/v1/sla/targets
    def add_sla_target(_n: int | None, scope: str | None, ref: str | None, pct: str | int | float | None,
                       period: str | None, severity: str | None, version: int | None) -> tuple[Any, ...]:
        def add() -> str:
            with forms.session() as s:
                t = core.add_sla_target(s, current_org_id(), scope=scope or "", ref=forms.text(ref) or None,
                                        target_pct=forms.text(pct), period=period or "", severity=severity or "")
                return (f"Added a {t.period}ly target of {core.format_pct(t.target_pct)} for "
                        f"{core.describe_scope(t.scope, t.scope_ref)}.")

        return forms.write(add, version)

    @dash.callback(
        Output(RESULT, "children", allow_duplicate=True), Output(VERSION, "data", allow_duplicate=True),
        Input(REMOVE, "submit_n_clicks"), State(GRID, "selectedRows"), State(VERSION, "data"),
        prevent_initial_call=True)
    @guarded(TAB.write)  # as DELETE /api/v1/sla/targets/<id>
    def remove_sla_target(_n: int | None, selected: list[dict[str, Any]] | None,
                          version: int | None) -> tuple[Any, ...]:
        if not selected:
            raise PreventUpdate
        target_id, covers = int(selected[0]["id"]), selected[0].get("covers")

        def remove() -> str:
            with forms.session() as s:
                _, resolved = core.remove_sla_target(s, current_org_id(), target_id)
            return f"Removed the target for {covers}" + (" and resolved its breach alert." if resolved else ".")

        return forms.write(remove, version)
