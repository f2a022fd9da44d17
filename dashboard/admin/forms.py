"""What every tab of the administration page shares: a tab's permissions, its grid, form fields, the
one-line result of a change, and running a core function whose refusal the page shows as one line.

A tab's callbacks are declared in its ``register()``, which :mod:`dashboard.pages.admin` calls when Dash
imports the page (Dash imports pages once per app, so each app gets the callbacks, as for a page's own).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import dash_ag_grid as dag
import dash_bootstrap_components as dbc
import structlog
from dash import dcc, html, no_update
from flask import current_app
from sqlalchemy.orm import Session

from dashboard.auth import sessionmaker_of
from dashboard.charts import GRID_THEME
from dashboard.permissions import allowed
from netpulse.errors import NetPulseError, ValidationError

__all__ = ["Tab", "grid", "field", "done", "refused", "outcome", "session", "text", "read_only", "danger_button",
           "number"]

log = structlog.get_logger("netpulse.dashboard.admin")
T = TypeVar("T")


@dataclass(frozen=True)
class Tab:
    key: str          # ?tab=<key>
    label: str
    read: str         # the permission of the API routes that list it
    write: str        # ... and of those that change it

    def readable(self) -> bool:
        return allowed(self.read)

    def writable(self) -> bool:
        return allowed(self.write)


@contextmanager
def session() -> Iterator[Session]:
    """A session in one transaction, committed when the block ends without an exception."""
    with sessionmaker_of(current_app)() as s, s.begin():
        yield s


def grid(grid_id: str, columns: list[dict[str, Any]], *, height: int = 320) -> dag.AgGrid:
    """A client-side grid of one tab's rows (a few hundred at most), one row selectable."""
    return dag.AgGrid(
        id=grid_id, columnDefs=columns, rowData=[], getRowId="params.data.id",
        defaultColDef={"sortable": True, "resizable": True, "filter": False, "flex": 1, "minWidth": 90},
        dashGridOptions={"theme": {"function": GRID_THEME}, "rowSelection": {
            "mode": "singleRow", "checkboxes": False, "enableClickSelection": True},
            "suppressCellFocus": True, "tooltipShowDelay": 400},
        style={"height": f"{height}px"}, className="np-grid")


def field(label: str, control: Any, hint: str = "") -> html.Div:
    return html.Div([dbc.Label(label, html_for=getattr(control, "id", None), className="np-field-label"), control,
                     html.Small(hint, className="np-muted") if hint else None], className="np-form-field")


def done(message: Any) -> dbc.Alert:
    return dbc.Alert(message, color="success", dismissable=True, className="np-admin-result")


def refused(message: str) -> dbc.Alert:
    """One line saying why nothing changed (the core's message names the values and the fix)."""
    return dbc.Alert(message, color="warning", dismissable=True, className="np-admin-result np-admin-refused")


def outcome(change: Callable[[], T]) -> tuple[T | None, dbc.Alert | None]:
    """Run ``change``; a refusal of the core (validation, duplicate, not found, in use) comes back as the
    line to show instead of a result, and the transaction it ran in is rolled back."""
    try:
        return change(), None
    except NetPulseError as exc:
        log.info("netpulse.dashboard.admin_refused", code=exc.code, message=exc.message)
        return None, refused(exc.message)


def write(change: Callable[[], Any], version: int | None) -> tuple[Any, Any]:
    """A tab's write answered: the change's message and the grid's next version (so it reloads), or
    the refusal alone with the grid left as it is."""
    message, error = outcome(change)
    if error is not None:
        return error, no_update
    return done(message), (version or 0) + 1


def text(value: Any) -> str:
    """A form value as stripped text ("" for empty)."""
    return str(value).strip() if value is not None else ""


def number(value: Any, name: str) -> float | None:
    """A numeric form value, None when blank; a ValidationError naming the field otherwise."""
    raw = text(value)
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise ValidationError(f"{name} must be a number (got {raw[:40]!r})", details={name: "not a number"}) from None


def read_only(what: str) -> html.Span:
    return html.Span(f"Read only: {what}", className="np-readonly")


def danger_button(confirm_id: str, label: str, message: str, button_id: str) -> dcc.ConfirmDialogProvider:
    """A button that asks before it removes something (its ``submit_n_clicks`` triggers the change)."""
    return dcc.ConfirmDialogProvider(
        dbc.Button(label, id=button_id, size="sm", color="danger", outline=True, disabled=True),
        id=confirm_id, message=message)
