"""Channels & policies tab: notification channels (:mod:`analytics.notify`, shown as ``/api/v1/channels``
shows them: recipients or the URL without its secret parts, secret values never) and escalation
policies (:mod:`analytics.policies`, as ``netpulse notify policy``). Everyone who reads alerts reads
them; admins add channels or point them elsewhere, and add or remove policies."""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from analytics import notify, policies
from analytics.notify.channels import set_channel_config
from dashboard.admin import forms
from dashboard.api.channels import ChannelOut
from dashboard.auth import current_org_id
from dashboard.ids import admin_id
from dashboard.permissions import guarded

TAB = forms.Tab("notify", "Channels & policies", read="alert:read", write="admin")  # as /channels, /policies
KINDS = ("smtp", "sendgrid", "africastalking", "slack", "webhook")

CHANNELS = admin_id("notify", "channels")
POLICIES = admin_id("notify", "policies")
VERSION = admin_id("notify", "version")
RESULT = admin_id("notify", "result")
CH_NAME = admin_id("notify", "channel-name")
CH_KIND = admin_id("notify", "channel-kind")
CH_TO = admin_id("notify", "channel-to")
CH_URL = admin_id("notify", "channel-url")
CH_SECRET = admin_id("notify", "channel-secret")
CH_RATE = admin_id("notify", "channel-rate")
CH_ADD = admin_id("notify", "channel-add")             # saves the form: adds a channel, or changes the one edited
CH_EDIT = admin_id("notify", "channel-edit")
CH_NEW = admin_id("notify", "channel-new")
CH_EDITING = admin_id("notify", "channel-editing")     # dcc.Store: the name of the channel edited, None when adding
CH_TITLE = admin_id("notify", "channel-title")
PO_NAME = admin_id("notify", "policy-name")
PO_TIERS = admin_id("notify", "policy-tiers")
PO_WARNING = admin_id("notify", "policy-warning")
PO_DIGEST = admin_id("notify", "policy-digest")
PO_ADD = admin_id("notify", "policy-add")
PO_REMOVE = admin_id("notify", "policy-remove")
PO_REMOVE_BUTTON = admin_id("notify", "policy-remove-button")
PO_FORCE = admin_id("notify", "policy-force")

CHANNEL_COLUMNS: list[dict[str, Any]] = [
    {"field": "name", "headerName": "Channel"}, {"field": "kind", "headerName": "Kind", "maxWidth": 150},
    {"field": "target", "headerName": "Sends to", "minWidth": 220, "tooltipField": "target"},
    {"field": "secrets", "headerName": "Secrets"},
    {"field": "rate", "headerName": "Per minute", "maxWidth": 130, "type": "rightAligned"},
    {"field": "enabled", "headerName": "Enabled", "maxWidth": 120},
]
POLICY_COLUMNS: list[dict[str, Any]] = [
    {"field": "name", "headerName": "Policy"},
    {"field": "critical", "headerName": "Critical (tiers)", "minWidth": 260, "tooltipField": "critical"},
    {"field": "warning", "headerName": "Warning digest", "minWidth": 200},
    {"field": "missing", "headerName": "Missing channels", "cellClassRules": {"np-cell-bad": "!!params.value"}},
    {"field": "rules", "headerName": "Rules", "maxWidth": 110, "type": "rightAligned"},
]


def _channel_form() -> dbc.Card:
    kinds = [{"label": k, "value": k} for k in KINDS]
    return dbc.Card(dbc.CardBody([
        dcc.Store(id=CH_EDITING, data=None),
        html.Div([html.H2("Add a channel", id=CH_TITLE, className="np-panel-title"),
                  dbc.Button("Edit selected channel", id=CH_EDIT, size="sm", color="secondary", outline=True),
                  dbc.Button("New channel", id=CH_NEW, size="sm", color="secondary", outline=True)],
                 className="np-actions-bar"),
        dbc.Row([dbc.Col(forms.field("Name", dbc.Input(id=CH_NAME, maxLength=100, size="sm")), md=3),
                 dbc.Col(forms.field("Kind", dbc.Select(id=CH_KIND, options=kinds, value="smtp", size="sm")), md=2),
                 dbc.Col(forms.field("Recipients", dbc.Input(id=CH_TO, size="sm"),
                                     "e-mail or SMS kinds: addresses or +numbers, comma-separated"), md=4),
                 dbc.Col(forms.field("Per minute", dbc.Input(id=CH_RATE, type="number", min=1, value=60, size="sm")),
                         md=3)]),
        dbc.Row([dbc.Col(forms.field("URL", dbc.Input(id=CH_URL, size="sm"), "Slack and webhook kinds"), md=6),
                 dbc.Col(forms.field("Secret", dbc.Input(id=CH_SECRET, type="password", size="sm",
                                                         autoComplete="new-password"),
                                     "webhook: the HMAC key, 16+ characters (never shown again)"), md=6)]),
        html.Small("Editing a channel replaces its recipients, URL and secret: give the URL and secret again "
                   "(they are never shown). Its kind, rate limit, history and queued messages stay.",
                   className="np-muted d-block mb-2"),
        dbc.Button("Save channel", id=CH_ADD, size="sm", color="success"),
    ]), className="np-admin-form")


