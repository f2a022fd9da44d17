"""Users tab: the organization's users; admins add them, change their role, disable or enable them and
reset their password (:mod:`netpulse.users`, as ``netpulse users`` and ``/api/v1/users``). A password
left blank is generated and shown once."""

from __future__ import annotations

import uuid
from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, ctx, html, no_update
from dash.exceptions import PreventUpdate

from dashboard.admin import forms
from dashboard.auth import current_org_id
from dashboard.ids import admin_id
from dashboard.permissions import guarded
from netpulse import users
from netpulse.schema import Role, User

TAB = forms.Tab("users", "Users", read="admin", write="admin")   # as /api/v1/users
ROLES = [r.value for r in Role]

GRID = admin_id("users", "grid")
VERSION = admin_id("users", "version")
RESULT = admin_id("users", "result")
EMAIL = admin_id("users", "email")
NAME = admin_id("users", "name")
ROLE = admin_id("users", "role")
PASSWORD = admin_id("users", "password")
ADD = admin_id("users", "add")
NEW_ROLE = admin_id("users", "new-role")
SET_ROLE = admin_id("users", "set-role")
DISABLE = admin_id("users", "disable")
ENABLE = admin_id("users", "enable")
RESET = admin_id("users", "reset")
ACTIONS = (SET_ROLE, DISABLE, ENABLE, RESET)

COLUMNS: list[dict[str, Any]] = [
    {"field": "email", "headerName": "E-mail", "minWidth": 200},
    {"field": "full_name", "headerName": "Name"},
    {"field": "role", "headerName": "Role"},
    {"field": "state", "headerName": "State", "cellClassRules": {"np-cell-bad": "params.value === 'disabled'"}},
    {"field": "last_login", "headerName": "Last sign-in"},
    {"field": "created", "headerName": "Added"},
]


def _select(select_id: str, value: str) -> dbc.Select:
    return dbc.Select(id=select_id, options=[{"label": r, "value": r} for r in ROLES], value=value, size="sm")


def panel() -> html.Div:
    add = dbc.Card(dbc.CardBody([
        html.H2("Add a user", className="np-panel-title"),
        dbc.Row([dbc.Col(forms.field("E-mail", dbc.Input(id=EMAIL, type="email", maxLength=255, size="sm")), md=4),
                 dbc.Col(forms.field("Name", dbc.Input(id=NAME, maxLength=255, size="sm")), md=3),
                 dbc.Col(forms.field("Role", _select(ROLE, "viewer")), md=2),
                 dbc.Col(forms.field("Password", dbc.Input(id=PASSWORD, type="password", size="sm",
                                                           autoComplete="new-password"),
                                     "blank: one is generated and shown once"), md=3)]),
        dbc.Button("Add user", id=ADD, size="sm", color="success"),
    ]), className="np-admin-form")
    selected = html.Div([
        html.Span("Selected user:", className="np-muted"), _select(NEW_ROLE, "viewer"),
        dbc.Button("Change role", id=SET_ROLE, size="sm", color="secondary", disabled=True),
        dbc.Button("Disable", id=DISABLE, size="sm", color="warning", outline=True, disabled=True),
        dbc.Button("Enable", id=ENABLE, size="sm", color="secondary", outline=True, disabled=True),
        dbc.Button("Reset password", id=RESET, size="sm", color="secondary", outline=True, disabled=True,
                   title="Sets a generated password, shown once (or the one typed in the Password field)"),
    ], className="np-actions-bar np-admin-actions")
    return html.Div([html.Div(id=RESULT), selected, forms.grid(GRID, COLUMNS), add])


def _row(u: User) -> dict[str, Any]:
    return {"id": str(u.id), "email": u.email, "full_name": u.full_name or "", "role": u.role,
            "state": "active" if u.is_active else "disabled",
            "last_login": u.last_login_at.strftime("%Y-%m-%d %H:%M UTC") if u.last_login_at else "never",
            "created": u.created_at.strftime("%Y-%m-%d")}


