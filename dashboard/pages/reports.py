"""Reports: ask for one (availability, performance or alerts; all devices, a site or a group; a period;
PDF or CSV), follow it and download it; every run made (asked for here, through the API or by a
schedule) with its figures, duration, error and emails; and the schedules, added, removed or run now.

Nothing is made in the web process: a run is recorded and handed to a worker
(:mod:`dashboard.reporting`, as ``POST /api/v1/reports/generate`` does), shows as pending in the
history, which refreshes every few seconds while a run is unfinished, and the file the user asked for
downloads by itself once made. The history's links are the API's download route (a plain GET that the
session cookie signs in). Reading needs ``report:read``; asking for reports and changing schedules
``report:write``, as in the API.
"""

from __future__ import annotations

from datetime import UTC, date, timedelta
from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import ALL, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate
from flask import current_app
from sqlalchemy import Engine

from analytics.devices import label_names
from analytics.notify.channels import list_channels
from dashboard import ids, timerange
from dashboard.auth import current_org_id, sessionmaker_of
from dashboard.permissions import allowed, forbidden, guarded
from dashboard.reporting import (
    ask_for_report,
    ask_for_schedule_run,
    made_file,
    transaction,
    window_period,
    workers_attached,
)
from netpulse.db import raw_connection
from netpulse.errors import NetPulseError
from reports import runs, schedules
from reports.generate import FORMATS

dash.register_page(__name__, path="/reports", title="Reports", name="Reports", order=6, permission="report:read")

READ = "report:read"     # as GET /api/v1/reports, /reports/<id>/file, /report-schedules
WRITE = "report:write"   # as POST /api/v1/reports/generate, POST and DELETE /api/v1/report-schedules
HISTORY_ROWS = 25
POLL_MS = 2_000
KIND_LABELS = {"availability": "Availability / SLA", "performance": "Performance", "alerts": "Alerts"}
PERIODS = (("last-7d", "Last 7 days"), ("last-month", "Last month"), ("range", "The time range above"),
           ("custom", "From … to …"))


def _engine() -> Engine:
    engine: Engine = current_app.extensions["netpulse.engine"]
    return engine


def _scope_options() -> list[dict[str, str]]:
    with raw_connection(_engine()) as conn:
        labels = label_names(conn, current_org_id())
    return [{"label": "All devices", "value": "all"},
            *({"label": f"Site {n}", "value": f"site:{n}"} for n in labels["sites"]),
            *({"label": f"Group {n}", "value": f"group:{n}"} for n in labels["groups"])]


def _email_channels() -> list[str]:
    with sessionmaker_of(current_app)() as session:
        return [c.name for c in list_channels(session, current_org_id()) if c.kind in schedules.EMAIL_KINDS]


def _field(label: str, control: Any, width: int = 3, **kw: Any) -> dbc.Col:
    return dbc.Col(html.Div([dbc.Label(label, className="np-fact-label d-block"), control], className="np-form-field"),
                   md=width, **kw)


def _toggle(component_id: str, options: list[tuple[str, str]], value: str) -> dbc.RadioItems:
    return dbc.RadioItems(id=component_id, value=value, inline=True,
                          options=[{"label": label, "value": key} for key, label in options],
                          input_class_name="btn-check", label_class_name="btn btn-sm btn-outline-secondary",
                          label_checked_class_name="active", class_name="btn-group np-toggle")