def _policy_form() -> dbc.Card:
    return dbc.Card(dbc.CardBody([
        html.H2("Add an escalation policy", className="np-panel-title"),
        dbc.Row([dbc.Col(forms.field("Name", dbc.Input(id=PO_NAME, maxLength=100, size="sm")), md=3),
                 dbc.Col(forms.field("Critical tiers", dbc.Textarea(id=PO_TIERS, rows=2, placeholder="0:noc-email\n"
                                                                    "15m:oncall-sms"),
                                     "one per line, DELAY:CHANNEL[,CHANNEL…]"), md=4),
                 dbc.Col(forms.field("Warning digest to", dbc.Input(id=PO_WARNING, size="sm"),
                                     "channels; blank: tier 0's; '-': none"), md=3),
                 dbc.Col(forms.field("Digest every (s)", dbc.Input(id=PO_DIGEST, type="number",
                                                                   value=policies.DIGEST_EVERY_S, size="sm")), md=2)]),
        dbc.Button("Add policy", id=PO_ADD, size="sm", color="success"),
    ]), className="np-admin-form")


def panel() -> html.Div:
    writable = TAB.writable()
    # Present for every role (its callbacks address it), shown to writers only.
    policy_actions = html.Div([
        html.Div([
            forms.danger_button(PO_REMOVE, "Remove selected policy", "Remove this escalation policy?",
                                PO_REMOVE_BUTTON),
            dbc.Checkbox(id=PO_FORCE, label="even if rules name it (they then use 'default')", value=False),
        ], className="np-actions-bar", hidden=not writable),
        None if writable else forms.read_only("adding channels and policies needs the admin role."),
    ], className="np-admin-actions")
    return html.Div([
        html.Div(id=RESULT),
        html.H2("Notification channels", className="np-section-title"),
        forms.grid(CHANNELS, CHANNEL_COLUMNS, height=220),
        _channel_form() if writable else None,
        html.H2("Escalation policies", className="np-section-title"), policy_actions,
        forms.grid(POLICIES, POLICY_COLUMNS, height=220),
        _policy_form() if writable else None,
    ])


def _delay(seconds: int) -> str:
    return "at once" if seconds == 0 else f"after {seconds // 60} min" if seconds % 60 == 0 else f"after {seconds} s"


