"""The app shell: navbar, device search, the global time range, live refresh with pause, and wall mode.

Its state lives in the URL so a link shows what its sender saw: ``?range=7d`` (or ``from``/``to``),
``live=0`` when paused, ``wall=1`` for the wall screen, plus each page's own keys (its filters),
which the page keeps in a ``page_state`` store. A clientside callback writes them into the query
string with ``history.replaceState``, which Dash's location components do not hear, so changing a
filter never re-renders the page; opening such a link hands the keys to the page's ``layout(**query)``
and to the controls here.

The shell is built per page load (it shows the user and the pages the role may read); its callbacks
are bound to the app by :func:`register` (pages bind theirs with ``@dash.callback``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import dash
import dash_bootstrap_components as dbc
from dash import ALL, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate
from flask import current_app

from analytics.devices import search_devices
from dashboard import ids, timerange
from dashboard.auth import current_claims, current_org_id
from dashboard.permissions import allowed, guarded
from netpulse.db import raw_connection
from netpulse.errors import ValidationError
from netpulse.timespec import parse_time

__all__ = ["TICK_MS", "layout", "register"]

TICK_MS = 10_000
SEARCH_LIMIT = 12

_PRESET_OPTIONS = [{"label": label, "value": key} for key, (label, _) in timerange.PRESETS.items()]
_PRESET_OPTIONS.append({"label": "Custom range…", "value": "custom"})

# Writes the global and the page's state into the query string without telling Dash (no re-render).
_SYNC_URL = """
function(range, live, wall, pageStates) {
    const params = new URLSearchParams();
    (pageStates || []).forEach(function(state) {
        Object.entries(state || {}).forEach(function([k, v]) {
            if (v === null || v === undefined || v === '' || v === false) { return; }
            if (Array.isArray(v)) { if (v.length) { params.set(k, v.join(',')); } return; }
            params.set(k, v === true ? '1' : String(v));
        });
    });
    if (range && range.from && range.to) { params.set('from', range.from); params.set('to', range.to); }
    else if (range && range.range && range.range !== 'DEFAULT_RANGE') { params.set('range', range.range); }
    if (live === false) { params.set('live', '0'); }
    if (wall) { params.set('wall', '1'); }
    const query = params.toString();
    const target = window.location.pathname + (query ? '?' + query : '');
    if (target !== window.location.pathname + window.location.search) {
        window.history.replaceState(window.history.state, '', target);
    }
    return window.dash_clientside.no_update;
}
""".replace("DEFAULT_RANGE", timerange.DEFAULT)

_WALL_CLASS = """
function(wall) { return wall ? 'np-shell np-wall' : 'np-shell'; }
"""


def _nav_links() -> list[Any]:
    links = []
    for page in dash.page_registry.values():
        if page.get("nav") is False:
            continue
        permission = page.get("permission")
        if permission and not allowed(permission):
            continue
        links.append(dbc.NavItem(dbc.NavLink(page["name"], href=page["relative_path"], active="partial"
                                             if page["relative_path"] != "/" else "exact")))
    return links


def _range_controls() -> html.Div:
    return html.Div(
        [
            dbc.Select(id=ids.RANGE_PRESET, options=_PRESET_OPTIONS, value=timerange.DEFAULT, size="sm",
                       className="np-range-select"),
            html.Div(
                [
                    dbc.Input(id=ids.RANGE_FROM, type="datetime-local", size="sm", step=60, placeholder="From (UTC)"),
                    html.Span("to", className="np-muted"),
                    dbc.Input(id=ids.RANGE_TO, type="datetime-local", size="sm", step=60, placeholder="To (UTC)"),
                    dbc.Button("Apply", id=ids.RANGE_APPLY, size="sm", color="secondary"),
                    html.Span(id=ids.RANGE_ERROR, className="np-range-error"),
                ],
                id=ids.RANGE_CUSTOM, className="np-range-custom", hidden=True,
            ),
        ],
        className="np-range",
    )


def layout() -> html.Div:
    """The app layout: navbar (with the global controls) over the current page."""
    claims = current_claims()
    email, csrf = str(claims.get("email", "")), str(claims.get("csrf", ""))
    navbar = dbc.Navbar(
        dbc.Container(
            [
                html.A([html.Span(className="np-pulse"), "NetPulse"], href="/", className="navbar-brand np-brand"),
                dbc.Nav(_nav_links(), navbar=True, className="me-auto"),
                html.Div(
                    [
                        dcc.Dropdown(id=ids.SEARCH, options=[], placeholder="Search devices, addresses, sites",
                                     searchable=True, clearable=True, className="np-search",
                                     optionHeight=44, maxHeight=420),
                        _range_controls(),
                        dbc.Button([html.Span(className="np-live-dot"), html.Span("Live", className="np-live-text")],
                                   id=ids.LIVE, size="sm", color="link", className="np-live",
                                   title="Pause or resume live refresh"),
                        dbc.Button("Wall", id=ids.WALL, size="sm", color="secondary", outline=True,
                                   title="Wall mode: no chrome, large tiles (Esc or the corner button leaves it)"),
                        html.Span(email, id=ids.NAV_USER, className="np-user", title=email),
                        # A plain form: /logout is a Flask route, not a Dash page, and signing out
                        # changes state, so it is a POST carrying the token's CSRF value (a submit
                        # button sends its own name and value).
                        html.Form(
                            html.Button("Sign out", id=ids.NAV_LOGOUT, type="submit", name="csrf_token", value=csrf,
                                        className="btn btn-sm btn-outline-secondary"),
                            method="POST", action="/logout", className="m-0"),
                    ],
                    className="d-flex align-items-center gap-2 np-nav-tools",
                ),
            ],
            fluid=True,
        ),
        dark=True,
        className="np-navbar",
    )
    return html.Div(
        [
            dcc.Location(id=ids.URL, refresh="callback-nav"),
            dcc.Store(id=ids.RANGE, data={"range": timerange.DEFAULT}),
            dcc.Store(id=ids.LIVE_STATE, data=True),
            dcc.Store(id=ids.WALL_STATE, data=False),
            dcc.Store(id=ids.URL_SYNC),
            dcc.Interval(id=ids.TICK, interval=TICK_MS, n_intervals=0),
            html.Div(html.Span(id=ids.RANGE_LABEL, className="np-range-label"), className="np-range-label-wrap"),
            navbar,
            html.Button("Leave wall mode", id=ids.WALL_EXIT, className="np-wall-exit"),
            dbc.Container(dash.page_container, fluid=True, className="np-main"),
        ],
        id=ids.SHELL, className="np-shell",
    )


def _local(ts: datetime) -> str:
    """A UTC time as a datetime-local input shows it."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


