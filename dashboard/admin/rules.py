"""Rules tab: the alert rules (:mod:`analytics.rules`, as ``/api/v1/rules``). A rule being written is
backtested over stored history (:func:`analytics.evaluate.backtest`, as ``POST /api/v1/rules/backtest``)
to see how many alerts it would have raised before it is saved. Readers of alerts see the rules and may
backtest; operators and admins (``alert:write``) save and delete them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, ctx, html, no_update
from dash.exceptions import PreventUpdate

from analytics import rules as core
from analytics.evaluate import backtest
from analytics.frames import Resolution
from dashboard.admin import forms
from dashboard.api.routing import pg
from dashboard.auth import current_org_id
from dashboard.ids import admin_id
from dashboard.permissions import guarded
from netpulse.errors import ValidationError
from netpulse.metrics import MetricKind

TAB = forms.Tab("rules", "Rules", read="alert:read", write="alert:write")  # as /api/v1/rules
# Every probe over a day; minute rollups (averages) over a week and hourly ones over a month keep the
# answer quick, at the price of missing breaches shorter than a bucket.
PERIODS: dict[str, tuple[str, timedelta, Resolution]] = {
    "1d": ("the last day", timedelta(days=1), "raw"), "7d": ("the last 7 days", timedelta(days=7), "1m"),
    "30d": ("the last 30 days", timedelta(days=30), "1h")}
NONE = "-"   # the comparator select's "none" (a select shows its empty value as no choice at all)
BACKTEST_PERMISSION = "alert:read"   # as POST /api/v1/rules/backtest: nothing is written

GRID = admin_id("rules", "grid")
VERSION = admin_id("rules", "version")
RESULT = admin_id("rules", "result")
EDITING = admin_id("rules", "editing")        # dcc.Store: the id of the rule in the form, None for a new one
FORM_TITLE = admin_id("rules", "form-title")
EDIT = admin_id("rules", "edit")
NEW = admin_id("rules", "new")
DELETE = admin_id("rules", "delete")
DELETE_BUTTON = admin_id("rules", "delete-button")
PERIOD = admin_id("rules", "period")
BACKTEST = admin_id("rules", "backtest")
BACKTEST_RESULT = admin_id("rules", "backtest-result")
SAVE = admin_id("rules", "save")
FIELDS = ("name", "kind", "severity", "metric", "comparator", "value", "clear_value", "for", "scope", "scope_ref",
          "k_mad", "baseline_weeks", "escalation_policy", "enabled")
FIELD = {f: admin_id("rules", f"field-{f}") for f in FIELDS}
_EMPTY: dict[str, Any] = {"name": "", "kind": "threshold", "severity": "warning", "metric": "icmp_rtt_ms",
                          "comparator": ">", "value": "", "clear_value": "", "for": "0", "scope": "all",
                          "scope_ref": "", "k_mad": "", "baseline_weeks": 4, "escalation_policy": "", "enabled": True}

COLUMNS: list[dict[str, Any]] = [
    {"field": "name", "headerName": "Rule"}, {"field": "kind", "headerName": "Kind", "maxWidth": 130},
    {"field": "severity", "headerName": "Severity", "maxWidth": 130},
    {"field": "description", "headerName": "Fires when", "minWidth": 320, "tooltipField": "description"},
    {"field": "policy", "headerName": "Policy", "maxWidth": 160},
    {"field": "enabled", "headerName": "Enabled", "maxWidth": 120},
]


def _options(values: tuple[str, ...] | list[str]) -> list[dict[str, str]]:
    return [{"label": v, "value": v} for v in values]


def _form() -> list[Any]:
    f = FIELD
    metrics = [m.metric_name for m in MetricKind]
    return [
        dbc.Row([dbc.Col(forms.field("Name", dbc.Input(id=f["name"], maxLength=100, size="sm")), md=3),
                 dbc.Col(forms.field("Kind", dbc.Select(id=f["kind"], options=_options(core.KINDS), size="sm")), md=2),
                 dbc.Col(forms.field("Severity", dbc.Select(id=f["severity"], options=_options(core.SEVERITIES),
                                                            size="sm")), md=2),
                 dbc.Col(forms.field("Metric", dbc.Select(id=f["metric"], options=_options(metrics), size="sm")), md=3),
                 dbc.Col(forms.field("Comparator", dbc.Select(id=f["comparator"], size="sm", options=[
                     {"label": "none", "value": NONE}, *_options(core.COMPARATORS)])), md=2)]),
        dbc.Row([dbc.Col(forms.field("Value", dbc.Input(id=f["value"], size="sm"), "threshold"), md=2),
                 dbc.Col(forms.field("Clears at", dbc.Input(id=f["clear_value"], size="sm"), "threshold, optional"),
                         md=2),
                 dbc.Col(forms.field("For", dbc.Input(id=f["for"], size="sm"), "e.g. 0, 90s, 5m"), md=2),
                 dbc.Col(forms.field("k", dbc.Input(id=f["k_mad"], size="sm"),
                                     "dynamic: MADs; anomaly: score 0–1"), md=2),
                 dbc.Col(forms.field("Baseline weeks", dbc.Input(id=f["baseline_weeks"], type="number", min=1, max=12,
                                                                 size="sm"), "dynamic"), md=2),
                 dbc.Col(forms.field("Enabled", dbc.Checkbox(id=f["enabled"])), md=2)]),
        dbc.Row([dbc.Col(forms.field("Scope", dbc.Select(id=f["scope"], options=_options(core.SCOPES), size="sm")),
                         md=2),
                 dbc.Col(forms.field("Scope name", dbc.Input(id=f["scope_ref"], maxLength=100, size="sm"),
                                     "the device, group, site or tag"), md=4),
                 dbc.Col(forms.field("Escalation policy", dbc.Input(id=f["escalation_policy"], maxLength=100,
                                                                    size="sm"), "blank: 'default'"), md=3)]),
    ]


def panel() -> html.Div:
    writable = TAB.writable()
    actions = [dbc.Button("Edit selected", id=EDIT, size="sm", color="secondary", outline=True, disabled=True),
               dbc.Button("New rule", id=NEW, size="sm", color="secondary", outline=True)]
    # Present for every role (its callbacks address it), shown to writers only.
    actions.append(html.Div(forms.danger_button(DELETE, "Delete selected", "Delete this rule? Its alerts stay.",
                                                DELETE_BUTTON), hidden=not writable))
    if not writable:
        actions.append(forms.read_only("saving rules needs the operator or admin role; you may backtest them."))
    form = dbc.Card(dbc.CardBody([
        html.H2("New rule", id=FORM_TITLE, className="np-panel-title"), *_form(),
        html.Div([
            dbc.Select(id=PERIOD, options=[{"label": f"Backtest over {label}", "value": k}
                                           for k, (label, _, _) in PERIODS.items()], value="7d", size="sm",
                       className="np-admin-period"),
            dbc.Button("Backtest", id=BACKTEST, size="sm", color="info"),
            dbc.Button("Save", id=SAVE, size="sm", color="success") if writable else None,
        ], className="np-actions-bar"),
        dbc.Spinner(html.Div(id=BACKTEST_RESULT, className="np-admin-backtest"), size="sm"),
    ]), className="np-admin-form")
    return html.Div([html.Div(id=RESULT), html.Div(actions, className="np-actions-bar np-admin-actions"),
                     forms.grid(GRID, COLUMNS), form])


def _rule(values: dict[str, Any]) -> core.Rule:
    """The form's rule, checked by :class:`analytics.rules.Rule` (a ValidationError names what is wrong)."""
    t = forms.text
    metric_name = t(values["metric"])
    try:
        metric = MetricKind.from_name(metric_name) if metric_name and values["kind"] != "status" else None
    except ValueError as exc:
        raise ValidationError(str(exc), details={"metric": str(exc)}) from None
    scope = t(values["scope"]) or "all"
    weeks = forms.number(values["baseline_weeks"], "baseline_weeks")
    kind, comparator = t(values["kind"]), t(values["comparator"]) or NONE
    return core.Rule(
        name=t(values["name"]), kind=kind, severity=t(values["severity"]), metric=metric,  # type: ignore[arg-type]
        comparator=comparator if comparator != NONE and kind in ("threshold", "dynamic") else None,
        value=forms.number(values["value"], "value"), clear_value=forms.number(values["clear_value"], "clear_value"),
        for_s=core.parse_duration(t(values["for"]) or "0", field_name="for"),
        scope=scope,  # type: ignore[arg-type]
        scope_ref=(t(values["scope_ref"]) or None) if scope != "all" else None,
        k_mad=forms.number(values["k_mad"], "k"), baseline_weeks=int(weeks) if weeks is not None else 4,
        escalation_policy=t(values["escalation_policy"]) or None, enabled=bool(values["enabled"]))