def register() -> None:
    @dash.callback(Output(CHANNELS, "rowData"), Output(POLICIES, "rowData"), Input(VERSION, "data"))
    @guarded(TAB.read)  # as GET /api/v1/channels and /api/v1/policies
    def notify_rows(_version: int | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        org = current_org_id()
        with forms.session() as s:
            channels = []
            for c in notify.list_channels(s, org):
                out = ChannelOut.of(c)
                channels.append({"id": out.id, "name": out.name, "kind": out.kind, "target": out.target,
                                 "secrets": ", ".join(f"{k} ••••" for k in out.secrets) or "–",
                                 "rate": out.rate_limit_per_minute, "enabled": "yes" if out.enabled else "no"})
            known = policies.known_channel_names(s, org)
            rows = []
            for usage in policies.list_policies(s, org):
                view = policies.policy_view(usage.policy, known_channels=known, rules=usage.rules)
                rows.append({"id": view["id"], "name": view["name"], "rules": view["rules"],
                             "critical": "; ".join(f"{_delay(t['after_s'])}: {', '.join(t['channels'])}"
                                                   for t in view["critical"]),
                             "warning": (", ".join(view["warning"]) or "none")
                             + f" every {view['digest_every_s'] // 60} min",
                             "missing": ", ".join(view["missing_channels"])})
        return channels, rows

    @dash.callback(Output(PO_REMOVE_BUTTON, "disabled"), Input(POLICIES, "selectedRows"))
    @guarded(TAB.read)
    def policy_selected(selected: list[dict[str, Any]] | None) -> bool:
        return not selected

    @dash.callback(
        Output(CH_EDITING, "data"), Output(CH_TITLE, "children"), Output(CH_NAME, "value"),
        Output(CH_NAME, "disabled"), Output(CH_KIND, "value"), Output(CH_KIND, "disabled"), Output(CH_TO, "value"),
        Output(CH_RATE, "disabled"), Output(CH_URL, "value"), Output(CH_SECRET, "value", allow_duplicate=True),
        Input(CH_EDIT, "n_clicks"), Input(CH_NEW, "n_clicks"), State(CHANNELS, "selectedRows"),
        prevent_initial_call=True)
    @guarded(TAB.write)  # the form exists for admins only
    def channel_form(_edit: int | None, _new: int | None, selected: list[dict[str, Any]] | None) -> tuple[Any, ...]:
        if ctx.triggered_id != CH_EDIT:
            return None, "Add a channel", "", False, "smtp", False, "", False, "", ""
        if not selected:
            raise PreventUpdate
        with forms.session() as s:
            out = ChannelOut.of(notify.get_channel(s, current_org_id(), str(selected[0].get("name"))))
        return out.name, f"Edit {out.name}", out.name, True, out.kind, True, ", ".join(out.recipients), True, "", ""

    @dash.callback(
        Output(RESULT, "children"), Output(VERSION, "data"), Output(CH_SECRET, "value"),
        Input(CH_ADD, "n_clicks"), State(CH_EDITING, "data"), State(CH_NAME, "value"), State(CH_KIND, "value"),
        State(CH_TO, "value"), State(CH_URL, "value"), State(CH_SECRET, "value"), State(CH_RATE, "value"),
        State(VERSION, "data"),
        prevent_initial_call=True)
    @guarded(TAB.write)  # as POST /api/v1/channels (and `netpulse notify channel add` pointing one elsewhere)
    def save_channel(_n: int | None, editing: str | None, name: str | None, kind: str | None, to: str | None,
                     url: str | None, secret: str | None, rate: int | float | str | None,
                     version: int | None) -> tuple[Any, ...]:
        config: dict[str, Any] = {}
        if forms.text(to):
            config["to"] = [t.strip() for t in str(to).split(",") if t.strip()]
        if forms.text(url):
            config["url"] = forms.text(url)
        if secret:
            config["secret"] = secret

        def add() -> str:
            per_minute = forms.number(rate, "rate_limit_per_minute")
            with forms.session() as s:
                if editing is not None:
                    channel = set_channel_config(s, current_org_id(), editing, config)
                    target = notify.describe_target(channel.kind, channel.config or {})
                    return f"The {channel.kind} channel {channel.name} now sends to {target}."
                channel = notify.create_channel(s, current_org_id(), forms.text(name), kind or "", config,
                                                rate_limit_per_minute=int(per_minute or 60))
                return f"Added the {channel.kind} channel {channel.name}."

        message, error = forms.outcome(add)
        if error is not None:
            return error, no_update, no_update
        return forms.done(message), (version or 0) + 1, ""

    @dash.callback(
        Output(RESULT, "children", allow_duplicate=True), Output(VERSION, "data", allow_duplicate=True),
        Input(PO_ADD, "n_clicks"), State(PO_NAME, "value"), State(PO_TIERS, "value"), State(PO_WARNING, "value"),
        State(PO_DIGEST, "value"), State(VERSION, "data"),
        prevent_initial_call=True)
    @guarded(TAB.write)  # as POST /api/v1/policies
    def add_policy(_n: int | None, name: str | None, tiers: str | None, warning: str | None,
                   digest: int | float | str | None, version: int | None) -> tuple[Any, ...]:
        def add() -> str:
            parsed = [policies.parse_tier(line.strip()) for line in (tiers or "").splitlines() if line.strip()]
            raw = forms.text(warning)
            warning_channels = None if not raw else [] if raw == "-" else [c.strip() for c in raw.split(",")
                                                                            if c.strip()]
            every = forms.number(digest, "digest_every_s")
            spec = policies.PolicySpec(name=forms.text(name), tiers=parsed, warning_channels=warning_channels,
                                       digest_every_s=int(every if every is not None else policies.DIGEST_EVERY_S))
            with forms.session() as s:
                return f"Added the escalation policy {policies.add_policy(s, current_org_id(), spec).name}."

        return forms.write(add, version)

    @dash.callback(
        Output(RESULT, "children", allow_duplicate=True), Output(VERSION, "data", allow_duplicate=True),
        Input(PO_REMOVE, "submit_n_clicks"), State(POLICIES, "selectedRows"), State(PO_FORCE, "value"),
        State(VERSION, "data"),
        prevent_initial_call=True)
    @guarded(TAB.write)  # as DELETE /api/v1/policies/<id>
    def remove_policy(_n: int | None, selected: list[dict[str, Any]] | None, force: bool | None,
                      version: int | None) -> tuple[Any, ...]:
        if not selected:
            raise PreventUpdate
        policy_id = int(selected[0]["id"])

        def remove() -> str:
            with forms.session() as s:
                moved = policies.remove_policy(s, current_org_id(), policy_id, force=bool(force))
            also = f"; {len(moved)} rule(s) now use '{policies.DEFAULT_POLICY}'" if moved else ""
            return f"Removed the escalation policy {selected[0].get('name')}{also}."

        return forms.write(remove, version)
