"""Devices: the inventory as a grid (search, filters, server-side sort and paging), with add, edit,
delete and CSV import for roles granted ``device:write``.

The grid uses AG Grid's infinite row model: it asks the server for blocks of rows as the user
scrolls, with its sort; the search box and the status, site, group and tag filters (kept in the URL)
narrow the query, and a change of them purges the grid's cache so it asks again. Rows come from
:func:`analytics.devices.device_grid`, which reads the device table only (the latest RTT and loss
live on the device row). Changes go through :mod:`netpulse.inventory` (validation, uniqueness,
parents, the all-or-nothing CSV import), whose field-keyed errors show beside the fields and whose
bad import lines are listed by line number.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Any

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate
from flask import current_app
from sqlalchemy import Engine

from analytics.devices import OPER_STATUSES, SORTS, DeviceQuery, device_grid, label_names
from dashboard import ids
from dashboard.auth import current_org_id, sessionmaker_of
from dashboard.charts import GRID_THEME, duration_text
from dashboard.permissions import allowed, forbidden, guarded
from netpulse import inventory
from netpulse.db import raw_connection
from netpulse.errors import Conflict, NetPulseError, NotFound, ValidationError
from netpulse.inventory import DeviceImportError, DeviceSpec
from netpulse.schema import DeviceType

dash.register_page(__name__, path="/devices", title="Devices", name="Devices", order=1, permission="device:read")

READ, WRITE = "device:read", "device:write"
BLOCK = 100
MAX_IMPORT_BYTES = 2 * 1024 * 1024
MAX_LINE_ERRORS = 200

_STATUS_CELL = {"function": "'np-cell-status np-cell-' + (params.value || 'loading')"}
COLUMNS: list[dict[str, Any]] = [
    {"field": "name", "headerName": "Name", "pinned": "left", "minWidth": 170, "cellClass": "np-cell-link",
     "tooltipField": "name"},
    {"field": "oper_status", "headerName": "Status", "minWidth": 116, "cellClass": _STATUS_CELL},
    {"field": "address", "headerName": "Address", "minWidth": 130},
    {"field": "device_type", "headerName": "Type", "minWidth": 120},
    {"field": "site", "headerName": "Site", "minWidth": 120},
    {"field": "group", "headerName": "Group", "minWidth": 110},
    {"field": "tags_text", "headerName": "Tags", "minWidth": 150, "sortable": False, "tooltipField": "tags_text"},
    {"field": "last_rtt_ms", "headerName": "RTT ms", "minWidth": 96, "type": "rightAligned",
     "valueFormatter": {"function": "params.value == null ? '–' : params.value.toFixed(1)"}},
    {"field": "last_loss_pct", "headerName": "Loss %", "minWidth": 96, "type": "rightAligned",
     "valueFormatter": {"function": "params.value == null ? '–' : params.value.toFixed(0)"},
     "cellClassRules": {"np-cell-bad": "params.value > 0"}},
    {"field": "snmp", "headerName": "SNMP", "minWidth": 86, "tooltipField": "snmp_detail"},
    {"field": "last_seen", "headerName": "Seen", "minWidth": 100, "valueGetter": {"function": "params.data ? "
                                                                                 "params.data.last_seen_text : ''"}},
    {"field": "parent", "headerName": "Parent", "minWidth": 130},
]


def _engine() -> Engine:
    engine: Engine = current_app.extensions["netpulse.engine"]
    return engine


def _field(key: str, label: str, control: Any, hint: str = "") -> html.Div:
    return html.Div([dbc.Label(label, html_for=ids.DEVICE_FIELD[key], className="np-field-label"), control,
                     dbc.FormFeedback(id=ids.DEVICE_FIELD_FEEDBACK[key], type="invalid"),
                     html.Small(hint, className="np-muted") if hint else None], className="np-form-field")


def _device_form() -> list[Any]:
    f = ids.DEVICE_FIELD
    types = [{"label": t.value.replace("_", " "), "value": t.value} for t in DeviceType]
    return [
        dbc.Row([dbc.Col(_field("name", "Name", dbc.Input(id=f["name"], maxLength=255)), md=6),
                 dbc.Col(_field("address", "Address", dbc.Input(id=f["address"], maxLength=255),
                                "IPv4, IPv6 or a host name"), md=6)]),
        dbc.Row([dbc.Col(_field("device_type", "Type", dbc.Select(id=f["device_type"], options=types,
                                                                   value="router")), md=4),
                 dbc.Col(_field("site", "Site", dbc.Input(id=f["site"], maxLength=100), "created if new"), md=4),
                 dbc.Col(_field("group", "Group", dbc.Input(id=f["group"], maxLength=100)), md=4)]),
        dbc.Row([dbc.Col(_field("tags", "Tags", dbc.Input(id=f["tags"]), "comma-separated"), md=6),
                 dbc.Col(_field("parent", "Parent device", dbc.Input(id=f["parent"]),
                                "its name: alerts behind a down parent are suppressed"), md=6)]),
        dbc.Row([dbc.Col(_field("snmp_version", "SNMP", dbc.Select(id=f["snmp_version"], value="", options=[
                     {"label": "not polled", "value": ""}, {"label": "v2c", "value": "2c"},
                     {"label": "v3 (profile)", "value": "3"}])), md=4),
                 dbc.Col(_field("snmp_community", "Community (v2c)", dbc.Input(id=f["snmp_community"],
                                                                               type="password")), md=8)]),
        _field("description", "Description", dbc.Textarea(id=f["description"], rows=2)),
    ]


def _modals() -> list[Any]:
    return [
        dbc.Modal([
            dbc.ModalHeader(dbc.ModalTitle("Add a device", id=ids.DEVICE_MODAL_TITLE)),
            dbc.ModalBody([*_device_form(), html.Div(id=ids.DEVICE_FORM_ERROR)]),
            dbc.ModalFooter([dbc.Button("Cancel", id=ids.DEVICE_CANCEL, color="secondary", outline=True),
                             dbc.Button("Save", id=ids.DEVICE_SAVE, color="success")]),
        ], id=ids.DEVICE_MODAL, is_open=False, size="lg"),
        dbc.Modal([
            dbc.ModalHeader(dbc.ModalTitle("Delete device")),
            dbc.ModalBody(id=ids.DELETE_TEXT),
            dbc.ModalFooter([dbc.Button("Cancel", id=ids.DELETE_CANCEL, color="secondary", outline=True),
                             dbc.Button("Delete", id=ids.DELETE_CONFIRM, color="danger")]),
        ], id=ids.DELETE_MODAL, is_open=False),
    ]


def _actions() -> list[Any]:
    if not allowed(WRITE):
        return [html.Span("View only: adding and changing devices needs the operator or admin role.",
                          className="np-readonly")]
    return [
        dbc.Button("Add device", id=ids.DEVICE_ADD, size="sm", color="success"),
        dbc.Button("Edit", id=ids.DEVICE_EDIT, size="sm", color="secondary", outline=True, disabled=True),
        dbc.Button("Delete", id=ids.DEVICE_DELETE, size="sm", color="danger", outline=True, disabled=True),
        dcc.Upload(dbc.Button("Import CSV…", size="sm", color="secondary", outline=True), id=ids.IMPORT_UPLOAD,
                   accept=".csv,text/csv", max_size=MAX_IMPORT_BYTES, multiple=False),
    ]


def _options(names: list[str], everything: str) -> list[dict[str, str]]:
    return [{"label": everything, "value": ""}, *({"label": n, "value": n} for n in names)]


def _select(select_id: str, names: list[str], everything: str, value: str | None) -> dbc.Select:
    return dbc.Select(id=select_id, options=_options(names, everything), value=value or "", size="sm",
                      placeholder=everything)


def layout(**query: Any) -> html.Div:
    if not allowed(READ):
        return forbidden(READ)
    with raw_connection(_engine()) as conn:
        labels = label_names(conn, current_org_id())
    statuses = [s for s in str(query.get("status") or "").split(",") if s in OPER_STATUSES]
    toolbar = html.Div(
        [
            dbc.Input(id=ids.GRID_SEARCH, type="search", placeholder="Search name, address or site", size="sm",
                      value=query.get("q") or "", debounce=True, className="np-grid-search"),
            dbc.Checklist(id=ids.GRID_STATUS, value=statuses, inline=True,
                          options=[{"label": s.capitalize(), "value": s, "label_id": ids.GRID_STATUS_OPTION[s]}
                                   for s in OPER_STATUSES],
                          input_class_name="btn-check", label_class_name="btn btn-sm btn-outline-secondary",
                          label_checked_class_name="active", class_name="btn-group np-toggle"),
            _select(ids.GRID_SITE, labels["sites"], "All sites", query.get("site")),
            _select(ids.GRID_GROUP, labels["groups"], "All groups", query.get("group")),
            _select(ids.GRID_TAG, labels["tags"], "All tags", query.get("tag")),
            html.Span("–", id=ids.GRID_COUNT, className="np-count"),
        ],
        className="np-grid-toolbar",
    )
    return html.Div(
        [
            dcc.Store(id=ids.page_state("devices"), data={}),
            dcc.Store(id=ids.GRID_VERSION, data=0),
            dcc.Store(id=ids.GRID_PURGED),
            dcc.Store(id=ids.DEVICE_EDITING, data=None),
            html.Div([html.H1("Devices", className="np-page-title"),
                      html.Div(_actions(), className="np-actions-bar")], className="np-page-header"),
            html.Div(id=ids.DEVICES_RESULT),
            html.Div(
                [toolbar,
                 dag.AgGrid(
                     id=ids.GRID, rowModelType="infinite", columnDefs=COLUMNS,
                     defaultColDef={"sortable": True, "resizable": True, "filter": False},
                     getRowId="params.data.id", columnSize="responsiveSizeToFit",
                     dashGridOptions={"theme": {"function": GRID_THEME}, "cacheBlockSize": BLOCK,
                                      "maxBlocksInCache": 20, "infiniteInitialRowCount": 50,
                                      "rowSelection": {"mode": "singleRow", "checkboxes": False,
                                                       "enableClickSelection": True},
                                      "tooltipShowDelay": 400, "suppressCellFocus": True},
                     style={"height": "calc(100vh - 230px)", "minHeight": "420px"}, className="np-grid")],
                className="np-panel np-grid-panel",
            ),
            *_modals(),
        ]
    )


def _query(search: str | None, statuses: list[str] | None, site: str | None, group: str | None, tag: str | None,
           request: dict[str, Any]) -> DeviceQuery:
    start = max(0, int(request.get("startRow") or 0))
    end = max(start + 1, int(request.get("endRow") or start + BLOCK))
    sort = (request.get("sortModel") or [{}])[0]
    col = sort.get("colId") or "name"
    col = {"snmp": "snmp", "tags_text": "name"}.get(col, col)
    return DeviceQuery(search=search or None, statuses=[s for s in (statuses or []) if s in OPER_STATUSES],
                       site=site or None, group=group or None, tag=tag or None,
                       sort=col if col in SORTS else "name", descending=sort.get("sort") == "desc",
                       limit=min(1000, end - start), offset=start)


def _row(r: dict[str, Any], now: datetime) -> dict[str, Any]:
    seen = r["last_seen"]
    snmp = f"v{r['snmp_version']}" if r["snmp_version"] else "–"
    return {
        "id": r["id"], "name": r["name"], "oper_status": r["oper_status"], "address": r["address"],
        "device_type": r["device_type"].replace("_", " "), "site": r["site"], "group": r["group"],
        "tags_text": ", ".join(r["tags"]), "last_rtt_ms": r["last_rtt_ms"], "last_loss_pct": r["last_loss_pct"],
        "snmp": snmp, "snmp_detail": f"Polled over SNMP {snmp}" if r["snmp_version"] else "Not polled over SNMP",
        "last_seen_text": f"{duration_text(now - seen)} ago" if seen else "never", "parent": r["parent"],
    }


@dash.callback(
    Output(ids.GRID, "getRowsResponse"), Output(ids.GRID_COUNT, "children"), Output(ids.page_state("devices"), "data"),
    Input(ids.GRID, "getRowsRequest"),
    State(ids.GRID_SEARCH, "value"), State(ids.GRID_STATUS, "value"), State(ids.GRID_SITE, "value"),
    State(ids.GRID_GROUP, "value"), State(ids.GRID_TAG, "value"),
)
@guarded(READ)  # as GET /api/v1/devices
def rows(request: dict[str, Any] | None, search: str | None, statuses: list[str] | None, site: str | None,
         group: str | None, tag: str | None) -> tuple[Any, str, dict[str, Any]]:
    if not request:
        raise PreventUpdate
    query = _query(search, statuses, site, group, tag, request)
    with raw_connection(_engine()) as conn:
        found, total = device_grid(conn, current_org_id(), query)
    now = datetime.now(UTC)
    state = {"q": (search or "").strip() or None, "status": ",".join(statuses or []) or None, "site": site or None,
             "group": group or None, "tag": tag or None}
    return ({"rowData": [_row(r, now) for r in found], "rowCount": total},
            f"{total:,} device{'s' if total != 1 else ''}", state)


# A change of filter (or a saved change) starts the grid over: it asks for its first block again.
dash.clientside_callback(
    """
    function() {
        dash_ag_grid.getApiAsync('GRID_ID').then(function(api) { api.purgeInfiniteCache(); });
        return window.dash_clientside.no_update;
    }
    """.replace("GRID_ID", ids.GRID),
    Output(ids.GRID_PURGED, "data"),
    Input(ids.GRID_SEARCH, "value"), Input(ids.GRID_STATUS, "value"), Input(ids.GRID_SITE, "value"),
    Input(ids.GRID_GROUP, "value"), Input(ids.GRID_TAG, "value"), Input(ids.GRID_VERSION, "data"),
    prevent_initial_call=True,
)


@dash.callback(Output(ids.URL, "href", allow_duplicate=True), Input(ids.GRID, "cellClicked"),
               prevent_initial_call=True)
@guarded(READ)
def open_device(cell: dict[str, Any] | None) -> str:
    if not cell or cell.get("colId") != "name" or not cell.get("rowId"):
        raise PreventUpdate
    return f"/devices/{int(cell['rowId'])}"


@dash.callback(Output(ids.DEVICE_EDIT, "disabled"), Output(ids.DEVICE_DELETE, "disabled"),
               Input(ids.GRID, "selectedRows"))
@guarded(READ)
def selection(selected: list[dict[str, Any]] | None) -> tuple[bool, bool]:
    none = not selected
    return none, none


# --- add and edit -----------------------------------------------------------------------------------

_EMPTY = {"name": "", "address": "", "device_type": "router", "site": "", "group": "", "tags": "", "parent": "",
          "snmp_version": "", "snmp_community": "", "description": ""}


_N = len(ids.DEVICE_FIELDS)


@dash.callback(
    [Output(ids.DEVICE_MODAL, "is_open"), Output(ids.DEVICE_MODAL_TITLE, "children"),
     Output(ids.DEVICE_EDITING, "data"), *(Output(ids.DEVICE_FIELD[k], "value") for k in ids.DEVICE_FIELDS),
     *(Output(ids.DEVICE_FIELD[k], "invalid") for k in ids.DEVICE_FIELDS), Output(ids.DEVICE_FORM_ERROR, "children")],
    Input(ids.DEVICE_ADD, "n_clicks"), Input(ids.DEVICE_EDIT, "n_clicks"), Input(ids.DEVICE_CANCEL, "n_clicks"),
    State(ids.GRID, "selectedRows"),
    prevent_initial_call=True,
)
@guarded(WRITE)  # the form exists for writers only
def open_form(_add: int | None, _edit: int | None, _cancel: int | None,
              selected: list[dict[str, Any]] | None) -> list[Any]:
    clear = [False] * _N
    if ctx.triggered_id == ids.DEVICE_CANCEL:
        return [False, no_update, None, *([no_update] * _N), *clear, None]
    if ctx.triggered_id == ids.DEVICE_ADD:
        return [True, "Add a device", None, *(_EMPTY[k] for k in ids.DEVICE_FIELDS), *clear, None]
    if not selected:
        raise PreventUpdate
    device_id = int(selected[0]["id"])
    with sessionmaker_of(current_app)() as session:
        d = inventory.get_device(session, current_org_id(), device_id)
        values = {"name": d.name, "address": d.address, "device_type": d.device_type,
                  "site": d.site.name if d.site else "", "group": d.group.name if d.group else "",
                  "tags": ", ".join(sorted(t.name for t in d.tags)), "parent": d.parent.name if d.parent else "",
                  "snmp_version": d.snmp_version or "", "snmp_community": "", "description": d.description}
    return [True, f"Edit {values['name']}", device_id, *(values[k] for k in ids.DEVICE_FIELDS), *clear, None]


def _changes(values: dict[str, Any], editing: bool) -> dict[str, Any]:
    """Form values as inventory fields: blanks are "none"; a blank community keeps the stored one."""
    out: dict[str, Any] = {k: (str(v).strip() if v is not None else "") for k, v in values.items()}
    changes: dict[str, Any] = {
        "name": out["name"], "address": out["address"], "device_type": out["device_type"] or "other",
        "site": out["site"] or None, "group": out["group"] or None, "parent": out["parent"] or None,
        "tags": [t.strip() for t in out["tags"].split(",") if t.strip()],
        "snmp_version": out["snmp_version"] or None, "description": out["description"],
    }
    if out["snmp_community"] or not editing or not out["snmp_version"]:
        changes["snmp_community"] = out["snmp_community"] or None
    return changes


@dash.callback(
    [Output(ids.DEVICE_MODAL, "is_open", allow_duplicate=True),
     *(Output(ids.DEVICE_FIELD[k], "invalid", allow_duplicate=True) for k in ids.DEVICE_FIELDS),
     *(Output(ids.DEVICE_FIELD_FEEDBACK[k], "children") for k in ids.DEVICE_FIELDS),
     Output(ids.DEVICE_FORM_ERROR, "children", allow_duplicate=True),
     Output(ids.DEVICES_RESULT, "children"), Output(ids.GRID_VERSION, "data")],
    [Input(ids.DEVICE_SAVE, "n_clicks"), State(ids.DEVICE_EDITING, "data"), State(ids.GRID_VERSION, "data"),
     *(State(ids.DEVICE_FIELD[k], "value") for k in ids.DEVICE_FIELDS)],
    prevent_initial_call=True,
)
@guarded(WRITE)  # as the device routes that change devices
def save(_n: int | None, editing: int | None, version: int | None, *values: Any) -> list[Any]:
    changes = _changes(dict(zip(ids.DEVICE_FIELDS, values, strict=True)), editing is not None)
    try:
        with sessionmaker_of(current_app)() as session, session.begin():
            if editing is None:
                device = inventory.create_device(session, current_org_id(), DeviceSpec(**changes))
            else:
                device = inventory.update_device(session, current_org_id(), int(editing), changes)
            name = device.name
    except (ValidationError, Conflict, NotFound) as exc:
        details = {("device_type" if k == "type" else k): str(v) for k, v in exc.details.items()}
        invalid = [k in details for k in ids.DEVICE_FIELDS]
        feedback = [details.get(k, "") for k in ids.DEVICE_FIELDS]
        others = [f"{k}: {v}" for k, v in details.items() if k not in ids.DEVICE_FIELDS]
        message = dbc.Alert(" · ".join(others) if others else "Fix the marked fields.", color="warning",
                            className="np-form-alert")
        return [no_update, *invalid, *feedback, message, no_update, no_update]
    done = dbc.Alert(f"{'Added' if editing is None else 'Saved'} {name}.", color="success", dismissable=True,
                     duration=6000)
    return [False, *([False] * _N), *([""] * _N), None, done, (version or 0) + 1]


# --- delete -----------------------------------------------------------------------------------------

@dash.callback(
    Output(ids.DELETE_MODAL, "is_open"), Output(ids.DELETE_TEXT, "children"),
    Input(ids.DEVICE_DELETE, "n_clicks"), Input(ids.DELETE_CANCEL, "n_clicks"), State(ids.GRID, "selectedRows"),
    prevent_initial_call=True,
)
@guarded(WRITE)
def ask_delete(_n: int | None, _cancel: int | None, selected: list[dict[str, Any]] | None) -> tuple[bool, Any]:
    if ctx.triggered_id == ids.DELETE_CANCEL or not selected:
        return False, no_update
    name = selected[0].get("name")
    return True, [html.P(f"Delete {name}? Its metrics stay until retention drops them; its alerts go with it, and "
                         "devices below it lose their parent."), html.P("This cannot be undone.", className="np-muted")]


@dash.callback(
    Output(ids.DELETE_MODAL, "is_open", allow_duplicate=True),
    Output(ids.DEVICES_RESULT, "children", allow_duplicate=True),
    Output(ids.GRID_VERSION, "data", allow_duplicate=True),
    Input(ids.DELETE_CONFIRM, "n_clicks"), State(ids.GRID, "selectedRows"), State(ids.GRID_VERSION, "data"),
    prevent_initial_call=True,
)
@guarded(WRITE)
def delete(_n: int | None, selected: list[dict[str, Any]] | None, version: int | None) -> tuple[Any, Any, Any]:
    if not selected:
        raise PreventUpdate
    device_id, name = int(selected[0]["id"]), selected[0].get("name")
    try:
        with sessionmaker_of(current_app)() as session, session.begin():
            inventory.delete_device(session, current_org_id(), device_id)
    except NotFound:
        return False, dbc.Alert(f"{name} was already deleted.", color="warning", dismissable=True), \
            (version or 0) + 1
    return False, dbc.Alert(f"Deleted {name}.", color="success", dismissable=True, duration=6000), (version or 0) + 1


# --- CSV import -------------------------------------------------------------------------------------

def _line_errors(exc: DeviceImportError) -> Any:
    shown = exc.errors[:MAX_LINE_ERRORS]
    items = [html.Li([html.Span(f"Line {line}", className="np-line-no"), html.Span(message)], className="np-line-error")
             for line, message in shown]
    more = len(exc.errors) - len(shown)
    return dbc.Alert([
        html.Div(f"{exc.bad_lines} bad line{'s' if exc.bad_lines != 1 else ''} in {exc.source}: nothing was "
                 "imported. Fix these lines and import the file again.", className="np-import-title"),
        html.Ul(items, className="np-line-errors"),
        html.Div(f"and {more:,} more" if more > 0 else "", className="np-muted"),
    ], color="danger", dismissable=True, className="np-import-errors")


@dash.callback(
    Output(ids.DEVICES_RESULT, "children", allow_duplicate=True),
    Output(ids.GRID_VERSION, "data", allow_duplicate=True),
    Output(ids.IMPORT_UPLOAD, "contents"),
    Input(ids.IMPORT_UPLOAD, "contents"), State(ids.IMPORT_UPLOAD, "filename"), State(ids.GRID_VERSION, "data"),
    prevent_initial_call=True,
)
@guarded(WRITE)  # as the inventory import
def import_csv(contents: str | None, filename: str | None, version: int | None) -> tuple[Any, Any, None]:
    if not contents:
        raise PreventUpdate
    name = filename or "the file"
    try:
        text = base64.b64decode(contents.split(",", 1)[1], validate=True).decode("utf-8-sig")
    except (IndexError, ValueError, binascii.Error, UnicodeDecodeError):
        return dbc.Alert(f"{name} is not UTF-8 CSV text; save it as CSV UTF-8 and try again.", color="danger",
                         dismissable=True), no_update, None
    if "\n" not in text:
        text += "\n"  # one line is still CSV text, not a file name
    try:
        with sessionmaker_of(current_app)() as session, session.begin():
            report = inventory.import_devices_csv(session, current_org_id(), text)
    except DeviceImportError as exc:
        exc.source = name
        return _line_errors(exc), no_update, None
    except NetPulseError as exc:
        return dbc.Alert(f"{name}: {exc.message}", color="danger", dismissable=True), no_update, None
    return (dbc.Alert(f"{name}: {report.summary()}.", color="success", dismissable=True), (version or 0) + 1, None)

