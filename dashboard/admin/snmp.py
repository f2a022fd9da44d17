"""SNMP credentials tab: credential profiles (:mod:`netpulse.inventory.credentials`, as ``netpulse snmp
credential`` and ``/api/v1/snmp-credentials``), for admins only. Secrets are write-only: the grid shows
them masked, as the API does (:func:`~netpulse.inventory.credentials.credential_view`)."""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, html, no_update
from dash.exceptions import PreventUpdate

from dashboard.admin import forms
from dashboard.auth import current_org_id
from dashboard.ids import admin_id
from dashboard.permissions import guarded
from netpulse.inventory import credentials

TAB = forms.Tab("snmp", "SNMP credentials", read="admin", write="admin")  # as /api/v1/snmp-credentials

GRID = admin_id("snmp", "grid")
VERSION = admin_id("snmp", "version")
RESULT = admin_id("snmp", "result")
FIELDS = ("name", "version", "community", "username", "auth_protocol", "auth_password", "priv_protocol",
          "priv_password")
FIELD = {f: admin_id("snmp", f"field-{f}") for f in FIELDS}
SECRETS = ("community", "auth_password", "priv_password")
NONE = "-"   # the protocol selects' "none" (a select shows its empty value as no choice at all)
ADD = admin_id("snmp", "add")
REMOVE = admin_id("snmp", "remove")
REMOVE_BUTTON = admin_id("snmp", "remove-button")
FORCE = admin_id("snmp", "force")

COLUMNS: list[dict[str, Any]] = [
    {"field": "name", "headerName": "Profile"}, {"field": "version", "headerName": "Version", "maxWidth": 110},
    {"field": "security_level", "headerName": "Security"},
    {"field": "community", "headerName": "Community"}, {"field": "username", "headerName": "User"},
    {"field": "auth", "headerName": "Auth"}, {"field": "priv", "headerName": "Privacy"},
    {"field": "devices", "headerName": "Devices", "maxWidth": 110, "type": "rightAligned"},
]


def _protocols(key: str, known: tuple[str, ...]) -> dbc.Select:
    return dbc.Select(id=FIELD[key], value=NONE, size="sm",
                      options=[{"label": "none", "value": NONE}, *({"label": p, "value": p} for p in known)])


def panel() -> html.Div:
    f = FIELD

    def secret(key: str) -> dbc.Input:
        return dbc.Input(id=f[key], type="password", size="sm", autoComplete="new-password")

    form = dbc.Card(dbc.CardBody([
        html.H2("Add a credential profile", className="np-panel-title"),
        dbc.Row([dbc.Col(forms.field("Name", dbc.Input(id=f["name"], maxLength=100, size="sm")), md=3),
                 dbc.Col(forms.field("Version", dbc.Select(id=f["version"], value="2c", size="sm", options=[
                     {"label": "v2c", "value": "2c"}, {"label": "v3", "value": "3"}])), md=2),
                 dbc.Col(forms.field("Community", secret("community"), "v2c"), md=3),
                 dbc.Col(forms.field("User", dbc.Input(id=f["username"], maxLength=32, size="sm"), "v3"), md=4)]),
        dbc.Row([dbc.Col(forms.field("Auth protocol", _protocols("auth_protocol", credentials.AUTH_PROTOCOLS)), md=3),
                 dbc.Col(forms.field("Auth password", secret("auth_password")), md=3),
                 dbc.Col(forms.field("Privacy protocol", _protocols("priv_protocol", credentials.PRIV_PROTOCOLS)),
                         md=3),
                 dbc.Col(forms.field("Privacy password", secret("priv_password")), md=3)]),
        dbc.Button("Add profile", id=ADD, size="sm", color="success"),
    ]), className="np-admin-form")
    actions = html.Div([
        forms.danger_button(REMOVE, "Remove selected", "Remove this SNMP credential profile?", REMOVE_BUTTON),
        dbc.Checkbox(id=FORCE, label="even if devices use it (they are detached)", value=False),
        html.Span("Secrets are write-only and shown masked.", className="np-muted"),
    ], className="np-actions-bar np-admin-actions")
    return html.Div([html.Div(id=RESULT), actions, forms.grid(GRID, COLUMNS), form])


def _row(view: dict[str, Any]) -> dict[str, Any]:
    def proto(name: str, secret: str) -> str:
        return f"{view[name]} {view[secret] or ''}".strip() if view[name] else "–"

    return {"id": view["id"], "name": view["name"], "version": view["version"],
            "security_level": view["security_level"], "community": view["community"] or "–",
            "username": view["username"] or "–", "auth": proto("auth_protocol", "auth_password"),
            "priv": proto("priv_protocol", "priv_password"), "devices": view["devices"]}


def register() -> None:
    @dash.callback(Output(GRID, "rowData"), Input(VERSION, "data"))
    @guarded(TAB.read)  # as GET /api/v1/snmp-credentials
    def snmp_rows(_version: int | None) -> list[dict[str, Any]]:
        with forms.session() as s:
            return [_row(credentials.credential_view(u.credential, devices=u.devices))
                    for u in credentials.list_snmp_credentials(s, current_org_id())]

    @dash.callback(Output(REMOVE_BUTTON, "disabled"), Input(GRID, "selectedRows"))
    @guarded(TAB.read)
    def snmp_selected(selected: list[dict[str, Any]] | None) -> bool:
        return not selected

    @dash.callback(
        Output(RESULT, "children"), Output(VERSION, "data"), *(Output(FIELD[k], "value") for k in SECRETS),
        Input(ADD, "n_clicks"), State(VERSION, "data"), *(State(FIELD[k], "value") for k in FIELDS),
        prevent_initial_call=True)
    @guarded(TAB.write)  # as POST /api/v1/snmp-credentials
    def add_snmp_credential(_n: int | None, version: int | None, *values: str | None) -> tuple[Any, ...]:
        given = {k: (v if k in SECRETS else forms.text(v)) or None for k, v in zip(FIELDS, values, strict=True)}
        given.update({k: None for k in ("auth_protocol", "priv_protocol") if given[k] == NONE})
        spec = credentials.SnmpCredentialSpec(**{**given, "name": given["name"] or "",  # type: ignore[arg-type]
                                                 "version": given["version"] or ""})

        def add() -> str:
            with forms.session() as s:
                added = credentials.add_snmp_credential(s, current_org_id(), spec)
                return f"Added the SNMP {added.version} profile {added.name}."

        message, error = forms.outcome(add)
        if error is not None:
            return error, no_update, *(no_update for _ in SECRETS)
        return forms.done(message), (version or 0) + 1, *("" for _ in SECRETS)

    @dash.callback(
        Output(RESULT, "children", allow_duplicate=True), Output(VERSION, "data", allow_duplicate=True),
        Input(REMOVE, "submit_n_clicks"), State(GRID, "selectedRows"), State(FORCE, "value"), State(VERSION, "data"),
        prevent_initial_call=True)
    @guarded(TAB.write)  # as DELETE /api/v1/snmp-credentials/<id>
    def remove_snmp_credential(_n: int | None, selected: list[dict[str, Any]] | None, force: bool | None,
                               version: int | None) -> tuple[Any, ...]:
        if not selected:
            raise PreventUpdate
        credential_id, name = int(selected[0]["id"]), selected[0].get("name")

        def remove() -> str:
            with forms.session() as s:
                detached = credentials.remove_snmp_credential(s, current_org_id(), credential_id, force=bool(force))
            return f"Removed the SNMP profile {name}" + (f"; detached from {', '.join(detached)}." if detached else ".")

        return forms.write(remove, version)