def _generate_panel(scopes: list[dict[str, str]]) -> html.Div:
    today = date.today()
    body: list[Any]
    if allowed(WRITE):
        body = [
            dbc.Row([
                _field("Report", _toggle(ids.REPORTS_KIND, list(KIND_LABELS.items()), "availability"), 5),
                _field("Scope", dbc.Select(id=ids.REPORTS_SCOPE, options=scopes, value="all", size="sm"), 3),
                _field("Format", _toggle(ids.REPORTS_FORMAT, [(f, f.upper()) for f in FORMATS], "pdf"), 2),
            ], className="g-3 mb-2"),
            dbc.Row([
                _field("Period", dbc.Select(id=ids.REPORTS_PERIOD, size="sm", value="last-7d",
                                            options=[{"label": label, "value": key} for key, label in PERIODS]), 3),
                dbc.Col(html.Div([
                    _field("From", dbc.Input(id=ids.REPORTS_FROM, type="date", size="sm",
                                             value=(today - timedelta(days=7)).isoformat()), 6),
                    _field("To (included)", dbc.Input(id=ids.REPORTS_TO, type="date", size="sm",
                                                      value=(today - timedelta(days=1)).isoformat()), 6),
                ], className="row g-3"), id=ids.REPORTS_CUSTOM, md=5, style={"display": "none"}),
                dbc.Col(dbc.Button("Generate", id=ids.REPORTS_GENERATE, color="primary", size="sm",
                                   className="mt-4"), md=2),
            ], className="g-3 align-items-start"),
            html.Div(id=ids.REPORTS_RESULT, className="mt-2"),
        ]
    else:
        body = [html.Div(f"Asking for reports needs the {WRITE} permission; your role can read and download "
                         "them.", className="np-muted")]
    return html.Div([html.Div(html.Span("Generate a report", className="np-panel-title"), className="np-panel-head"),
                     *body], className="np-panel mb-3")


def _schedule_form(scopes: list[dict[str, str]]) -> list[Any]:
    if not allowed(WRITE):
        return []
    f = ids.REPORTS_SCHEDULE_FIELD
    channels = _email_channels()
    return [
        html.Hr(),
        dbc.Row([
            _field("Name", dbc.Input(id=f["name"], size="sm", placeholder="e.g. monthly-sla", maxLength=100), 3),
            _field("Report", dbc.Select(id=f["kind"], size="sm", value="availability",
                                        options=[{"label": v, "value": k} for k, v in KIND_LABELS.items()]), 3),
            _field("Scope", dbc.Select(id=f["scope"], options=scopes, value="all", size="sm"), 3),
            _field("Format", dbc.Select(id=f["format"], size="sm", value="pdf",
                                        options=[{"label": x.upper(), "value": x} for x in FORMATS]), 3),
        ], className="g-3 mb-2"),
        dbc.Row([
            _field("Every", dbc.Select(id=f["frequency"], size="sm", value="monthly",
                                       options=[{"label": x, "value": x} for x in schedules.FREQUENCIES]), 2),
            _field("At (local)", dbc.Input(id=f["at"], size="sm", value="06:00", type="time"), 2),
            _field("Day", dbc.Input(id=f["day"], size="sm", value="1", placeholder="1..28 or mon..sun"), 2,
                   id=ids.REPORTS_SCHEDULE_DAY),
            _field("Cron", dbc.Input(id=f["cron"], size="sm", placeholder="0 6 * * 1-5"), 2,
                   id=ids.REPORTS_SCHEDULE_CRON, style={"display": "none"}),
            _field("Time zone", dbc.Input(id=f["time_zone"], size="sm", placeholder="the scope's (e.g. UTC)"), 2),
            _field("Email to", dcc.Dropdown(id=f["channels"], options=channels, multi=True, className="np-channels",
                                            placeholder="no email" if channels else "no email channel yet"), 2),
            dbc.Col(dbc.Button("Add schedule", id=ids.REPORTS_SCHEDULE_ADD, color="secondary", size="sm",
                               className="mt-4"), md=2),
        ], className="g-3 align-items-start"),
        html.Div(id=ids.REPORTS_SCHEDULE_RESULT, className="mt-2"),
    ]


def layout(**_query: Any) -> html.Div:
    if not allowed(READ):
        return forbidden(READ)
    scopes = _scope_options()
    return html.Div([
        dcc.Store(id=ids.REPORTS_AWAIT, data=None),
        dcc.Store(id=ids.REPORTS_VERSION, data=0),
        dcc.Download(id=ids.REPORTS_DOWNLOAD),
        dcc.Interval(id=ids.REPORTS_POLL, interval=POLL_MS, disabled=True),
        html.Div(html.H1("Reports", className="np-page-title"), className="np-page-header"),
        _generate_panel(scopes),
        html.Div([html.Div(html.Span("Reports made", className="np-panel-title"), className="np-panel-head"),
                  html.Div(id=ids.REPORTS_HISTORY, className="np-table-wrap")], className="np-panel mb-3"),
        html.Div([html.Div(html.Span("Schedules", className="np-panel-title"), className="np-panel-head"),
                  html.Div(id=ids.REPORTS_SCHEDULES, className="np-table-wrap"), *_schedule_form(scopes)],
                 className="np-panel mb-3"),
    ])


