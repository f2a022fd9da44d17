"""Topology: the dependency tree from the parent links, coloured by status, causes first.

A down device's unreachable subtree is collapsed into it ("+31 behind"), so an outage shows as one
red node at the top of what it took down, and the list above the graph names the root causes before
anything else. Up leaves of a large parent fold into one "n more up" node, so a site of hundreds of
devices stays readable. Click a node for its details and a link to its page.
"""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
import dash_cytoscape as cyto
from dash import Input, Output, dcc, html
from flask import current_app
from sqlalchemy import Engine

from analytics.devices import dependency_tree, label_names
from analytics.fleet import devices_needing_attention
from dashboard import ids
from dashboard.auth import current_org_id
from dashboard.permissions import allowed, forbidden, guarded
from dashboard.topology import STYLESHEET, elements
from netpulse.db import raw_connection

dash.register_page(__name__, path="/topology", title="Topology", name="Topology", order=4, permission="device:read")

READ = "device:read"
CAUSES_SHOWN = 8

def _engine() -> Engine:
    engine: Engine = current_app.extensions["netpulse.engine"]
    return engine


def layout(site: str | None = None, **_query: Any) -> html.Div:
    if not allowed(READ):
        return forbidden(READ)
    with raw_connection(_engine()) as conn:
        sites = label_names(conn, current_org_id())["sites"]
    chosen = site if site in sites else ""
    return html.Div(
        [
            dcc.Store(id=ids.page_state("topology"), data={"site": chosen or None}),
            html.Div([html.H1("Topology", className="np-page-title"),
                      dbc.Select(id=ids.TOPOLOGY_SITE, value=chosen, size="sm", className="np-topology-site",
                                 placeholder="All sites",
                                 options=[{"label": "All sites", "value": ""},
                                          *({"label": s, "value": s} for s in sites)])],
                     className="np-page-header"),
            html.Div(id=ids.TOPOLOGY_CAUSES, className="np-causes mb-3"),
            dbc.Row([
                dbc.Col(html.Div(cyto.Cytoscape(
                    id=ids.TOPOLOGY, elements=[], stylesheet=STYLESHEET, minZoom=0.15, maxZoom=3,
                    layout={"name": "breadthfirst", "directed": True, "spacingFactor": 1.1, "animate": False},
                    style={"width": "100%", "height": "calc(100vh - 260px)", "minHeight": "480px"}),
                    className="np-panel np-topology"), lg=9),
                dbc.Col(html.Div(html.Div("Click a device for its details.", className="np-muted"),
                                 id=ids.TOPOLOGY_SELECTED, className="np-panel np-panel-list"), lg=3),
            ], className="g-3"),
        ]
    )


@dash.callback(Output(ids.TOPOLOGY, "elements"), Output(ids.TOPOLOGY, "layout"),
               Output(ids.page_state("topology"), "data"),
               Input(ids.TOPOLOGY_SITE, "value"), Input(ids.TICK, "n_intervals"))
@guarded(READ)  # as GET /api/v1/devices
def refresh_graph(site: str | None, _n: int) -> tuple[Any, Any, dict[str, Any]]:
    site = site if isinstance(site, str) else None  # the dropdown sends a name; a hand-made request anything
    with raw_connection(_engine()) as conn:
        nodes = dependency_tree(conn, current_org_id(), site=site or None)
    els = elements(nodes)
    roots = [e["data"]["id"] for e in els if "source" not in e["data"]
             and not any(x["data"].get("target") == e["data"]["id"] for x in els if "target" in x["data"])]
    layout = {"name": "breadthfirst", "directed": True, "spacingFactor": 1.1, "animate": False,
              "roots": "#" + ", #".join(roots) if roots else None}
    return els, layout, {"site": site or None}


@dash.callback(Output(ids.TOPOLOGY_CAUSES, "children"), Input(ids.TICK, "n_intervals"),
               Input(ids.TOPOLOGY_SITE, "value"))
@guarded(READ)
def refresh_causes(_n: int, site: str | None) -> Any:
    site = site if isinstance(site, str) else None
    with raw_connection(_engine()) as conn:
        frame = devices_needing_attention(conn, current_org_id(), limit=200)
    if site:
        frame = frame.filter(frame["site"] == site)
    if frame.is_empty():
        return html.Div([html.Span("✓", className="np-ok-mark"), "No device is down or degraded"],
                        className="np-empty np-causes-empty")
    items = []
    for r in frame.head(CAUSES_SHOWN).iter_rows(named=True):
        behind = int(r["behind"])
        items.append(html.Li([
            html.Span([html.Span(className="np-dot"), r["oper_status"].capitalize()],
                      className=f"np-status np-status-{r['oper_status']}"),
            dcc.Link(r["name"], href=f"/devices/{r['device_id']}", className="np-device"),
            html.Span(r["site"], className="np-site"),
            html.Span(f"{behind:,} device{'s' if behind != 1 else ''} behind it", className="np-behind")
            if behind else None,
        ], className="np-cause-item"))
    more = frame.height - len(items)
    return html.Div([html.Div("Root causes", className="np-fact-label"), html.Ol(items, className="np-cause-list"),
                     html.Div(f"and {more} more", className="np-muted") if more > 0 else None])


@dash.callback(Output(ids.TOPOLOGY_SELECTED, "children"), Input(ids.TOPOLOGY, "tapNodeData"),
               prevent_initial_call=True)
@guarded(READ)
def show_node(node: dict[str, Any] | None) -> Any:
    if not node:
        return html.Div("Click a device for its details.", className="np-muted")
    if node.get("folded"):
        return html.Div(f"{node['folded']} devices that are up, folded to keep the graph readable; the devices "
                        "page lists them.", className="np-muted")
    behind = int(node.get("behind") or 0)
    return html.Div([
        html.Div(node.get("name"), className="np-device np-topology-name"),
        html.Span([html.Span(className="np-dot"), str(node.get("status", "")).capitalize()],
                  className=f"np-status np-status-{node.get('status')}"),
        html.Div(f"{node.get('type', '').replace('_', ' ')} · {node.get('site') or 'no site'}", className="np-site"),
        html.Div(f"{behind:,} devices down behind it" if behind else "", className="np-behind"),
        dcc.Link("Open the device page →", href=f"/devices/{node['id']}", className="np-more"),
    ])
