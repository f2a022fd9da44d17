"""Administration: users and roles, notification channels and escalation policies, alert rules (with a
backtest before saving), maintenance windows, SNMP credential profiles and SLA targets, one tab each
(:mod:`dashboard.admin`), the tab in the URL (``/admin?tab=rules``) so a link opens it.

Each tab reads and writes with the permissions of the REST API routes that serve the same data: a role
sees the tabs it may read (an operator: channels and policies, rules, maintenance windows and SLA
targets, saving rules and windows; a viewer the same, read only) and the page as a whole needs
``alert:read``, the permission of its first readable tab for every role but admin.
"""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import dcc, html

from dashboard import ids
from dashboard.admin import maintenance, notify, rules, sla, snmp, users
from dashboard.permissions import allowed, forbidden

READ = "alert:read"
dash.register_page(__name__, path="/admin", title="Administration", name="Admin", order=8, permission=READ)

TABS = (users, notify, rules, maintenance, snmp, sla)
for _tab in TABS:
    _tab.register()


def _readable() -> list[Any]:
    return [t for t in TABS if t.TAB.readable()]


def _nav(shown: list[Any], active: str) -> dbc.Nav:
    return dbc.Nav([dbc.NavItem(dbc.NavLink(t.TAB.label, href=f"/admin?tab={t.TAB.key}", active=t.TAB.key == active,
                                            id=ids.ADMIN_TAB_LINK[t.TAB.key]))
                    for t in shown], pills=True, className="np-admin-tabs")


def layout(tab: str | None = None, **_query: Any) -> html.Div:
    if not allowed(READ):
        return forbidden(READ)
    shown = _readable()
    chosen = next((t for t in shown if t.TAB.key == tab), shown[0])
    key = chosen.TAB.key
    access = "" if chosen.TAB.writable() else " · read only for your role"
    return html.Div([
        dcc.Store(id=ids.page_state("admin"), data={"tab": key}),
        dcc.Store(id=ids.admin_id(key, "version"), data=0),
        dcc.Store(id=rules.EDITING, data=None) if chosen is rules else None,
        html.Div([html.H1("Administration", className="np-page-title"),
                  html.Span(f"{chosen.TAB.label}{access}", className="np-page-meta")], className="np-page-header"),
        _nav(shown, key),
        html.Div(chosen.panel(), className="np-panel np-admin-panel", id=ids.admin_id(key, "panel")),
    ])