# --- showing -------------------------------------------------------------------------------------------------

def _figures(kind: str, f: dict[str, Any] | None) -> str:
    if not f:
        return "–"
    if kind == "availability":
        avail = f.get("availability_pct")
        if avail is None:
            return "nothing monitored"
        text = f"{avail:.3f} % available"
        if f.get("target_pct") is not None:
            text += f", target {f['target_pct']:g} % {'missed' if f.get('breached') else 'met'}"
        return f"{text}, {f.get('outages') or 0} outages"
    if kind == "performance":
        p95, loss = f.get("p95_ms"), f.get("loss_pct")
        return (f"p95 {'–' if p95 is None else f'{p95:.1f} ms'}, loss {'–' if loss is None else f'{loss:.2f} %'}")
    return f"{f.get('alerts') or 0} alerts, {f.get('suppressed') or 0} suppressed"


def _status(run: runs.Run) -> html.Span:
    return html.Span(run.status, className=f"np-chip np-report-{run.status}")


def _emails(run: runs.Run) -> str:
    if not run.deliveries:
        return "–" if run.schedule_name is None else "no email"
    return ", ".join(f"{d.channel}: {d.status}" for d in run.deliveries)


def _history_table(found: list[runs.Run]) -> Any:
    if not found:
        return html.Div("No reports yet: generate one above, or add a schedule.", className="np-muted")
    head = html.Thead(html.Tr([html.Th(h) for h in ("Asked (UTC)", "Report", "Scope", "Period", "Status", "Figures",
                                                    "Took", "Emails", "File")]))
    rows = []
    for r in found:
        link: Any = (html.A(f"Download {r.format.upper()}", href=f"/api/v1/reports/{r.id}/file",
                            className="np-report-link", title=r.file_name or "")
                     if r.size is not None else html.Span("–", className="np-muted"))
        rows.append(html.Tr([
            html.Td(r.created_at.astimezone(UTC).strftime("%b %d %H:%M"), className="np-since"),
            html.Td([KIND_LABELS.get(r.kind, r.kind),
                     html.Div(f"schedule {r.schedule_name}" if r.schedule_name else "asked for",
                              className="np-muted small")]),
            html.Td(r.scope.label),
            html.Td([r.period.label, html.Div(r.period.tz, className="np-muted small")]),
            html.Td([_status(r), html.Div(r.error, className="np-line-error small") if r.error else None]),
            html.Td(_figures(r.kind, r.figures)),
            html.Td("–" if r.duration_s is None else f"{r.duration_s:.1f} s", className="np-num"),
            html.Td(_emails(r), className="small"),
            html.Td(link),
        ], className="np-report-row", id=f"report-run-{r.id}"))
    return html.Table([head, html.Tbody(rows)], className="np-table np-reports-table")


@dash.callback(Output(ids.REPORTS_HISTORY, "children"), Output(ids.REPORTS_POLL, "disabled"),
               Input(ids.TICK, "n_intervals"), Input(ids.REPORTS_POLL, "n_intervals"),
               Input(ids.REPORTS_VERSION, "data"))
@guarded(READ)
def refresh_history(_tick: int | None, _poll: int | None, _version: int | None) -> tuple[Any, bool]:
    """The newest runs; polled every few seconds while one of them is unfinished."""
    with raw_connection(_engine()) as conn:
        found, _total = runs.list_runs(conn, current_org_id(), limit=HISTORY_ROWS)
    unfinished = any(r.status in ("pending", "running") for r in found)
    return _history_table(found), not unfinished


def _schedule_table(found: list[tuple[schedules.Schedule, str]]) -> Any:
    if not found:
        return html.Div("No schedules yet.", className="np-muted")
    write = allowed(WRITE)
    head = html.Thead(html.Tr([html.Th(h) for h in ("Name", "Report", "Scope", "When", "Time zone", "Email to",
                                                    "")]))
    rows = []
    for s, tz in found:
        actions = [dbc.Button("Run now", id=ids.schedule_action("run", s.name), size="sm", color="secondary",
                              outline=True, className="me-1"),
                   dbc.Button("Remove", id=ids.schedule_action("remove", s.name), size="sm", color="danger",
                              outline=True)] if write else []
        rows.append(html.Tr([
            html.Td(s.name, className="np-schedule-name"),
            html.Td(f"{KIND_LABELS.get(s.kind, s.kind)} ({s.format.upper()})"),
            html.Td(s.scope.label),
            html.Td([s.frequency, html.Div(s.cron, className="np-muted small")]),
            html.Td(tz + ("" if s.time_zone else " (the scope's)")),
            html.Td(", ".join(s.channels) or "–"),
            html.Td(actions, className="text-end"),
        ], className="np-schedule-row"))
    return html.Table([head, html.Tbody(rows)], className="np-table np-schedules-table")