def register(app: dash.Dash) -> None:
    """Bind the shell's callbacks to ``app``."""

    @app.callback(
        Output(ids.RANGE_PRESET, "value"), Output(ids.RANGE_FROM, "value"), Output(ids.RANGE_TO, "value"),
        Output(ids.LIVE_STATE, "data"), Output(ids.WALL_STATE, "data", allow_duplicate=True),
        Input(ids.URL, "search"),
        prevent_initial_call="initial_duplicate",
    )
    @guarded("device:read")
    def from_url(search: str | None) -> tuple[Any, ...]:
        """Controls follow the URL when a page is opened from a link (the query names them)."""
        query = {k: v[-1] for k, v in parse_qs((search or "").lstrip("?")).items()}
        if not {"range", "from", "to", "live", "wall"} & set(query):
            raise PreventUpdate
        preset: Any = no_update
        start: Any = no_update
        end: Any = no_update
        if {"range", "from", "to"} & set(query):
            state = timerange.state_from_query(query)
            if "from" in state:
                window = timerange.window(state)
                preset, start, end = "custom", _local(window.start), _local(window.end)
            else:
                preset = state["range"]
        live = query["live"] != "0" if "live" in query else no_update
        wall = query["wall"] == "1" if "wall" in query else no_update
        return preset, start, end, live, wall

    @app.callback(
        Output(ids.RANGE, "data"), Output(ids.RANGE_CUSTOM, "hidden"), Output(ids.RANGE_ERROR, "children"),
        Input(ids.RANGE_PRESET, "value"), Input(ids.RANGE_APPLY, "n_clicks"),
        State(ids.RANGE_FROM, "value"), State(ids.RANGE_TO, "value"),
    )
    @guarded("device:read")
    def choose_range(preset: str | None, _apply: int | None, start: str | None, end: str | None) -> tuple[Any, ...]:
        if preset != "custom":
            return {"range": preset if preset in timerange.PRESETS else timerange.DEFAULT}, True, ""
        if not start or not end:
            return no_update, False, "" if ctx.triggered_id != ids.RANGE_APPLY else "Give both times."
        try:
            first, last = parse_time(start, field="from"), parse_time(end, field="to")
        except ValidationError as exc:
            return no_update, False, exc.message
        if last <= first:
            return no_update, False, "The end must be after the start."
        if last - first > timerange.MAX_SPAN:
            return no_update, False, f"At most {timerange.MAX_SPAN.days} days."
        iso = {"from": first.isoformat().replace("+00:00", "Z"), "to": last.isoformat().replace("+00:00", "Z")}
        return iso, False, ""

    @app.callback(Output(ids.RANGE_LABEL, "children"), Input(ids.RANGE, "data"), Input(ids.LIVE_STATE, "data"))
    @guarded("device:read")
    def range_label(state: dict[str, Any] | None, live: bool) -> str:
        window = timerange.window(state)
        paused = " · paused" if not live and window.preset else ""
        return f"{window.label} · {timerange.RESOLUTION_LABELS[window.resolution]} · UTC{paused}"

    @app.callback(
        Output(ids.LIVE_STATE, "data", allow_duplicate=True),
        Input(ids.LIVE, "n_clicks"), State(ids.LIVE_STATE, "data"),
        prevent_initial_call=True,
    )
    @guarded("device:read")
    def toggle_live(_n: int | None, live: bool) -> bool:
        return not live

    @app.callback(
        Output(ids.TICK, "disabled"), Output(ids.LIVE, "className"), Output(ids.LIVE, "children"),
        Input(ids.LIVE_STATE, "data"),
    )
    @guarded("device:read")
    def show_live(live: bool) -> tuple[bool, str, list[Any]]:
        text = "Live" if live else "Paused"
        return not live, "np-live" if live else "np-live np-paused", [html.Span(className="np-live-dot"),
                                                                       html.Span(text, className="np-live-text")]

    @app.callback(
        Output(ids.WALL_STATE, "data", allow_duplicate=True),
        Input(ids.WALL, "n_clicks"), Input(ids.WALL_EXIT, "n_clicks"), State(ids.WALL_STATE, "data"),
        prevent_initial_call=True,
    )
    @guarded("device:read")
    def toggle_wall(_on: int | None, _off: int | None, wall: bool) -> bool:
        return ctx.triggered_id == ids.WALL

    app.clientside_callback(_WALL_CLASS, Output(ids.SHELL, "className"), Input(ids.WALL_STATE, "data"))
    app.clientside_callback(
        _SYNC_URL, Output(ids.URL_SYNC, "data"),
        Input(ids.RANGE, "data"), Input(ids.LIVE_STATE, "data"), Input(ids.WALL_STATE, "data"),
        Input({"type": ids.PAGE_STATE, "page": ALL}, "data"),
    )

    @app.callback(Output(ids.SEARCH, "options"), Input(ids.SEARCH, "search_value"), State(ids.SEARCH, "value"))
    @guarded("device:read")
    def search_options(text: str | None, chosen: str | None) -> Any:
        if not text or len(text.strip()) < 1:
            raise PreventUpdate
        engine = current_app.extensions["netpulse.engine"]
        with raw_connection(engine) as conn:
            found = search_devices(conn, current_org_id(), text, limit=SEARCH_LIMIT)
        options: list[dict[str, Any]] = [
            {"label": html.Div([html.Span(className=f"np-dot np-dot-{r['oper_status']}"),
                                html.Span(r["name"], className="np-search-name"),
                                html.Span(f"{r['address']} · {r['site'] or 'no site'}", className="np-search-sub")],
                               className="np-search-option"),
             "value": f"/devices/{r['id']}", "search": f"{r['name']} {r['address']} {r['site'] or ''}"}
            for r in found]
        sites = sorted({r["site"] for r in found if r["site"] and text.strip().lower() in r["site"].lower()})
        options += [{"label": html.Div([html.Span("Site", className="np-chip"), html.Span(site)],
                                       className="np-search-option"),
                     "value": f"/devices?site={site}", "search": site} for site in sites]
        return options

    @app.callback(Output(ids.URL, "href"), Output(ids.SEARCH, "value"), Input(ids.SEARCH, "value"),
                  prevent_initial_call=True)
    @guarded("device:read")
    def go_to(choice: str | None) -> tuple[Any, Any]:
        if not choice or not str(choice).startswith("/devices"):
            raise PreventUpdate
        return choice, None