def _values(r: core.Rule) -> dict[str, Any]:
    def shown(v: float | None) -> str:
        return "" if v is None else f"{v:g}"

    return {"name": r.name, "kind": r.kind, "severity": r.severity,
            "metric": r.metric.metric_name if r.metric else "", "comparator": r.comparator or NONE,
            "value": shown(r.value), "clear_value": shown(r.clear_value), "for": f"{r.for_s}s" if r.for_s else "0",
            "scope": r.scope, "scope_ref": r.scope_ref or "", "k_mad": shown(r.k_mad),
            "baseline_weeks": r.baseline_weeks, "escalation_policy": r.escalation_policy or "", "enabled": r.enabled}


def _backtest_line(rule: core.Rule, period: str) -> str:
    label, span, resolution = PERIODS.get(period, PERIODS["7d"])
    end = datetime.now(UTC).replace(microsecond=0)
    with forms.session() as s:
        result = backtest(pg(s), current_org_id(), rule, end - span, end, resolution=resolution)
    alerts = len(result.alerts)
    still = f", {result.still_open} still open at the end" if result.still_open else ""
    return (f"{rule.name or 'This rule'} would have raised {alerts} alert{'s' if alerts != 1 else ''} over {label}"
            f"{still} ({rule.describe()}; {result.devices} devices in scope, {result.samples:,} samples read).")