@dash.callback(Output(ids.REPORTS_SCHEDULES, "children"), Input(ids.REPORTS_VERSION, "data"))
@guarded(READ)
def refresh_schedules(_version: int | None) -> Any:
    with raw_connection(_engine()) as conn:
        found = [(s, schedules.schedule_time_zone(conn, s))
                 for s in schedules.list_schedules(conn, current_org_id())]
    return _schedule_table(found)


# --- asking for a report and downloading it ------------------------------------------------------------------

def _result(color: str, text: str) -> dbc.Alert:
    return dbc.Alert(text, color=color, className="py-1 px-2 mb-0 small", fade=False)


def period_text(choice: str | None, start: str | None, end: str | None, state: dict[str, Any] | None) -> str:
    """What the period controls ask for, as the API's ``period`` takes it: a preset, the global time range
    (UTC times), or whole local days from ``start`` to ``end`` included."""
    if choice == "range":
        return window_period(timerange.window(state))
    if choice == "custom":
        try:
            first, last = date.fromisoformat(start or ""), date.fromisoformat(end or "")
        except ValueError:
            return f"{start or '?'}..{end or '?'}"  # the core names what is wrong
        return f"{first.isoformat()}..{(last + timedelta(days=1)).isoformat()}"
    return choice if choice in dict(PERIODS) else "last-7d"


def _pending_text(run: runs.Run) -> str:
    where = ("a worker is making it" if workers_attached()
             else "the workers will pick it up within a few minutes")
    return (f"Asked for the {KIND_LABELS.get(run.kind, run.kind).lower()} report of {run.scope.label}, "
            f"{run.period.label} ({run.format.upper()}): {where}; it downloads when ready.")


@dash.callback(Output(ids.REPORTS_RESULT, "children"), Output(ids.REPORTS_AWAIT, "data"),
               Output(ids.REPORTS_VERSION, "data"),
               Input(ids.REPORTS_GENERATE, "n_clicks"),
               State(ids.REPORTS_KIND, "value"), State(ids.REPORTS_SCOPE, "value"), State(ids.REPORTS_PERIOD, "value"),
               State(ids.REPORTS_FROM, "value"), State(ids.REPORTS_TO, "value"), State(ids.REPORTS_FORMAT, "value"),
               State(ids.RANGE, "data"), State(ids.REPORTS_VERSION, "data"),
               prevent_initial_call=True)
@guarded(WRITE)
def generate(clicks: int | None, kind: str | None, scope: str | None, period: str | None, start: str | None,
             end: str | None, fmt: str | None, state: dict[str, Any] | None,
             version: int | None) -> tuple[Any, Any, Any]:
    if not clicks:
        raise PreventUpdate
    try:
        run = ask_for_report(kind=kind or "", scope=scope or "all", period=period_text(period, start, end, state),
                             fmt=fmt or "pdf")
    except NetPulseError as exc:
        return _result("danger", exc.message), no_update, no_update
    return _result("info", _pending_text(run)), run.id, (version or 0) + 1


@dash.callback(Output(ids.REPORTS_DOWNLOAD, "data"), Output(ids.REPORTS_AWAIT, "data", allow_duplicate=True),
               Output(ids.REPORTS_RESULT, "children", allow_duplicate=True),
               Input(ids.REPORTS_POLL, "n_intervals"), Input(ids.TICK, "n_intervals"),
               State(ids.REPORTS_AWAIT, "data"), prevent_initial_call=True)
@guarded(READ)
def download_when_made(_poll: int | None, _tick: int | None, run_id: int | None) -> tuple[Any, Any, Any]:
    """The file of the run just asked for, once a worker made it (as GET /api/v1/reports/<id>/file)."""
    if not run_id:
        raise PreventUpdate
    run, file = made_file(run_id)
    if file is None and run.status == "failed":
        return no_update, None, _result("danger", f"The report could not be made: {run.error}")
    if file is None:
        raise PreventUpdate
    return (dcc.send_bytes(file[1], file[0]), None,
            _result("success", f"Made {file[0]} in {run.duration_s or 0:.1f} s."))