def _shown_once(what: str, password: str) -> list[Any]:
    return [f"{what} Its password, shown only now: ", html.Code(password, className="np-secret-once")]


def register() -> None:
    @dash.callback(Output(GRID, "rowData"), Input(VERSION, "data"))
    @guarded(TAB.read)  # as GET /api/v1/users
    def users_rows(_version: int | None) -> list[dict[str, Any]]:
        with forms.session() as s:
            return [_row(u) for u in users.list_users(s, current_org_id())]

    @dash.callback(*(Output(a, "disabled") for a in ACTIONS), Output(NEW_ROLE, "value"), Input(GRID, "selectedRows"))
    @guarded(TAB.read)
    def users_selected(selected: list[dict[str, Any]] | None) -> list[Any]:
        if not selected:
            return [True] * len(ACTIONS) + [no_update]
        active = selected[0].get("state") == "active"
        return [False, not active, active, False, selected[0].get("role") or "viewer"]

    @dash.callback(
        Output(RESULT, "children"), Output(VERSION, "data"), Output(PASSWORD, "value"), Output(EMAIL, "value"),
        Input(ADD, "n_clicks"), State(EMAIL, "value"), State(NAME, "value"), State(ROLE, "value"),
        State(PASSWORD, "value"), State(VERSION, "data"),
        prevent_initial_call=True)
    @guarded(TAB.write)  # as POST /api/v1/users
    def add_user(_n: int | None, email: str | None, name: str | None, role: str | None, password: str | None,
                 version: int | None) -> tuple[Any, ...]:
        secret = password or users.generate_password()

        def add() -> str:
            with forms.session() as s:
                user = users.create_user(s, current_org_id(), forms.text(email), secret, role=role or "viewer",
                                         full_name=forms.text(name) or None)
                return f"Added {user.email} as {user.role}."

        message, error = forms.outcome(add)
        if error is not None:
            return error, no_update, no_update, no_update
        shown = _shown_once(str(message), secret) if not password else str(message)
        return forms.done(shown), (version or 0) + 1, "", ""

    @dash.callback(
        Output(RESULT, "children", allow_duplicate=True), Output(VERSION, "data", allow_duplicate=True),
        Output(PASSWORD, "value", allow_duplicate=True),
        *(Input(a, "n_clicks") for a in ACTIONS),
        State(GRID, "selectedRows"), State(NEW_ROLE, "value"), State(PASSWORD, "value"), State(VERSION, "data"),
        prevent_initial_call=True)
    @guarded(TAB.write)  # as PUT .../role, POST .../disable and .../enable, PUT .../password
    def change_user(_role: int | None, _disable: int | None, _enable: int | None, _reset: int | None,
                    selected: list[dict[str, Any]] | None, new_role: str | None, password: str | None,
                    version: int | None) -> tuple[Any, ...]:
        if not selected or ctx.triggered_id not in ACTIONS:
            raise PreventUpdate
        try:
            user_id = uuid.UUID(str(selected[0].get("id")))
        except ValueError:
            raise PreventUpdate from None
        action, secret = ctx.triggered_id, password or users.generate_password()

        def change() -> str:
            org = current_org_id()
            with forms.session() as s:
                if action == SET_ROLE:
                    user = users.set_role(s, org, user_id, new_role or "")
                    return f"{user.email} is now {user.role}."
                if action == DISABLE:
                    return f"{users.disable_user(s, org, user_id).email} can no longer sign in."
                if action == ENABLE:
                    return f"{users.enable_user(s, org, user_id).email} can sign in again."
                return f"New password set for {users.reset_password(s, org, user_id, secret).email}."

        message, error = forms.outcome(change)
        if error is not None:
            return error, no_update, no_update
        shown = _shown_once(str(message), secret) if action == RESET and not password else str(message)
        return forms.done(shown), (version or 0) + 1, ""