def register() -> None:
    @dash.callback(Output(GRID, "rowData"), Input(VERSION, "data"))
    @guarded(TAB.read)  # as GET /api/v1/rules
    def rules_rows(_version: int | None) -> list[dict[str, Any]]:
        with forms.session() as s:
            found = core.load_rules(pg(s), current_org_id(), enabled_only=False)
        return [{"id": r.id, "name": r.name, "kind": r.kind, "severity": r.severity, "description": r.describe(),
                 "policy": r.escalation_policy or "default", "enabled": "yes" if r.enabled else "no"} for r in found]

    @dash.callback(Output(EDIT, "disabled"), Output(DELETE_BUTTON, "disabled"), Input(GRID, "selectedRows"))
    @guarded(TAB.read)
    def rule_selected(selected: list[dict[str, Any]] | None) -> tuple[bool, bool]:
        return not selected, not selected

    @dash.callback(
        Output(EDITING, "data"), Output(FORM_TITLE, "children"), *(Output(FIELD[k], "value") for k in FIELDS),
        Output(BACKTEST_RESULT, "children"),
        Input(EDIT, "n_clicks"), Input(NEW, "n_clicks"), State(GRID, "selectedRows"))
    @guarded(TAB.read)  # as GET /api/v1/rules/<id>: loading a rule into the form writes nothing
    def rule_form(_edit: int | None, _new: int | None, selected: list[dict[str, Any]] | None) -> list[Any]:
        if ctx.triggered_id != EDIT or not selected:
            return [None, "New rule", *(_EMPTY[k] for k in FIELDS), None]
        rule_id = int(selected[0]["id"])
        with forms.session() as s:
            rule = core.get_rule(pg(s), current_org_id(), rule_id)
        values = _values(rule)
        return [rule_id, f"Edit {rule.name}", *(values[k] for k in FIELDS), None]

    @dash.callback(
        Output(BACKTEST_RESULT, "children", allow_duplicate=True),
        Input(BACKTEST, "n_clicks"), State(PERIOD, "value"), *(State(FIELD[k], "value") for k in FIELDS),
        prevent_initial_call=True)
    @guarded(BACKTEST_PERMISSION)  # as POST /api/v1/rules/backtest
    def rule_backtest(_n: int | None, period: str | None, *values: Any) -> Any:
        line, error = forms.outcome(lambda: _backtest_line(_rule(dict(zip(FIELDS, values, strict=True))),
                                                           period or "7d"))
        return error if error is not None else dbc.Alert(line, color="info", className="np-admin-result")

    @dash.callback(
        Output(RESULT, "children"), Output(VERSION, "data"), Output(EDITING, "data", allow_duplicate=True),
        Output(FORM_TITLE, "children", allow_duplicate=True),
        Input(SAVE, "n_clicks"), State(EDITING, "data"), State(VERSION, "data"),
        *(State(FIELD[k], "value") for k in FIELDS),
        prevent_initial_call=True)
    @guarded(TAB.write)  # as POST /api/v1/rules and PUT /api/v1/rules/<id>
    def rule_save(_n: int | None, editing: int | None, version: int | None, *values: Any) -> tuple[Any, ...]:
        def save() -> core.Rule:
            rule = _rule(dict(zip(FIELDS, values, strict=True)))
            with forms.session() as s:
                if editing is None:
                    return core.create_rule(pg(s), current_org_id(), rule)
                return core.update_rule(pg(s), current_org_id(), int(editing), rule)

        saved, error = forms.outcome(save)
        if error is not None or saved is None:
            return error, no_update, no_update, no_update
        verb = "Added" if editing is None else "Saved"
        return forms.done(f"{verb} the rule {saved.name}: {saved.describe()}."), (version or 0) + 1, saved.id, \
            f"Edit {saved.name}"

    @dash.callback(
        Output(RESULT, "children", allow_duplicate=True), Output(VERSION, "data", allow_duplicate=True),
        Input(DELETE, "submit_n_clicks"), State(GRID, "selectedRows"), State(VERSION, "data"),
        prevent_initial_call=True)
    @guarded(TAB.write)  # as DELETE /api/v1/rules/<id>
    def rule_delete(_n: int | None, selected: list[dict[str, Any]] | None, version: int | None) -> tuple[Any, ...]:
        if not selected:
            raise PreventUpdate
        rule_id, name = int(selected[0]["id"]), selected[0].get("name")

        def delete() -> None:
            with forms.session() as s:
                core.delete_rule(pg(s), current_org_id(), rule_id)

        _, error = forms.outcome(delete)
        if error is not None:
            return error, no_update
        return forms.done(f"Deleted the rule {name}; its alerts stay."), (version or 0) + 1