# --- schedules ---------------------------------------------------------------------------------------------------
_F = ids.REPORTS_SCHEDULE_FIELD


@dash.callback(Output(ids.REPORTS_SCHEDULE_RESULT, "children"),
               Output(ids.REPORTS_VERSION, "data", allow_duplicate=True),
               Input(ids.REPORTS_SCHEDULE_ADD, "n_clicks"),
               *(State(_F[f], "value") for f in ids.REPORTS_SCHEDULE_FIELDS), State(ids.REPORTS_VERSION, "data"),
               prevent_initial_call=True)
@guarded(WRITE)
def add_schedule(clicks: int | None, name: str | None, kind: str | None, scope: str | None, fmt: str | None,
                 frequency: str | None, at: str | None, day: str | None, cron: str | None, time_zone: str | None,
                 channels: list[Any] | None, version: int | None) -> tuple[Any, Any]:
    if not clicks:
        raise PreventUpdate
    frequency = frequency or "monthly"
    try:
        with transaction() as conn:
            made = schedules.add_schedule(
                conn, current_org_id(), (name or "").strip(), kind=kind or "", scope=scope or "all", fmt=fmt or "pdf",
                frequency=frequency, at=(at or "06:00")[:5],
                day=(day or None) if frequency in ("weekly", "monthly") else None,
                cron=(cron or None) if frequency == "cron" else None, time_zone=(time_zone or "").strip() or None,
                channels=[str(c) for c in channels or []])
    except NetPulseError as exc:
        return _result("danger", exc.message), no_update
    return _result("success", f"Added schedule {made.name} ({made.frequency}, {made.cron})."), (version or 0) + 1


@dash.callback(Output(ids.REPORTS_SCHEDULE_RESULT, "children", allow_duplicate=True),
               Output(ids.REPORTS_VERSION, "data", allow_duplicate=True),
               Input({"type": ids.REPORTS_SCHEDULE_ACTION, "action": ALL, "name": ALL}, "n_clicks"),
               State(ids.REPORTS_VERSION, "data"), prevent_initial_call=True)
@guarded(WRITE)
def schedule_action(clicks: list[Any] | None, version: int | None) -> tuple[Any, Any]:
    """Remove a schedule (its reports stay), or make its report for its latest period now (and email it)."""
    target = ctx.triggered_id
    if not isinstance(target, dict) or not ctx.triggered or not ctx.triggered[0].get("value"):
        raise PreventUpdate  # buttons drawn anew, not clicked
    name, action = str(target.get("name") or ""), target.get("action")
    try:
        if action == "remove":
            with transaction() as conn:
                schedules.remove_schedule(conn, current_org_id(), name)
            text = f"Removed schedule {name}; the reports it made stay below."
        elif action == "run":
            run, claimed = ask_for_schedule_run(name)
            text = (f"Asked for {name}'s report of {run.period.label}; it is emailed to the schedule's channels "
                    "once made." if claimed else
                    f"{name} has a run for {run.period.label} already ({run.status}).")
        else:
            raise PreventUpdate
    except NetPulseError as exc:
        return _result("danger", exc.message), no_update
    return _result("success" if action == "remove" else "info", text), (version or 0) + 1


# Controls shown by choice: the custom dates, the day (weekly, monthly) and the cron field.
dash.clientside_callback(
    "function(p) { return {display: p === 'custom' ? 'block' : 'none'}; }",
    Output(ids.REPORTS_CUSTOM, "style"), Input(ids.REPORTS_PERIOD, "value"))
dash.clientside_callback(
    """function(f) { return [{display: (f === 'weekly' || f === 'monthly') ? 'block' : 'none'},
                             {display: f === 'cron' ? 'block' : 'none'},
                             f === 'weekly' ? 'mon' : (f === 'monthly' ? '1' : '')]; }""",
    Output(ids.REPORTS_SCHEDULE_DAY, "style"), Output(ids.REPORTS_SCHEDULE_CRON, "style"),
    Output(_F["day"], "value"), Input(_F["frequency"], "value"), prevent_initial_call=True)
